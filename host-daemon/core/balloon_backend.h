/* The balloon backend interface: how the core reads and moves one guest's balloon without
 * knowing what stands behind it (QEMU's QMP monitor in qmp/qmp_balloon.c, libvirtd in
 * libvirt/libvirt_balloon.c; a virtio-mem `requested-size` backend would be a third).
 *
 * A backend object embeds `struct balloon` as its first member and fills `ops`. The core
 * binds its events (balloon_bind), calls start(), and from then on learns everything
 * through the events: `ready` once the size has been read (never act blind), `actual` when
 * the size changes, `lost` when the size is no longer known (the link dropped; the backend
 * retries on its own and says `ready` again). Moves and queries complete through their
 * callbacks, always from a later loop turn, never from inside the call that started them:
 * a backend may run its calls on another thread and deliver the result back on the loop.
 * Events may come at any time after start() returns (even while set_target runs: the core
 * only records them). Nothing here blocks, and nothing here logs except the backend's
 * own link messages (it knows the details).
 *
 * Sizes are the guest's memory size in bytes (QMP `balloon` semantics): a deflate raises it,
 * an inflate lowers it. Every callback runs on the loop thread.
 */
#ifndef BELLOWS_BALLOON_BACKEND_H
#define BELLOWS_BALLOON_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "host-daemon/config/config.h"

struct balloon;

/* A move finished: status 0 (the backend accepted the target; the size follows in
 * `actual` events), or a negative errno with `error` a short text for people (never NULL
 * then). -ECANCELED when the balloon was closed first. `token` is the one given to
 * set_target. */
typedef void (*balloon_done_cb)(void *opaque, uint64_t token, int status, const char *error);

/* A query finished: status 0 with the size, or a negative errno with a text. */
typedef void (*balloon_query_cb)(void *opaque, int status, uint64_t actual_bytes,
                                 const char *error);

/* The balloon is closed and its memory freed; `opaque` is close()'s. */
typedef void (*balloon_closed_cb)(void *opaque);

/* What a backend tells the core about one balloon (bound with balloon_bind). */
struct balloon_events {
    /* The link is usable and the size was just read. After start() and after each loss. */
    void (*ready)(void *opaque, uint64_t actual_bytes);
    /* The size changed while ready (QMP BALLOON_CHANGE, libvirt's balloon event). */
    void (*actual)(void *opaque, uint64_t actual_bytes);
    /* The size is no longer known (link lost, reason for logs); ready follows on success. */
    void (*lost)(void *opaque, const char *reason);
};

struct balloon_ops {
    const char *kind;      /* "qmp", "libvirt": a stable name for logs and views */
    const char *move_note; /* appended to each move's log line: "" or e.g. " [libvirt]" */
    unsigned fds;          /* file descriptors one balloon holds (the descriptor budget) */

    /* Begin: connect or look up, read the size; `ready` follows from a later loop turn.
     * 0 or a negative errno (nothing started). */
    int (*start)(struct balloon *b);
    /* Move to target_bytes. 0: `done` runs exactly once, later. <0 (-ENOTCONN, -EBUSY,
     * -EINVAL, ...): nothing was sent and done never runs; `error` (may be NULL) says why. */
    int (*set_target)(struct balloon *b, uint64_t target_bytes, uint64_t token,
                      balloon_done_cb done, void *opaque, char *error, size_t error_cap);
    /* Read the size again; same rules as set_target (done runs once, later, on 0). */
    int (*query)(struct balloon *b, balloon_query_cb done, void *opaque);
    /* Stop: a pending move or query completes with -ECANCELED (inside this call), no event
     * or callback runs after it returns, and `closed` (may be NULL) runs once memory is
     * released, from a later loop turn. */
    void (*close)(struct balloon *b, balloon_closed_cb closed, void *opaque);
    /* For log lines: "QMP /run/vm1.qmp", "libvirt domain web-1". */
    void (*describe)(const struct balloon *b, char *buf, size_t cap);
    /* Add this backend's part to a guest's JSON view (e.g. "qmp": {"path", "ready"}). */
    void (*view)(const struct balloon *b, json_t *guest);
};

/* The part every backend object starts with. */
struct balloon {
    const struct balloon_ops *ops;
    const struct balloon_events *events; /* NULL until bound: events are dropped */
    void *events_opaque;
};

/* Opens the balloons of the guests the core makes itself from settings (config file,
 * control socket `add`): the QMP backend today. `cfg` has the guest's paths; `daemon_cfg`
 * its reconnect backoff. The balloon is not started. */
struct balloon_factory {
    const char *kind;
    int (*open)(uv_loop_t *loop, const struct config_guest *cfg,
                const struct config_daemon *daemon_cfg, struct balloon **ret);
};

/* For backends: set up the common part. */
static inline void balloon_init(struct balloon *b, const struct balloon_ops *ops)
{
    b->ops = ops;
    b->events = NULL;
    b->events_opaque = NULL;
}

/* For the core: where the events go. */
static inline void balloon_bind(struct balloon *b, const struct balloon_events *events,
                                void *opaque)
{
    b->events = events;
    b->events_opaque = opaque;
}

/* For backends: tell the core. */
static inline void balloon_emit_ready(struct balloon *b, uint64_t actual_bytes)
{
    if (b->events && b->events->ready)
        b->events->ready(b->events_opaque, actual_bytes);
}

static inline void balloon_emit_actual(struct balloon *b, uint64_t actual_bytes)
{
    if (b->events && b->events->actual)
        b->events->actual(b->events_opaque, actual_bytes);
}

static inline void balloon_emit_lost(struct balloon *b, const char *reason)
{
    if (b->events && b->events->lost)
        b->events->lost(b->events_opaque, reason);
}

#endif
