/* bellows balloon policy: per-guest state, the per-guest rules, commit and deadlines.
 * The stall measure is in policy_stall.c, the host side in policy_host.c, the budget in
 * policy_budget.c, tunables in policy_config.c, saved state in policy_state.c.
 * Pure: no clock, no I/O, no allocation. See policy.h and docs/policy.md. */
#include "host-daemon/policy/policy_internal.h"

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
    [POLICY_R_MEASURING] = "measuring",
    [POLICY_R_NEAR_TARGET] = "near-target",
    [POLICY_R_STUCK] = "stuck",
    [POLICY_R_BUDGET] = "budget",
    [POLICY_R_CRITICAL] = "critical",
    [POLICY_R_MEDIUM] = "medium",
    [POLICY_R_BUFFER] = "buffer",
    [POLICY_R_BELOW_FLOOR] = "below-floor",
    [POLICY_R_STALL] = "stall",
    [POLICY_R_ABOVE_CEILING] = "above-ceiling",
    [POLICY_R_QUIET] = "quiet",
    [POLICY_R_INSENSITIVE] = "insensitive",
    [POLICY_R_HOST_PRESSURE] = "host-pressure",
    [POLICY_R_FUND] = "fund",
    [POLICY_R_SHARE] = "share",
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

bool policy_reason_is_host_round(enum policy_reason reason)
{
    return reason == POLICY_R_HOST_PRESSURE || reason == POLICY_R_SHARE;
}

void policy_guest_init(struct policy_guest *g, uint64_t floor_bytes, uint64_t ceiling_bytes,
                       uint32_t weight)
{
    *g = (struct policy_guest){
        .floor_bytes = floor_bytes,
        .ceiling_bytes = ceiling_bytes,
        .weight = weight,
        .actual_at = POLICY_NEVER,
        .actual_changed_at = POLICY_NEVER,
        .known_since = POLICY_NEVER,
        .target_at = POLICY_NEVER,
        .target_done_at = POLICY_NEVER,
        .last_at = {POLICY_NEVER, POLICY_NEVER, POLICY_NEVER, POLICY_NEVER},
        .medium_since = POLICY_NEVER,
        .last_event_at = POLICY_NEVER,
        .mem_at = POLICY_NEVER,
        .stall = {.mark_at = POLICY_NEVER, .last_at = POLICY_NEVER},
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

/* A move that is not over and not within the dead band of its target. */
static bool move_open(const struct policy_config *cfg, const struct policy_guest *g)
{
    return g->target_set && !g->target_done && g->actual_known &&
           dist_u64(g->actual_bytes, g->target_bytes) > cfg->min_change_bytes;
}

/* Progress of the last move toward its target since it was sent. */
static uint64_t move_progress(const struct policy_guest *g)
{
    uint64_t start = dist_u64(g->move_from_bytes, g->target_bytes);
    uint64_t left = dist_u64(g->actual_bytes, g->target_bytes);
    return sub_sat(start, left);
}

/* Time after the move was sent from which its progress so far is slower than
 * stuck_rate_bytes per second: the first ms with rate * ms > progress * 1000. */
static int64_t progress_due(const struct policy_config *cfg, const struct policy_guest *g)
{
    if (cfg->stuck_rate_bytes == 0)
        return INT64_MAX / 4;
    uint64_t progress = move_progress(g);
    if (progress / cfg->stuck_rate_bytes > (uint64_t)(INT64_MAX / 4) / 1000)
        return INT64_MAX / 4;
    uint64_t ms = progress / cfg->stuck_rate_bytes * 1000 +
                  (progress % cfg->stuck_rate_bytes) * 1000 / cfg->stuck_rate_bytes + 1;
    return ms > (uint64_t)cfg->stuck_check_ms ? (int64_t)ms : cfg->stuck_check_ms;
}

bool policy__move_failed(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    if (!move_open(cfg, g))
        return false;
    int64_t elapsed = now - g->target_at;
    if (elapsed >= cfg->settle_timeout_ms)
        return true;
    if (elapsed < cfg->stuck_check_ms || elapsed <= 0)
        return false;
    /* Progress toward the target since the move was sent, against the slowest rate a
     * working balloon moves at (a guest refusing pages, or faking slow progress). */
    return elapsed >= progress_due(cfg, g);
}

bool policy__settling(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    return move_open(cfg, g) && !policy__move_failed(cfg, g, now);
}

int64_t policy__stuck_until(const struct policy_config *cfg, const struct policy_guest *g,
                            int64_t now)
{
    if (!policy__move_failed(cfg, g, now))
        return POLICY_NEVER;
    unsigned shift = g->stuck_count < cfg->stuck_max_shift ? g->stuck_count : cfg->stuck_max_shift;
    if (shift > 20)
        shift = 20;
    int64_t wait = cfg->stuck_backoff_ms;
    for (unsigned i = 0; i < shift && wait < INT64_MAX / 8; i++)
        wait *= 2;
    return g->target_at + wait;
}

uint64_t policy__committed(const struct policy_config *cfg, const struct policy_guest *g,
                           int64_t now)
{
    /* A guest whose size is not known holds nothing here: whatever it uses is in the
     * host's numbers, which the daemon counts as not the guests' (host/budget.h). */
    if (!g->actual_known)
        return 0;
    uint64_t actual = g->actual_bytes;
    if (!g->target_set || g->target_done)
        return actual;
    /* Memory given may still be taken up by the guest: count it. Memory asked back counts
     * as coming only from a balloon that follows. */
    if (g->target_bytes > actual)
        return g->target_bytes;
    if (policy__settling(cfg, g, now))
        return g->target_bytes;
    return actual;
}

void policy_note_actual(const struct policy_config *cfg, struct policy_guest *g,
                        uint64_t actual_bytes, int64_t now)
{
    bool had = g->actual_known;
    uint64_t before = g->actual_bytes;
    if (!had) {
        g->known_since = now;
        /* A new link may be a new QEMU, its balloon device configured anew: measure again. */
        g->overhead_known = false;
        g->balloon_counted_used = false;
    }
    if (!had || actual_bytes != before)
        g->actual_changed_at = now;
    /* A balloon that grew past anything we asked for was deflated by someone else: the
     * guest's own driver at OOM (QEMU's deflate-on-oom, libvirt's autodeflate), or an
     * operator giving it memory. Either way it needed memory at the size it left: that is
     * remembered as a hurt size, so that walks and host rounds do not take it straight
     * back (without an agent, a guest's working set is otherwise only its floor). Not
     * while just known, as for a deflate of ours. */
    uint64_t asked = g->target_set ? max_u64(before, g->target_bytes) : before;
    if (had && actual_bytes > add_sat(asked, cfg->min_change_bytes) &&
        !policy__just_known(cfg, g, now)) {
        g->hurt_known = true;
        g->hurt_bytes = before;
        g->hurt_at = now;
    }
    g->actual_known = true;
    g->actual_bytes = actual_bytes;
    g->actual_at = now;
    if (!g->target_set || g->target_done)
        return;
    /* A move is over once the actual reaches its target, or moves away from it: a target
     * reached and then moved by someone else is not on its way any more. */
    uint64_t left = dist_u64(actual_bytes, g->target_bytes);
    bool reached = left <= cfg->min_change_bytes;
    bool away = had && left > add_sat(dist_u64(before, g->target_bytes), cfg->min_change_bytes);
    if (reached || away) {
        g->target_done = true;
        g->target_done_at = now;
    }
    if (reached)
        g->stuck_count = 0;
}

void policy_forget_actual(struct policy_guest *g)
{
    g->actual_known = false;
}

void policy_note_boot(struct policy_guest *g, int64_t now)
{
    if (g->actual_known)
        g->known_since = now;
}

uint64_t policy_held_most(const struct policy_guest *g)
{
    if (!g->actual_known)
        return 0;
    if (g->target_set && !g->target_done && g->target_bytes > g->actual_bytes)
        return g->target_bytes;
    return g->actual_bytes;
}

void policy_forget_target(struct policy_guest *g)
{
    g->target_set = false;
}

void policy_note_delivered(struct policy_guest *g, int64_t now)
{
    /* Until its command is delivered, a balloon cannot follow: judged from now on. */
    if (g->target_set && !g->target_done && now > g->target_at)
        g->target_at = now;
}

/* The snapshot and its counters: the last one is kept, the stall measure fed. */
static void note_mem(const struct policy_config *cfg, struct policy_guest *g,
                     const struct bp_mem *mem, int64_t now)
{
    /* The guest sees less than the balloon's size (kernel reservations). Measure the gap
     * only where both numbers describe the same state: the balloon still, for the actual
     * comes at most once a second (BALLOON_CHANGE is rate-limited) while MemTotal follows
     * the balloon at once, whoever moves it. Still: no move of ours on its way, the actual
     * unchanged since the last snapshot, and that snapshot saw the same MemTotal. Until a
     * first measure, any beats none. */
    bool still = g->mem_known && g->mem.mem_total_kb == mem->mem_total_kb &&
                 g->actual_changed_at < g->mem_at && !policy__settling(cfg, g, now);
    if (g->actual_known && (!g->overhead_known || still)) {
        uint64_t total = kib_bytes(mem->mem_total_kb);
        /* A guest that sees more than the balloon's size counts the balloon as used
         * (virtio-balloon's deflate-on-oom, libvirt's autodeflate): its MemTotal stays
         * whole. What it uses is then the balloon's size less what it has available,
         * its reservations included. */
        if (total > g->actual_bytes)
            g->balloon_counted_used = true;
        if (g->balloon_counted_used)
            g->counted_used_bytes = sub_sat(g->actual_bytes, kib_bytes(mem->mem_available_kb));
        g->overhead_bytes = g->balloon_counted_used ? 0 : sub_sat(g->actual_bytes, total);
        g->overhead_known = true;
    }
    g->mem = *mem;
    g->mem_known = true;
    g->mem_at = now;
    policy__stall_note(cfg, g, mem, now);
}

/* One event of this level (already range-checked) at now. */
static void note_level(const struct policy_config *cfg, struct policy_guest *g, enum bp_level level,
                       int64_t now)
{
    if (level >= BP_LEVEL_MEDIUM && policy_guest_level(cfg, g, now) < BP_LEVEL_MEDIUM)
        g->medium_since = now;
    for (int l = BP_LEVEL_LOW; l <= (int)level; l++)
        g->last_at[l] = now;
    g->last_event_at = now;
}

void policy_note_event(const struct policy_config *cfg, struct policy_guest *g, enum bp_level level,
                       const struct bp_mem *mem, int64_t now)
{
    if (mem)
        note_mem(cfg, g, mem, now);
    if (level < BP_LEVEL_LOW || level > BP_LEVEL_CRITICAL)
        return;
    note_level(cfg, g, level, now);
}

void policy_note_report(const struct policy_config *cfg, struct policy_guest *g,
                        enum bp_level level, const struct bp_mem *mem, int64_t now)
{
    if (mem)
        note_mem(cfg, g, mem, now);
    if (level < BP_LEVEL_LOW || level > BP_LEVEL_CRITICAL)
        return;
    /* The agent repeats its level for a while after the last event: at most medium. */
    note_level(cfg, g, level > BP_LEVEL_MEDIUM ? BP_LEVEL_MEDIUM : level, now);
}

/* See policy.h. A guest that counts its balloon as used: from the last snapshot where
 * the balloon was still, for it pairs the actual with the guest's MemAvailable. */
uint64_t policy_guest_used(const struct policy_guest *g)
{
    if (g->balloon_counted_used)
        return g->counted_used_bytes;
    return sub_sat(kib_bytes(g->mem.mem_total_kb), kib_bytes(g->mem.mem_available_kb));
}

uint64_t policy__guest_need(const struct policy_guest *g, double pct)
{
    uint64_t used = policy_guest_used(g);
    return add_sat(add_sat(used, pct_of(used, pct)), g->overhead_bytes);
}

/* The same, with what the guest has in swap counted as used: for a guest whose stall does
 * not respond to size, whatever it swapped out it may need back. */
static uint64_t guest_need_with_swap(const struct policy_guest *g, double pct)
{
    uint64_t used = add_sat(policy_guest_used(g), sub_sat(kib_bytes(g->mem.swap_total_kb),
                                                          kib_bytes(g->mem.swap_free_kb)));
    return add_sat(add_sat(used, pct_of(used, pct)), g->overhead_bytes);
}

/* A snapshot fit to size an inflate by: fresh, taken after the last move. */
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

bool policy__hurt_live(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    return g->hurt_known && now - g->hurt_at < cfg->hurt_memory_ms;
}

uint64_t policy_guest_working_set(const struct policy_config *cfg, const struct policy_guest *g,
                                  int64_t now)
{
    uint64_t ws = g->floor_bytes;
    if (g->mem_known && g->overhead_known)
        ws = max_u64(ws, policy__guest_need(g, cfg->host_buffer_pct));
    if (policy__hurt_live(cfg, g, now))
        ws = max_u64(ws, g->hurt_bytes);
    return min_u64(ws, g->ceiling_bytes);
}

/* Lowest size an inflate of the guest's own may reach: floor, the buffer, and the size it
 * last hurt at plus one inflate step while that memory lasts. */
static uint64_t inflate_limit(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now, bool insensitive)
{
    uint64_t limit = g->floor_bytes;
    if (g->mem_known && g->overhead_known)
        limit = max_u64(limit, insensitive ? guest_need_with_swap(g, cfg->buffer_pct)
                                           : policy__guest_need(g, cfg->buffer_pct));
    if (policy__hurt_live(cfg, g, now))
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

/* What the stall says about a guest with PSI: UNKNOWN without a fresh measure; OVER when
 * it is over its margin in the last two intervals, or the last inflate raised it (memory
 * is owed); BLIP when only the last interval is over (the next says whether it lasts);
 * else UNDER.
 *
 * A stall counts when it lasts: a blip of a few milliseconds is not the guest's need, and
 * a deflate for it is kept as a hurt size for hurt_memory_ms (a quality run's idle cache
 * guest stalled 24 ms in one interval; the churn guest, steady near its base, had one
 * interval over it three minutes after its last step, and a medium step for it). Critical
 * stays the fast path. */
enum stall_says { STALL_UNKNOWN, STALL_UNDER, STALL_BLIP, STALL_OVER };

static enum stall_says stall_says(const struct policy_config *cfg, const struct policy_guest *g,
                                  int64_t now)
{
    if (!g->stall.psi_seen || !policy__stall_fresh(cfg, g, now))
        return STALL_UNKNOWN;
    double margin = policy__stall_margin(cfg, g);
    if (g->stall.responded || policy__stall_excess(g, g->stall.lasting_pct) > margin)
        return STALL_OVER;
    if (policy__stall_excess(g, g->stall.last_pct) > margin)
        return STALL_BLIP;
    return STALL_UNDER;
}

bool policy__just_known(const struct policy_config *cfg, const struct policy_guest *g, int64_t now)
{
    return g->known_since == POLICY_NEVER || now - g->known_since < cfg->quiet_ms;
}

bool policy__recently_pressed(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now)
{
    int64_t crit = g->last_at[BP_LEVEL_CRITICAL];
    if (crit != POLICY_NEVER && now - crit < cfg->quiet_ms)
        return true;
    int64_t medium = g->last_at[BP_LEVEL_MEDIUM];
    return medium != POLICY_NEVER && now - medium < cfg->quiet_ms &&
           stall_says(cfg, g, now) != STALL_UNDER;
}

/* A lasting stall: give at once, by a step that grows with the excess (Senpai's backoff);
 * after an inflate that raised the stall, undo that inflate. */
static void stall_backoff(const struct policy_config *cfg, const struct policy_guest *g,
                          struct policy_decision *d)
{
    const struct policy_stall *s = &g->stall;
    double margin = policy__stall_margin(cfg, g);
    double err = policy__stall_excess(g, s->lasting_pct) / margin / cfg->backoff_coeff;
    double frac = err * err;
    if (frac > 1)
        frac = 1;
    uint64_t max_step = step_of(g, cfg->backoff_step_bytes, cfg->backoff_step_pct);
    uint64_t step = max_u64(scale_u64(max_step, frac), cfg->min_change_bytes);
    /* The last inflate raised it: the cause is known, undo just that step. For a guest
     * with a base, half of it: its stall rises gradually as its hot set stops fitting (the
     * churn guest: flat from 512 to 160 MiB, +10 points at 128), so the size it is at ease
     * is likely between the two; if the stall still lasts there, the backoff goes on in
     * the same direction, without a reversal. */
    if (s->responded && s->eval_from > g->actual_bytes) {
        uint64_t taken = s->eval_from - g->actual_bytes;
        step = max_u64(s->base_pct > 0 ? taken / 2 : taken, cfg->min_change_bytes);
    }
    deflate_by(cfg, g, g->actual_bytes, step, POLICY_R_STALL, d);
}

/* The direction block after a deflate keeps a guest from losing what it was just given
 * while it still uses it. It ends early when the guest's workload ended: its need is
 * under half what it was at that deflate (a phase change, not jitter; a working set the
 * snapshot cannot see, such as hot page cache, never ends it), no hurt size is remembered
 * (a guest that hurt keeps hurt_memory_ms of protection: bursts, churn), and its stall is
 * measured, so every step down is judged. (A quality run's grower freed 320 MiB and kept
 * a 425 MiB balloon for the rest of the run, the block doubled by an early reversal.) */
bool policy__given_unused(const struct policy_config *cfg, const struct policy_guest *g,
                          int64_t now)
{
    return g->last_deflate_need > 0 && !policy__hurt_live(cfg, g, now) && g->stall.psi_seen &&
           policy__stall_fresh(cfg, g, now) && snapshot_usable(cfg, g, now) &&
           policy__guest_need(g, cfg->buffer_pct) <= g->last_deflate_need / 2;
}

/* An inflate step toward the working set, shrinking as the stall nears its margin. */
static void probe(const struct policy_config *cfg, const struct policy_guest *g, int64_t now,
                  struct policy_decision *d)
{
    const struct policy_stall *s = &g->stall;
    bool insensitive = s->psi_seen && s->base_pct > 0;
    uint64_t limit = inflate_limit(cfg, g, now, insensitive);
    uint64_t actual = g->actual_bytes;
    if (actual <= add_sat(limit, cfg->min_change_bytes)) {
        hold(d, POLICY_R_AT_FLOOR);
        return;
    }
    uint64_t step = step_of(g, cfg->inflate_step_bytes, cfg->inflate_step_pct);
    if (s->known) {
        /* Senpai's probe: whole while the stall is under margin / coeff, then shrinking
         * with the square of how close it is. For a guest with a base, the average counts
         * beyond the intervals' spread, or the slow level counts: its stall strays by
         * points at any size (the churn guest's 5 s intervals by 2-3 at a fixed size),
         * more than margin / coeff, and a probe measured without the spread holds on
         * noise; the level sees a rise smaller than the spread once it lasts. */
        double excess = policy__stall_excess(g, s->avg_pct);
        if (insensitive) {
            double slow = policy__stall_excess(g, s->level_pct);
            excess -= s->spread_pct;
            if (slow > excess)
                excess = slow;
        }
        double margin = policy__stall_margin(cfg, g);
        if (excess * cfg->probe_coeff > margin) {
            double r = margin / (excess * cfg->probe_coeff);
            step = scale_u64(step, r * r);
            if (step < cfg->min_change_bytes) {
                hold(d, POLICY_R_NEAR_TARGET);
                return;
            }
        }
    }
    d->action = POLICY_INFLATE;
    d->reason = insensitive ? POLICY_R_INSENSITIVE : POLICY_R_QUIET;
    d->to_bytes = max_u64(limit, sub_sat(actual, step));
}

void policy_decide_guest(const struct policy_config *cfg, const struct policy_host *host,
                         const struct policy_guest *g, int64_t now, struct policy_decision *d)
{
    *d = (struct policy_decision){.from_bytes = g->actual_known ? g->actual_bytes : 0};

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
    enum stall_says stall = stall_says(cfg, g, now);

    /* The operator's limits come first; a page of slack for the balloon's granularity. */
    if (actual >= add_sat(g->ceiling_bytes, POLICY_PAGE_BYTES)) {
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

    if (add_sat(actual, POLICY_PAGE_BYTES) <= g->floor_bytes) {
        if (moving && g->target_bytes >= g->floor_bytes) {
            hold(d, POLICY_R_SETTLING);
            return;
        }
        d->action = POLICY_DEFLATE;
        d->reason = POLICY_R_BELOW_FLOOR;
        d->to_bytes = g->floor_bytes;
        return;
    }
    /* Sustained medium: a step once medium events span the dwell time. A guest whose
     * stall is measured and under its margin is not helped by memory: medium is then the
     * kernel reclaiming cache, not trouble. */
    if (level == BP_LEVEL_CRITICAL || (level == BP_LEVEL_MEDIUM && stall != STALL_UNDER)) {
        if (g->last_at[BP_LEVEL_MEDIUM] - g->medium_since >= cfg->medium_dwell_ms &&
            g->last_at[BP_LEVEL_MEDIUM] > g->last_deflate_at) {
            if (moving) {
                hold(d, POLICY_R_SETTLING);
                return;
            }
            /* With PSI, medium waits for the stall to say whether memory helps (over its
             * margin, and lasting), and for the last move's effect to be measured: one
             * step per measure, not one per dwell (a churning guest's medium events
             * would walk it to its ceiling). */
            if (level == BP_LEVEL_MEDIUM && g->stall.psi_seen &&
                (stall == STALL_UNKNOWN || stall == STALL_BLIP || g->stall.eval_pending)) {
                hold(d, POLICY_R_MEASURING);
                return;
            }
            /* Here the stall is over its margin and lasts. The last inflate raised it:
             * undoing it is the known cure, not a medium step on top. A guest with a
             * base has medium events at any size (the kernel reclaiming the cache it
             * streams through): its stall says how much, by the backoff's step that
             * grows with the excess. (In the churn simulation a 64 MiB medium step
             * answered a 32 MiB probe that raised the stall a little over its margin,
             * and left a hurt size 32 MiB over the size it was at ease.) */
            if (level == BP_LEVEL_MEDIUM && (g->stall.responded || g->stall.base_pct > 0)) {
                stall_backoff(cfg, g, d);
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

    /* Stall over its margin in two intervals, measured after the last move: back off at
     * once (once per measure of the last move's effect). One interval over holds inflates
     * below (measuring) until the next says whether it lasts. */
    if (stall == STALL_OVER && !g->stall.eval_pending) {
        stall_backoff(cfg, g, d);
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

    /* Inflate: slow to take. A guest just (re)connected counts as not yet quiet, so after
     * a daemon or QEMU restart guests keep what they have for quiet_ms. A critical event
     * blocks for quiet_ms; without a PSI measure, so does medium. Low never does. */
    int64_t last_block = g->last_at[BP_LEVEL_CRITICAL];
    if (!g->stall.psi_seen && g->last_at[BP_LEVEL_MEDIUM] > last_block)
        last_block = g->last_at[BP_LEVEL_MEDIUM];
    if (level == BP_LEVEL_CRITICAL || (level == BP_LEVEL_MEDIUM && stall != STALL_UNDER) ||
        now - g->known_since < cfg->quiet_ms ||
        (last_block != POLICY_NEVER && now - last_block < cfg->quiet_ms)) {
        hold(d, POLICY_R_NOT_QUIET);
        return;
    }
    if (stall == STALL_OVER || stall == STALL_BLIP) {
        hold(d, POLICY_R_MEASURING);
        return;
    }
    if (policy__stuck_until(cfg, g, now) > now) {
        hold(d, POLICY_R_STUCK);
        return;
    }
    if (g->last_deflate_at != POLICY_NEVER &&
        now - g->last_deflate_at < policy__inflate_wait(cfg, g, now) &&
        !policy__given_unused(cfg, g, now)) {
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
    /* Each step's effect is measured before the next. */
    if (g->stall.eval_pending && g->stall.psi_seen && g->stall.known) {
        hold(d, POLICY_R_MEASURING);
        return;
    }
    probe(cfg, g, now, d);
}

static void decide_all(const struct policy_config *cfg, struct policy_host *host,
                       const struct policy__guests *gs, int64_t now,
                       struct policy_decision *decisions)
{
    policy__host_update(cfg, host, now);
    for (size_t i = 0; i < gs->n; i++)
        policy_decide_guest(cfg, host, policy__guest(gs, i), now, &decisions[i]);
    policy__budget_round(cfg, host, gs, now, decisions);
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

void policy_arbitrate(const struct policy_config *cfg, struct policy_host *host,
                      const struct policy_guest *const *guests, size_t n, int64_t now,
                      struct policy_decision *decisions)
{
    const struct policy__guests gs = {.ptrs = guests, .n = n};
    policy__host_update(cfg, host, now);
    policy__budget_round(cfg, host, &gs, now, decisions);
    policy__host_round(cfg, host, &gs, now, decisions);
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

/* Whether a deflate remembers the size the guest hurt at. Not while it is just known
 * (booted, or the daemon restarted) unless its snapshot shows that size in use (what it
 * uses with the buffer_pct buffer reaches it: the buffer rule's own measure of a guest
 * short of memory). A guest filling its page cache at boot hurts at sizes it never needs
 * again, and a hurt size holds for hurt_memory_ms (a quality run's idle cache guest was
 * kept at 288 MiB for ten minutes by the medium deflate of its boot, with a working set of
 * about 80); a guest allocating in its first minute hurts where it will again (the same
 * run's burst guest, 200 MiB bursts from 30 s, used 231 MiB at 294 when it hurt, was
 * walked into its second burst and reversed once more). */
static bool hurt_counts(const struct policy_config *cfg, const struct policy_guest *g,
                        const struct policy_decision *d, int64_t now)
{
    if (d->reason != POLICY_R_CRITICAL && d->reason != POLICY_R_MEDIUM &&
        d->reason != POLICY_R_STALL)
        return false;
    if (!policy__just_known(cfg, g, now))
        return true;
    return g->mem_known && policy__guest_need(g, cfg->buffer_pct) >= d->from_bytes;
}

void policy_commit(const struct policy_config *cfg, struct policy_guest *g,
                   const struct policy_decision *d, int64_t now)
{
    if (d->action == POLICY_HOLD)
        return;
    /* Moves back inside the operator's limits are not the guest's doing: no reversal. */
    bool limit_move = d->reason == POLICY_R_BELOW_FLOOR || d->reason == POLICY_R_ABOVE_CEILING;

    /* The previous move's balloon did not follow: the next backoff is longer. */
    if (policy__move_failed(cfg, g, now)) {
        if (g->stuck_count < 64)
            g->stuck_count++;
        g->stuck_total++;
    }
    if (d->action == POLICY_DEFLATE) {
        g->last_deflate_at = now;
        g->last_deflate_need =
            g->mem_known && g->overhead_known ? policy__guest_need(g, cfg->buffer_pct) : 0;
        g->medium_since = now;
        if (hurt_counts(cfg, g, d, now)) {
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
    g->target_done = false;
    g->target_done_at = POLICY_NEVER;
    g->move_from_bytes = g->actual_known ? g->actual_bytes : d->from_bytes;
    policy__stall_commit(g, d);
}

/* Keep the smallest candidate after now. */
static void consider(int64_t *best, int64_t t, int64_t now)
{
    if (t > now && t < *best)
        *best = t;
}

int64_t policy_guest_deadline(const struct policy_config *cfg, const struct policy_guest *g,
                              int64_t now)
{
    int64_t best = POLICY_NO_DEADLINE;
    int64_t decay = cfg->level_decay_ms > 0 ? cfg->level_decay_ms : 1;

    /* Even a paused guest's move in flight counts in host rounds until it settles. */
    if (g->target_set && !g->target_done) {
        consider(&best, g->target_at + cfg->stuck_check_ms, now);
        consider(&best, g->target_at + cfg->settle_timeout_ms, now);
        /* A slow balloon fails when its progress falls behind the rate. */
        if (g->actual_known)
            consider(&best, g->target_at + progress_due(cfg, g), now);
    }
    int64_t stuck = policy__stuck_until(cfg, g, now);
    if (stuck != POLICY_NEVER)
        consider(&best, stuck, now);
    if (g->paused || !g->actual_known)
        return best;
    /* Level decay steps. */
    for (int l = BP_LEVEL_LOW; l <= BP_LEVEL_CRITICAL; l++) {
        if (g->last_at[l] == POLICY_NEVER || now < g->last_at[l])
            continue;
        int64_t k = (now - g->last_at[l]) / decay + 1;
        if (k <= l)
            consider(&best, g->last_at[l] + k * decay, now);
    }
    for (int l = BP_LEVEL_MEDIUM; l <= BP_LEVEL_CRITICAL; l++)
        if (g->last_at[l] != POLICY_NEVER)
            consider(&best, g->last_at[l] + cfg->quiet_ms, now);
    consider(&best, g->known_since + cfg->quiet_ms, now);
    if (g->last_deflate_at != POLICY_NEVER)
        consider(&best, g->last_deflate_at + policy__inflate_wait(cfg, g, now), now);
    if (g->last_inflate_at != POLICY_NEVER) {
        consider(&best, g->last_inflate_at + cfg->inflate_interval_ms, now);
        /* A donor again once its last inflate's unmeasured effect stops blocking. */
        consider(&best, g->last_inflate_at + cfg->quiet_ms, now);
    }
    if (g->flips > 0)
        consider(&best, g->last_flip_at + cfg->flip_forget_ms, now);
    if (g->hurt_known)
        consider(&best, g->hurt_at + cfg->hurt_memory_ms, now);
    /* Snapshots and stall measures go stale. */
    if (g->mem_known)
        consider(&best, g->mem_at + cfg->snapshot_max_age_ms + 1, now);
    if (g->stall.known)
        consider(&best, g->stall.last_at + cfg->snapshot_max_age_ms + 1, now);
    return best;
}

static int64_t next_deadline(const struct policy_config *cfg, const struct policy_host *host,
                             const struct policy__guests *gs, int64_t now)
{
    int64_t best = POLICY_NO_DEADLINE;
    if (host->last_reclaim_at != POLICY_NEVER)
        consider(&best, host->last_reclaim_at + cfg->host_reclaim_interval_ms, now);
    for (size_t i = 0; i < gs->n; i++) {
        int64_t t = policy_guest_deadline(cfg, policy__guest(gs, i), now);
        if (t < best)
            best = t;
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
