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
 *   policy_state_parse(...);                         policy state saved before a restart
 *   policy_note_actual(&cfg, &g, bytes, now);        after query-balloon / BALLOON_CHANGE
 *   policy_forget_actual(&g);                        when the QMP link drops
 *   policy_note_event(&cfg, &g, level, &mem, now);   per pressure message
 *   policy_note_report(&cfg, &g, level, &mem, now);  per periodic report
 *   policy_host_input(&host, psi_some_avg10, total, available);  host readings
 *   policy_host_budget(&host, bytes);                what all balloons together may hold
 *   policy_decide(&cfg, &host, guests, n, now, decisions);   after any of the above
 *     (or policy_decide_ptrs() with an array of pointers to guests)
 *   policy_commit(&cfg, &g, &decisions[i], now);     only for moves actually issued
 *   policy_host_commit(&host, now);                  if any of them was a host round's
 *   policy_next_deadline(&cfg, &host, guests, n, now);   arm one timer for it
 *   policy_state_format(...);                        what is worth keeping across a restart
 *   policy_state_key(&g, buf, cap);                  ... and whether it changed since
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
    int64_t quiet_ms;           /* no critical event (no event at all without PSI) this long
                                 * before an inflate; also after the size becomes known */

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
    uint64_t backoff_step_bytes; /* the largest stall backoff */
    double backoff_step_pct;

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

    /* Stall-driven right-sizing (Senpai-like): a stall measure per interval */
    double stall_target_pct;   /* stall (PSI some, % of the interval) a guest may have */
    int64_t stall_interval_ms; /* shortest interval a stall is measured over */
    double stall_response_pct; /* a rise of this % of the base stall counts as a response */
    uint64_t stall_fault_us;   /* a major fault or swap-in counts as this much stall */
    double probe_coeff;        /* inflate steps are whole while stall < target / this */
    double backoff_coeff;      /* backoff steps are whole at this many times the target */

    /* Balloons that do not follow */
    int64_t stuck_check_ms;    /* a move is checked this long after it was sent */
    uint64_t stuck_rate_bytes; /* ... and must progress at least this much per second */
    int64_t stuck_backoff_ms;  /* a guest whose balloon did not follow is skipped this long */
    unsigned stuck_max_shift;  /* ... doubled per failure in a row, at most 2^this */

    /* Host pressure, with a dead band between entering and leaving */
    double host_psi_enter;            /* host memory PSI some avg10 (%) at or above: pressure */
    double host_psi_exit;             /* ... and below this (with avail) to leave it */
    double host_avail_enter_pct;      /* host MemAvailable at or below this % of total: pressure */
    double host_avail_exit_pct;       /* ... and above this (with psi) to leave it */
    int64_t host_reclaim_interval_ms; /* between two host reclaim rounds */
};

/* Host readings (set by policy_host_input / policy_host_budget) and the host state the
 * policy keeps. */
struct policy_host {
    bool known; /* false until the first reading: no host reclaim */
    double psi_some_avg10;
    uint64_t mem_total_bytes;
    uint64_t mem_available_bytes;
    bool budget_known;     /* false: no budget, only host pressure limits the guests */
    uint64_t budget_bytes; /* the most all balloons together may hold */
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
    POLICY_R_MEASURING,      /* the stall after the last move is not measured yet */
    POLICY_R_NEAR_TARGET,    /* stall close to its target: the step would be too small */
    POLICY_R_STUCK,          /* the balloon did not follow the last move: skipped a while */
    POLICY_R_BUDGET,         /* would deflate, but the host budget has no room */
    /* DEFLATE */
    POLICY_R_CRITICAL,    /* critical pressure: large step at once */
    POLICY_R_MEDIUM,      /* medium pressure sustained for the dwell time */
    POLICY_R_BUFFER,      /* the guest's free memory fell under the low buffer */
    POLICY_R_BELOW_FLOOR, /* the balloon is under the floor: back to it */
    POLICY_R_STALL,       /* stall above target, and it responds to size: back off */
    /* INFLATE */
    POLICY_R_ABOVE_CEILING, /* the balloon is over the ceiling: back to it */
    POLICY_R_QUIET,         /* stall under target: a step toward the working set */
    POLICY_R_INSENSITIVE,   /* stall above target but it does not respond to size: a step */
    POLICY_R_HOST_PRESSURE, /* the host is short of memory: reclaim from this guest */
    POLICY_R_FUND,          /* taken above the working set to fund another guest's deflate */
    POLICY_R_SHARE,         /* taken above the weighted share under contention */
    POLICY_R_COUNT
};

struct policy_decision {
    enum policy_action action;
    enum policy_reason reason;
    uint64_t from_bytes;   /* the balloon's actual size (0 when unknown) */
    uint64_t to_bytes;     /* the target to send; equals from_bytes for HOLD */
    uint64_t wanted_bytes; /* a deflate cut by the budget: the target it wanted; else 0 */
};

/* The stall measure of one guest, from the counters of its successive snapshots. */
struct policy_stall {
    /* counters at the start of the current interval */
    bool mark_known;
    uint64_t mark_some_us;
    uint64_t mark_faults; /* major faults + swap-ins */
    int64_t mark_at;
    /* the last complete interval */
    bool known;
    bool psi_seen;      /* the guest's PSI totals have moved at least once */
    double last_pct;    /* stall of the last clean interval (% of its length) */
    double lasting_pct; /* the smaller of the last two clean intervals: the stall that lasts */
    double avg_pct;     /* moving average over clean intervals */
    int64_t last_at;    /* end of the last clean interval */
    /* the slow mean of the clean intervals (about the last ten) and their spread (the
     * mean change from one interval to the next): the noise a step's effect is told from */
    double level_pct;
    double spread_pct;
    unsigned level_intervals;  /* intervals in the level since it (re)started, up to 10 */
    unsigned spread_intervals; /* interval-to-interval changes in the spread, up to 10 */
    /* the stall that does not respond to size (0: all of it does) */
    double base_pct;
    /* the highest level measured where all of the stall was base (at the size the base was
     * found, before the next move, or at the ceiling): a base lowered by a quieter spell
     * may rise back up to it, no higher */
    double base_peak_pct;
    bool base_here; /* no move since the base was found: the level here is all base */
    /* the clean intervals measured at one balloon size since the last move, their sum */
    uint64_t size_bytes;
    unsigned size_intervals;
    double size_sum_pct;
    /* the effect of the last committed move, measured after it settled */
    bool eval_pending;
    enum policy_action eval_dir;
    uint64_t eval_from;
    uint64_t eval_to;
    double eval_before_pct;  /* the stall measured before it */
    bool eval_cut;           /* a deflate cut by the budget: smaller than the guest asked */
    unsigned eval_intervals; /* clean intervals measured after it so far */
    double eval_sum_pct;
    double eval_min_pct; /* the smallest of them: what lasted through the measure */
    bool responded;      /* the last inflate raised the stall in every interval: undo it */
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
    int64_t actual_changed_at; /* when it last took a new value */
    int64_t known_since;       /* start of the current stretch with a known actual */
    bool target_set;           /* a move was committed (target_* describe it) */
    uint64_t target_bytes;
    int64_t target_at;
    bool target_done; /* ... and is over: reached, or the actual moved away from it */
    int64_t target_done_at;
    uint64_t move_from_bytes; /* the actual when the move was committed */

    /* state: pressure. last_at[L] = time of the last event of level L or higher */
    int64_t last_at[BP_LEVEL_CRITICAL + 1];
    int64_t medium_since;  /* start of the current run at medium or higher */
    int64_t last_event_at; /* last pressure event of any level (reports at NONE excluded) */

    /* state: the latest guest snapshot */
    bool mem_known;
    struct bp_mem mem;
    int64_t mem_at;
    bool overhead_known; /* actual minus MemTotal, measured while the balloon is still */
    uint64_t overhead_bytes;
    /* the guest counts the balloon as used (deflate-on-oom: its MemTotal stays whole), and
     * then what it uses in balloon terms, actual - MemAvailable, while the balloon is still */
    bool balloon_counted_used;
    uint64_t counted_used_bytes;
    struct policy_stall stall;

    /* state: moves */
    int64_t last_deflate_at;
    uint64_t last_deflate_need; /* the guest's need then, with its buffer (0: not known) */
    int64_t last_inflate_at;
    enum policy_action last_dir; /* HOLD before the first move */
    unsigned flips;              /* reversals counted toward the backoff */
    int64_t last_flip_at;
    uint64_t reversals; /* all reversals since init, for metrics */
    bool hurt_known;    /* the size at which it last needed a critical/medium/stall deflate */
    uint64_t hurt_bytes;
    int64_t hurt_at;
    unsigned stuck_count; /* moves in a row the balloon did not follow */
    uint64_t stuck_total; /* all of them since init, for metrics */
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
 * with an optional %, coefficients a decimal 1..1000. Returns 0, -ENOENT for an unknown
 * key, -EINVAL for a bad value (cfg untouched on error). */
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

/* Record the balloon's actual size (query-balloon reply, BALLOON_CHANGE event). A move on
 * its way ends when the actual reaches its target or moves away from it. */
void policy_note_actual(const struct policy_config *cfg, struct policy_guest *g,
                        uint64_t actual_bytes, int64_t now);

/* The balloon's size is no longer known (QMP link lost): the guest will HOLD until the
 * next policy_note_actual(). Pressure history is kept. */
void policy_forget_actual(struct policy_guest *g);

/* The guest booted again (its agent's boot id changed, the QEMU process the same): it is
 * just known again, as after policy_note_actual() on a new link. For quiet_ms it keeps its
 * size and nobody takes from it: booting, it looks idle and is about to use more. What it
 * taught the policy (hurt size, reversals) is kept. */
void policy_note_boot(struct policy_guest *g, int64_t now);

/* The most g holds toward the host budget until its next commit or size change: its
 * size, or a target above it still on its way; 0 while its size is unknown. At least
 * what the budget round counts for it (it counts a target below the size only while the
 * balloon follows), so a sum of these bounds what all guests hold. */
uint64_t policy_held_most(const struct policy_guest *g);

/* No move is on its way any more: the link that carried the last one was lost (a QEMU
 * killed right after the command, say). The next decision starts from the size read
 * again, not from that target; the move's history (cooldowns, reversals) stays. */
void policy_forget_target(struct policy_guest *g);

/* The last committed move's command was accepted (QMP answered, libvirt returned): the
 * balloon's progress toward it is judged from now, not from the commit (a libvirtd or a
 * monitor that held the command for seconds must not make a balloon look stuck). */
void policy_note_delivered(struct policy_guest *g, int64_t now);

/* Record a pressure message from the guest (level LOW..CRITICAL). mem may be NULL when
 * there is no snapshot. Levels out of range are ignored (the snapshot is still kept). */
void policy_note_event(const struct policy_config *cfg, struct policy_guest *g, enum bp_level level,
                       const struct bp_mem *mem, int64_t now);

/* Record a periodic report: the agent's current level (NONE when quiet) and a snapshot.
 * The level it repeats is an echo of events already counted, not a new one: a critical
 * report counts as medium, so one episode never earns a second critical step. */
void policy_note_report(const struct policy_config *cfg, struct policy_guest *g,
                        enum bp_level level, const struct bp_mem *mem, int64_t now);

/* The guest's pressure level at now, after decay. */
enum bp_level policy_guest_level(const struct policy_config *cfg, const struct policy_guest *g,
                                 int64_t now);

/* The guest's working-set estimate in balloon terms: the least it may be left with (floor,
 * what it uses plus the host buffer, the size it last hurt at while remembered). */
uint64_t policy_guest_working_set(const struct policy_config *cfg, const struct policy_guest *g,
                                  int64_t now);

/* What the guest uses, as the policy reads it: MemTotal - MemAvailable of its latest
 * snapshot, or for a guest that counts its balloon as used, the balloon's size less
 * MemAvailable. Only meaningful with a snapshot (g->mem_known). */
uint64_t policy_guest_used(const struct policy_guest *g);

/* What the policy knows about sizing one guest, for its operator: why it holds a guest
 * where it does (bellowsctl show, the HTTP API). Sizes in balloon terms. */
struct policy_sizing {
    bool need_known;            /* a snapshot and a measured overhead: the four below */
    uint64_t used_bytes;        /* what the guest uses, as the policy reads it */
    uint64_t overhead_bytes;    /* the balloon's size over the guest's MemTotal */
    uint64_t need_bytes;        /* used + buffer_pct + overhead: where a quiet walk stops */
    uint64_t working_set_bytes; /* policy_guest_working_set(): what host rounds leave it */
    bool stall_known;           /* a clean interval was measured: the stall fields */
    double stall_pct;           /* the last interval's stall (% of its length) */
    double stall_avg_pct;       /* its moving average */
    double stall_level_pct;     /* its slow mean (about ten intervals) */
    double stall_base_pct;      /* the part that does not respond to size (0: none) */
    double stall_margin_pct;    /* a rise over the base beyond this is a response */
    bool measuring;             /* the last move's effect is being measured */
    bool hurt_live;             /* it needed memory at hurt_bytes, still remembered */
    uint64_t hurt_bytes;
    int64_t hurt_left_ms;    /* until it is forgotten */
    unsigned flips;          /* reversals counted toward the backoff */
    int64_t inflate_wait_ms; /* no inflate for this much longer: the block after its last
                              * deflate, doubled per flip (0: none, over, ended early) */
    unsigned stuck_count;    /* moves in a row its balloon did not follow */
    int64_t stuck_left_ms;   /* skipped this much longer (0: not skipped) */
};

/* Fill out from g's state at now. Pure. */
void policy_guest_sizing(const struct policy_config *cfg, const struct policy_guest *g, int64_t now,
                         struct policy_sizing *out);

/* Record a host reading: memory PSI some avg10 (%), MemTotal and MemAvailable (bytes). */
void policy_host_input(struct policy_host *host, double psi_some_avg10, uint64_t mem_total_bytes,
                       uint64_t mem_available_bytes);

/* Record the host budget: the most all balloons together may hold (a cgroup's limit, or
 * MemAvailable plus what the guests hold, less a reserve). The sum of targets never
 * exceeds it. policy_host_no_budget() forgets it. */
void policy_host_budget(struct policy_host *host, uint64_t budget_bytes);
void policy_host_no_budget(struct policy_host *host);

/* Start the host state: no reading yet, not under pressure, no budget. */
void policy_host_init(struct policy_host *host);

/* Decide for all n guests at once. Writes decisions[i] for guests[i]; updates the host
 * pressure state (enter/exit) and nothing else. Guests are not changed: a decision only
 * takes effect through policy_commit(). Calling it twice with the same inputs gives the
 * same decisions. Equivalent to policy_decide_guest() for each guest, then
 * policy_arbitrate(). */
void policy_decide(const struct policy_config *cfg, struct policy_host *host,
                   const struct policy_guest *guests, size_t n, int64_t now,
                   struct policy_decision *decisions);

/* The same, for guests kept apart (e.g. embedded in the daemon's own guest objects):
 * guests[i] points to guest i. */
void policy_decide_ptrs(const struct policy_config *cfg, struct policy_host *host,
                        const struct policy_guest *const *guests, size_t n, int64_t now,
                        struct policy_decision *decisions);

/* One guest's own rules, without the budget and the host round: what it wants. Depends
 * only on cfg, the host's pressure state, g and now, so a scheduler that tracks which
 * guests' inputs changed may call it for those alone and keep the others' wishes until
 * policy_guest_deadline(). */
void policy_decide_guest(const struct policy_config *cfg, const struct policy_host *host,
                         const struct policy_guest *g, int64_t now, struct policy_decision *d);

/* Turn every guest's wish (decisions[], from policy_decide_guest) into the round's
 * decisions: update host pressure, fit deflates into the budget (funding them from guests
 * above their working set, then by weight, else cutting them), and run the host round.
 * guests[i] points to guest i. */
void policy_arbitrate(const struct policy_config *cfg, struct policy_host *host,
                      const struct policy_guest *const *guests, size_t n, int64_t now,
                      struct policy_decision *decisions);

/* The daemon issued decision d for g (balloon command sent). Starts cooldowns, counts
 * reversals, remembers the target. HOLD decisions are ignored. When any decision of a
 * round with reason HOST_PRESSURE or SHARE is committed, call policy_host_commit() too.
 * In advisory (dry-run) mode the daemon may commit and then note_actual(d->to_bytes) to
 * simulate the move. */
void policy_commit(const struct policy_config *cfg, struct policy_guest *g,
                   const struct policy_decision *d, int64_t now);

/* A host reclaim round was issued at now: the next one waits host_reclaim_interval_ms. */
void policy_host_commit(struct policy_host *host, int64_t now);

/* True for reasons of the host's rounds (host-pressure, share): commit the host too. */
bool policy_reason_is_host_round(enum policy_reason reason);

/* Earliest time after now at which a decision could change without any new input (a
 * level decays; quiet time, cooldown, inflate interval or settle timeout ends; flips or
 * hurt memory are forgotten; the next host round), or POLICY_NO_DEADLINE. Calling
 * policy_decide() earlier is harmless; later only delays a move. */
int64_t policy_next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy_guest *guests, size_t n, int64_t now);

/* The same, for guests given as an array of pointers. */
int64_t policy_next_deadline_ptrs(const struct policy_config *cfg, const struct policy_host *host,
                                  const struct policy_guest *const *guests, size_t n, int64_t now);

/* One guest's part of policy_next_deadline() (without the host round's). */
int64_t policy_guest_deadline(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now);

/* ---- state worth keeping across a restart (policy_state.c) ---- */

/* Longest text policy_state_format() writes, its NUL included. */
#define POLICY_STATE_MAX 320

/* Write what g has learnt that a restart should not forget (hurt size, reversals and
 * backoff, the last deflate and the need at it, stuck balloons, the stall base) as one
 * line of `key=value` words, ages relative to now and the wall clock wall_ms. Returns the length
 * written (without the NUL), or -ENOSPC when cap is too small (buf then holds an empty string). */
int policy_state_format(const struct policy_guest *g, int64_t now, int64_t wall_ms, char *buf,
                        size_t cap);

/* What policy_state_format() would keep of g, with its times as they are instead of as
 * ages, and no wall clock: the same key at two moments means that nothing worth keeping
 * changed in between (the daemon writes g's line again only when its key changed). Not a
 * line policy_state_parse() reads. Returns the length (without the NUL), or -ENOSPC. */
int policy_state_key(const struct policy_guest *g, char *buf, size_t cap);

/* Read a line written by policy_state_format() into g (a guest just initialised) at now
 * and the wall clock wall_ms: time spent while the daemon was down counts as elapsed, and
 * anything already expired is dropped. Returns 0, or -EINVAL for text that is not such a
 * line (g untouched). */
int policy_state_parse(const struct policy_config *cfg, struct policy_guest *g, const char *text,
                       size_t len, int64_t now, int64_t wall_ms);

/* The wall clock a line of policy_state_format() was written at (its `wall=`). Returns 0,
 * or -EINVAL for text that is not such a line or has none. */
int policy_state_wall(const char *text, int64_t *ret_wall_ms);

/* Nothing in a policy line outlives this (its ages are clamped to it): a line written this
 * long ago tells a guest nothing. */
#define POLICY_STATE_LIFETIME_MS (INT64_C(30) * 24 * 3600 * 1000)

#endif
