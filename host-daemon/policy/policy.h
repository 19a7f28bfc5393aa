/* bellows balloon policy: decides, for every guest, whether to give it memory (deflate),
 * take memory from it (inflate) or hold, and says why.
 *
 * Pure code: no clock reads, no I/O, no logging, no allocation. Every time is an int64
 * count of milliseconds on one monotonic clock, passed in as `now`; every size is in
 * bytes. Sizes of a balloon are QMP targets: the guest's memory size (QMP `balloon`
 * value, `query-balloon` actual), so a deflate raises the number and an inflate lowers it.
 * The rules, parameters and reasons are specified in docs/policy.md.
 *
 * How the daemon uses it:
 *   policy_config_defaults(&cfg);           then policy_config_set() per config key,
 *   policy_config_check(&cfg, ...);         refuse to start on error
 *   policy_host_init(&host);
 *   policy_guest_init(&g, floor, ceiling, weight);   policy_guest_check() for limits
 *   policy_note_actual(&cfg, &g, bytes, now);        after query-balloon / BALLOON_CHANGE
 *   policy_forget_actual(&g);                        when the QMP link drops
 *   policy_note_event(&cfg, &g, level, &mem, now);   per pressure message or report
 *   policy_host_input(&host, psi_some_avg10, total, available);  host readings
 *   policy_decide(&cfg, &host, guests, n, now, decisions);   after any of the above
 *     (or policy_decide_ptrs() with an array of pointers to guests)
 *   policy_commit(&cfg, &g, &decisions[i], now);     only for moves actually issued
 *   policy_host_commit(&host, now);                  if any of them was HOST_PRESSURE
 *   policy_next_deadline(&cfg, &host, guests, n, now);   arm one timer for it
 */
#ifndef BELLOWS_POLICY_H
#define BELLOWS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "protocol/bellows_protocol.h"

/* A time that lies before every real event. Far from INT64_MIN so sums never overflow. */
#define POLICY_NEVER (INT64_MIN / 4)
/* "Nothing scheduled" for policy_next_deadline(). */
#define POLICY_NO_DEADLINE INT64_MAX

#define POLICY_MIB (UINT64_C(1) << 20)

/* Tunables. All times in ms, sizes in bytes, percentages 0..100 (doubles allow 2.5).
 * Defaults and the reasons for them: policy_config_defaults() and docs/policy.md. */
struct policy_config {
    /* Pressure levels */
    int64_t level_decay_ms;     /* a level drops one step per this long without events */
    int64_t medium_dwell_ms;    /* medium must persist this long before a deflate */
    int64_t critical_window_ms; /* critical events within this of a deflate are its echo */
    int64_t quiet_ms;           /* no event for this long before any inflate */

    /* Timing of moves */
    int64_t deflate_cooldown_ms; /* after any deflate, no inflate for this long */
    int64_t inflate_interval_ms; /* at least this between two inflate steps */
    int64_t settle_timeout_ms;   /* wait this long for the balloon to reach a target */
    int64_t snapshot_max_age_ms; /* an older guest snapshot cannot justify an inflate */

    /* Step sizes: each step is max(bytes, pct of the guest's ceiling) */
    uint64_t critical_step_bytes;
    double critical_step_pct;
    uint64_t medium_step_bytes;
    double medium_step_pct;
    uint64_t inflate_step_bytes;
    double inflate_step_pct;
    uint64_t host_step_bytes; /* per guest and round when the host is under pressure */
    double host_step_pct;

    /* Guest buffer over what it uses (Hyper-V style), percent of used memory */
    double buffer_pct;      /* inflates stop at used * (1 + buffer_pct/100) */
    double buffer_low_pct;  /* below used * (1 + buffer_low_pct/100): deflate to refill */
    double host_buffer_pct; /* under host pressure inflates may go down to this */

    /* Dead band: a move smaller than this is not worth a balloon command */
    uint64_t min_change_bytes;

    /* Flip backoff: each reversal within flip_forget_ms doubles the wait before inflating */
    int64_t flip_forget_ms;
    unsigned flip_max_shift; /* the wait grows at most 2^this */
    /* After a guest hurt at some size, do not inflate back down to it for this long */
    int64_t hurt_memory_ms;

    /* Host pressure, with a dead band between entering and leaving */
    double host_psi_enter;            /* host memory PSI some avg10 (%) at or above: pressure */
    double host_psi_exit;             /* ... and below this (with avail) to leave it */
    double host_avail_enter_pct;      /* host MemAvailable at or below this % of total: pressure */
    double host_avail_exit_pct;       /* ... and above this (with psi) to leave it */
    int64_t host_reclaim_interval_ms; /* between two host reclaim rounds */
};

/* Host readings (set by policy_host_input) and the host pressure state the policy keeps. */
struct policy_host {
    bool known; /* false until the first reading: no host reclaim */
    double psi_some_avg10;
    uint64_t mem_total_bytes;
    uint64_t mem_available_bytes;
    /* policy state */
    bool pressure;
    int64_t pressure_since;
    int64_t last_reclaim_at;
};

enum policy_action {
    POLICY_HOLD = 0,
    POLICY_DEFLATE = 1, /* give memory: raise the target */
    POLICY_INFLATE = 2, /* take memory: lower the target */
};

/* Why a decision was taken; policy_reason_name() gives a short stable name. */
enum policy_reason {
    /* HOLD */
    POLICY_R_PAUSED = 0,     /* management paused by the operator */
    POLICY_R_UNKNOWN_ACTUAL, /* the balloon's actual size is not known: never act blind */
    POLICY_R_SETTLING,       /* the balloon has not yet reached the last target */
    POLICY_R_AT_CEILING,     /* would deflate, but the guest is at its ceiling */
    POLICY_R_AT_FLOOR,       /* would inflate, but the guest is at its floor or buffer */
    POLICY_R_CRITICAL_ECHO,  /* critical events already answered within the window */
    POLICY_R_DWELL,          /* medium pressure, waiting for it to last the dwell time */
    POLICY_R_NOT_QUIET,      /* pressure seen recently: not yet quiet enough to take */
    POLICY_R_COOLDOWN,       /* a deflate was recent: no inflate yet */
    POLICY_R_BACKOFF,        /* the guest flipped direction: the wait is multiplied */
    POLICY_R_INTERVAL,       /* the last inflate step was too recent */
    POLICY_R_NO_SNAPSHOT,    /* no fresh memory snapshot to size an inflate by */
    /* DEFLATE */
    POLICY_R_CRITICAL,    /* critical pressure: large step at once */
    POLICY_R_MEDIUM,      /* medium pressure sustained for the dwell time */
    POLICY_R_BUFFER,      /* the guest's free memory fell under the low buffer */
    POLICY_R_BELOW_FLOOR, /* the balloon is under the floor: back to it */
    /* INFLATE */
    POLICY_R_ABOVE_CEILING, /* the balloon is over the ceiling: back to it */
    POLICY_R_QUIET,         /* quiet guest with spare memory: small step */
    POLICY_R_HOST_PRESSURE, /* the host is short of memory: reclaim from this guest */
    POLICY_R_COUNT
};

struct policy_decision {
    enum policy_action action;
    enum policy_reason reason;
    uint64_t from_bytes; /* the balloon's actual size (0 when unknown) */
    uint64_t to_bytes;   /* the target to send; equals from_bytes for HOLD */
};

/* Per-guest settings, inputs and state. Fill with policy_guest_init(); the daemon sets
 * floor/ceiling/weight/paused directly and feeds the rest through policy_note_*().
 * Fields below "state" belong to the policy: read them, do not write them. */
struct policy_guest {
    /* operator settings */
    uint64_t floor_bytes;   /* never below */
    uint64_t ceiling_bytes; /* never above; normally the VM's maximum memory */
    uint32_t weight;        /* 1..10000, higher keeps memory longer under host pressure */
    bool paused;            /* true: always HOLD */

    /* state: the balloon */
    bool actual_known;
    uint64_t actual_bytes;
    int64_t actual_at;
    int64_t known_since; /* start of the current stretch with a known actual */
    bool target_set;     /* a committed move may still be in flight */
    uint64_t target_bytes;
    int64_t target_at;

    /* state: pressure. last_at[L] = time of the last event of level L or higher */
    int64_t last_at[BP_LEVEL_CRITICAL + 1];
    int64_t medium_since;  /* start of the current run at medium or higher */
    int64_t last_event_at; /* last pressure event of any level (reports at NONE excluded) */

    /* state: the latest guest snapshot */
    bool mem_known;
    struct bp_mem mem;
    int64_t mem_at;
    bool overhead_known; /* actual minus MemTotal, measured while settled */
    uint64_t overhead_bytes;

    /* state: moves */
    int64_t last_deflate_at;
    int64_t last_inflate_at;
    enum policy_action last_dir; /* HOLD before the first move */
    unsigned flips;              /* reversals counted toward the backoff */
    int64_t last_flip_at;
    uint64_t reversals; /* all reversals since init, for metrics */
    bool hurt_known;    /* the size at which it last needed a critical/medium deflate */
    uint64_t hurt_bytes;
    int64_t hurt_at;
};

/* Short stable names: "hold", "deflate", "inflate"; "critical", "quiet", ... Never NULL
 * ("?" for a value out of range). */
const char *policy_action_name(enum policy_action action);
const char *policy_reason_name(enum policy_reason reason);

/* Fill cfg with the documented defaults. */
void policy_config_defaults(struct policy_config *cfg);

/* Set one tunable by its config-file name (the field name, e.g. "quiet_ms",
 * "critical_step_bytes"). Sizes (*_bytes) take an optional K, M, G, T (binary, or KiB...)
 * suffix, times (*_ms) an optional ms, s, min, h suffix, percentages a decimal 0..100
 * with an optional %. Returns 0, -ENOENT for an unknown key, -EINVAL for a bad value
 * (cfg untouched on error). */
int policy_config_set(struct policy_config *cfg, const char *key, const char *value);

/* Check that the tunables make sense together (exit below enter thresholds, steps not
 * zero, ...). Returns 0, or -EINVAL and writes a short reason into err (may be NULL). */
int policy_config_check(const struct policy_config *cfg, char *err, size_t err_cap);

/* Start a guest: no balloon size known, no pressure seen, never moved. */
void policy_guest_init(struct policy_guest *g, uint64_t floor_bytes, uint64_t ceiling_bytes,
                       uint32_t weight);

/* Check operator limits: 0 < floor <= ceiling, weight in 1..10000. Returns 0 or
 * -EINVAL with a short reason in err (may be NULL). */
int policy_guest_check(uint64_t floor_bytes, uint64_t ceiling_bytes, uint32_t weight, char *err,
                       size_t err_cap);

/* Record the balloon's actual size (query-balloon reply, BALLOON_CHANGE event). */
void policy_note_actual(const struct policy_config *cfg, struct policy_guest *g,
                        uint64_t actual_bytes, int64_t now);

/* The balloon's size is no longer known (QMP link lost): the guest will HOLD until the
 * next policy_note_actual(). Pressure history is kept. */
void policy_forget_actual(struct policy_guest *g);

/* No move is on its way any more: the link that carried the last one was lost (a QEMU
 * killed right after the command, say). The next decision starts from the size read
 * again, not from that target; the move's history (cooldowns, reversals) stays. */
void policy_forget_target(struct policy_guest *g);

/* Record a message from the guest: a pressure event (level LOW..CRITICAL) or a periodic
 * report (its level, NONE when quiet). mem may be NULL when there is no snapshot.
 * Levels out of range are ignored (the snapshot is still kept). */
void policy_note_event(const struct policy_config *cfg, struct policy_guest *g, enum bp_level level,
                       const struct bp_mem *mem, int64_t now);

/* The guest's pressure level at now, after decay. */
enum bp_level policy_guest_level(const struct policy_config *cfg, const struct policy_guest *g,
                                 int64_t now);

/* Record a host reading: memory PSI some avg10 (%), MemTotal and MemAvailable (bytes). */
void policy_host_input(struct policy_host *host, double psi_some_avg10, uint64_t mem_total_bytes,
                       uint64_t mem_available_bytes);

/* Start the host state: no reading yet, not under pressure. */
void policy_host_init(struct policy_host *host);

/* Decide for all n guests at once. Writes decisions[i] for guests[i]; updates the host
 * pressure state (enter/exit) and nothing else. Guests are not changed: a decision only
 * takes effect through policy_commit(). Calling it twice with the same inputs gives the
 * same decisions. */
void policy_decide(const struct policy_config *cfg, struct policy_host *host,
                   const struct policy_guest *guests, size_t n, int64_t now,
                   struct policy_decision *decisions);

/* The same, for guests kept apart (e.g. embedded in the daemon's own guest objects):
 * guests[i] points to guest i. */
void policy_decide_ptrs(const struct policy_config *cfg, struct policy_host *host,
                        const struct policy_guest *const *guests, size_t n, int64_t now,
                        struct policy_decision *decisions);

/* The daemon issued decision d for g (balloon command sent). Starts cooldowns, counts
 * reversals, remembers the target. HOLD decisions are ignored. When any decision of a
 * round with reason HOST_PRESSURE is committed, call policy_host_commit() too. In
 * advisory (dry-run) mode the daemon may commit and then note_actual(d->to_bytes) to
 * simulate the move. */
void policy_commit(const struct policy_config *cfg, struct policy_guest *g,
                   const struct policy_decision *d, int64_t now);

/* A host reclaim round was issued at now: the next one waits host_reclaim_interval_ms. */
void policy_host_commit(struct policy_host *host, int64_t now);

/* Earliest time after now at which a decision could change without any new input (a
 * level decays; quiet time, cooldown, inflate interval or settle timeout ends; flips or
 * hurt memory are forgotten; the next host round), or POLICY_NO_DEADLINE. Calling
 * policy_decide() earlier is harmless; later only delays a move. */
int64_t policy_next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy_guest *guests, size_t n, int64_t now);

/* The same, for guests given as an array of pointers. */
int64_t policy_next_deadline_ptrs(const struct policy_config *cfg, const struct policy_host *host,
                                  const struct policy_guest *const *guests, size_t n, int64_t now);

#endif
