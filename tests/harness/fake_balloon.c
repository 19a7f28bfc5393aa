/* A fake balloon backend (fake_balloon.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/harness/fake_balloon.h"

#define MAX_BALLOONS 8
static struct fake_balloon *balloons[MAX_BALLOONS];
static size_t n_balloons;
static int balloons_freed;
static int new_set_result;

static struct fake_balloon *fb(struct balloon *b)
{
    return (struct fake_balloon *)b;
}

static int fake_start(struct balloon *b)
{
    fb(b)->started = true;
    return 0;
}

static int fake_set_target(struct balloon *b, uint64_t target_bytes, uint64_t token,
                           balloon_done_cb done, void *opaque, char *error, size_t error_cap)
{
    struct fake_balloon *f = fb(b);
    if (f->set_result < 0) {
        snprintf(error, error_cap, "fake refused");
        return f->set_result;
    }
    f->sets++;
    f->target = target_bytes;
    f->token = token;
    f->pending = true;
    f->done = done;
    f->done_opaque = opaque;
    return 0;
}

static int fake_query(struct balloon *b, balloon_query_cb done, void *opaque)
{
    (void)done;
    (void)opaque;
    fb(b)->queries++;
    return -EAGAIN;
}

static void on_fake_closed(uv_handle_t *h)
{
    struct fake_balloon *f = h->data;
    if (f->closed_cb)
        f->closed_cb(f->closed_opaque);
    for (size_t i = 0; i < n_balloons; i++)
        if (balloons[i] == f)
            balloons[i] = NULL;
    balloons_freed++;
    free(f);
}

static void fake_close(struct balloon *b, balloon_closed_cb closed, void *opaque)
{
    struct fake_balloon *f = fb(b);
    f->closed = true;
    if (f->pending) {
        f->pending = false;
        f->done(f->done_opaque, f->token, -ECANCELED, "closed");
    }
    f->closed_cb = closed;
    f->closed_opaque = opaque;
    uv_close((uv_handle_t *)&f->close_timer, on_fake_closed); /* a later turn */
}

static void fake_describe(const struct balloon *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "fake balloon of %s", ((const struct fake_balloon *)b)->guest);
}

static void fake_view(const struct balloon *b, json_t *guest)
{
    (void)b;
    json_object_set_new(guest, "qmp", json_pack("{ss}", "path", "fake"));
}

static const struct balloon_ops fake_ops = {
    .kind = "fake",
    .move_note = " [fake]",
    .fds = 1,
    .start = fake_start,
    .set_target = fake_set_target,
    .query = fake_query,
    .close = fake_close,
    .describe = fake_describe,
    .view = fake_view,
};

static int fake_open(uv_loop_t *loop, const struct config_guest *cfg,
                     const struct config_daemon *daemon_cfg, struct balloon **ret)
{
    (void)daemon_cfg;
    *ret = &fake_balloon_new(loop, cfg->name)->base;
    return 0;
}

const struct balloon_factory fake_balloon_factory = {.kind = "fake", .open = fake_open};

void fake_balloons_reset(int set_result)
{
    n_balloons = 0;
    balloons_freed = 0;
    new_set_result = set_result;
}

struct fake_balloon *fake_balloon_new(uv_loop_t *loop, const char *guest)
{
    struct fake_balloon *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    balloon_init(&f->base, &fake_ops);
    snprintf(f->guest, sizeof(f->guest), "%s", guest);
    f->set_result = new_set_result;
    uv_timer_init(loop, &f->close_timer);
    f->close_timer.data = f;
    assert_true(n_balloons < MAX_BALLOONS);
    balloons[n_balloons++] = f;
    return f;
}

struct fake_balloon *fake_balloon_of(const char *guest)
{
    for (size_t i = 0; i < n_balloons; i++)
        if (balloons[i] && strcmp(balloons[i]->guest, guest) == 0 && !balloons[i]->closed)
            return balloons[i];
    fail_msg("no balloon for %s", guest);
    return NULL;
}

void fake_balloon_complete(struct fake_balloon *f, int status, const char *error)
{
    assert_true(f->pending);
    f->pending = false;
    f->done(f->done_opaque, f->token, status, error);
}

int fake_balloons_freed(void)
{
    return balloons_freed;
}
