/* A guest's agent link: host channel -> byte budget -> framer -> frame budget -> decoder. */
#include "host-daemon/guest_channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/host_channel.h"

#define NS_PER_MS UINT64_C(1000000)

struct guest_channel {
    uv_loop_t *loop;
    struct host_channel *ch;
    uv_timer_t resume_timer; /* ends a throttling pause */
    struct guest_channel_limits lim;
    struct ratelimit byte_budget;
    struct ratelimit frame_budget;
    struct bp_welcome welcome;
    struct guest_channel_callbacks cbs;
    void *opaque;
    bool closing;
    bool throttled;
    unsigned open_handles;
    struct guest_channel_stats stats;
    struct bp_framer framer;
};

static uint64_t now_ns(const struct guest_channel *gc)
{
    return uv_now(gc->loop) * NS_PER_MS;
}

static void send_welcome(struct guest_channel *gc)
{
    struct bp_msg msg = {.type = BP_MSG_WELCOME, .u.welcome = gc->welcome};
    char frame[512];
    size_t len;
    if (bp_encode(&msg, frame, sizeof(frame), &len) != BP_OK ||
        host_channel_write(gc->ch, frame, len) < 0)
        gc->stats.welcomes_dropped++;
}

/* One complete frame out of the framer. */
static void on_frame(const char *payload, size_t len, void *opaque)
{
    struct guest_channel *gc = opaque;
    if (gc->closing)
        return;
    gc->stats.frames++;
    /* Charge before decoding: a flood of frames costs the decoder nothing beyond the budget. */
    if (!ratelimit_take(&gc->frame_budget, 1, now_ns(gc))) {
        gc->stats.rate_limited++;
        return;
    }
    struct bp_msg msg;
    char detail[80] = "";
    enum bp_error err = bp_decode(payload, len, &msg, detail, sizeof(detail));
    if (err == BP_ERR_UNKNOWN_TYPE) {
        gc->stats.unknown_type++;
        return;
    }
    if (err != BP_OK) {
        gc->stats.invalid++;
        snprintf(gc->stats.last_error, sizeof(gc->stats.last_error), "%s: %s",
                 bp_error_name(err), detail);
        return;
    }
    switch (msg.type) {
    case BP_MSG_HELLO:
        gc->stats.hellos++;
        send_welcome(gc);
        break;
    case BP_MSG_PRESSURE:
        gc->stats.pressure_events++;
        break;
    case BP_MSG_REPORT:
        gc->stats.reports++;
        break;
    default:
        gc->stats.wrong_direction++;
        return;
    }
    gc->stats.messages++;
    if (gc->cbs.on_message)
        gc->cbs.on_message(gc, &msg, gc->opaque);
}

static void on_resume(uv_timer_t *timer)
{
    struct guest_channel *gc = timer->data;
    gc->throttled = false;
    host_channel_resume(gc->ch);
}

/* Pause reading until both budgets can take another full read. */
static void throttle_if_spent(struct guest_channel *gc)
{
    uint64_t now = now_ns(gc);
    uint64_t wait = ratelimit_wait_ns(&gc->byte_budget, HOST_CHANNEL_READ_BUF, now);
    uint64_t frame_wait = ratelimit_wait_ns(&gc->frame_budget, 1, now);
    if (frame_wait > wait)
        wait = frame_wait;
    if (wait == 0)
        return;
    gc->stats.throttled++;
    gc->throttled = true;
    host_channel_pause(gc->ch);
    uv_timer_start(&gc->resume_timer, on_resume, (wait + NS_PER_MS - 1) / NS_PER_MS, 0);
}

static void sync_framer_stats(struct guest_channel *gc)
{
    gc->stats.junk_bytes = gc->framer.stats.junk_bytes;
    gc->stats.oversized = gc->framer.stats.oversized;
    gc->stats.truncated = gc->framer.stats.truncated;
}

static void on_data(struct host_channel *ch, const char *data, size_t len, void *opaque)
{
    (void)ch;
    struct guest_channel *gc = opaque;
    gc->stats.bytes += len;
    /* Reading only resumes with a full read's worth of budget, so this always fits. */
    ratelimit_take(&gc->byte_budget, len, now_ns(gc));
    bp_framer_feed(&gc->framer, data, len, on_frame, gc);
    if (gc->closing)
        return;
    sync_framer_stats(gc);
    throttle_if_spent(gc);
}

static void on_connect(struct host_channel *ch, void *opaque)
{
    (void)ch;
    struct guest_channel *gc = opaque;
    gc->stats.connects++;
    bp_framer_reset(&gc->framer);
    sync_framer_stats(gc);
    if (gc->cbs.on_link)
        gc->cbs.on_link(gc, true, 0, gc->opaque);
}

static void on_disconnect(struct host_channel *ch, int err, bool was_connected, void *opaque)
{
    (void)ch;
    struct guest_channel *gc = opaque;
    if (was_connected)
        gc->stats.disconnects++;
    /* A frame cut by the hang-up is counted as truncated, never joined to the next link. */
    bp_framer_reset(&gc->framer);
    sync_framer_stats(gc);
    if (gc->cbs.on_link)
        gc->cbs.on_link(gc, false, err, gc->opaque);
}

static void set_budgets(struct guest_channel *gc, const struct guest_channel_limits *lim)
{
    gc->lim = *lim;
    if (gc->lim.byte_burst < HOST_CHANNEL_READ_BUF)
        gc->lim.byte_burst = HOST_CHANNEL_READ_BUF;
    if (gc->lim.byte_rate > UINT32_MAX)
        gc->lim.byte_rate = UINT32_MAX;
    if (gc->lim.byte_burst > UINT32_MAX)
        gc->lim.byte_burst = UINT32_MAX;
    ratelimit_init(&gc->byte_budget, (uint32_t)gc->lim.byte_rate, (uint32_t)gc->lim.byte_burst);
    ratelimit_init(&gc->frame_budget, gc->lim.frame_rate, gc->lim.frame_burst);
}

/* See guest_channel.h. */
int guest_channel_new(uv_loop_t *loop, const char *path, const struct guest_channel_limits *lim,
                      const struct bp_welcome *welcome, const struct guest_channel_callbacks *cbs,
                      void *opaque, struct guest_channel **ret_gc)
{
    struct guest_channel *gc = calloc(1, sizeof(*gc));
    if (!gc)
        return -ENOMEM;
    gc->loop = loop;
    gc->welcome = *welcome;
    gc->cbs = *cbs;
    gc->opaque = opaque;
    set_budgets(gc, lim);
    bp_framer_init(&gc->framer);

    struct host_channel_config hc = {
        .backoff_min_ms = lim->backoff_min_ms,
        .backoff_max_ms = lim->backoff_max_ms,
    };
    struct host_channel_callbacks hcbs = {
        .on_connect = on_connect,
        .on_data = on_data,
        .on_disconnect = on_disconnect,
    };
    int r = host_channel_new(loop, path, &hc, &hcbs, gc, &gc->ch);
    if (r < 0) {
        free(gc);
        return r;
    }
    uv_timer_init(loop, &gc->resume_timer);
    gc->resume_timer.data = gc;
    host_channel_start(gc->ch);
    *ret_gc = gc;
    return 0;
}

/* See guest_channel.h. */
void guest_channel_set_limits(struct guest_channel *gc, const struct guest_channel_limits *lim)
{
    set_budgets(gc, lim);
}

/* See guest_channel.h. */
const struct guest_channel_stats *guest_channel_stats(const struct guest_channel *gc)
{
    return &gc->stats;
}

/* See guest_channel.h. */
bool guest_channel_connected(const struct guest_channel *gc)
{
    return host_channel_connected(gc->ch);
}

/* See guest_channel.h. */
bool guest_channel_throttled(const struct guest_channel *gc)
{
    return gc->throttled;
}

/* See guest_channel.h. */
const char *guest_channel_path(const struct guest_channel *gc)
{
    return host_channel_path(gc->ch);
}

static void release(struct guest_channel *gc)
{
    if (--gc->open_handles == 0)
        free(gc);
}

static void on_channel_closed(struct host_channel *ch, void *opaque)
{
    (void)ch;
    release(opaque);
}

static void on_timer_closed(uv_handle_t *handle)
{
    release(handle->data);
}

/* See guest_channel.h. */
void guest_channel_close(struct guest_channel *gc)
{
    if (gc->closing)
        return;
    gc->closing = true;
    gc->open_handles = 2;
    uv_timer_stop(&gc->resume_timer);
    uv_close((uv_handle_t *)&gc->resume_timer, on_timer_closed);
    host_channel_close(gc->ch, on_channel_closed);
}
