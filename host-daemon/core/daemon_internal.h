/* The core's own: struct daemon and the functions its files share. Only the core's .c files include
 * this; everything else goes through daemon.h. */
#ifndef BELLOWS_DAEMON_INTERNAL_H
#define BELLOWS_DAEMON_INTERNAL_H

#include "host-daemon/core/daemon.h"
#include "host-daemon/host/budget.h"
#include "host-daemon/state/state.h"
#include "host-daemon/state/state_store.h"

#define DAEMON_MAX_MODULES 8
#define DAEMON_CONNECTS_IN_FLIGHT 256 /* guest links connecting at once, at most */
#define DAEMON_MAX_OBSERVERS 8

struct daemon_module {
    const struct daemon_module_ops *ops;
    void *opaque;
    bool started;
};

struct daemon_observer {
    const struct daemon_observer_ops *ops;
    void *opaque;
};

struct daemon {
    uv_loop_t *loop;
    struct config cfg;                     /* in force; guests[] here is the file's list */
    char config_path[4096];                /* for reloads; "" when none */
    bool dry_run_forced;                   /* --dry-run: advisory whatever the file says */
    const struct balloon_factory *factory; /* balloons of file and control guests */
    struct registry reg;
    struct policy_host host;
    bool host_known;
    struct hostmem_sample host_sample;
    bool host_warned;
    struct budget_state budget;   /* the host budget's memory between samples */
    uint64_t budget_guests_known; /* guests of known size at the last sample */
    bool budget_warned;

    uv_timer_t decide_timer; /* next decision round: at once after an input, else deadline */
    /* The scheduler (rounds.c): a round decides the guests whose inputs changed (dirty)
     * and those whose deadline came (the heap), not every guest. */
    struct guest **dirty;
    size_t n_dirty, cap_dirty;
    struct deadline_heap deadlines;
    struct guest **scratch_guests;            /* a round's dirty guests */
    const struct policy_guest **scratch_ptrs; /* ... their policy states */
    struct policy_decision *scratch_dec;
    size_t cap_scratch;
    uint64_t full_rounds; /* rounds that decided every guest (host pressure, budget) */
    /* At least what all guests hold toward the host budget (policy_held_most summed, kept
     * up to date by rounds and counted afresh at every host sample): a round whose
     * deflates fit under it needs no pass over every guest. */
    uint64_t budget_use;
    /* The operator's run-time state (opstate.c) */
    struct state opstate;
    struct state_store *opstate_store; /* NULL when it is not kept (no state_dir) */
    bool opstate_warned;
    uv_timer_t policy_timer; /* every OPSTATE_POLICY_SAVE_MS: policy lines that changed */
    bool policy_timer_on;
    bool policy_due;       /* an entry's policy line changed since the last save */
    unsigned policy_ticks; /* policy_timer ticks since start: the hourly prune */
    uv_timer_t host_timer; /* host PSI and MemAvailable sampling */
    uv_signal_t sig_hup, sig_term, sig_int;
    struct daemon_module modules[DAEMON_MAX_MODULES];
    size_t n_modules;
    struct daemon_observer observers[DAEMON_MAX_OBSERVERS];
    size_t n_observers;
    bool started;
    bool stopping;
    uint64_t rounds;    /* decision rounds run */
    uint64_t guest_fds; /* descriptors the guests' links hold */
    uint64_t fd_limit;  /* RLIMIT_NOFILE after raising it (fdlimit.h) */
    bool fd_warned;
    int64_t last_summary_at; /* loop ms of the last minute summary of dropped frames */
};

/* Bytes as MiB, for log lines. */
double daemon_mib(uint64_t bytes);
/* CLOCK_REALTIME in ms, for people (decision times). */
int64_t daemon_wall_ms(void);

/* rounds.c */
void rounds_init(struct daemon *d);
void rounds_close(struct daemon *d);
/* Something of g changed (a message, a size, its limits, its link): decide it in the next
 * round, which is scheduled. */
void rounds_touch(struct daemon *d, struct guest *g);
/* Everything changed (a reload, the policy's settings): decide every guest next round. */
void rounds_touch_all(struct daemon *d);
/* g leaves the registry: out of the scheduler's lists. */
void rounds_forget(struct daemon *d, struct guest *g);
/* A host sample set the budget: budget_use counted afresh over every guest, and guests
 * whose deflate the budget held decided again when it grew. */
void rounds_budget_sampled(struct daemon *d, uint64_t old_budget);
/* Completion of a move (the backend's done callback; opaque is the guest). */
void rounds_move_done(void *opaque, uint64_t token, int status, const char *error);
/* Advisory mode just ended: the sizes were simulated, read the real ones. */
void rounds_reread_balloons(struct daemon *d);

/* links.c */
/* Open g's agent channel. 0 or a negative errno. */
int links_start_channel(struct daemon *d, struct guest *g);
/* Bind g's balloon's events to the core and start it. 0 or a negative errno. */
int links_start_balloon(struct daemon *d, struct guest *g);
/* Close g's balloon; `closed` (may be NULL) runs once it is freed. */
void links_close_balloon(struct guest *g, balloon_closed_cb closed, void *opaque);
/* New channel limits from the config in force, for every guest. */
void links_apply_channel_limits(struct daemon *d);
/* Once a minute: one line per guest whose agent sent anything that was dropped. */
void links_summarise_rejects(struct daemon *d);

/* guests.c */
/* A static guest's settings changed in the file: relink what changed, new limits. */
void guests_update_from_file(struct daemon *d, struct guest *g, const struct config_guest *cfg);
/* Another guest already uses one of cfg's socket paths. */
struct guest *guests_path_owner(struct daemon *d, const struct config_guest *cfg,
                                const struct guest *except);
/* Remove every guest (daemon_stop). */
void guests_remove_all(struct daemon *d);

/* opstate.c: the operator's run-time state and the guests' policy state across restarts */
/* Read <state_dir>/state.json (at start, before any guest). */
void opstate_start(struct daemon *d);
/* Add again the guests added at run time before the restart (after the file's). */
void opstate_restore_added(struct daemon *d);
/* A guest was added: pause it, give it its operator limits and its policy state, as kept. */
void opstate_apply(struct daemon *d, struct guest *g);
/* The operator changed g (pause, set, add): keep what it is now. */
void opstate_record(struct daemon *d, struct guest *g);
/* The operator (or the config file) removed g: forget its state. */
void opstate_forget(struct daemon *d, const struct guest *g);
/* g goes but may come back (its domain stopped, the daemon stops): keep its policy line
 * as it is now (written with the next save). */
void opstate_keep_policy(struct daemon *d, struct guest *g);
/* daemon_stop: the last write goes out; daemon_free: the memory. */
void opstate_stop(struct daemon *d);
void opstate_free(struct daemon *d);

/* host_sampling.c */
void host_sampling_init(struct daemon *d);
/* Sample now (first_ms 0) or after first_ms, then every host_sample_ms. */
void host_sampling_start(struct daemon *d, uint64_t first_ms);
void host_sampling_close(struct daemon *d);

/* observers.c: tell every observer */
void observers_guest_added(struct daemon *d, const struct guest *g);
void observers_guest_removed(struct daemon *d, const struct guest *g);
void observers_sample(struct daemon *d, const struct guest *g, const struct daemon_sample *s);
void observers_actual(struct daemon *d, const struct guest *g, uint64_t actual_bytes);
void observers_move(struct daemon *d, const struct guest *g, const struct decision_entry *e);

#endif
