/* bellows balloon policy: the host's side. Host pressure with an enter/exit dead band,
 * and the reclaim round that takes memory from the quietest, lowest-weight guests.
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

/* A guest the host may take from, with what orders it and how far it may go. */
struct candidate {
    size_t index;
    enum bp_level level;
    uint32_t weight;
    int64_t last_event_at;
    uint64_t limit; /* lowest size a host round may take it to */
};

/* May the host take from guest i? Fills *ret when it may. */
static bool reclaimable(const struct policy_config *cfg, const struct policy_guest *g, size_t i,
                        const struct policy_decision *d, int64_t now, struct candidate *ret)
{
    if (d->action == POLICY_DEFLATE || d->reason == POLICY_R_HOST_PRESSURE)
        return false;
    if (d->action == POLICY_HOLD &&
        (d->reason == POLICY_R_PAUSED || d->reason == POLICY_R_UNKNOWN_ACTUAL ||
         d->reason == POLICY_R_SETTLING))
        return false;
    if (d->action == POLICY_INFLATE && d->reason != POLICY_R_QUIET)
        return false;
    /* Never from a guest under pressure, nor one just given memory. */
    enum bp_level level = policy_guest_level(cfg, g, now);
    if (level > BP_LEVEL_LOW)
        return false;
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < policy__inflate_wait(cfg, g, now))
        return false;
    /* Any snapshot, however old, is a better guide than none. */
    uint64_t limit = g->floor_bytes;
    if (g->mem_known && g->overhead_known)
        limit = max_u64(limit, policy__guest_need(g, cfg->host_buffer_pct));
    if (g->hurt_known && now - g->hurt_at < cfg->hurt_memory_ms)
        limit = max_u64(limit, g->hurt_bytes);
    if (g->actual_bytes <= add_sat(limit, cfg->min_change_bytes))
        return false;
    *ret = (struct candidate){i, level, g->weight, g->last_event_at, limit};
    return true;
}

/* Does a go before b in the host reclaim order? Lower level, then lower weight, then
 * quieter (older last event), then index. */
static bool reclaim_before(const struct candidate *a, const struct candidate *b)
{
    if (a->level != b->level)
        return a->level < b->level;
    if (a->weight != b->weight)
        return a->weight < b->weight;
    if (a->last_event_at != b->last_event_at)
        return a->last_event_at < b->last_event_at;
    return a->index < b->index;
}

/* Under host pressure: take host steps from guests in reclaim order until the host's
 * shortfall, less what is still on its way, is covered (one step, when only PSI says
 * pressure). No allocation: each pass picks the best guest not yet taken. */
void policy__host_round(const struct policy_config *cfg, const struct policy_host *host,
                        const struct policy__guests *gs, int64_t now,
                        struct policy_decision *decisions)
{
    size_t n = gs->n;
    /* Memory already on its way back from earlier rounds has not shown up in the host's
     * numbers yet: count it, or every round would take the same shortfall again. */
    uint64_t pending = 0;
    for (size_t i = 0; i < n; i++) {
        const struct policy_guest *g = policy__guest(gs, i);
        if (policy__settling(cfg, g, now) && g->target_bytes < g->actual_bytes)
            pending = add_sat(pending, g->actual_bytes - g->target_bytes);
    }
    uint64_t shortfall =
        sub_sat(pct_of(host->mem_total_bytes, cfg->host_avail_exit_pct), host->mem_available_bytes);
    /* Only PSI says pressure: one step per round, once earlier ones have landed. */
    bool one_step = shortfall == 0;
    if (one_step && pending > 0)
        return;
    uint64_t want = sub_sat(shortfall, pending);
    if (!one_step && want == 0)
        return;
    uint64_t got = 0;

    for (size_t pass = 0; pass < n && (one_step ? got == 0 : got < want); pass++) {
        struct candidate best = {.index = n}, c;
        for (size_t i = 0; i < n; i++) {
            if (!reclaimable(cfg, policy__guest(gs, i), i, &decisions[i], now, &c))
                continue;
            if (best.index == n || reclaim_before(&c, &best))
                best = c;
        }
        if (best.index == n)
            break;
        const struct policy_guest *g = policy__guest(gs, best.index);
        struct policy_decision *d = &decisions[best.index];
        uint64_t step = step_of(g, cfg->host_step_bytes, cfg->host_step_pct);
        if (!one_step)
            step = min_u64(step, max_u64(want - got, cfg->min_change_bytes));
        uint64_t to = max_u64(best.limit, sub_sat(g->actual_bytes, step));
        if (d->action == POLICY_INFLATE && d->to_bytes < to)
            to = d->to_bytes;
        d->action = POLICY_INFLATE;
        d->reason = POLICY_R_HOST_PRESSURE;
        d->to_bytes = to;
        got += g->actual_bytes - to;
    }
}
