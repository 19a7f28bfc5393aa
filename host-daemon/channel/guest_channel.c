/* A guest's agent link: host channel -> byte budget -> framer -> frame budget -> decoder. */
#include "host-daemon/channel/guest_channel.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/util/escape.h"
#include "virtio/host_channel.h"
#include "virtio/link_gate.h"

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
    /* sequence per boot id (docs/protocol.md) */
    char boot_id[BP_MAX_BOOT_ID_LEN + 1];
    bool seq_known;
    uint64_t last_seq;
    uint32_t reported; /* reasons already passed to on_first_reject, one bit each */
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

/* Reasons for on_first_reject, one bit each. */
enum reject_bit {
    REJECT_DECODE = 0, /* + enum bp_error */
    REJECT_RATE = 16,
    REJECT_STALE,
    REJECT_JUNK,
    REJECT_OVERSIZED,
    REJECT_TRUNCATED,
};

static void first_reject(struct guest_channel *gc, unsigned bit, const char *reason,
                         const char *detail)
{
    if (gc->reported & (1u << bit))
        return;
    gc->reported |= 1u << bit;
    if (gc->cbs.on_first_reject)
        gc->cbs.on_first_reject(gc, reason, detail, gc->opaque);
}

/* Sequence check of a pressure or report; false: drop it as stale. */
static bool seq_accept(struct guest_channel *gc, uint64_t seq)
{
    if (gc->seq_known && seq <= gc->last_seq) {
        gc->stats.seq_stale++;
        char detail[80];
        snprintf(detail, sizeof(detail), "seq %llu after %llu", (unsigned long long)seq,
                 (unsigned long long)gc->last_seq);
        first_reject(gc, REJECT_STALE, "seq_stale", detail);
        return false;
    }
    if (gc->seq_known && seq > gc->last_seq + 1)
        gc->stats.seq_lost += seq - gc->last_seq - 1;
    gc->seq_known = true;
    gc->last_seq = seq;
    return true;
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
        first_reject(gc, REJECT_RATE, "rate", "over the guest's frame budget");
        return;
    }
    struct bp_msg msg;
    char raw[80] = "", detail[sizeof(raw) * 4];
    enum bp_error err = bp_decode(payload, len, &msg, raw, sizeof(raw));
    if (err == BP_ERR_UNKNOWN_TYPE) {
        gc->stats.unknown_type++;
        return;
    }
    if (err != BP_OK) {
        /* The decoder's detail may quote the guest's bytes (jansson's "near '...'"). */
        text_escape_str(raw, detail, sizeof(detail));
        gc->stats.invalid++;
        if ((unsigned)err < sizeof(gc->stats.rejected) / sizeof(gc->stats.rejected[0]))
            gc->stats.rejected[err]++;
        /* Escaped into place, so truncation never cuts an escape in half. */
        size_t n = (size_t)snprintf(gc->stats.last_error, sizeof(gc->stats.last_error),
                                    "%s: ", bp_error_name(err));
        if (n < sizeof(gc->stats.last_error))
            text_escape_str(raw, gc->stats.last_error + n, sizeof(gc->stats.last_error) - n);
        first_reject(gc, REJECT_DECODE + (unsigned)err, bp_error_name(err), detail);
        return;
    }
    switch (msg.type) {
    case BP_MSG_HELLO:
        gc->stats.hellos++;
        /* A new boot id restarts the count; the same one continues it across reconnects. */
        if (strcmp(gc->boot_id, msg.u.hello.boot_id) != 0) {
            strcpy(gc->boot_id, msg.u.hello.boot_id);
            gc->seq_known = false;
        }
        send_welcome(gc);
        break;
    case BP_MSG_PRESSURE:
        if (!seq_accept(gc, msg.u.pressure.seq))
            return;
        gc->stats.pressure_events++;
        break;
    case BP_MSG_REPORT:
        if (!seq_accept(gc, msg.u.report.seq))
            return;
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
    const struct bp_framer_stats *f = &gc->framer.stats;
    if (f->junk_bytes > gc->stats.junk_bytes)
        first_reject(gc, REJECT_JUNK, "junk", "bytes outside any frame");
    if (f->oversized > gc->stats.oversized)
        first_reject(gc, REJECT_OVERSIZED, "oversized", "a frame over 4096 bytes");
    if (f->truncated > gc->stats.truncated)
        first_reject(gc, REJECT_TRUNCATED, "truncated", "a frame cut short");
    gc->stats.junk_bytes = f->junk_bytes;
    gc->stats.oversized = f->oversized;
    gc->stats.truncated = f->truncated;
    gc->stats.resyncs = f->resyncs;
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

/* See guest_channel.h. */
void guest_links_admission(unsigned max_in_flight, uint64_t max_open)
{
    link_gate_set_limits(link_gate_shared(), max_in_flight, max_open);
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
