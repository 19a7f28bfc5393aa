/* bellows balloon policy: the per-guest stall measure. From the counters in successive
 * snapshots (PSI some total, major faults, swap-ins) a stall per interval; the part of it
 * that does not respond to size (the base); and the effect of each move, measured once the
 * balloon has settled. Pure like the rest of the policy: see policy.h and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

/* Weight of the newest interval in the moving average: half, so two intervals carry
 * three quarters of it. */
#define AVG_WEIGHT 0.5
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
        s->base_pct = after;
        /* The size it was given memory at was no hurt size after all. */
        if (g->hurt_known && g->hurt_bytes == s->eval_from)
            g->hurt_known = false;
    }
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
    s->last_pct = pct;
    s->avg_pct = s->known ? s->avg_pct + AVG_WEIGHT * (pct - s->avg_pct) : pct;
    s->known = true;
    s->last_at = now;
    /* Less stall now than the base: the part beyond reach shrank with it. */
    if (s->avg_pct < s->base_pct)
        s->base_pct = s->avg_pct;
    if (s->eval_pending) {
        if (s->eval_intervals == 0 || pct < s->eval_min_pct)
            s->eval_min_pct = pct;
        s->eval_sum_pct += pct;
        if (++s->eval_intervals >= EVAL_INTERVALS)
            evaluate(cfg, g);
        return;
    }
    /* At the ceiling nothing more can be given: the stall left is beyond reach. */
    if (g->actual_known && add_sat(g->actual_bytes, cfg->min_change_bytes) >= g->ceiling_bytes &&
        policy__stall_excess(g, s->avg_pct) > policy__stall_margin(cfg, g))
        s->base_pct = s->avg_pct;
}
