/* Drive the policy with arbitrary inputs and check its invariants after every decision.
 * Shared by the seeded random unit test and the libFuzzer target: each takes its numbers
 * from a source (a PRNG, or the fuzzer's bytes). Header-only, included once per program. */
#ifndef BELLOWS_TEST_POLICY_DRIVE_H
#define BELLOWS_TEST_POLICY_DRIVE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "host-daemon/policy/policy.h"
#include "host-daemon/policy/policy_internal.h"

#define DRIVE_N 8
#define DRIVE_MIB POLICY_MIB
#define DRIVE_GIB (1024 * POLICY_MIB)

/* Next 64 bits of input. */
typedef uint64_t (*drive_src)(void *ctx);

struct drive {
    drive_src src;
    void *ctx;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g[DRIVE_N];
    const struct policy_guest *gp[DRIVE_N];
    struct policy_decision d[DRIVE_N];
    struct policy_decision other[DRIVE_N];
    int64_t now;
    uint64_t psi_us[DRIVE_N], faults[DRIVE_N];
    unsigned steps, moves, deadline_checks, budget_rounds, funded, cut;
    char msg[300];
};

static uint64_t drive_below(struct drive *dr, uint64_t n)
{
    return n ? dr->src(dr->ctx) % n : 0;
}

static void drive_init(struct drive *dr, drive_src src, void *ctx)
{
    memset(dr, 0, sizeof(*dr));
    dr->src = src;
    dr->ctx = ctx;
    policy_config_defaults(&dr->cfg);
    policy_host_init(&dr->host);
    for (int i = 0; i < DRIVE_N; i++) {
        uint64_t ceiling = (1 + drive_below(dr, 16)) * 256 * DRIVE_MIB;
        policy_guest_init(&dr->g[i], 1 + drive_below(dr, ceiling), ceiling,
                          1 + (uint32_t)drive_below(dr, 200));
        dr->gp[i] = &dr->g[i];
    }
}

static bool drive_fail(struct drive *dr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool drive_fail(struct drive *dr, const char *fmt, ...)
{
    va_list ap;
    int n = snprintf(dr->msg, sizeof(dr->msg), "step %u, t=%lld: ", dr->steps, (long long)dr->now);
    va_start(ap, fmt);
    vsnprintf(dr->msg + n, sizeof(dr->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static bool drive_is_deflate_reason(enum policy_reason r)
{
    return r == POLICY_R_CRITICAL || r == POLICY_R_MEDIUM || r == POLICY_R_BUFFER ||
           r == POLICY_R_BELOW_FLOOR || r == POLICY_R_STALL;
}

static bool drive_is_inflate_reason(enum policy_reason r)
{
    return r == POLICY_R_ABOVE_CEILING || r == POLICY_R_QUIET || r == POLICY_R_HOST_PRESSURE ||
           r == POLICY_R_INSENSITIVE || r == POLICY_R_FUND || r == POLICY_R_SHARE;
}

/* One input of a random kind for a random guest. */
static void drive_input(struct drive *dr)
{
    dr->now += (int64_t)drive_below(dr, drive_below(dr, 4) == 0 ? 60000 : 1000);
    struct policy_guest *g = &dr->g[drive_below(dr, DRIVE_N)];
    switch (drive_below(dr, 10)) {
    case 0:
    case 1:
        policy_note_event(&dr->cfg, g, (enum bp_level)drive_below(dr, 5), NULL, dr->now);
        break;
    case 2:
    case 6: {
        struct bp_mem m = {0};
        size_t k = (size_t)(g - dr->g);
        if (drive_below(dr, 8) == 0) { /* junk from an untrusted guest */
            m.mem_total_kb = dr->src(dr->ctx);
            m.mem_available_kb = dr->src(dr->ctx);
            m.swap_total_kb = dr->src(dr->ctx);
            m.psi_some_total_us = dr->src(dr->ctx);
            m.pgmajfault = dr->src(dr->ctx);
        } else {
            m.mem_total_kb = (g->ceiling_bytes - drive_below(dr, 64 * DRIVE_MIB)) / 1024;
            m.mem_available_kb = drive_below(dr, m.mem_total_kb + 1);
            /* Stall: none, a little, or a lot, since the last snapshot. */
            uint64_t kind = drive_below(dr, 4);
            dr->psi_us[k] += kind == 0 ? 0 : drive_below(dr, kind == 3 ? 3000000 : 20000);
            dr->faults[k] += drive_below(dr, 3) == 0 ? drive_below(dr, 200) : 0;
            if (drive_below(dr, 50) == 0)
                dr->psi_us[k] = dr->faults[k] = 0; /* the guest rebooted */
            m.psi_some_total_us = dr->psi_us[k];
            m.pgmajfault = dr->faults[k];
        }
        if (drive_below(dr, 2) == 0)
            policy_note_event(&dr->cfg, g, (enum bp_level)drive_below(dr, 4), &m, dr->now);
        else
            policy_note_report(&dr->cfg, g, (enum bp_level)drive_below(dr, 4), &m, dr->now);
        break;
    }
    case 3:
        if (drive_below(dr, 10) == 0)
            policy_forget_actual(g);
        else
            policy_note_actual(&dr->cfg, g, drive_below(dr, g->ceiling_bytes * 2), dr->now);
        break;
    case 4:
        policy_host_input(&dr->host, (double)drive_below(dr, 3000) / 100.0, 64 * DRIVE_GIB,
                          drive_below(dr, 64 * DRIVE_GIB));
        if (drive_below(dr, 4) == 0) {
            if (drive_below(dr, 5) == 0)
                policy_host_no_budget(&dr->host);
            else /* from tight to ample for 8 guests of up to 4 GiB */
                policy_host_budget(&dr->host, drive_below(dr, 40 * DRIVE_GIB));
        }
        break;
    case 5:
        if (drive_below(dr, 20) == 0) {
            uint64_t c = (1 + drive_below(dr, 16)) * 256 * DRIVE_MIB;
            g->ceiling_bytes = c;
            g->floor_bytes = 1 + drive_below(dr, c);
        } else if (drive_below(dr, 20) == 0) {
            g->paused = !g->paused;
        }
        break;
    default:
        break;
    }
}

/* With a budget, deflates only add up to it: the sum of what the guests hold after the
 * round is at most the budget, or, when it was over already, what they would hold with
 * the round's inflates and no deflate. A funding inflate only comes with a deflate. */
static bool drive_check_budget(struct drive *dr)
{
    if (!dr->host.budget_known)
        return true;
    uint64_t after = 0, without = 0;
    bool deflate = false, fund = false;
    for (int k = 0; k < DRIVE_N; k++) {
        const struct policy_decision *x = &dr->d[k];
        uint64_t held = policy__committed(&dr->cfg, &dr->g[k], dr->now);
        after += x->action == POLICY_HOLD ? held : x->to_bytes;
        without += x->action == POLICY_INFLATE ? x->to_bytes : held;
        deflate |= x->action == POLICY_DEFLATE;
        fund |= x->reason == POLICY_R_FUND;
        dr->cut += x->wanted_bytes != 0;
    }
    if (fund && !deflate) {
        for (int k = 0; k < DRIVE_N; k++)
            fprintf(stderr, "g%d %s/%s %llu->%llu wanted %llu\n", k,
                    policy_action_name(dr->d[k].action), policy_reason_name(dr->d[k].reason),
                    (unsigned long long)dr->d[k].from_bytes, (unsigned long long)dr->d[k].to_bytes,
                    (unsigned long long)dr->d[k].wanted_bytes);
        return drive_fail(dr, "a funding inflate without a deflate");
    }
    dr->funded += fund;
    if (!deflate)
        return true;
    dr->budget_rounds++;
    uint64_t limit = without > dr->host.budget_bytes ? without : dr->host.budget_bytes;
    if (after > limit)
        return drive_fail(dr,
                          "deflates take the guests to %llu, over the budget %llu (%llu "
                          "without them)",
                          (unsigned long long)after, (unsigned long long)dr->host.budget_bytes,
                          (unsigned long long)without);
    return true;
}

/* Every decision in dr->d against the guests: holds do not move and carry a hold reason;
 * moves come from a known, unpaused balloon, stay inside [floor, ceiling], go the way
 * their action says and carry a reason of their kind. */
static bool drive_check_decisions(struct drive *dr)
{
    for (int k = 0; k < DRIVE_N; k++) {
        const struct policy_decision *x = &dr->d[k];
        const struct policy_guest *g = &dr->g[k];
        if (x->action == POLICY_HOLD) {
            if (x->to_bytes != x->from_bytes)
                return drive_fail(dr, "guest %d: hold moves %llu -> %llu", k,
                                  (unsigned long long)x->from_bytes,
                                  (unsigned long long)x->to_bytes);
            if (drive_is_deflate_reason(x->reason) || drive_is_inflate_reason(x->reason) ||
                (unsigned)x->reason >= POLICY_R_COUNT)
                return drive_fail(dr, "guest %d: hold with reason %d", k, (int)x->reason);
            continue;
        }
        if (g->paused || !g->actual_known)
            return drive_fail(dr, "guest %d: moves while %s (%s)", k,
                              g->paused ? "paused" : "blind", policy_reason_name(x->reason));
        if (x->from_bytes != g->actual_bytes)
            return drive_fail(dr, "guest %d: from %llu is not the actual %llu", k,
                              (unsigned long long)x->from_bytes,
                              (unsigned long long)g->actual_bytes);
        /* A deflate cut by the budget may stop short of the floor it was heading to. */
        bool cut_short = x->wanted_bytes != 0 && x->to_bytes > x->from_bytes;
        if ((x->to_bytes < g->floor_bytes && !cut_short) || x->to_bytes > g->ceiling_bytes)
            return drive_fail(dr, "guest %d: %s (%s) to %llu outside [%llu, %llu]", k,
                              policy_action_name(x->action), policy_reason_name(x->reason),
                              (unsigned long long)x->to_bytes, (unsigned long long)g->floor_bytes,
                              (unsigned long long)g->ceiling_bytes);
        bool up = x->action == POLICY_DEFLATE;
        if (up ? x->to_bytes <= x->from_bytes : x->to_bytes >= x->from_bytes)
            return drive_fail(dr, "guest %d: %s goes the wrong way %llu -> %llu", k,
                              policy_action_name(x->action), (unsigned long long)x->from_bytes,
                              (unsigned long long)x->to_bytes);
        if (up ? !drive_is_deflate_reason(x->reason) : !drive_is_inflate_reason(x->reason))
            return drive_fail(dr, "guest %d: %s with reason %s", k, policy_action_name(x->action),
                              policy_reason_name(x->reason));
        if (x->wanted_bytes && (!up || x->wanted_bytes <= x->to_bytes))
            return drive_fail(dr, "guest %d: cut deflate to %llu wanted %llu", k,
                              (unsigned long long)x->to_bytes, (unsigned long long)x->wanted_bytes);
    }
    return drive_check_budget(dr);
}

/* One step: an input, a decision (array and pointer entry points must agree), the checks,
 * most of the time a commit of the moves, and every 8th step, when everything holds, a
 * probe before policy_next_deadline() that must still hold. Returns false with dr->msg
 * set when an invariant breaks. */
static bool drive_step(struct drive *dr)
{
    dr->steps++;
    drive_input(dr);

    struct policy_host hp = dr->host;
    policy_decide_ptrs(&dr->cfg, &hp, dr->gp, DRIVE_N, dr->now, dr->other);
    policy_decide(&dr->cfg, &dr->host, dr->g, DRIVE_N, dr->now, dr->d);
    if (memcmp(dr->other, dr->d, sizeof(dr->d)) != 0 || hp.pressure != dr->host.pressure)
        return drive_fail(dr, "policy_decide_ptrs differs from policy_decide");
    if (policy_next_deadline_ptrs(&dr->cfg, &dr->host, dr->gp, DRIVE_N, dr->now) !=
        policy_next_deadline(&dr->cfg, &dr->host, dr->g, DRIVE_N, dr->now))
        return drive_fail(dr, "policy_next_deadline_ptrs differs");
    if (!drive_check_decisions(dr))
        return false;

    /* Most of the time the daemon issues what was decided; balloons mostly arrive. */
    if (drive_below(dr, 4) != 0) {
        bool host_round = false;
        for (int k = 0; k < DRIVE_N; k++) {
            if (dr->d[k].action == POLICY_HOLD)
                continue;
            policy_commit(&dr->cfg, &dr->g[k], &dr->d[k], dr->now);
            dr->moves++;
            host_round |= dr->d[k].reason == POLICY_R_HOST_PRESSURE;
            if (drive_below(dr, 3) != 0)
                policy_note_actual(&dr->cfg, &dr->g[k], dr->d[k].to_bytes, dr->now);
        }
        if (host_round)
            policy_host_commit(&dr->host, dr->now);
    }

    if (dr->steps % 8 != 0)
        return true;
    policy_decide(&dr->cfg, &dr->host, dr->g, DRIVE_N, dr->now, dr->d);
    bool all_hold = true;
    for (int k = 0; k < DRIVE_N; k++)
        all_hold &= dr->d[k].action == POLICY_HOLD;
    int64_t next = policy_next_deadline(&dr->cfg, &dr->host, dr->g, DRIVE_N, dr->now);
    if (next <= dr->now)
        return drive_fail(dr, "deadline %lld is not after now", (long long)next);
    if (!all_hold || next == POLICY_NO_DEADLINE || next - dr->now <= 1)
        return true;
    struct policy_host h2 = dr->host;
    int64_t probe = dr->now + 1 + (int64_t)drive_below(dr, (uint64_t)(next - dr->now - 1));
    policy_decide(&dr->cfg, &h2, dr->g, DRIVE_N, probe, dr->other);
    dr->deadline_checks++;
    for (int k = 0; k < DRIVE_N; k++)
        if (dr->other[k].action != POLICY_HOLD)
            return drive_fail(
                dr,
                "guest %d: hold (%s) became %s (%s) at %lld, before the "
                "deadline %lld",
                k, policy_reason_name(dr->d[k].reason), policy_action_name(dr->other[k].action),
                policy_reason_name(dr->other[k].reason), (long long)probe, (long long)next);
    return true;
}

#endif
