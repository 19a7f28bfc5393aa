/* bellows balloon policy: the per-guest rules and the host reclaim round.
 * Pure: no clock, no I/O, no allocation. See policy.h and docs/policy.md. */
#include "host-daemon/policy.h"

#include <math.h>

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

void policy_config_defaults(struct policy_config *cfg)
{
    *cfg = (struct policy_config){
        .level_decay_ms = 10000,
        .medium_dwell_ms = 3000,
        .critical_window_ms = 2000,
        .quiet_ms = 120000,
        .deflate_cooldown_ms = 300000,
        .inflate_interval_ms = 10000,
        .settle_timeout_ms = 30000,
        .snapshot_max_age_ms = 30000,
        .critical_step_bytes = 256 * POLICY_MIB,
        .critical_step_pct = 25.0,
        .medium_step_bytes = 64 * POLICY_MIB,
        .medium_step_pct = 10.0,
        .inflate_step_bytes = 32 * POLICY_MIB,
        .inflate_step_pct = 2.0,
        .host_step_bytes = 128 * POLICY_MIB,
        .host_step_pct = 5.0,
        .buffer_pct = 20.0,
        .buffer_low_pct = 5.0,
        .host_buffer_pct = 10.0,
        .min_change_bytes = 16 * POLICY_MIB,
        .flip_forget_ms = 3600000,
        .flip_max_shift = 4,
        .hurt_memory_ms = 1800000,
        .host_psi_enter = 10.0,
        .host_psi_exit = 2.0,
        .host_avail_enter_pct = 5.0,
        .host_avail_exit_pct = 10.0,
        .host_reclaim_interval_ms = 5000,
    };
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

void policy_host_init(struct policy_host *host)
{
    *host = (struct policy_host){
        .pressure_since = POLICY_NEVER,
        .last_reclaim_at = POLICY_NEVER,
    };
}

void policy_host_input(struct policy_host *host, double psi_some_avg10,
                       uint64_t mem_total_bytes, uint64_t mem_available_bytes)
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

/* ---- small arithmetic helpers, saturating so guest-sent numbers cannot wrap ---- */

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t dist_u64(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* pct percent of x, saturating at UINT64_MAX. */
static uint64_t pct_of(uint64_t x, double pct)
{
    double v = (double)x * pct / 100.0;
    if (!(v > 0))
        return 0;
    if (v >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* A step for this guest: max(bytes, pct of its ceiling). */
static uint64_t step_of(const struct policy_guest *g, uint64_t bytes, double pct)
{
    return max_u64(bytes, pct_of(g->ceiling_bytes, pct));
}

/* ---- guest state ---- */

enum bp_level policy_guest_level(const struct policy_config *cfg,
                                 const struct policy_guest *g, int64_t now)
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

/* True while a committed move may still be on its way. */
static bool settling(const struct policy_config *cfg, const struct policy_guest *g,
                     int64_t now)
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

void policy_note_event(const struct policy_config *cfg, struct policy_guest *g,
                       enum bp_level level, const struct bp_mem *mem, int64_t now)
{
    if (mem) {
        g->mem = *mem;
        g->mem_known = true;
        g->mem_at = now;
        /* The guest sees less than the balloon's size (kernel reservations). Measure the
         * gap only while no move is in flight, when both numbers describe the same state. */
        if (g->actual_known && !settling(cfg, g, now)) {
            uint64_t total = mem->mem_total_kb > UINT64_MAX / 1024 ? UINT64_MAX
                                                                   : mem->mem_total_kb * 1024;
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
    uint64_t total = g->mem.mem_total_kb > UINT64_MAX / 1024 ? UINT64_MAX
                                                              : g->mem.mem_total_kb * 1024;
    uint64_t avail = g->mem.mem_available_kb > UINT64_MAX / 1024
                         ? UINT64_MAX
                         : g->mem.mem_available_kb * 1024;
    return sub_sat(total, avail);
}

/* used * (1 + pct/100) + overhead: the smallest size that leaves the guest that buffer. */
static uint64_t guest_need(const struct policy_guest *g, double pct)
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

/* How long after the last deflate an inflate must wait, backoff included. */
static int64_t inflate_wait(const struct policy_config *cfg, const struct policy_guest *g,
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
        limit = max_u64(limit, guest_need(g, buffer_pct));
    if (g->hurt_known && now - g->hurt_at < cfg->hurt_memory_ms)
        limit = max_u64(limit, add_sat(g->hurt_bytes,
                                       step_of(g, cfg->inflate_step_bytes,
                                               cfg->inflate_step_pct)));
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
static void deflate_by(const struct policy_config *cfg, const struct policy_guest *g,
                       uint64_t base, uint64_t step, enum policy_reason reason,
                       struct policy_decision *d)
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
    bool moving = settling(cfg, g, now);
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
                   step_of(g, cfg->critical_step_bytes, cfg->critical_step_pct),
                   POLICY_R_CRITICAL, d);
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
                       step_of(g, cfg->medium_step_bytes, cfg->medium_step_pct),
                       POLICY_R_MEDIUM, d);
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
        uint64_t low = guest_need(g, cfg->buffer_low_pct);
        if (actual < low && actual < g->ceiling_bytes) {
            uint64_t to = min_u64(guest_need(g, cfg->buffer_pct), g->ceiling_bytes);
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
        now - g->last_deflate_at < inflate_wait(cfg, g, now)) {
        hold(d, live_flips(cfg, g, now) > 0 ? POLICY_R_BACKOFF : POLICY_R_COOLDOWN);
        return;
    }
    if (g->last_inflate_at != POLICY_NEVER &&
        now - g->last_inflate_at < cfg->inflate_interval_ms) {
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

/* Update the host pressure state: enter at either threshold, leave only when both are
 * back past their exit thresholds. */
static void update_host(const struct policy_config *cfg, struct policy_host *host, int64_t now)
{
    if (!host->known) {
        host->pressure = false;
        return;
    }
    double avail_pct = 100.0 * (double)host->mem_available_bytes /
                       (double)host->mem_total_bytes;
    if (!host->pressure) {
        if (host->psi_some_avg10 >= cfg->host_psi_enter ||
            avail_pct <= cfg->host_avail_enter_pct) {
            host->pressure = true;
            host->pressure_since = now;
        }
    } else if (host->psi_some_avg10 < cfg->host_psi_exit &&
               avail_pct > cfg->host_avail_exit_pct) {
        host->pressure = false;
    }
}

/* May the host take from this guest, and down to what? */
static bool reclaimable(const struct policy_config *cfg, const struct policy_guest *g,
                        const struct policy_decision *d, int64_t now, uint64_t *ret_limit)
{
    if (d->action == POLICY_DEFLATE)
        return false;
    if (d->action == POLICY_HOLD &&
        (d->reason == POLICY_R_PAUSED || d->reason == POLICY_R_UNKNOWN_ACTUAL ||
         d->reason == POLICY_R_SETTLING))
        return false;
    if (d->action == POLICY_INFLATE && d->reason != POLICY_R_QUIET)
        return false;
    /* Never from a guest under pressure, nor one just given memory. */
    if (policy_guest_level(cfg, g, now) > BP_LEVEL_LOW)
        return false;
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < inflate_wait(cfg, g, now))
        return false;
    /* Any snapshot, however old, is a better guide than none. */
    uint64_t limit = g->floor_bytes;
    if (g->mem_known && g->overhead_known)
        limit = max_u64(limit, guest_need(g, cfg->host_buffer_pct));
    if (g->hurt_known && now - g->hurt_at < cfg->hurt_memory_ms)
        limit = max_u64(limit, g->hurt_bytes);
    if (g->actual_bytes <= add_sat(limit, cfg->min_change_bytes))
        return false;
    *ret_limit = limit;
    return true;
}

/* Does guest a go before guest b in the host reclaim order? Lower level, then lower
 * weight, then quieter (older last event), then index. */
static bool reclaim_before(const struct policy_config *cfg, const struct policy_guest *a,
                           size_t ia, const struct policy_guest *b, size_t ib, int64_t now)
{
    enum bp_level la = policy_guest_level(cfg, a, now), lb = policy_guest_level(cfg, b, now);
    if (la != lb)
        return la < lb;
    if (a->weight != b->weight)
        return a->weight < b->weight;
    if (a->last_event_at != b->last_event_at)
        return a->last_event_at < b->last_event_at;
    return ia < ib;
}

/* Under host pressure: take host steps from guests in reclaim order until the host's
 * shortfall (or one step, when only PSI says pressure) is covered. No allocation: each
 * pass picks the best guest not yet taken. */
static void host_round(const struct policy_config *cfg, const struct policy_host *host,
                       const struct policy_guest *guests, size_t n, int64_t now,
                       struct policy_decision *decisions)
{
    uint64_t want = sub_sat(pct_of(host->mem_total_bytes, cfg->host_avail_exit_pct),
                            host->mem_available_bytes);
    bool one_step = want == 0;
    uint64_t got = 0;

    for (size_t pass = 0; pass < n && (one_step ? got == 0 : got < want); pass++) {
        size_t best = n;
        uint64_t best_limit = 0;
        for (size_t i = 0; i < n; i++) {
            uint64_t limit;
            if (decisions[i].reason == POLICY_R_HOST_PRESSURE)
                continue;
            if (!reclaimable(cfg, &guests[i], &decisions[i], now, &limit))
                continue;
            if (best == n || reclaim_before(cfg, &guests[i], i, &guests[best], best, now)) {
                best = i;
                best_limit = limit;
            }
        }
        if (best == n)
            break;
        const struct policy_guest *g = &guests[best];
        struct policy_decision *d = &decisions[best];
        uint64_t step = step_of(g, cfg->host_step_bytes, cfg->host_step_pct);
        if (!one_step)
            step = min_u64(step, max_u64(want - got, cfg->min_change_bytes));
        uint64_t to = max_u64(best_limit, sub_sat(g->actual_bytes, step));
        if (d->action == POLICY_INFLATE && d->to_bytes < to)
            to = d->to_bytes;
        d->action = POLICY_INFLATE;
        d->reason = POLICY_R_HOST_PRESSURE;
        d->to_bytes = to;
        got += g->actual_bytes - to;
    }
}

void policy_decide(const struct policy_config *cfg, struct policy_host *host,
                   const struct policy_guest *guests, size_t n, int64_t now,
                   struct policy_decision *decisions)
{
    update_host(cfg, host, now);
    for (size_t i = 0; i < n; i++)
        decide_guest(cfg, host, &guests[i], now, &decisions[i]);
    if (host->pressure && (host->last_reclaim_at == POLICY_NEVER ||
                           now - host->last_reclaim_at >= cfg->host_reclaim_interval_ms))
        host_round(cfg, host, guests, n, now, decisions);
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

int64_t policy_next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy_guest *guests, size_t n, int64_t now)
{
    int64_t best = POLICY_NO_DEADLINE;
    int64_t decay = cfg->level_decay_ms > 0 ? cfg->level_decay_ms : 1;

    if (host->pressure && host->last_reclaim_at != POLICY_NEVER)
        consider(&best, host->last_reclaim_at + cfg->host_reclaim_interval_ms, now);

    for (size_t i = 0; i < n; i++) {
        const struct policy_guest *g = &guests[i];
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
            consider(&best, g->last_deflate_at + inflate_wait(cfg, g, now), now);
        if (g->last_inflate_at != POLICY_NEVER)
            consider(&best, g->last_inflate_at + cfg->inflate_interval_ms, now);
        if (g->target_set)
            consider(&best, g->target_at + cfg->settle_timeout_ms, now);
        if (g->flips > 0)
            consider(&best, g->last_flip_at + cfg->flip_forget_ms, now);
        if (g->hurt_known)
            consider(&best, g->hurt_at + cfg->hurt_memory_ms, now);
    }
    return best;
}
