/* bellows balloon policy: a guest's sizing as its operator sees it (policy.h,
 * struct policy_sizing). Reads the state the rules keep, changes nothing. */
#include "host-daemon/policy/policy_internal.h"

#include <string.h>

static int64_t left_until(int64_t then, int64_t now)
{
    return then > now ? then - now : 0;
}

/* See policy.h. */
void policy_guest_sizing(const struct policy_config *cfg, const struct policy_guest *g, int64_t now,
                         struct policy_sizing *out)
{
    memset(out, 0, sizeof(*out));
    out->need_known = g->mem_known && g->overhead_known;
    if (out->need_known) {
        out->overhead_bytes = g->overhead_bytes;
        out->used_bytes = policy_guest_used(g);
        out->need_bytes = policy__guest_need(g, cfg->buffer_pct);
    }
    out->working_set_bytes = policy_guest_working_set(cfg, g, now);

    const struct policy_stall *s = &g->stall;
    out->stall_known = s->known;
    if (s->known) {
        out->stall_pct = s->last_pct;
        out->stall_avg_pct = s->avg_pct;
        out->stall_level_pct = s->level_pct;
        out->stall_base_pct = s->base_pct;
        out->stall_margin_pct = policy__stall_margin(cfg, g);
        out->measuring = s->eval_pending;
    }

    out->hurt_live = policy__hurt_live(cfg, g, now);
    if (out->hurt_live) {
        out->hurt_bytes = g->hurt_bytes;
        out->hurt_left_ms = left_until(g->hurt_at + cfg->hurt_memory_ms, now);
    }
    out->flips = g->flips;
    if (g->last_deflate_at != POLICY_NEVER && !policy__given_unused(cfg, g, now))
        out->inflate_wait_ms =
            left_until(g->last_deflate_at + policy__inflate_wait(cfg, g, now), now);
    out->stuck_count = g->stuck_count;
    int64_t until = policy__stuck_until(cfg, g, now);
    if (until != POLICY_NEVER)
        out->stuck_left_ms = left_until(until, now);
}
