/* The libvirt balloon backend: one managed domain's balloon behind the balloon interface.
 * A move's completion comes from libvirt_client's worker (always a later loop turn); ready
 * and queries are delivered from a zero timer. */
#include "host-daemon/libvirt/libvirt_balloon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UUID_LEN 36
#define DOMAIN_MAX 255

struct libvirt_balloon {
    struct balloon base;            /* first: a struct balloon * is a struct libvirt_balloon * */
    struct libvirt_backend *client; /* NULL once detached */
    struct libvirt_balloons *set;   /* NULL once detached */
    struct libvirt_balloon *next;
    char guest[CONFIG_NAME_MAX + 1];
    char uuid[UUID_LEN + 1];
    char domain[DOMAIN_MAX + 1];
    bool started;
    bool connected;
    bool ready;
    bool actual_known;
    uint64_t actual_bytes;
    uv_timer_t timer; /* delivers what is pending below from a later loop turn */

    bool ready_pending; /* start(): ready with the size known at creation */
    bool move_pending;  /* a move is on libvirt_client's worker */
    balloon_done_cb move_done;
    void *move_opaque;
    uint64_t move_token;
    bool query_pending;
    balloon_query_cb query_done;
    void *query_opaque;
    int query_status;
    uint64_t query_bytes;

    balloon_closed_cb closed;
    void *closed_opaque;
};

static struct libvirt_balloon *of(struct balloon *b)
{
    return (struct libvirt_balloon *)b;
}

static void on_timer(uv_timer_t *timer)
{
    struct libvirt_balloon *lb = timer->data;
    if (lb->ready_pending) {
        lb->ready_pending = false;
        if (lb->actual_known && !lb->ready) {
            lb->ready = true;
            balloon_emit_ready(&lb->base, lb->actual_bytes);
        }
    }
    if (lb->query_pending) {
        lb->query_pending = false;
        lb->query_done(lb->query_opaque, lb->query_status, lb->query_bytes,
                       lb->query_status == 0 ? NULL : "the size is not known");
    }
}

static void deliver_soon(struct libvirt_balloon *lb)
{
    uv_timer_start(&lb->timer, on_timer, 0, 0);
}

static int lb_start(struct balloon *b)
{
    struct libvirt_balloon *lb = of(b);
    lb->started = true;
    if (lb->actual_known) {
        lb->ready_pending = true;
        deliver_soon(lb);
    }
    return 0;
}

/* libvirt_client's answer as a text for people. */
static void error_text(const struct libvirt_balloon *lb, int r, char *buf, size_t cap)
{
    switch (r) {
    case -ENOENT:
        snprintf(buf, cap, "libvirt domain %.150s is gone", lb->domain);
        break;
    case -ENOTCONN:
        snprintf(buf, cap, "not connected to libvirtd");
        break;
    case -ERANGE:
        snprintf(buf, cap, "target outside 1 MiB..the domain's maximum memory");
        break;
    case -EBUSY:
        snprintf(buf, cap, "a move is in flight");
        break;
    default:
        snprintf(buf, cap, "%s", strerror(-r));
        break;
    }
}

/* The worker's answer, on the loop. */
static void on_move_done(struct libvirt_backend *client, const char *uuid, int status,
                         const char *error, void *opaque)
{
    (void)client;
    (void)uuid;
    struct libvirt_balloon *lb = opaque;
    if (!lb->move_pending)
        return;
    lb->move_pending = false;
    lb->move_done(lb->move_opaque, lb->move_token, status, status == 0 ? NULL : error);
}

static int lb_set_target(struct balloon *b, uint64_t target_bytes, uint64_t token,
                         balloon_done_cb done, void *opaque, char *error, size_t error_cap)
{
    struct libvirt_balloon *lb = of(b);
    if (!lb->client) {
        if (error)
            snprintf(error, error_cap, "the libvirt backend is not running");
        return -ENOTCONN;
    }
    if (lb->move_pending) {
        if (error)
            snprintf(error, error_cap, "a move is in flight");
        return -EBUSY;
    }
    /* The size the core decided on goes along: should the worker read another one, the
     * move is not sent (-ESTALE) and the fresh size comes first, to decide again. */
    int r = libvirt_backend_move(lb->client, lb->uuid, target_bytes,
                                 lb->actual_known ? lb->actual_bytes : 0, on_move_done, lb);
    if (r < 0) {
        if (error)
            error_text(lb, r, error, error_cap);
        return r;
    }
    lb->move_pending = true;
    lb->move_done = done;
    lb->move_opaque = opaque;
    lb->move_token = token;
    return 0;
}

static int lb_query(struct balloon *b, balloon_query_cb done, void *opaque)
{
    struct libvirt_balloon *lb = of(b);
    uint64_t bytes;
    if (!lb->client)
        return -ENOTCONN;
    if (lb->query_pending)
        return -EBUSY;
    /* Unknown since libvirtd went away: the next size read says ready instead. */
    if (!lb->actual_known || libvirt_backend_actual(lb->client, lb->uuid, &bytes) < 0)
        return -EAGAIN;
    lb->query_pending = true;
    lb->query_done = done;
    lb->query_opaque = opaque;
    lb->query_status = 0;
    lb->query_bytes = bytes;
    deliver_soon(lb);
    return 0;
}

static void unlink_from_set(struct libvirt_balloon *lb)
{
    if (!lb->set)
        return;
    for (struct libvirt_balloon **p = &lb->set->head; *p; p = &(*p)->next) {
        if (*p == lb) {
            *p = lb->next;
            break;
        }
    }
    lb->set = NULL;
    lb->next = NULL;
}

static void on_timer_closed(uv_handle_t *h)
{
    struct libvirt_balloon *lb = h->data;
    if (lb->closed)
        lb->closed(lb->closed_opaque);
    free(lb);
}

static void lb_close(struct balloon *b, balloon_closed_cb closed, void *opaque)
{
    struct libvirt_balloon *lb = of(b);
    unlink_from_set(lb);
    lb->base.events = NULL; /* no event after close */
    lb->ready_pending = false;
    if (lb->move_pending) {
        lb->move_pending = false;
        if (lb->client)
            libvirt_backend_cancel_move(lb->client, lb->uuid); /* its answer goes nowhere */
        lb->move_done(lb->move_opaque, lb->move_token, -ECANCELED, "closed before the answer");
    }
    if (lb->query_pending) {
        lb->query_pending = false;
        lb->query_done(lb->query_opaque, -ECANCELED, 0, "closed before the answer");
    }
    lb->client = NULL;
    lb->closed = closed;
    lb->closed_opaque = opaque;
    uv_close((uv_handle_t *)&lb->timer, on_timer_closed);
}

static void lb_describe(const struct balloon *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "libvirt domain %s", ((const struct libvirt_balloon *)b)->domain);
}

static void lb_view(const struct balloon *b, json_t *guest)
{
    const struct libvirt_balloon *lb = (const struct libvirt_balloon *)b;
    json_object_set_new(
        guest, "libvirt",
        json_pack("{sssssb}", "domain", lb->domain, "uuid", lb->uuid, "connected", lb->connected));
}

static const struct balloon_ops libvirt_balloon_ops = {
    .kind = "libvirt",
    .move_note = " [libvirt]",
    .fds = 0, /* the one connection to libvirtd is the module's */
    .start = lb_start,
    .set_target = lb_set_target,
    .query = lb_query,
    .close = lb_close,
    .describe = lb_describe,
    .view = lb_view,
};

/* See libvirt_balloon.h. */
struct balloon *libvirt_balloon_new(struct libvirt_balloons *set, struct libvirt_backend *client,
                                    uv_loop_t *loop, const char *guest, const char *uuid,
                                    const char *domain, uint64_t actual_bytes)
{
    struct libvirt_balloon *lb = calloc(1, sizeof(*lb));
    if (!lb)
        return NULL;
    balloon_init(&lb->base, &libvirt_balloon_ops);
    lb->client = client;
    snprintf(lb->guest, sizeof(lb->guest), "%s", guest);
    snprintf(lb->uuid, sizeof(lb->uuid), "%s", uuid);
    snprintf(lb->domain, sizeof(lb->domain), "%s", domain);
    lb->connected = true;
    lb->actual_known = true;
    lb->actual_bytes = actual_bytes;
    uv_timer_init(loop, &lb->timer);
    lb->timer.data = lb;
    lb->set = set;
    lb->next = set->head;
    set->head = lb;
    return &lb->base;
}

/* See libvirt_balloon.h. */
struct balloon *libvirt_balloons_find(const struct libvirt_balloons *set, const char *uuid)
{
    for (struct libvirt_balloon *lb = set->head; lb; lb = lb->next)
        if (strcmp(lb->uuid, uuid) == 0)
            return &lb->base;
    return NULL;
}

/* See libvirt_balloon.h. */
const char *libvirt_balloon_guest(const struct balloon *b)
{
    return ((const struct libvirt_balloon *)b)->guest;
}

/* See libvirt_balloon.h. */
void libvirt_balloon_note_actual(struct balloon *b, uint64_t actual_bytes)
{
    struct libvirt_balloon *lb = of(b);
    lb->actual_known = true;
    lb->actual_bytes = actual_bytes;
    if (!lb->started)
        return; /* start() says ready with it */
    if (!lb->ready) {
        lb->ready = true;
        lb->ready_pending = false;
        balloon_emit_ready(b, actual_bytes);
        return;
    }
    balloon_emit_actual(b, actual_bytes);
}

/* See libvirt_balloon.h. */
void libvirt_balloons_set_connected(struct libvirt_balloons *set, bool connected, const char *why)
{
    for (struct libvirt_balloon *lb = set->head; lb; lb = lb->next) {
        lb->connected = connected;
        if (connected)
            continue;
        /* Never act blind: sizes read before the gap are void; the rescan reads them. */
        lb->actual_known = false;
        lb->ready = false;
        lb->ready_pending = false;
        if (lb->started)
            balloon_emit_lost(&lb->base, why);
    }
}

/* See libvirt_balloon.h. */
void libvirt_balloons_detach(struct libvirt_balloons *set)
{
    struct libvirt_balloon *lb = set->head, *next;
    for (; lb; lb = next) {
        next = lb->next;
        lb->client = NULL;
        lb->set = NULL;
        lb->next = NULL;
    }
    set->head = NULL;
}
