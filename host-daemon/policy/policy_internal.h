/* Internal to the policy files (policy.c, policy_stall.c, policy_host.c, policy_budget.c,
 * policy_state.c): shared helpers. Not for the daemon: it uses policy.h only. */
#ifndef BELLOWS_POLICY_INTERNAL_H
#define BELLOWS_POLICY_INTERNAL_H

#include "host-daemon/policy/policy.h"

/* One page: balloon sizes are page-granular, so a limit missed by less is not crossed. */
#define POLICY_PAGE_BYTES UINT64_C(4096)

/* Saturating arithmetic: numbers a guest sends can be anything, nothing may wrap. */

static inline uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t dist_u64(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* KiB from a guest to bytes, saturating. */
static inline uint64_t kib_bytes(uint64_t kib)
{
    return kib > UINT64_MAX / 1024 ? UINT64_MAX : kib * 1024;
}

/* x times a fraction f (0..1 or more), saturating; 0 for f <= 0 or NaN. */
static inline uint64_t scale_u64(uint64_t x, double f)
{
    double v = (double)x * f;
    if (!(v > 0))
        return 0;
    if (v >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* pct percent of x, saturating at UINT64_MAX. */
static inline uint64_t pct_of(uint64_t x, double pct)
{
    return scale_u64(x, pct / 100.0);
}

/* A step for this guest: max(bytes, pct of its ceiling). */
static inline uint64_t step_of(const struct policy_guest *g, uint64_t bytes, double pct)
{
    return max_u64(bytes, pct_of(g->ceiling_bytes, pct));
}

/* The most a host round, a fund or a share squeeze takes from the guest in one round. */
static inline uint64_t host_step_of(const struct policy_config *cfg, const struct policy_guest *g)
{
    return step_of(g, cfg->host_step_bytes, cfg->host_step_pct);
}

/* Is the guest already giving this round, by a decision other than its own inflate (a
 * fund, a share, a host round)? It then gives no more than that decision says. */
static inline bool policy__giving_this_round(const struct policy_decision *d)
{
    return d->action == POLICY_INFLATE && d->reason != POLICY_R_QUIET &&
           d->reason != POLICY_R_INSENSITIVE;
}

/* The guests of one decision round, given as an array or as an array of pointers. */
struct policy__guests {
    const struct policy_guest *array;
    const struct policy_guest *const *ptrs;
    size_t n;
};

static inline const struct policy_guest *policy__guest(const struct policy__guests *gs, size_t i)
{
    return gs->array ? &gs->array[i] : gs->ptrs[i];
}

/* ---- policy.c ---- */

/* True while a committed move may still be on its way: not over (reached, or the actual
 * moved away), not yet within the dead band of the target, and the settle timeout has not
 * passed. */
bool policy__settling(const struct policy_config *cfg, const struct policy_guest *g, int64_t now);

/* True when the last committed move did not follow: not over, and either the settle
 * timeout passed or, after stuck_check_ms, it progressed slower than stuck_rate_bytes/s. */
bool policy__move_failed(const struct policy_config *cfg, const struct policy_guest *g,
                         int64_t now);

/* While a failed move is remembered: the end of the guest's stuck backoff, else NEVER. */
int64_t policy__stuck_until(const struct policy_config *cfg, const struct policy_guest *g,
                            int64_t now);

/* What the guest holds toward the budget: the target of a move on its way from a balloon
 * that follows, else the actual (a balloon that does not follow gives nothing back); 0
 * while its size is not known. */
uint64_t policy__committed(const struct policy_config *cfg, const struct policy_guest *g,
                           int64_t now);

/* What guest g holds toward the budget once this round's decision d is carried out: the
 * decision's target for a move, else policy__committed(). What a donor gives this round
 * is taken from there (a quiet inflate already planned goes further). */
uint64_t policy__held_after(const struct policy_config *cfg, const struct policy_guest *g,
                            const struct policy_decision *d, int64_t now);

/* used * (1 + pct/100) + overhead: the smallest size that leaves the guest that buffer.
 * Only meaningful when g->mem_known. */
uint64_t policy__guest_need(const struct policy_guest *g, double pct);

/* The direction block after the last deflate ends early: the guest's workload ended. */
bool policy__given_unused(const struct policy_config *cfg, const struct policy_guest *g,
                          int64_t now);

/* How long after the last deflate an inflate must wait at now, flip backoff included. */
int64_t policy__inflate_wait(const struct policy_config *cfg, const struct policy_guest *g,
                             int64_t now);

/* True while the size the guest last hurt at is remembered. */
bool policy__hurt_live(const struct policy_config *cfg, const struct policy_guest *g, int64_t now);

/* Has the guest's size been known for less than quiet_ms? Just booted (or just back), a
 * guest uses little and is about to use more: its snapshot is no working set yet. */
bool policy__just_known(const struct policy_config *cfg, const struct policy_guest *g, int64_t now);

/* Was the guest under pressure within quiet_ms? A critical event, or a medium one unless
 * its stall is measured under its margin (medium is then the kernel reclaiming cache).
 * Nobody takes memory from it then. */
bool policy__recently_pressed(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now);

/* ---- policy_stall.c ---- */

/* Feed one snapshot's counters to the stall measure (called by note_event/note_report). */
void policy__stall_note(const struct policy_config *cfg, struct policy_guest *g,
                        const struct bp_mem *mem, int64_t now);

/* A move was committed: measure its effect once it has settled. */
void policy__stall_commit(struct policy_guest *g, const struct policy_decision *d);

/* True when the stall measure is fit to decide by at now: measured over a clean interval
 * (after the last move was over) not older than snapshot_max_age_ms. */
bool policy__stall_fresh(const struct policy_config *cfg, const struct policy_guest *g,
                         int64_t now);

/* The stall above the part that does not respond to size, and the margin it may have:
 * max(target, stall_response_pct of the base). */
double policy__stall_excess(const struct policy_guest *g, double pct);
double policy__stall_margin(const struct policy_config *cfg, const struct policy_guest *g);

/* ---- policy_host.c ---- */

/* Enter or leave host pressure from the latest reading. */
void policy__host_update(const struct policy_config *cfg, struct policy_host *host, int64_t now);

/* Under host pressure or over the budget, turn some guests' decisions into host-round
 * inflates. decisions[] holds each guest's decision after the budget pass. */
void policy__host_round(const struct policy_config *cfg, const struct policy_host *host,
                        const struct policy__guests *gs, int64_t now,
                        struct policy_decision *decisions);

/* May the host (or another guest's deflate) take from guest i? Its lowest size then.
 * Never from a guest known for less than quiet_ms (booting, it looks idle and is about to
 * use more), whoever asks. */
bool policy__donor(const struct policy_config *cfg, const struct policy_guest *g,
                   const struct policy_decision *d, int64_t now, uint64_t *ret_limit);

/* Take up to want (at least min_change) from at most max_donors guests in reclaim order,
 * each down to its working set (and by at most a host step when host_step), with this
 * reason; skip: a guest that may not give (n: none). Returns what was taken. */
uint64_t policy__take(const struct policy_config *cfg, const struct policy__guests *gs, int64_t now,
                      struct policy_decision *decisions, size_t skip, uint64_t want,
                      size_t max_donors, bool host_step, enum policy_reason reason);

/* What policy__take() for FUND with host_step could take at most, without taking it. */
uint64_t policy__take_capacity(const struct policy_config *cfg, const struct policy__guests *gs,
                               int64_t now, const struct policy_decision *decisions, size_t skip);

/* ---- policy_budget.c ---- */

/* Under contention, take up to want from the guests furthest above their weighted share
 * (fewest shares per byte first), toward that share, a host step each, never below what
 * they use with the low buffer, nor from a guest just known; skip as in policy__take.
 * Returns what was taken. */
uint64_t policy__share_squeeze(const struct policy_config *cfg, const struct policy_host *host,
                               const struct policy__guests *gs, int64_t now,
                               struct policy_decision *decisions, size_t skip, uint64_t want);

/* Fit the round's deflates into the budget: fund them from guests above their working
 * set, then by weight under contention, else cut them (reason BUDGET when nothing fits). */
void policy__budget_round(const struct policy_config *cfg, const struct policy_host *host,
                          const struct policy__guests *gs, int64_t now,
                          struct policy_decision *decisions);

/* Sum of what all guests hold toward the budget after this round's decisions. */
uint64_t policy__budget_use(const struct policy_config *cfg, const struct policy__guests *gs,
                            int64_t now, const struct policy_decision *decisions);

#endif
