/* bellows balloon policy: the per-guest stall measure. From the counters in successive
 * snapshots (PSI some total, major faults, swap-ins) a stall per interval; the part of it
 * that does not respond to size (the base); and the effect of each move, measured once the
 * balloon has settled. Pure like the rest of the policy: see policy.h and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

/* Weight of the newest interval in the moving average: half, so two intervals carry
 * three quarters of it. */
#define AVG_WEIGHT 0.5
/* The level is the mean of about this many intervals (50 s at 5 s each): a weight of a
 * tenth each, once that many have been counted (the mean of those until then). Its noise
 * is under a third of one interval's; the base is lowered to it, never to one dip. */
#define LEVEL_INTERVALS 10u
/* Clean intervals averaged to judge a move's effect: one is noisy, more slow the walk. */
#define EVAL_INTERVALS 2u

double policy__stall_excess(const struct policy_guest *g, double pct)
{
    return pct - g->stall.base_pct;
}

double policy__stall_margin(const struct policy_config *cfg, const struct policy_guest *g)
{
    double rel = g->stall.base_pct * cfg->stall_response_pct / 100.0;
    return rel > cfg->stall_target_pct ? rel : cfg->stall_target_pct;
}

/* Start of the time a measure may cover: the end of the last committed move. */
static int64_t move_over_at(const struct policy_guest *g)
{
    if (!g->target_set)
        return POLICY_NEVER;
    return g->target_done ? g->target_done_at : g->target_at;
}

bool policy__stall_fresh(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    const struct policy_stall *s = &g->stall;
    return s->known && now - s->last_at <= cfg->snapshot_max_age_ms &&
           !policy__settling(cfg, g, now);
}

void policy__stall_commit(struct policy_guest *g, const struct policy_decision *d)
{
    struct policy_stall *s = &g->stall;
    s->eval_pending = true;
    s->eval_dir = d->action;
    s->eval_from = d->from_bytes;
    s->eval_to = d->to_bytes;
    s->eval_before_pct = s->known ? s->last_pct : 0;
    s->eval_cut = d->action == POLICY_DEFLATE && d->wanted_bytes > d->to_bytes;
    s->eval_intervals = 0;
    s->eval_sum_pct = 0;
    s->eval_min_pct = 0;
    s->responded = false;
    s->size_intervals = 0;
    s->base_here = false;
}

/* The weight of the newest of n values in a mean that becomes a moving one at
 * LEVEL_INTERVALS. */
static double level_weight(unsigned *n)
{
    if (*n < LEVEL_INTERVALS)
        (*n)++;
    return 1.0 / (double)*n;
}

/* The slow mean, and the spread: how much one interval differs from the one before it
 * (a step's effect moves the level and counts once in the spread, not while the level
 * catches up). Called before last_pct takes pct. */
static void note_level(struct policy_stall *s, double pct)
{
    if (s->known) {
        double change = pct > s->last_pct ? pct - s->last_pct : s->last_pct - pct;
        s->spread_pct += level_weight(&s->spread_intervals) * (change - s->spread_pct);
    }
    s->level_pct += level_weight(&s->level_intervals) * (pct - s->level_pct);
}

/* A base found now: the level starts again from it, so that only what is measured from
 * now on lowers it (the level before it mixed the stall of other sizes and times). */
static void set_base(struct policy_stall *s, double pct)
{
    s->base_pct = pct;
    s->base_here = true;
    s->level_pct = pct;
    s->level_intervals = 1;
}

/* At the ceiling the base is the level, up or down: all of that stall is beyond reach. */
static void set_base_at_ceiling(struct policy_stall *s)
{
    s->base_pct = s->level_pct;
    s->base_here = true;
}

/* The peak a base may rise back to: a complete level (not one or two intervals, which
 * stray by points) measured where all of the stall was base. */
static void note_peak(struct policy_stall *s)
{
    if (s->base_pct > 0 && s->base_here && s->level_intervals >= LEVEL_INTERVALS &&
        s->level_pct > s->base_peak_pct)
        s->base_peak_pct = s->level_pct;
}

/* The last move's effect, averaged over EVAL_INTERVALS clean intervals after it. */
static void evaluate(const struct policy_config *cfg, struct policy_guest *g)
{
    struct policy_stall *s = &g->stall;
    double after = s->eval_sum_pct / (double)s->eval_intervals;
    double margin = policy__stall_margin(cfg, g);
    s->eval_pending = false;
    if (s->eval_dir == POLICY_INFLATE) {
        /* Memory taken raised the stall past its margin in every interval measured: the
         * guest needs it back. One blip does not count (a quality run's cache guest
         * stalled 24 ms in one interval with 174 of 213 MiB available: averaged, that
         * undid the step and kept it 32 MiB too large for ten minutes). */
        s->responded = policy__stall_excess(g, s->eval_min_pct) > margin;
        return;
    }
    /* Memory given to cure a stall that did not fall by stall_response_pct: that stall
     * does not respond to size; it becomes the base the margin is counted from. Not when
     * the budget cut the step: less than the guest asked for proves nothing. */
    double before = s->eval_before_pct;
    if (!s->eval_cut && policy__stall_excess(g, before) > margin &&
        policy__stall_excess(g, after) > margin &&
        after >= before * (1.0 - cfg->stall_response_pct / 100.0)) {
        set_base(s, after);
        /* The size it was given memory at was no hurt size after all. */
        if (g->hurt_known && g->hurt_bytes == s->eval_from)
            g->hurt_known = false;
    }
}

/* Less stall than the base: the part beyond reach shrank. Lowered when the stall fell by
 * more than its margin (the streaming stopped: what is left responds to size again), or
 * to the slow mean when that is under it (a quieter spell). Not to the moving average
 * whenever it dips: that put the base at the low tail of the noise, the average a few
 * points over it with nothing responding, and the probe held on that (the quality bench's
 * churn guest, flat from 512 to 160 MiB, was held at 192 MiB; docs/benchmarks.md). */
static void lower_base(const struct policy_config *cfg, struct policy_guest *g)
{
    struct policy_stall *s = &g->stall;
    if (s->base_pct <= 0)
        return;
    if (s->avg_pct < s->base_pct - policy__stall_margin(cfg, g)) {
        /* What was beyond reach is gone: the base may not rise back to it. */
        s->base_pct = s->avg_pct;
        s->base_peak_pct = s->avg_pct;
    } else if (s->level_intervals >= LEVEL_INTERVALS && s->level_pct < s->base_pct)
        s->base_pct = s->level_pct;
}

/* One more clean interval at the balloon's current size; the count starts again when the
 * size changed (a move, or someone else's). */
static void note_size(const struct policy_config *cfg, struct policy_guest *g, double pct)
{
    struct policy_stall *s = &g->stall;
    if (!g->actual_known)
        return;
    if (s->size_intervals == 0 ||
        dist_u64(g->actual_bytes, s->size_bytes) > cfg->min_change_bytes) {
        s->size_bytes = g->actual_bytes;
        s->size_intervals = 0;
        s->size_sum_pct = 0;
    }
    s->size_intervals++;
    s->size_sum_pct += pct;
}

/* A base lowered by a quieter spell rises again, up to its peak, once a full level of
 * intervals at the size the probe took the guest to says the stall there is higher:
 * without it, a churn guest whose stall drifted from 23 % down to 17.5 % and back to 21 %
 * read the return as its response to the last steps and held at 1.76x its working set
 * (docs/benchmarks.md). Never above the peak: a stall rising past what was measured
 * beyond reach may be the guest's knee, and the probe holds there. Never at a size the
 * guest was given memory at, or a probe that raised the stall took it to: there the stall
 * did respond. One rise per hold: the count starts again. */
static void raise_base(struct policy_stall *s)
{
    if (s->base_pct <= 0 || s->eval_pending || s->size_intervals < LEVEL_INTERVALS)
        return;
    if (s->eval_dir != POLICY_INFLATE || s->responded) {
        s->size_intervals = 0;
        return;
    }
    double here = s->size_sum_pct / (double)s->size_intervals;
    if (here > s->base_pct && s->base_pct < s->base_peak_pct)
        s->base_pct = here < s->base_peak_pct ? here : s->base_peak_pct;
    s->size_intervals = 0;
}

void policy__stall_note(const struct policy_config *cfg, struct policy_guest *g,
                        const struct bp_mem *mem, int64_t now)
{
    struct policy_stall *s = &g->stall;
    uint64_t some = mem->psi_some_total_us;
    uint64_t faults = add_sat(mem->pgmajfault, mem->pswpin);

    /* A guest whose kernel counts PSI at all: its stall can be measured. */
    if (some > 0)
        s->psi_seen = true;
    if (s->mark_known && now <= s->mark_at)
        return;
    if (!s->mark_known || some < s->mark_some_us || faults < s->mark_faults) {
        /* First snapshot, or the counters went back (the guest rebooted): start over. */
        s->mark_known = true;
        s->mark_some_us = some;
        s->mark_faults = faults;
        s->mark_at = now;
        return;
    }
    int64_t dt = now - s->mark_at;
    /* An interval that overlaps a move says nothing clear about either size: it is
     * dropped, and the next starts at once. */
    bool clean = !policy__settling(cfg, g, now) && s->mark_at >= move_over_at(g);
    if (clean && dt < cfg->stall_interval_ms)
        return;
    uint64_t dsome = some - s->mark_some_us;
    uint64_t dfaults = faults - s->mark_faults;
    s->mark_some_us = some;
    s->mark_faults = faults;
    s->mark_at = now;

    /* Percent of the interval: us / (ms * 10). Faults count when they say more. */
    double pct = (double)dsome / ((double)dt * 10.0);
    double fpct = (double)dfaults * (double)cfg->stall_fault_us / ((double)dt * 10.0);
    if (fpct > pct)
        pct = fpct;
    if (!(pct >= 0))
        pct = 0;
    if (pct > 100)
        pct = 100;
    if (!clean)
        return;

    /* A stall lasts when both of the last two intervals had it; the first has no pair. */
    s->lasting_pct = s->known ? (pct < s->last_pct ? pct : s->last_pct) : 0;
    note_level(s, pct);
    note_peak(s);
    s->last_pct = pct;
    s->avg_pct = s->known ? s->avg_pct + AVG_WEIGHT * (pct - s->avg_pct) : pct;
    s->known = true;
    s->last_at = now;
    note_size(cfg, g, pct);
    lower_base(cfg, g);
    raise_base(s);
    if (s->eval_pending) {
        if (s->eval_intervals == 0 || pct < s->eval_min_pct)
            s->eval_min_pct = pct;
        s->eval_sum_pct += pct;
        if (++s->eval_intervals >= EVAL_INTERVALS)
            evaluate(cfg, g);
        return;
    }
    /* At the ceiling nothing more can be given: the stall left is beyond reach. Its
     * first measure sets the base; then the base is the level there, up or down (set
     * from one low interval and never raised, it left the level 3 points over it, and a
     * simulated churn guest held at its ceiling for an hour). */
    if (g->actual_known && add_sat(g->actual_bytes, cfg->min_change_bytes) >= g->ceiling_bytes) {
        if (policy__stall_excess(g, s->avg_pct) > policy__stall_margin(cfg, g))
            set_base(s, s->avg_pct);
        else if (s->base_pct > 0 && s->level_intervals >= LEVEL_INTERVALS)
            set_base_at_ceiling(s);
    }
}
