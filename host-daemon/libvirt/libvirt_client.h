/* The libvirt client of bellowsd: one connection to libvirtd (keepalive on, reconnect with
 * backoff when libvirtd goes away), discovery of the running domains that declare a
 * bellows channel (at connect, on lifecycle events, on request, one domain or all), their
 * limits (again when their bellows metadata changes), their balloon's actual size
 * (virDomainGetInfo, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE), and balloon moves through
 * virDomainSetMemoryFlags(VIR_DOMAIN_AFFECT_LIVE).
 *
 * Nothing here waits for libvirtd on the loop's thread. Every libvirt call runs on a
 * worker thread (libvirt_worker.h) and its result comes back on the loop, where the
 * callbacks below run. Calls for one domain run one at a time; a domain whose calls hang
 * (libvirtd waiting for its job lock, up to 30 s) holds one worker and its own queue,
 * nothing else: other domains' moves, other guests' QMP traffic, the control socket all go
 * on. libvirt's event loop runs on the same uv loop (libvirt_event_uv.h): its events and
 * keepalive are handled there, without blocking.
 *
 * Domains are known by UUID (stable across restarts and migration). Sizes are bytes at
 * this interface, like the QMP backend; libvirt's KiB stay inside.
 *
 * How the daemon uses it:
 *   libvirt_backend_config_defaults(&cfg);  adjust uri, defaults
 *   libvirt_backend_new(loop, &cfg, &callbacks, opaque, &b);
 *   libvirt_backend_start(b);           connects on a worker (or retries later)
 *     -> connection_changed(true/false)  connected (discovery follows), lost, or an
 *                                        attempt failed (retried with backoff)
 *     -> domain_appeared(info, actual)   start a channel to info->channel_path, limits
 *     -> domain_failed(uuid, why, ms)    a domain could not be read; retried in ms
 *     -> balloon_changed(uuid, actual)   policy_note_actual()
 *     -> limits_changed(info)            new floor/ceiling/weight from the metadata
 *     -> domain_disappeared(uuid)        drop the guest
 *   libvirt_backend_move(b, uuid, bytes, expect, done, opaque);   a policy decision
 *   libvirt_backend_rescan_domain(b, uuid);  the libvirt hook named a domain
 *   libvirt_backend_close(b);           at exit
 */
#ifndef BELLOWS_LIBVIRT_BACKEND_H
#define BELLOWS_LIBVIRT_BACKEND_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/libvirt/libvirt_domain_xml.h"

struct libvirt_backend;

struct libvirt_backend_config {
    const char *uri;                         /* default "qemu:///system" */
    struct libvirt_domain_defaults defaults; /* floor and weight a domain does not set */
    int keepalive_interval_s;                /* default 5 */
    unsigned keepalive_count;                /* default 3: dead after ~interval x (count + 1) */
    uint64_t reconnect_min_ms;               /* first retry after a lost connection; default 500 */
    uint64_t reconnect_max_ms;               /* backoff doubles up to this; default 30000 */
    uint64_t retry_min_ms; /* a domain that could not be read: first retry; default 1000 */
    uint64_t retry_max_ms; /* ... doubling up to this; default 60000 */
    unsigned max_threads;  /* worker threads at most (made as needed); default 8 */
};

struct libvirt_backend_callbacks {
    /* A running domain with a usable bellows channel, first seen (or restarted: a new QEMU
     * process). info->errors holds metadata problems to log; the limits already fall back.
     * actual_bytes: the balloon's size now (virDomainGetInfo). */
    void (*domain_appeared)(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                            uint64_t actual_bytes, void *opaque);
    /* A managed domain stopped, migrated away, or was found gone after a reconnect. */
    void (*domain_disappeared)(struct libvirt_backend *b, const char *uuid, const char *name,
                               void *opaque);
    /* The balloon's actual size of a managed domain, from libvirt's event or a fresh read. */
    void (*balloon_changed)(struct libvirt_backend *b, const char *uuid, uint64_t actual_bytes,
                            void *opaque);
    /* The bellows metadata of a managed domain changed (virDomainSetMetadata, `virsh
     * metadata ... --live`): its limits, with fallbacks and errors as at discovery. */
    void (*limits_changed)(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                           void *opaque);
    /* Connected (discovery follows at once), lost, or a connection attempt failed (a retry
     * is scheduled); `why` is the URI or the reason. */
    void (*connection_changed)(struct libvirt_backend *b, bool connected, const char *why,
                               void *opaque);
    /* Something worth a log line about a domain that is not managed because of it
     * (e.g. its bellows channel is not type='unix' mode='bind'). Not retried. */
    void (*domain_rejected)(struct libvirt_backend *b, const char *name, const char *why,
                            void *opaque);
    /* A running domain could not be read (libvirt failed: its XML, its size): it is tried
     * again in retry_ms, the delay doubling per domain up to retry_max_ms. `name` may be
     * "" when not known yet. */
    void (*domain_failed)(struct libvirt_backend *b, const char *uuid, const char *name,
                          const char *why, uint64_t retry_ms, void *opaque);
};

/* A move finished, on the loop: status 0 (libvirt took the target), -ESTALE (the balloon
 * was not at `expect_bytes`: nothing was sent; the size read came first through
 * balloon_changed, so decide again), -ERANGE (outside 1 MiB..the domain's maximum),
 * -ENOENT (the domain is gone), -EIO (libvirt refused, or the connection failed under the
 * call), -ECANCELED (the backend closed). `error` says why for people, "" on 0. */
typedef void (*libvirt_move_cb)(struct libvirt_backend *b, const char *uuid, int status,
                                const char *error, void *opaque);

/* Fill *cfg with the defaults above (floor 256 MiB, weight 100). */
void libvirt_backend_config_defaults(struct libvirt_backend_config *cfg);

/* The reconnect delay after `previous_ms` (0: first failure), doubling within [min, max]. */
uint64_t libvirt_backend_next_backoff(const struct libvirt_backend_config *cfg,
                                      uint64_t previous_ms);

/* The next retry delay of a domain that could not be read, after `previous_ms` (0: its
 * first failure), doubling within [retry_min_ms, retry_max_ms]. */
uint64_t libvirt_backend_next_retry(const struct libvirt_backend_config *cfg, uint64_t previous_ms);

/* Create a backend on `loop` (registers libvirt's event impl on it). Callbacks may be NULL.
 * The config is copied. Returns 0, -EBUSY (libvirt's event impl is on another loop),
 * -ENOMEM. */
int libvirt_backend_new(uv_loop_t *loop, const struct libvirt_backend_config *cfg,
                        const struct libvirt_backend_callbacks *callbacks, void *opaque,
                        struct libvirt_backend **ret);

/* Start connecting (on a worker); connection_changed tells the outcome. 0, -EALREADY. */
int libvirt_backend_start(struct libvirt_backend *b);

/* Re-list running domains: report new ones, restarted ones and gone ones. -ENOTCONN while
 * disconnected (the reconnect rescans anyway). */
int libvirt_backend_rescan(struct libvirt_backend *b);

/* Look at one domain by UUID (the hook said it started, stopped or was reconnected):
 * managed, restarted, gone, or newly a bellows guest. -ENOTCONN while disconnected,
 * -EINVAL for a malformed UUID. */
int libvirt_backend_rescan_domain(struct libvirt_backend *b, const char *uuid);

/* Move the balloon of a managed domain to `target_bytes` (the guest's memory size, as
 * QMP's balloon). The worker reads the size first (never act blind): when expect_bytes is
 * not 0 and the size is more than 1 MiB away from it, nothing is sent (-ESTALE).
 * Returns 0 (done runs later, exactly once), or at once -ENOENT (not managed), -ENOTCONN,
 * -ERANGE (outside 1 MiB..the domain's maximum as last read), -EBUSY (a move of this
 * domain is in flight), -ENOMEM; then done never runs. */
int libvirt_backend_move(struct libvirt_backend *b, const char *uuid, uint64_t target_bytes,
                         uint64_t expect_bytes, libvirt_move_cb done, void *opaque);

/* Forget the move in flight for uuid: its done will not run (the caller answers it
 * itself). The call may still reach libvirt; a next move queues behind it. */
void libvirt_backend_cancel_move(struct libvirt_backend *b, const char *uuid);

/* The last actual size seen for a managed domain; -ENOENT, or -EAGAIN when unknown
 * (after a reconnect, until read again). */
int libvirt_backend_actual(const struct libvirt_backend *b, const char *uuid, uint64_t *ret_bytes);

bool libvirt_backend_connected(const struct libvirt_backend *b);

/* Number of managed domains. */
unsigned libvirt_backend_count(const struct libvirt_backend *b);

/* Worker threads made, running a call, and calls waiting. */
void libvirt_backend_workers(const struct libvirt_backend *b, unsigned *threads, unsigned *busy,
                             unsigned *queued);

/* libvirt's message for the last connection failure, "" when none. */
const char *libvirt_backend_last_error(const struct libvirt_backend *b);

/* Disconnect and free. Moves in flight complete with -ECANCELED inside this call; no
 * callback runs after it returns. The connection is closed by a worker (libvirt's socket
 * watch stays on the loop until then), so the loop may run a little longer: until
 * libvirtd answers, or its keepalive gives up on it. */
void libvirt_backend_close(struct libvirt_backend *b);

#endif
