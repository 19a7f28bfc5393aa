/* bellows balloon policy: per-guest state, the per-guest rules, commit and deadlines.
 * The host side is in policy_host.c, tunables in policy_config.c.
 * Pure: no clock, no I/O, no allocation. See policy.h and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

/* One page: balloon sizes are page-granular, so a limit missed by less is not crossed. */
#define PAGE_BYTES UINT64_C(4096)

static const char *const action_names[] = {
    [POLICY_HOLD] = "hold",
    [POLICY_DEFLATE] = "deflate",
    [POLICY_INFLATE] = "inflate",
};

static const char *const reason_names[POLICY_R_COUNT] = {
    [POLICY_R_PAUSED] = "paused",
    [POLICY_R_UNKNOWN_ACTUAL] = "unknown-actual",
    [POLICY_R_SETTLING] = "settling",
    [POLICY_R_AT_CEILING] = "at-ceiling",
    [POLICY_R_AT_FLOOR] = "at-floor",
    [POLICY_R_CRITICAL_ECHO] = "critical-echo",
    [POLICY_R_DWELL] = "dwell",
    [POLICY_R_NOT_QUIET] = "not-quiet",
    [POLICY_R_COOLDOWN] = "cooldown",
    [POLICY_R_BACKOFF] = "backoff",
    [POLICY_R_INTERVAL] = "interval",
    [POLICY_R_NO_SNAPSHOT] = "no-snapshot",
    [POLICY_R_CRITICAL] = "critical",
    [POLICY_R_MEDIUM] = "medium",
    [POLICY_R_BUFFER] = "buffer",
    [POLICY_R_BELOW_FLOOR] = "below-floor",
    [POLICY_R_ABOVE_CEILING] = "above-ceiling",
    [POLICY_R_QUIET] = "quiet",
    [POLICY_R_HOST_PRESSURE] = "host-pressure",
};

const char *policy_action_name(enum policy_action action)
{
    if ((unsigned)action > POLICY_INFLATE)
        return "?";
    return action_names[action];
}

const char *policy_reason_name(enum policy_reason reason)
{
    if ((unsigned)reason >= POLICY_R_COUNT)
        return "?";
    return reason_names[reason];
}

void policy_guest_init(struct policy_guest *g, uint64_t floor_bytes, uint64_t ceiling_bytes,
                       uint32_t weight)
{
    *g = (struct policy_guest){
        .floor_bytes = floor_bytes,
        .ceiling_bytes = ceiling_bytes,
        .weight = weight,
        .actual_at = POLICY_NEVER,
        .known_since = POLICY_NEVER,
        .target_at = POLICY_NEVER,
        .last_at = {POLICY_NEVER, POLICY_NEVER, POLICY_NEVER, POLICY_NEVER},
        .medium_since = POLICY_NEVER,
        .last_event_at = POLICY_NEVER,
        .mem_at = POLICY_NEVER,
        .last_deflate_at = POLICY_NEVER,
        .last_inflate_at = POLICY_NEVER,
        .last_dir = POLICY_HOLD,
        .last_flip_at = POLICY_NEVER,
        .hurt_at = POLICY_NEVER,
    };
}

/* ---- guest state ---- */

enum bp_level policy_guest_level(const struct policy_config *cfg, const struct policy_guest *g,
                                 int64_t now)
{
    int best = BP_LEVEL_NONE;
    int64_t decay = cfg->level_decay_ms > 0 ? cfg->level_decay_ms : 1;

    for (int l = BP_LEVEL_LOW; l <= BP_LEVEL_CRITICAL; l++) {
        if (g->last_at[l] == POLICY_NEVER || now < g->last_at[l])
            continue;
        /* Level l holds for one decay period, then drops one step per period. */
        int64_t periods = (now - g->last_at[l]) / decay;
        int64_t eff = l - periods;
        if (eff > best)
            best = (int)eff;
    }
    return (enum bp_level)best;
}

bool policy__settling(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    if (!g->target_set || !g->actual_known)
        return false;
    if (dist_u64(g->actual_bytes, g->target_bytes) <= cfg->min_change_bytes)
        return false;
    return now - g->target_at < cfg->settle_timeout_ms;
}

void policy_note_actual(const struct policy_config *cfg, struct policy_guest *g,
                        uint64_t actual_bytes, int64_t now)
{
    (void)cfg;
    if (!g->actual_known)
        g->known_since = now;
    g->actual_known = true;
    g->actual_bytes = actual_bytes;
    g->actual_at = now;
}

void policy_forget_actual(struct policy_guest *g)
{
    g->actual_known = false;
}

void policy_forget_target(struct policy_guest *g)
{
    g->target_set = false;
}

void policy_note_event(const struct policy_config *cfg, struct policy_guest *g, enum bp_level level,
                       const struct bp_mem *mem, int64_t now)
{
    if (mem) {
        g->mem = *mem;
        g->mem_known = true;
        g->mem_at = now;
        /* The guest sees less than the balloon's size (kernel reservations). Measure the
         * gap only while no move is in flight, when both numbers describe the same state. */
        if (g->actual_known && !policy__settling(cfg, g, now)) {
            uint64_t total =
                mem->mem_total_kb > UINT64_MAX / 1024 ? UINT64_MAX : mem->mem_total_kb * 1024;
            g->overhead_bytes = sub_sat(g->actual_bytes, total);
            g->overhead_known = true;
        }
    }
    if (level < BP_LEVEL_LOW || level > BP_LEVEL_CRITICAL)
        return;
    if (level >= BP_LEVEL_MEDIUM && policy_guest_level(cfg, g, now) < BP_LEVEL_MEDIUM)
        g->medium_since = now;
    for (int l = BP_LEVEL_LOW; l <= (int)level; l++)
        g->last_at[l] = now;
    g->last_event_at = now;
}

/* Guest memory in use, in balloon (QMP) terms: what it cannot free plus the part of its
 * memory it never sees. Only meaningful with a snapshot and a measured overhead. */
static uint64_t guest_used(const struct policy_guest *g)
{
    uint64_t total =
        g->mem.mem_total_kb > UINT64_MAX / 1024 ? UINT64_MAX : g->mem.mem_total_kb * 1024;
    uint64_t avail =
        g->mem.mem_available_kb > UINT64_MAX / 1024 ? UINT64_MAX : g->mem.mem_available_kb * 1024;
    return sub_sat(total, avail);
}

uint64_t policy__guest_need(const struct policy_guest *g, double pct)
{
    uint64_t used = guest_used(g);
    return add_sat(add_sat(used, pct_of(used, pct)), g->overhead_bytes);
}

/* A snapshot fit to size an inflate by: fresh, taken after the last move, overhead known. */
static bool snapshot_usable(const struct policy_config *cfg, const struct policy_guest *g,
                            int64_t now)
{
    if (!g->mem_known || !g->overhead_known)
        return false;
    if (now - g->mem_at > cfg->snapshot_max_age_ms)
        return false;
    if (g->target_set && g->mem_at <= g->target_at)
        return false;
    return true;
}

/* Number of reversals that still count toward the backoff at now. */
static unsigned live_flips(const struct policy_config *cfg, const struct policy_guest *g,
                           int64_t now)
{
    if (g->flips == 0 || now - g->last_flip_at >= cfg->flip_forget_ms)
        return 0;
    return g->flips;
}

int64_t policy__inflate_wait(const struct policy_config *cfg, const struct policy_guest *g,
                             int64_t now)
{
    unsigned shift = live_flips(cfg, g, now);
    if (shift > cfg->flip_max_shift)
        shift = cfg->flip_max_shift;
    if (shift > 20)
        shift = 20;
    int64_t wait = cfg->deflate_cooldown_ms;
    for (unsigned i = 0; i < shift && wait < INT64_MAX / 4; i++)
        wait *= 2;
    return wait;
}

/* Lowest size a quiet inflate may reach: floor, the buffer, and the size it last hurt at
 * plus one inflate step while that memory lasts. */
static uint64_t inflate_limit(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now, double buffer_pct)
{
    uint64_t limit = g->floor_bytes;
    if (g->mem_known && g->overhead_known)
        limit = max_u64(limit, policy__guest_need(g, buffer_pct));
    if (g->hurt_known && now - g->hurt_at < cfg->hurt_memory_ms)
        limit = max_u64(limit, add_sat(g->hurt_bytes,
                                       step_of(g, cfg->inflate_step_bytes, cfg->inflate_step_pct)));
    return limit;
}

static void hold(struct policy_decision *d, enum policy_reason reason)
{
    d->action = POLICY_HOLD;
    d->reason = reason;
    d->to_bytes = d->from_bytes;
}

/* Deflate by step from base (the actual, or a higher target still in flight), at least to
 * the floor, capped at the ceiling. */
static void deflate_by(const struct policy_config *cfg, const struct policy_guest *g, uint64_t base,
                       uint64_t step, enum policy_reason reason, struct policy_decision *d)
{
    uint64_t to = min_u64(max_u64(add_sat(base, step), g->floor_bytes), g->ceiling_bytes);
    if (base > d->from_bytes && to <= base) {
        /* Everything this step would give is already on its way. */
        hold(d, POLICY_R_SETTLING);
        return;
    }
    if (to <= d->from_bytes || to - d->from_bytes < min_u64(cfg->min_change_bytes, step)) {
        hold(d, POLICY_R_AT_CEILING);
        return;
    }
    d->action = POLICY_DEFLATE;
    d->reason = reason;
    d->to_bytes = to;
}

/* The rules for one guest, without the host reclaim round. */
static void decide_guest(const struct policy_config *cfg, const struct policy_host *host,
                         const struct policy_guest *g, int64_t now, struct policy_decision *d)
{
    d->from_bytes = g->actual_known ? g->actual_bytes : 0;

    if (g->paused) {
        hold(d, POLICY_R_PAUSED);
        return;
    }
    if (!g->actual_known) {
        hold(d, POLICY_R_UNKNOWN_ACTUAL);
        return;
    }

    uint64_t actual = g->actual_bytes;
    bool moving = policy__settling(cfg, g, now);
    /* A deflate adds to a target still in flight rather than repeating it. */
    uint64_t deflate_base = actual;
    if (moving && g->target_bytes > actual)
        deflate_base = g->target_bytes;
    enum bp_level level = policy_guest_level(cfg, g, now);

    /* The operator's limits come first; a page of slack for the balloon's granularity. */
    if (actual >= add_sat(g->ceiling_bytes, PAGE_BYTES)) {
        if (moving && g->target_bytes <= g->ceiling_bytes) {
            hold(d, POLICY_R_SETTLING);
            return;
        }
        d->action = POLICY_INFLATE;
        d->reason = POLICY_R_ABOVE_CEILING;
        d->to_bytes = g->ceiling_bytes;
        return;
    }

    /* Critical: at once, bypassing every cooldown; events within the window after a
     * deflate are its echo, so a burst gives one step per window. */
    if (level == BP_LEVEL_CRITICAL &&
        (g->last_deflate_at == POLICY_NEVER ||
         g->last_at[BP_LEVEL_CRITICAL] >= g->last_deflate_at + cfg->critical_window_ms)) {
        deflate_by(cfg, g, deflate_base,
                   step_of(g, cfg->critical_step_bytes, cfg->critical_step_pct), POLICY_R_CRITICAL,
                   d);
        return;
    }

    if (add_sat(actual, PAGE_BYTES) <= g->floor_bytes) {
        if (moving && g->target_bytes >= g->floor_bytes) {
            hold(d, POLICY_R_SETTLING);
            return;
        }
        d->action = POLICY_DEFLATE;
        d->reason = POLICY_R_BELOW_FLOOR;
        d->to_bytes = g->floor_bytes;
        return;
    }
    /* Sustained medium: a step once medium events span the dwell time. */
    if (level >= BP_LEVEL_MEDIUM) {
        if (g->last_at[BP_LEVEL_MEDIUM] - g->medium_since >= cfg->medium_dwell_ms &&
            g->last_at[BP_LEVEL_MEDIUM] > g->last_deflate_at) {
            if (moving) {
                hold(d, POLICY_R_SETTLING);
                return;
            }
            deflate_by(cfg, g, deflate_base,
                       step_of(g, cfg->medium_step_bytes, cfg->medium_step_pct), POLICY_R_MEDIUM,
                       d);
            return;
        }
        hold(d, level == BP_LEVEL_CRITICAL ? POLICY_R_CRITICAL_ECHO : POLICY_R_DWELL);
        return;
    }

    if (moving) {
        hold(d, POLICY_R_SETTLING);
        return;
    }

    /* The guest's free memory fell under the low buffer: give before it hurts. Not while
     * the host itself is short: then only pressure earns memory. */
    if (snapshot_usable(cfg, g, now) && !host->pressure) {
        uint64_t low = policy__guest_need(g, cfg->buffer_low_pct);
        if (actual < low && actual < g->ceiling_bytes) {
            uint64_t to = min_u64(policy__guest_need(g, cfg->buffer_pct), g->ceiling_bytes);
            if (to > actual && to - actual >= cfg->min_change_bytes) {
                d->action = POLICY_DEFLATE;
                d->reason = POLICY_R_BUFFER;
                d->to_bytes = to;
                return;
            }
        }
    }

    /* Quiet inflate: slow to take. A guest just (re)connected counts as not yet quiet, so
     * after a daemon or QEMU restart guests keep what they have for quiet_ms. */
    if (level > BP_LEVEL_NONE || now - g->known_since < cfg->quiet_ms ||
        (g->last_event_at != POLICY_NEVER && now - g->last_event_at < cfg->quiet_ms)) {
        hold(d, POLICY_R_NOT_QUIET);
        return;
    }
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < policy__inflate_wait(cfg, g, now)) {
        hold(d, live_flips(cfg, g, now) > 0 ? POLICY_R_BACKOFF : POLICY_R_COOLDOWN);
        return;
    }
    if (g->last_inflate_at != POLICY_NEVER && now - g->last_inflate_at < cfg->inflate_interval_ms) {
        hold(d, POLICY_R_INTERVAL);
        return;
    }
    if (!snapshot_usable(cfg, g, now)) {
        hold(d, POLICY_R_NO_SNAPSHOT);
        return;
    }
    uint64_t limit = inflate_limit(cfg, g, now, cfg->buffer_pct);
    if (actual <= add_sat(limit, cfg->min_change_bytes)) {
        hold(d, POLICY_R_AT_FLOOR);
        return;
    }
    uint64_t step = step_of(g, cfg->inflate_step_bytes, cfg->inflate_step_pct);
    uint64_t to = max_u64(limit, sub_sat(actual, step));
    d->action = POLICY_INFLATE;
    d->reason = POLICY_R_QUIET;
    d->to_bytes = to;
}

static void decide_all(const struct policy_config *cfg, struct policy_host *host,
                       const struct policy__guests *gs, int64_t now,
                       struct policy_decision *decisions)
{
    policy__host_update(cfg, host, now);
    for (size_t i = 0; i < gs->n; i++)
        decide_guest(cfg, host, policy__guest(gs, i), now, &decisions[i]);
    if (host->pressure && (host->last_reclaim_at == POLICY_NEVER ||
                           now - host->last_reclaim_at >= cfg->host_reclaim_interval_ms))
        policy__host_round(cfg, host, gs, now, decisions);
}

void policy_decide(const struct policy_config *cfg, struct policy_host *host,
                   const struct policy_guest *guests, size_t n, int64_t now,
                   struct policy_decision *decisions)
{
    const struct policy__guests gs = {.array = guests, .n = n};
    decide_all(cfg, host, &gs, now, decisions);
}

void policy_decide_ptrs(const struct policy_config *cfg, struct policy_host *host,
                        const struct policy_guest *const *guests, size_t n, int64_t now,
                        struct policy_decision *decisions)
{
    const struct policy__guests gs = {.ptrs = guests, .n = n};
    decide_all(cfg, host, &gs, now, decisions);
}

static void count_flip(const struct policy_config *cfg, struct policy_guest *g,
                       enum policy_action dir, int64_t now)
{
    if (g->last_dir != POLICY_HOLD && g->last_dir != dir) {
        if (g->flips > 0 && now - g->last_flip_at >= cfg->flip_forget_ms)
            g->flips = 0;
        g->flips++;
        g->last_flip_at = now;
        g->reversals++;
    }
    g->last_dir = dir;
}

void policy_commit(const struct policy_config *cfg, struct policy_guest *g,
                   const struct policy_decision *d, int64_t now)
{
    if (d->action == POLICY_HOLD)
        return;
    /* Moves back inside the operator's limits are not the guest's doing: no reversal. */
    bool limit_move = d->reason == POLICY_R_BELOW_FLOOR || d->reason == POLICY_R_ABOVE_CEILING;

    if (d->action == POLICY_DEFLATE) {
        g->last_deflate_at = now;
        g->medium_since = now;
        /* Remember the size at which the kernel said it hurt. */
        if (d->reason == POLICY_R_CRITICAL || d->reason == POLICY_R_MEDIUM) {
            g->hurt_known = true;
            g->hurt_bytes = d->from_bytes;
            g->hurt_at = now;
        }
    } else {
        g->last_inflate_at = now;
    }
    if (!limit_move)
        count_flip(cfg, g, d->action, now);
    g->target_set = true;
    g->target_bytes = d->to_bytes;
    g->target_at = now;
}

/* Keep the smallest candidate after now. */
static void consider(int64_t *best, int64_t t, int64_t now)
{
    if (t > now && t < *best)
        *best = t;
}

static int64_t next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy__guests *gs, int64_t now)
{
    int64_t best = POLICY_NO_DEADLINE;
    int64_t decay = cfg->level_decay_ms > 0 ? cfg->level_decay_ms : 1;

    if (host->pressure && host->last_reclaim_at != POLICY_NEVER)
        consider(&best, host->last_reclaim_at + cfg->host_reclaim_interval_ms, now);

    for (size_t i = 0; i < gs->n; i++) {
        const struct policy_guest *g = policy__guest(gs, i);
        /* Even a paused guest's move in flight counts in host rounds until it settles. */
        if (g->target_set)
            consider(&best, g->target_at + cfg->settle_timeout_ms, now);
        if (g->paused || !g->actual_known)
            continue;
        /* Level decay steps. */
        for (int l = BP_LEVEL_LOW; l <= BP_LEVEL_CRITICAL; l++) {
            if (g->last_at[l] == POLICY_NEVER || now < g->last_at[l])
                continue;
            int64_t k = (now - g->last_at[l]) / decay + 1;
            if (k <= l)
                consider(&best, g->last_at[l] + k * decay, now);
        }
        if (g->last_event_at != POLICY_NEVER)
            consider(&best, g->last_event_at + cfg->quiet_ms, now);
        consider(&best, g->known_since + cfg->quiet_ms, now);
        if (g->last_deflate_at != POLICY_NEVER)
            consider(&best, g->last_deflate_at + policy__inflate_wait(cfg, g, now), now);
        if (g->last_inflate_at != POLICY_NEVER)
            consider(&best, g->last_inflate_at + cfg->inflate_interval_ms, now);
        if (g->flips > 0)
            consider(&best, g->last_flip_at + cfg->flip_forget_ms, now);
        if (g->hurt_known)
            consider(&best, g->hurt_at + cfg->hurt_memory_ms, now);
    }
    return best;
}

int64_t policy_next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy_guest *guests, size_t n, int64_t now)
{
    const struct policy__guests gs = {.array = guests, .n = n};
    return next_deadline(cfg, host, &gs, now);
}

int64_t policy_next_deadline_ptrs(const struct policy_config *cfg, const struct policy_host *host,
                                  const struct policy_guest *const *guests, size_t n, int64_t now)
{
    const struct policy__guests gs = {.ptrs = guests, .n = n};
    return next_deadline(cfg, host, &gs, now);
}
