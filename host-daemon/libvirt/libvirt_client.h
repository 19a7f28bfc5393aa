/* The libvirt backend of bellowsd: one connection to libvirtd (keepalive on, reconnect
 * with backoff when libvirtd goes away), discovery of the running domains that declare a
 * bellows channel (at connect, on lifecycle events, on request), their limits (again when
 * their bellows metadata changes), their balloon's actual size (virDomainGetInfo,
 * VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE), and balloon moves through
 * virDomainSetMemoryFlags(VIR_DOMAIN_AFFECT_LIVE).
 *
 * libvirt calls are synchronous: each one blocks the loop for a round trip to libvirtd
 * (about a millisecond), and a libvirtd that hangs blocks it until keepalive gives up
 * (interval x (count + 1), 20 s with the defaults).
 *
 * Domains are known by UUID (stable across restarts and migration). Sizes are bytes at
 * this interface, like the QMP backend; libvirt's KiB stay inside.
 * Runs on one uv loop, on whose thread every call must be made; libvirt's event loop is
 * registered on that loop (libvirt_event_uv) by libvirt_backend_new().
 *
 * How the daemon uses it:
 *   libvirt_backend_config_defaults(&cfg);  adjust uri, defaults
 *   libvirt_backend_new(loop, &cfg, &callbacks, opaque, &b);
 *   libvirt_backend_start(b);          connects now (or retries later), discovers domains
 *     -> domain_appeared(info, actual)   start a channel to info->channel_path, policy limits
 *     -> balloon_changed(uuid, actual)   policy_note_actual()
 *     -> limits_changed(info)            new floor/ceiling/weight from the metadata
 *     -> domain_disappeared(uuid)        drop the guest
 *     -> connection_changed(false)       policy_forget_actual() for every libvirt guest
 *   libvirt_backend_set_balloon(b, uuid, bytes);   a policy decision
 *   libvirt_backend_rescan(b);         the libvirt hook said a domain started or stopped
 *   libvirt_backend_close(b);          at exit
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
    /* Connected (discovery follows at once) or lost; `why` is the URI or the reason. */
    void (*connection_changed)(struct libvirt_backend *b, bool connected, const char *why,
                               void *opaque);
    /* Something worth a log line about a domain that is not managed because of it
     * (e.g. its bellows channel is not type='unix' mode='bind'). */
    void (*domain_rejected)(struct libvirt_backend *b, const char *name, const char *why,
                            void *opaque);
};

/* Fill *cfg with the defaults above (floor 256 MiB, weight 100). */
void libvirt_backend_config_defaults(struct libvirt_backend_config *cfg);

/* The reconnect delay after `previous_ms` (0: first failure), doubling within [min, max]. */
uint64_t libvirt_backend_next_backoff(const struct libvirt_backend_config *cfg,
                                      uint64_t previous_ms);

/* Create a backend on `loop` (registers libvirt's event impl on it). Callbacks may be NULL.
 * The config is copied. Returns 0, -EBUSY (libvirt's event impl is on another loop),
 * -ENOMEM. */
int libvirt_backend_new(uv_loop_t *loop, const struct libvirt_backend_config *cfg,
                        const struct libvirt_backend_callbacks *callbacks, void *opaque,
                        struct libvirt_backend **ret);

/* Connect and discover now; on failure retry with backoff. Returns 0 when connected,
 * -ENOTCONN when a retry is scheduled. */
int libvirt_backend_start(struct libvirt_backend *b);

/* Re-list running domains: report new ones, restarted ones and gone ones. -ENOTCONN
 * while disconnected (the reconnect rescans anyway). */
int libvirt_backend_rescan(struct libvirt_backend *b);

/* Move the balloon of a managed domain to `target_bytes` (the guest's memory size, as
 * QMP's balloon). Reads the actual size first (never acts blind) and refuses targets
 * outside 1 MiB..the domain's maximum. Returns 0 (request sent), -ENOENT (not managed),
 * -ENOTCONN, -ERANGE, -EIO (libvirt refused; b's last_error says why). */
int libvirt_backend_set_balloon(struct libvirt_backend *b, const char *uuid, uint64_t target_bytes);

/* The last actual size seen for a managed domain; -ENOENT, or -EAGAIN when unknown
 * (after a reconnect, until read again). */
int libvirt_backend_actual(const struct libvirt_backend *b, const char *uuid, uint64_t *ret_bytes);

bool libvirt_backend_connected(const struct libvirt_backend *b);

/* Number of managed domains. */
unsigned libvirt_backend_count(const struct libvirt_backend *b);

/* libvirt's message for the last failure, "" when none. */
const char *libvirt_backend_last_error(const struct libvirt_backend *b);

/* Disconnect and free. Memory is released from the loop once its timer has closed. */
void libvirt_backend_close(struct libvirt_backend *b);

#endif
