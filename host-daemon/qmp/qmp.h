/* QMP client for one QEMU monitor socket, on a libuv loop.
 *
 * The client connects to QEMU's QMP unix socket (`-qmp unix:PATH,server=on,wait=off`),
 * reads the greeting, negotiates capabilities and then reads the balloon's actual size
 * with `query-balloon` before it reports itself ready: it never acts blind. When the
 * connection is lost (QEMU restarts, junk, an oversized message, a handshake timeout, a
 * monitor that misses max_missed_replies replies in a row) every pending command fails,
 * and the client reconnects with exponential backoff; each reconnect reads the balloon
 * again before the next on_ready. The backoff starts over only after a connection stayed
 * ready for stable_ms, and while disconnected the socket's folder is watched, so a QEMU
 * that makes its socket again is connected at once (virtio/sock_watch.h).
 *
 * Nothing blocks and nothing reads a clock: all timing comes from the loop's timers.
 * Commands carry numeric ids and replies are matched by id; each command has a timeout.
 * All callbacks run on the loop. Callbacks may call any qmp_client_* function, including
 * qmp_client_close() on the client that is calling them.
 *
 * The program must ignore SIGPIPE (libuv writes to the socket with write(2); a QEMU that
 * went away must give an error, not kill the daemon).
 */
#ifndef BELLOWS_QMP_H
#define BELLOWS_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

struct qmp_client;

/* Tunables; zero fields take the defaults below. Times are in milliseconds of loop time. */
struct qmp_client_config {
    uint64_t command_timeout_ms; /* per command, and per handshake step (default 5000) */
    uint64_t backoff_min_ms;     /* first reconnect delay (default 100) */
    uint64_t backoff_max_ms;     /* the delay doubles up to this (default 5000) */
    uint64_t stable_ms;          /* ready this long: healthy, backoff starts over
                                    (default max(backoff_max_ms, 1000)) */
    size_t max_message_bytes;    /* a longer QMP message is a protocol error (default 1 MiB) */
    unsigned max_missed_replies; /* this many command timeouts in a row: the monitor is
                                    dead, reconnect (default 3) */
    size_t max_write_queue;      /* bytes waiting to be written to a monitor that does not
                                    read; a command past it is refused (default 64 KiB) */
};

#define QMP_DEFAULT_COMMAND_TIMEOUT_MS 5000u
#define QMP_DEFAULT_BACKOFF_MIN_MS 100u
#define QMP_DEFAULT_BACKOFF_MAX_MS 5000u
#define QMP_DEFAULT_MAX_MESSAGE_BYTES (1024u * 1024u)
#define QMP_DEFAULT_MAX_MISSED_REPLIES 3u
#define QMP_DEFAULT_MAX_WRITE_QUEUE (64u * 1024u)

/* Counters since the client was made; they survive reconnects. */
struct qmp_client_stats {
    uint64_t readies;       /* handshakes completed */
    uint64_t disconnects;   /* connections or attempts that ended */
    uint64_t timeouts;      /* commands that got no reply in time */
    uint64_t dead_monitors; /* reconnects because max_missed_replies were missed */
    uint64_t bad_actuals;   /* balloon sizes ignored: not an integer > 0 */
    uint64_t write_refused; /* commands refused with -ENOBUFS (the write queue was full) */
    uint64_t watch_retries; /* connects made at once because the socket appeared */
    uint64_t gate_waits;    /* attempts that waited for the process's link gate */
};

/* Commands waiting for replies on one connection, at most (a monitor that stops reading
 * must not make the daemon queue without bound). */
#define QMP_MAX_PENDING 64

/* Events of the connection. `opaque` is the one given to qmp_client_new(). Any may be NULL. */
struct qmp_callbacks {
    /* Handshake done and the balloon read: `actual_bytes` is the guest's current memory
     * size as QEMU's balloon sees it. Called after every successful (re)connect. */
    void (*on_ready)(struct qmp_client *c, int64_t actual_bytes, void *opaque);
    /* The balloon's actual size changed (a BALLOON_CHANGE event, or a query-balloon
     * reply that differs from the last known size). Only while ready. */
    void (*on_balloon_change)(struct qmp_client *c, int64_t actual_bytes, void *opaque);
    /* A connection attempt failed or an established connection was lost. `err` is a
     * negative errno (-ECONNREFUSED, -ENOENT, -ECONNRESET, -EPROTO, -EMSGSIZE,
     * -ETIMEDOUT, ...), `reason` a short text for logs. `was_ready` tells whether
     * on_ready had been called for this connection. A reconnect is already scheduled. */
    void (*on_disconnect)(struct qmp_client *c, int err, const char *reason, bool was_ready,
                          void *opaque);
    /* A balloon size QEMU sent was not an integer > 0 (in a BALLOON_CHANGE or a
     * query-balloon reply): it was ignored and counted, the link stays. `where` names the
     * message. Not called for the handshake's query-balloon, whose bad reply ends the
     * connection (nothing may move a balloon whose size is unknown). */
    void (*on_bad_actual)(struct qmp_client *c, const char *where, void *opaque);
};

/* Outcome of one command, valid only during the done callback. */
struct qmp_result {
    /* 0: QEMU returned; -EREMOTEIO: QEMU answered with an error (see error_class/desc);
     * -ETIMEDOUT: no reply within the command timeout; -ECONNRESET: the connection was
     * lost before the reply; -ECANCELED: the client was closed. */
    int status;
    const char *error_class; /* -EREMOTEIO: e.g. "GenericError", "DeviceNotActive"; else NULL */
    const char *error_desc;  /* -EREMOTEIO: QEMU's human-readable text; else NULL */
    int64_t actual_bytes;    /* query-balloon with status 0: the actual size; else -1 */
    const json_t *ret;       /* status 0: the "return" value, borrowed; else NULL */
};

/* Called exactly once per accepted command. `opaque` is the command's own. */
typedef void (*qmp_done_cb)(struct qmp_client *c, const struct qmp_result *res, void *opaque);

/* Called once after qmp_client_close(), when every libuv handle has been closed; the
 * client's memory is freed right after it returns. */
typedef void (*qmp_closed_cb)(struct qmp_client *c, void *opaque);

/* Make a client for the QMP socket at `path` (copied; it must fit a sockaddr_un).
 * `cfg` may be NULL for defaults; `cbs` is copied. Nothing happens until
 * qmp_client_start(). Returns 0, -EINVAL, -ENAMETOOLONG or -ENOMEM. */
int qmp_client_new(uv_loop_t *loop, const char *path, const struct qmp_client_config *cfg,
                   const struct qmp_callbacks *cbs, void *opaque, struct qmp_client **ret_client);

/* Start connecting (at once); from then on the client keeps itself connected until
 * qmp_client_close(). Returns 0 or a negative errno (-EALREADY if started). */
int qmp_client_start(struct qmp_client *c);

/* Ask QEMU to move the balloon so that the guest has `target_bytes` of memory (QMP
 * `balloon`, value = the guest's target memory size in bytes; > 0). QEMU acknowledges at
 * once; the actual size follows in on_balloon_change. Only while ready: returns
 * -ENOTCONN otherwise (and done is not called), -EINVAL for a bad target, -EBUSY when
 * QMP_MAX_PENDING commands already wait for replies, -ENOBUFS when the bytes not yet
 * written to the monitor would pass max_write_queue, -ENOMEM.
 * On 0, `done` (may be NULL) is called exactly once, later, never from inside this call. */
int qmp_client_set_balloon(struct qmp_client *c, int64_t target_bytes, qmp_done_cb done,
                           void *opaque);

/* Read the balloon's actual size (QMP `query-balloon`); the result's actual_bytes has it,
 * and the client's known actual size is updated. Same rules as qmp_client_set_balloon. */
int qmp_client_query_balloon(struct qmp_client *c, qmp_done_cb done, void *opaque);

/* Run any QMP command, e.g. "qom-get" with {"path":..., "property":...}. `args` may be
 * NULL and is not stolen. Same rules as qmp_client_set_balloon. */
int qmp_client_execute(struct qmp_client *c, const char *command, const json_t *args,
                       qmp_done_cb done, void *opaque);

/* True between on_ready and the next disconnect. */
bool qmp_client_is_ready(const struct qmp_client *c);

/* The last known actual size in bytes, or -1 before the first query-balloon reply
 * of the current connection. */
int64_t qmp_client_actual(const struct qmp_client *c);

/* The last target QEMU accepted on the current connection, or -1 if none. */
int64_t qmp_client_target(const struct qmp_client *c);

/* Counters (see struct qmp_client_stats). */
const struct qmp_client_stats *qmp_client_stats(const struct qmp_client *c);

/* Where the last connection or attempt ended, a stable name for logs that limit
 * themselves to changes: "connect", "greeting", "handshake" (qmp_capabilities or the
 * first query-balloon), "ready" (after on_ready), or "" before any ended. */
const char *qmp_client_failed_phase(const struct qmp_client *c);

/* While waiting to reconnect: the delay that was scheduled, in ms; else 0. */
uint64_t qmp_client_retry_ms(const struct qmp_client *c);

/* The socket path given to qmp_client_new(). */
const char *qmp_client_path(const struct qmp_client *c);

/* Stop: pending commands fail with -ECANCELED (their done callbacks run before this
 * returns), no callback of `cbs` runs any more, the socket and timers are closed, and
 * `closed` (may be NULL) runs once libuv has released every handle; then the client is
 * freed. Calling it twice is a no-op. Safe from inside any callback of this client. */
void qmp_client_close(struct qmp_client *c, qmp_closed_cb closed);

#endif
