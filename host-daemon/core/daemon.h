/* bellowsd's core: one libuv loop that ties guests' agent channels, their balloon backends,
 * the host's own pressure and the policy together. docs/design.md is the map.
 *
 * Every input (a pressure event, a report, a balloon size, a host sample) is noted into
 * the policy state and schedules one decision round on the next loop turn; after each
 * round a single timer is armed at the policy's next deadline. Nothing polls the guests
 * and nothing blocks. Moves go out through each guest's balloon backend
 * (balloon_backend.h), one in flight per guest, or only into the log in advisory (dry-run)
 * mode. Stopping sends nothing: balloons stay where they are.
 *
 * The core never knows which backend a guest uses, nor who asks it for a change: the
 * control socket, libvirt discovery and (later) the HTTP API are modules around it
 * (daemon_add_module), they change guests only through the daemon_* functions below,
 * which log each change, and they read through daemon_view(). Layers that want to follow
 * what happens (metrics, history, event streams) subscribe with daemon_add_observer().
 */
#ifndef BELLOWS_DAEMON_H
#define BELLOWS_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/config/config.h"
#include "host-daemon/core/balloon_backend.h"
#include "host-daemon/core/guest.h"
#include "host-daemon/core/registry.h"
#include "host-daemon/host/hostmem.h"
#include "host-daemon/policy/policy.h"

struct daemon;

/* ---- lifecycle ---- */

/* A daemon, not started. NULL when out of memory. */
struct daemon *daemon_new(void);

/* A part started and stopped with the daemon: the control socket, a source of guests
 * (libvirt discovery), an HTTP server. Modules only use the daemon_* functions. */
struct daemon_module_ops {
    const char *name; /* for logs; a source's guests show it as their "source" */
    /* Started before the file's guests are added (a listener: when it fails, no guest link
     * ever opens) or after (a source of guests: names in the file take precedence). */
    bool before_guests;
    /* 0, or a negative errno (logged by the module): the daemon then stops. */
    int (*start)(void *opaque, struct daemon *d);
    /* daemon_stop: close everything, send nothing. The module's guests are removed by the
     * daemon right after. Only called after a successful start. */
    void (*stop)(void *opaque);
    /* daemon_free, after the loop ended, started or not: free what is left. May be NULL. */
    void (*release)(void *opaque);
    /* A hypervisor hook reported `event` (started, stopped, reconnect) for VM `id` (a UUID),
     * `name` ("" if not given): look again soon, never from inside this call. May be NULL. */
    void (*vm_event)(void *opaque, const char *event, const char *id, const char *name);
};

/* Attach a module before daemon_start(); started in the order added. 0 or -ENOSPC. */
int daemon_add_module(struct daemon *d, const struct daemon_module_ops *ops, void *opaque);

/* Start on loop with a validated configuration (taken over: the daemon frees it): signals,
 * modules, the file's guests (their balloons opened by `factory`), host sampling.
 * Returns 0 or a negative errno (logged); on error the daemon is already stopping and the
 * loop must still run to close what was opened. */
int daemon_start(struct daemon *d, uv_loop_t *loop, struct config *cfg, const char *config_path,
                 bool dry_run_forced, const struct balloon_factory *factory);

/* Re-read the config file (SIGHUP). On any error the running configuration is kept. */
int daemon_reload(struct daemon *d);

/* Close everything without sending any balloon command; the loop then runs dry. */
void daemon_stop(struct daemon *d);

/* After the loop ended: free what is left, d included. */
void daemon_free(struct daemon *d);

/* ---- read access (views, modules, observers) ---- */

/* What views read: the core's state, read-only, valid until the loop runs on. */
struct daemon_view {
    const struct registry *reg; /* registry_count/at/find/policy_of */
    const struct policy_config *policy;
    const struct policy_host *host;
    const struct hostmem_sample *host_sample; /* NULL until the first host reading */
    bool dry_run;
    int64_t now;     /* loop ms, the policy's clock */
    uint64_t rounds; /* decision rounds run since the start */
};
void daemon_view(const struct daemon *d, struct daemon_view *ret);

uv_loop_t *daemon_loop(const struct daemon *d);
/* The configuration in force (changes at each reload). */
const struct config *daemon_config(const struct daemon *d);
/* Whether moves are only advised. */
bool daemon_dry_run(const struct daemon *d);
/* Loop time in ms, the clock every policy time is on. */
int64_t daemon_now(const struct daemon *d);
/* The guest of that name, NULL if none. Valid until it is removed (observers hear of it). */
struct guest *daemon_find_guest(const struct daemon *d, const char *name);

/* ---- changes: each one logs what it did ---- */

/* How a guest is added. */
struct daemon_guest_spec {
    const struct config_guest *cfg; /* name, channel path, limits (and qmp_path for factory) */
    bool from_file;                 /* a static guest of the config file */
    /* NULL: the daemon opens it with its factory from cfg (config file, control socket).
     * Else the module's own (e.g. a libvirt domain's), taken over: closed on failure. */
    struct balloon *balloon;
    /* The module adding it: its name, kept (it must live as long as the daemon); NULL for
     * the file and the control socket. */
    const char *source;
    const char *vm_id;  /* the VM's stable id (a libvirt domain's UUID), NULL if none: the
                           operator's state (pause, set) follows it across VM restarts */
    const char *detail; /* for the "added" log line instead of the paths; may be NULL */
};

/* Add a guest and start its links. Returns 0 (with *ret_guest if not NULL), -EEXIST,
 * -EINVAL (with err) or -ENOMEM. */
int daemon_add_guest(struct daemon *d, const struct daemon_guest_spec *spec,
                     struct guest **ret_guest, char *err, size_t err_cap);

/* Remove a guest: its links close, its balloon stays where it is. `by`: the module asking
 * (its name), NULL for the operator or the config file. A guest added by a source is only
 * removed by that source (or when the daemon stops): -EPERM with err otherwise. Removed by
 * the operator or the file, its operator state is forgotten; by its source (a domain that
 * stopped), kept for when it comes back. */
int daemon_remove_guest(struct daemon *d, struct guest *g, const char *by, char *err,
                        size_t err_cap);

/* New floor/ceiling/weight from the guest's source (the config file, a domain's metadata):
 * policy state kept, a decision round. Limits the operator had set are replaced. */
void daemon_set_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg);

/* The same, set by the operator at run time (control `set`): kept across restarts
 * (state_dir) until the guest's source changes them. */
void daemon_set_operator_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg);

/* Pause or resume the management of one guest (paused: always HOLD). Kept across
 * restarts (state_dir), for a libvirt guest across its domain's restarts too. */
void daemon_set_paused(struct daemon *d, struct guest *g, bool paused);

/* A hypervisor hook reported an event (control socket's libvirt-event): passed to every
 * module that takes them. */
void daemon_vm_event(struct daemon *d, const char *event, const char *id, const char *name);

/* Schedule a decision round on the next loop turn. */
void daemon_kick(struct daemon *d);

/* ---- observers ---- */

/* One message from a guest's agent, as the core noted it. */
struct daemon_sample {
    enum bp_msg_type type;    /* BP_MSG_PRESSURE or BP_MSG_REPORT */
    enum bp_level level;      /* the event's level, or the report's */
    enum bp_source source;    /* BP_MSG_PRESSURE: the kernel interface that fired */
    const struct bp_mem *mem; /* the snapshot it carried */
    int64_t now;              /* loop ms */
};

/* Subscribers to what happens to guests. Every callback runs on the loop, synchronously,
 * after the core has noted the change; it must not block and must not change the daemon
 * (read through the pointers given, or daemon_view). Any may be NULL. */
struct daemon_observer_ops {
    /* A guest was added, or is about to be freed (its pointer is invalid afterwards). */
    void (*guest_added)(void *opaque, const struct guest *g);
    void (*guest_removed)(void *opaque, const struct guest *g);
    /* A pressure event or report from the guest's agent. */
    void (*sample)(void *opaque, const struct guest *g, const struct daemon_sample *s);
    /* The balloon's actual size: read at ready, or changed. */
    void (*actual)(void *opaque, const struct guest *g, uint64_t actual_bytes, int64_t now);
    /* A move was decided (result pending, advisory, or failed to send), and again when its
     * result is known (done or failed; same e->seq). */
    void (*move)(void *opaque, const struct guest *g, const struct decision_entry *e);
};

/* Subscribe (any time but from inside an observer's callback). 0 or -ENOSPC (at most 8). */
int daemon_add_observer(struct daemon *d, const struct daemon_observer_ops *ops, void *opaque);
/* Unsubscribe (ops and opaque as given; not from inside an observer's callback). */
void daemon_remove_observer(struct daemon *d, const struct daemon_observer_ops *ops, void *opaque);

#endif
