/* bellows balloon policy: the host's side. Host pressure with an enter/exit dead band, and
 * the reclaim round that takes memory from the idlest, lowest-weight guests above their
 * working set when the host is short or the guests hold more than the budget.
 * Pure like the rest of the policy: see policy.h and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

#include <math.h>

void policy_host_init(struct policy_host *host)
{
    *host = (struct policy_host){
        .pressure_since = POLICY_NEVER,
        .last_reclaim_at = POLICY_NEVER,
    };
}

void policy_host_input(struct policy_host *host, double psi_some_avg10, uint64_t mem_total_bytes,
                       uint64_t mem_available_bytes)
{
    host->known = mem_total_bytes > 0 && isfinite(psi_some_avg10);
    host->psi_some_avg10 = psi_some_avg10;
    host->mem_total_bytes = mem_total_bytes;
    host->mem_available_bytes = mem_available_bytes;
}

void policy_host_budget(struct policy_host *host, uint64_t budget_bytes)
{
    host->budget_known = true;
    host->budget_bytes = budget_bytes;
}

void policy_host_no_budget(struct policy_host *host)
{
    host->budget_known = false;
    host->budget_bytes = 0;
}

void policy_host_commit(struct policy_host *host, int64_t now)
{
    host->last_reclaim_at = now;
}

/* Enter host pressure at either threshold; leave only when both are back past their exit
 * thresholds. */
void policy__host_update(const struct policy_config *cfg, struct policy_host *host, int64_t now)
{
    if (!host->known) {
        host->pressure = false;
        return;
    }
    double avail_pct = 100.0 * (double)host->mem_available_bytes / (double)host->mem_total_bytes;
    if (!host->pressure) {
        if (host->psi_some_avg10 >= cfg->host_psi_enter || avail_pct <= cfg->host_avail_enter_pct) {
            host->pressure = true;
            host->pressure_since = now;
        }
    } else if (host->psi_some_avg10 < cfg->host_psi_exit && avail_pct > cfg->host_avail_exit_pct) {
        host->pressure = false;
    }
}

bool policy__donor(const struct policy_config *cfg, const struct policy_guest *g,
                   const struct policy_decision *d, int64_t now, uint64_t *ret_limit)
{
    if (d->action == POLICY_DEFLATE)
        return false;
    if (policy__giving_this_round(d))
        return false;
    if (d->action == POLICY_HOLD &&
        (d->reason == POLICY_R_PAUSED || d->reason == POLICY_R_UNKNOWN_ACTUAL ||
         d->reason == POLICY_R_SETTLING || d->reason == POLICY_R_STUCK ||
         d->reason == POLICY_R_AT_CEILING || d->reason == POLICY_R_BUDGET ||
         d->reason == POLICY_R_CRITICAL_ECHO || d->reason == POLICY_R_DWELL))
        return false;
    if (policy__recently_pressed(cfg, g, now))
        return false;
    /* Nor one known for less than quiet_ms: booting, it looks idle (its boot-time use is
     * its working set) and is about to use more, and its boot is often what the host's
     * pressure or a budget excess is. Quality runs took just-booted guests from 421 to
     * 102 MiB (a fund) and from 256 to 112 and 142 MiB (host rounds, older guests first),
     * and their workloads were OOM-killed. Without a snapshot its working set would be only
     * its floor; an agent says hello within seconds of boot. The excess waits: older
     * guests give a step a round, and every deflate is cut to the room there is. */
    if (policy__just_known(cfg, g, now))
        return false;
    /* Nor one just given memory, nor one whose balloon did not follow the last move. */
    if (policy__stuck_until(cfg, g, now) > now)
        return false;
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < policy__inflate_wait(cfg, g, now))
        return false;
    /* Nor from one whose last inflate's effect on its stall is still being measured: a
     * step at a time, each judged before the next (a quality run's host round and a fund
     * took a churning guest from 320 to 82 MiB within seconds, and it went critical). For
     * quiet_ms at most: a measure that never comes (no snapshots) does not block for ever. */
    if (g->stall.psi_seen && g->stall.eval_pending && g->stall.eval_dir == POLICY_INFLATE &&
        g->last_inflate_at != POLICY_NEVER && now - g->last_inflate_at < cfg->quiet_ms)
        return false;
    /* Nor from one whose stall is over its margin. */
    if (g->stall.responded ||
        (g->stall.psi_seen && policy__stall_fresh(cfg, g, now) &&
         policy__stall_excess(g, g->stall.last_pct) > policy__stall_margin(cfg, g)))
        return false;
    uint64_t limit = policy_guest_working_set(cfg, g, now);
    if (g->actual_bytes <= add_sat(limit, cfg->min_change_bytes))
        return false;
    *ret_limit = limit;
    return true;
}

/* A guest the host may take from, with what orders it. */
struct candidate {
    size_t index;
    enum bp_level level;
    uint32_t weight;
    double stall_pct;
    int64_t last_event_at;
    uint64_t limit; /* lowest size the round may take it to */
};

/* Does a go before b? Lower level, then lower weight, then idler (less stall above its
 * base), then quieter (older last event), then index. */
static bool reclaim_before(const struct candidate *a, const struct candidate *b)
{
    if (a->level != b->level)
        return a->level < b->level;
    if (a->weight != b->weight)
        return a->weight < b->weight;
    if (a->stall_pct != b->stall_pct)
        return a->stall_pct < b->stall_pct;
    if (a->last_event_at != b->last_event_at)
        return a->last_event_at < b->last_event_at;
    return a->index < b->index;
}

/* The best donor not yet taken from this round (skip: a guest that may not give), or
 * n when none is left. */
static size_t next_donor(const struct policy_config *cfg, const struct policy__guests *gs,
                         int64_t now, const struct policy_decision *decisions, size_t skip,
                         struct candidate *ret)
{
    size_t n = gs->n;
    struct candidate best = {.index = n};
    for (size_t i = 0; i < n; i++) {
        const struct policy_guest *g = policy__guest(gs, i);
        uint64_t limit;
        if (i == skip || !policy__donor(cfg, g, &decisions[i], now, &limit))
            continue;
        double excess = g->stall.known ? policy__stall_excess(g, g->stall.avg_pct) : 0;
        struct candidate c = {
            i, policy_guest_level(cfg, g, now), g->weight, excess, g->last_event_at, limit};
        if (best.index == n || reclaim_before(&c, &best))
            best = c;
    }
    *ret = best;
    return best.index;
}

uint64_t policy__take_capacity(const struct policy_config *cfg, const struct policy__guests *gs,
                               int64_t now, const struct policy_decision *decisions, size_t skip)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < gs->n; i++) {
        const struct policy_guest *g = policy__guest(gs, i);
        const struct policy_decision *d = &decisions[i];
        uint64_t limit;
        if (i == skip || !policy__donor(cfg, g, d, now, &limit))
            continue;
        uint64_t counted = policy__held_after(cfg, g, d, now);
        /* At most a host step each, as policy__take with host_step. */
        uint64_t can = min_u64(sub_sat(counted, limit), host_step_of(cfg, g));
        sum = add_sat(sum, can);
    }
    return sum;
}

uint64_t policy__take(const struct policy_config *cfg, const struct policy__guests *gs, int64_t now,
                      struct policy_decision *decisions, size_t skip, uint64_t want,
                      size_t max_donors, bool host_step, enum policy_reason reason)
{
    uint64_t got = 0;
    for (size_t pass = 0; pass < gs->n && pass < max_donors && got < want; pass++) {
        struct candidate c;
        if (next_donor(cfg, gs, now, decisions, skip, &c) == gs->n)
            break;
        const struct policy_guest *g = policy__guest(gs, c.index);
        struct policy_decision *d = &decisions[c.index];
        uint64_t step = max_u64(want - got, cfg->min_change_bytes);
        /* A guest with a stall at any size (a base) has no known working set: the size its
         * stall starts to respond at is found a step at a time, never in one jump. */
        if (host_step || (g->stall.psi_seen && g->stall.base_pct > 0))
            step = min_u64(step, host_step_of(cfg, g));
        /* From what it holds after its own decision (a quiet inflate already planned goes
         * further by the step). */
        uint64_t counted = policy__held_after(cfg, g, d, now);
        uint64_t to = min_u64(counted, max_u64(c.limit, sub_sat(counted, step)));
        /* An inflate goes down from the actual (a deflate still counted as given may be
         * taken back whole). */
        to = min_u64(to, sub_sat(g->actual_bytes, cfg->min_change_bytes));
        *d = (struct policy_decision){POLICY_INFLATE, reason, g->actual_bytes, to, 0};
        got = add_sat(got, sub_sat(counted, to));
    }
    return got;
}

/* Under host pressure (MemAvailable or PSI) or with the guests over the budget, take the
 * shortfall from guests above their working set, and under the budget, if that is not
 * enough, from guests above their weighted share. One round per interval. */
void policy__host_round(const struct policy_config *cfg, const struct policy_host *host,
                        const struct policy__guests *gs, int64_t now,
                        struct policy_decision *decisions)
{
    if (host->last_reclaim_at != POLICY_NEVER &&
        now - host->last_reclaim_at < cfg->host_reclaim_interval_ms)
        return;
    uint64_t over = 0;
    if (host->budget_known)
        over = sub_sat(policy__budget_use(cfg, gs, now, decisions), host->budget_bytes);
    if (!host->pressure && over == 0)
        return;

    size_t n = gs->n;
    uint64_t want = over;
    bool one_step = false;
    if (host->pressure) {
        /* Memory already on its way back from earlier rounds has not shown up in the
         * host's numbers yet: count it, or every round would take the same shortfall
         * again. */
        uint64_t pending = 0;
        for (size_t i = 0; i < n; i++) {
            const struct policy_guest *g = policy__guest(gs, i);
            if (policy__settling(cfg, g, now) && g->target_bytes < g->actual_bytes)
                pending = add_sat(pending, g->actual_bytes - g->target_bytes);
        }
        uint64_t shortfall = sub_sat(pct_of(host->mem_total_bytes, cfg->host_avail_exit_pct),
                                     host->mem_available_bytes);
        if (shortfall == 0 && over == 0) {
            /* Only PSI says pressure: one step per round, once earlier ones have landed. */
            if (pending > 0)
                return;
            one_step = true;
        }
        want = max_u64(want, sub_sat(shortfall, pending));
    }
    if (one_step) {
        policy__take(cfg, gs, now, decisions, n, UINT64_MAX, 1, true, POLICY_R_HOST_PRESSURE);
        return;
    }
    if (want == 0)
        return;
    uint64_t got = policy__take(cfg, gs, now, decisions, n, want, n, true, POLICY_R_HOST_PRESSURE);
    if (got < over)
        policy__share_squeeze(cfg, host, gs, now, decisions, n, over - got);
}
