/* One guest's agent link, as bellowsd sees it: the virtio-serial host channel, the
 * protocol framer and decoder, and the per-guest limits that keep a misbehaving guest
 * from costing anyone else anything.
 *
 * Bytes from the channel go through a byte budget (beyond it, reading pauses: the guest's
 * own writes back up), the framer (junk, oversized and truncated frames are dropped and
 * counted), a frame budget (frames beyond it are dropped unread and reading pauses until
 * the budget refills), then bp_decode (invalid frames are counted, with the last reason).
 * Pressure events and reports are checked against the sequence of their boot id
 * (docs/protocol.md: stale ones dropped, gaps counted) and go to on_message; a hello is
 * answered with a welcome.
 * Every buffer is fixed-size. Time comes from the loop (uv_now), passed into the limiters.
 */
#ifndef BELLOWS_GUEST_CHANNEL_H
#define BELLOWS_GUEST_CHANNEL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/util/ratelimit.h"
#include "protocol/bellows_protocol.h"

struct guest_channel;

struct guest_channel_limits {
    uint32_t frame_rate;  /* frames per second on average */
    uint32_t frame_burst; /* frames at once */
    uint64_t byte_rate;   /* bytes per second read */
    uint64_t byte_burst;  /* bytes at once; at least HOST_CHANNEL_READ_BUF */
    uint64_t backoff_min_ms;
    uint64_t backoff_max_ms;
};

/* Counters since the channel was made; they survive reconnects. */
struct guest_channel_stats {
    uint64_t bytes;    /* read from the socket */
    uint64_t frames;   /* complete frames out of the framer */
    uint64_t messages; /* decoded and accepted */
    uint64_t hellos;
    uint64_t pressure_events;
    uint64_t reports;
    uint64_t invalid;                    /* frames bp_decode refused (not counting unknown types) */
    uint64_t rejected[BP_ERR_SPACE + 1]; /* ... by reason (enum bp_error, bp_error_name) */
    uint64_t seq_stale;                  /* pressure/report with seq <= the last one: dropped */
    uint64_t seq_lost;        /* frames missing between two seqs (agent could not send) */
    uint64_t resyncs;         /* from the framer */
    uint64_t unknown_type;    /* frames of a type this version does not know: ignored */
    uint64_t wrong_direction; /* a welcome sent by the guest */
    uint64_t rate_limited;    /* frames dropped by the frame budget */
    uint64_t throttled;       /* times reading was paused for a budget */
    uint64_t junk_bytes;      /* from the framer */
    uint64_t oversized;
    uint64_t truncated;
    uint64_t connects;
    uint64_t disconnects;
    uint64_t welcomes_dropped; /* welcome not sent: the guest does not read */
    char last_error[96];       /* the last decode error's detail, escaped, "" if none */
};

struct guest_channel_callbacks {
    /* A pressure event or report (msg->type BP_MSG_PRESSURE or BP_MSG_REPORT), or a hello
     * (after the welcome was queued). */
    void (*on_message)(struct guest_channel *gc, const struct bp_msg *msg, void *opaque);
    /* Connected (err 0) or disconnected/failed (err < 0). */
    void (*on_link)(struct guest_channel *gc, bool connected, int err, void *opaque);
    /* The first frame dropped for a reason ("json", "range", "seq_stale", "rate", "junk",
     * "oversized" ...) since the channel was made: for a log line. Later ones of the same
     * reason are only counted. `detail` is escaped (escape.h): printable ASCII only, since
     * it may quote the guest's bytes. May be NULL. */
    void (*on_first_reject)(struct guest_channel *gc, const char *reason, const char *detail,
                            void *opaque);
};

/* Make and start a channel to the chardev socket at path. welcome is what each hello is
 * answered with (copied). Returns 0 or a negative errno. */
int guest_channel_new(uv_loop_t *loop, const char *path, const struct guest_channel_limits *lim,
                      const struct bp_welcome *welcome, const struct guest_channel_callbacks *cbs,
                      void *opaque, struct guest_channel **ret_gc);

/* Change the limits of a running channel (a config reload); budgets restart full. */
void guest_channel_set_limits(struct guest_channel *gc, const struct guest_channel_limits *lim);

const struct guest_channel_stats *guest_channel_stats(const struct guest_channel *gc);
bool guest_channel_connected(const struct guest_channel *gc);
bool guest_channel_throttled(const struct guest_channel *gc);
const char *guest_channel_path(const struct guest_channel *gc);

/* Bound the connects of every guest link of this process, channels and QMP monitors alike
 * (virtio/link_gate.h): at most max_in_flight at once, and no new link while max_open are
 * open (0: no bound). Links past it wait in line and connect as places free. */
void guest_links_admission(unsigned max_in_flight, uint64_t max_open);

/* Close; no callback runs after this returns; memory is freed once libuv lets go. */
void guest_channel_close(struct guest_channel *gc);

#endif
