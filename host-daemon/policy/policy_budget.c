/* bellows balloon policy: the host budget. The sum of what all balloons hold (their
 * targets, once a move is sent) never exceeds it: a deflate that does not fit is funded
 * from guests above their working set, then, under contention, from guests above their
 * weighted share, else cut to what fits. Pure like the rest of the policy: see policy.h
 * and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

uint64_t policy__held_after(const struct policy_config *cfg, const struct policy_guest *g,
                            const struct policy_decision *d, int64_t now)
{
    if (d->action != POLICY_HOLD)
        return d->to_bytes;
    return policy__committed(cfg, g, now);
}

uint64_t policy__budget_use(const struct policy_config *cfg, const struct policy__guests *gs,
                            int64_t now, const struct policy_decision *decisions)
{
    uint64_t use = 0;
    for (size_t i = 0; i < gs->n; i++)
        use = add_sat(use, policy__held_after(cfg, policy__guest(gs, i), &decisions[i], now));
    return use;
}

/* Guest g's weighted share of the budget: its floor plus the budget above all floors,
 * split by weight (Proxmox's and ESX's shares), at most its ceiling. */
static uint64_t share_of(const struct policy_host *host, const struct policy__guests *gs,
                         const struct policy_guest *g)
{
    uint64_t floors = 0;
    double weights = 0;
    for (size_t i = 0; i < gs->n; i++) {
        const struct policy_guest *o = policy__guest(gs, i);
        floors = add_sat(floors, o->floor_bytes);
        weights += o->weight > 0 ? o->weight : 1;
    }
    uint64_t above = sub_sat(host->budget_bytes, floors);
    double w = g->weight > 0 ? g->weight : 1;
    return min_u64(g->ceiling_bytes, add_sat(g->floor_bytes, scale_u64(above, w / weights)));
}

/* May guest i be squeezed toward its share? Its share when it may. */
static bool squeezable(const struct policy_config *cfg, const struct policy_host *host,
                       const struct policy__guests *gs, int64_t now,
                       const struct policy_decision *decisions, size_t i, size_t skip,
                       uint64_t *ret_share)
{
    const struct policy_guest *g = policy__guest(gs, i);
    const struct policy_decision *d = &decisions[i];
    if (i == skip || g->paused || !g->actual_known || d->action == POLICY_DEFLATE)
        return false;
    /* Not a guest already giving this round (funding gives its host step). */
    if (policy__giving_this_round(d))
        return false;
    if (policy__settling(cfg, g, now) || policy__stuck_until(cfg, g, now) > now)
        return false;
    /* Not a guest under pressure, nor one just known (as policy__donor). */
    if (policy__recently_pressed(cfg, g, now) || policy__just_known(cfg, g, now))
        return false;
    /* Not a guest just given memory: taking it back now would be a reversal. */
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < policy__inflate_wait(cfg, g, now))
        return false;
    /* Above its share by more than the dead band, counting what it already gives. Under
     * contention a share may be below the guest's working set, never below what it uses
     * now with the low buffer: weights divide memory, they do not make a guest OOM. */
    uint64_t share = share_of(host, gs, g);
    if (g->mem_known && g->overhead_known)
        share = max_u64(share, policy__guest_need(g, cfg->buffer_low_pct));
    uint64_t counted = policy__held_after(cfg, g, d, now);
    if (min_u64(counted, g->actual_bytes) <= add_sat(share, cfg->min_change_bytes))
        return false;
    *ret_share = share;
    return true;
}

/* What policy__share_squeeze() could take at most after policy__take() took all it
 * could, without taking it. A squeeze is needed only when the take ran out of donors,
 * and then every donor gave this round (not squeezable), so they are left out. */
static uint64_t share_capacity(const struct policy_config *cfg, const struct policy_host *host,
                               const struct policy__guests *gs, int64_t now,
                               const struct policy_decision *decisions, size_t skip)
{
    uint64_t sum = 0, share, limit;
    for (size_t i = 0; i < gs->n; i++) {
        if (!squeezable(cfg, host, gs, now, decisions, i, skip, &share))
            continue;
        const struct policy_guest *g = policy__guest(gs, i);
        const struct policy_decision *d = &decisions[i];
        if (policy__donor(cfg, g, d, now, &limit))
            continue;
        uint64_t counted = policy__held_after(cfg, g, d, now);
        sum = add_sat(sum, min_u64(sub_sat(counted, share), host_step_of(cfg, g)));
    }
    return sum;
}

uint64_t policy__share_squeeze(const struct policy_config *cfg, const struct policy_host *host,
                               const struct policy__guests *gs, int64_t now,
                               struct policy_decision *decisions, size_t skip, uint64_t want)
{
    uint64_t got = 0;
    for (size_t pass = 0; pass < gs->n && got < want; pass++) {
        size_t best = gs->n;
        double best_ratio = 0;
        uint64_t best_share = 0;
        for (size_t i = 0; i < gs->n; i++) {
            const struct policy_guest *g = policy__guest(gs, i);
            uint64_t share;
            if (!squeezable(cfg, host, gs, now, decisions, i, skip, &share))
                continue;
            /* ESX's min-funding revocation: fewest shares per byte gives first. */
            double ratio = (double)g->weight / (double)g->actual_bytes;
            if (best == gs->n || ratio < best_ratio) {
                best = i;
                best_ratio = ratio;
                best_share = share;
            }
        }
        if (best == gs->n)
            break;
        const struct policy_guest *g = policy__guest(gs, best);
        struct policy_decision *d = &decisions[best];
        /* A host step at most, as for funding. */
        uint64_t step = min_u64(max_u64(want - got, cfg->min_change_bytes), host_step_of(cfg, g));
        /* From what it holds after this round's decision so far, as in policy__take. */
        uint64_t counted = policy__held_after(cfg, g, d, now);
        uint64_t to = max_u64(best_share, sub_sat(counted, step));
        to = min_u64(min_u64(to, counted), sub_sat(g->actual_bytes, cfg->min_change_bytes));
        *d = (struct policy_decision){POLICY_INFLATE, POLICY_R_SHARE, g->actual_bytes, to, 0};
        got = add_sat(got, sub_sat(counted, to));
    }
    return got;
}

/* Is a deflate to `to` still worth sending: above what the guest holds, a real move? */
static bool fits(const struct policy_config *cfg, const struct policy_decision *d, uint64_t held,
                 uint64_t to)
{
    return to > held && to > d->from_bytes && to - d->from_bytes >= cfg->min_change_bytes;
}

/* Deflate reasons in the order the budget serves them: the most urgent first. */
static const enum policy_reason deflate_order[] = {
    POLICY_R_CRITICAL, POLICY_R_STALL, POLICY_R_MEDIUM, POLICY_R_BELOW_FLOOR, POLICY_R_BUFFER,
};

void policy__budget_round(const struct policy_config *cfg, const struct policy_host *host,
                          const struct policy__guests *gs, int64_t now,
                          struct policy_decision *decisions)
{
    if (!host->budget_known)
        return;
    uint64_t budget = host->budget_bytes;
    /* What the guests hold with this round's inflates, before its deflates. */
    uint64_t use = 0;
    for (size_t i = 0; i < gs->n; i++) {
        const struct policy_guest *g = policy__guest(gs, i);
        const struct policy_decision *d = &decisions[i];
        use = add_sat(use, d->action == POLICY_DEFLATE ? policy__committed(cfg, g, now)
                                                       : policy__held_after(cfg, g, d, now));
    }

    for (size_t k = 0; k < sizeof(deflate_order) / sizeof(deflate_order[0]); k++) {
        for (size_t i = 0; i < gs->n; i++) {
            struct policy_decision *d = &decisions[i];
            if (d->action != POLICY_DEFLATE || d->reason != deflate_order[k])
                continue;
            const struct policy_guest *g = policy__guest(gs, i);
            uint64_t held = policy__committed(cfg, g, now);
            uint64_t want = sub_sat(d->to_bytes, held);
            if (add_sat(use, want) <= budget) {
                use = add_sat(use, want);
                continue;
            }
            /* How far it could go: funded by guests above their working set, idlest and
             * lowest weight first; then, under contention, by weight, up to its own share.
             * Nobody gives unless the deflate then goes ahead, cut or not; and nobody gives
             * for a buffer refill, which is only a margin. */
            bool urgent = d->reason != POLICY_R_BUFFER;
            uint64_t share = share_of(host, gs, g);
            uint64_t fund_cap = urgent ? policy__take_capacity(cfg, gs, now, decisions, i) : 0;
            uint64_t share_cap = urgent ? share_capacity(cfg, host, gs, now, decisions, i) : 0;
            uint64_t funded = add_sat(held, sub_sat(budget, sub_sat(use, fund_cap)));
            uint64_t squeezed =
                add_sat(held, sub_sat(budget, sub_sat(use, add_sat(fund_cap, share_cap))));
            uint64_t to = min_u64(d->to_bytes, max_u64(funded, min_u64(share, squeezed)));
            if (urgent && fits(cfg, d, held, to)) {
                uint64_t need = sub_sat(add_sat(use, to - held), budget);
                /* A host step from each donor at most: its working set is an estimate
                 * from one snapshot (cache it works from is not in it), so a guest is
                 * never taken far below where it was in one move. */
                use = sub_sat(use, policy__take(cfg, gs, now, decisions, i, need, gs->n, true,
                                                POLICY_R_FUND));
                need = sub_sat(add_sat(use, to - held), budget);
                if (need > 0)
                    use =
                        sub_sat(use, policy__share_squeeze(cfg, host, gs, now, decisions, i, need));
                to = min_u64(to, add_sat(held, sub_sat(budget, use)));
            }
            if (to < d->to_bytes)
                d->wanted_bytes = d->to_bytes;
            if (!fits(cfg, d, held, to)) {
                d->action = POLICY_HOLD;
                d->reason = POLICY_R_BUDGET;
                d->to_bytes = d->from_bytes;
                continue;
            }
            d->to_bytes = to;
            use = add_sat(use, to - held);
        }
    }
}
