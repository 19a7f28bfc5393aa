/* bellowsd's core: one libuv loop that ties guests' agent channels, their QMP monitors,
 * the host's own pressure and the policy together.
 *
 * Every input (a pressure event, a report, a balloon size from QMP, a host sample) is
 * noted into the policy state and schedules one decision round on the next loop turn;
 * after each round a single timer is armed at the policy's next deadline. Nothing polls
 * the guests and nothing blocks. Moves go out as QMP `balloon` commands, one in flight per
 * guest, or only into the log in advisory (dry-run) mode. Stopping sends nothing: balloons
 * stay where they are.
 */
#ifndef BELLOWS_DAEMON_H
#define BELLOWS_DAEMON_H

#include <stdbool.h>

#include <uv.h>

#include "host-daemon/config/config.h"
#include "host-daemon/core/registry.h"
#include "host-daemon/host/hostmem.h"
#include "host-daemon/policy/policy.h"

struct control_server;
struct daemon_libvirt;

struct daemon {
    uv_loop_t *loop;
    struct config cfg;      /* in force; guests[] here is the file's list */
    char config_path[4096]; /* for reloads; "" when none */
    bool dry_run_forced;    /* --dry-run: advisory whatever the file says */
    struct registry reg;
    struct policy_host host;
    bool host_known;
    struct hostmem_sample host_sample;
    bool host_warned;

    uv_timer_t decide_timer; /* next decision round: at once after an input, else deadline */
    uv_timer_t host_timer;   /* host PSI and MemAvailable sampling */
    uv_signal_t sig_hup, sig_term, sig_int;
    struct control_server *control;
    struct daemon_libvirt *libvirt; /* the [libvirt] backend; NULL when off */
    bool stopping;
    uint64_t rounds; /* decision rounds run */
    size_t n_qmp_guests, n_libvirt_guests;
    uint64_t fd_limit; /* RLIMIT_NOFILE after raising it (fdlimit.h) */
    bool fd_warned;
    int64_t last_summary_at; /* loop ms of the last minute summary of dropped frames */
    int exit_code;
};

/* Set up on loop with a validated configuration (taken over: the daemon frees it):
 * control socket, host sampling, signals, and every configured guest's links.
 * Returns 0 or a negative errno (logged). */
int daemon_start(struct daemon *d, uv_loop_t *loop, struct config *cfg, const char *config_path,
                 bool dry_run_forced);

/* Re-read the config file (SIGHUP). On any error the running configuration is kept. */
int daemon_reload(struct daemon *d);

/* Close everything without sending any balloon command; the loop then runs dry. */
void daemon_stop(struct daemon *d);

/* After the loop ended: free what is left. */
void daemon_free(struct daemon *d);

/* Whether moves are only advised. */
bool daemon_dry_run(const struct daemon *d);

/* Add a guest and start its links. from_file: a static guest. Returns 0, -EEXIST, -EINVAL
 * (with err) or -ENOMEM. */
int daemon_add_guest(struct daemon *d, const struct config_guest *cfg, bool from_file, char *err,
                     size_t err_cap);

/* Add the guest of a libvirt domain (daemon_libvirt.c): cfg has its name, channel path and
 * limits, no QMP path; its balloon moves through libvirt. Returns 0 with *ret_guest, or
 * -EEXIST, -EINVAL (with err) or -ENOMEM. */
int daemon_add_domain(struct daemon *d, const struct config_guest *cfg, const char *uuid,
                      const char *domain, struct guest **ret_guest, char *err, size_t err_cap);

/* Remove a guest: its links close, its balloon stays where it is. */
void daemon_remove_guest(struct daemon *d, struct guest *g);

/* New floor/ceiling/weight (policy state kept), and a decision round. */
void daemon_set_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg);

/* Pause or resume the management of one guest (paused: always HOLD). */
void daemon_set_paused(struct daemon *d, struct guest *g, bool paused);

/* Schedule a decision round on the next loop turn. */
void daemon_kick(struct daemon *d);

/* Loop time in ms, the clock every policy time is on. */
int64_t daemon_now(const struct daemon *d);

#endif
