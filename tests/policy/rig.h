/* A test rig for the policy: one or more guests whose agent reports a snapshot with a
 * stall of the test's choosing, time stepped by the test, moves committed and balloons
 * arriving (or not) as the test says. Header-only, for the policy's unit tests. */
#ifndef BELLOWS_TEST_POLICY_RIG_H
#define BELLOWS_TEST_POLICY_RIG_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "host-daemon/policy/policy.h"

#define RIG_MIB POLICY_MIB
#define RIG_GIB (1024 * POLICY_MIB)
#define RIG_MAX 8
/* What the guest's kernel keeps to itself: actual - MemTotal. */
#define RIG_OVERHEAD (32 * RIG_MIB)

struct rig {
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g[RIG_MAX];
    struct policy_decision d[RIG_MAX];
    size_t n;
    int64_t now;
    uint64_t psi_us[RIG_MAX]; /* the guest's PSI some total */
    uint64_t faults[RIG_MAX]; /* its major faults + swap-ins */
    uint64_t swap_used[RIG_MAX];
    uint64_t moves[RIG_MAX], inflates[RIG_MAX], deflates[RIG_MAX];
};

/* n guests of floor/ceiling at actual (known from t=0), defaults, no host reading. */
static inline void rig_init(struct rig *r, size_t n, uint64_t floor, uint64_t ceiling,
                            uint64_t actual)
{
    memset(r, 0, sizeof(*r));
    policy_config_defaults(&r->cfg);
    policy_host_init(&r->host);
    r->n = n;
    for (size_t i = 0; i < n; i++) {
        policy_guest_init(&r->g[i], floor, ceiling, 100);
        policy_note_actual(&r->cfg, &r->g[i], actual, 0);
    }
}

/* A snapshot of guest i using used bytes at its current balloon size. */
static inline struct bp_mem rig_mem(const struct rig *r, size_t i, uint64_t used)
{
    struct bp_mem m = {0};
    uint64_t total = r->g[i].actual_bytes - RIG_OVERHEAD;
    m.mem_total_kb = total / 1024;
    m.mem_available_kb = total > used ? (total - used) / 1024 : 0;
    m.mem_free_kb = m.mem_available_kb / 2;
    m.swap_total_kb = 1024 * 1024;
    m.swap_free_kb = m.swap_total_kb - r->swap_used[i] / 1024;
    m.psi_some_total_us = r->psi_us[i];
    m.psi_full_total_us = r->psi_us[i] / 2;
    m.pgmajfault = r->faults[i];
    return m;
}

/* Guest i stalled pct percent of the time since its last report, which is sent now with
 * level and a snapshot of used bytes. */
static inline void rig_report(struct rig *r, size_t i, double pct, uint64_t used,
                              enum bp_level level, int64_t since)
{
    r->psi_us[i] += (uint64_t)(pct * (double)(r->now - since) * 10.0);
    struct bp_mem m = rig_mem(r, i, used);
    policy_note_report(&r->cfg, &r->g[i], level, &m, r->now);
}

/* Decide for all guests at now. */
static inline void rig_decide(struct rig *r)
{
    policy_decide(&r->cfg, &r->host, r->g, r->n, r->now, r->d);
}

/* Commit every move of the last decision; arrive: the balloons get there at once. */
static inline void rig_commit(struct rig *r, bool arrive)
{
    bool host_round = false;
    for (size_t i = 0; i < r->n; i++) {
        const struct policy_decision *d = &r->d[i];
        if (d->action == POLICY_HOLD)
            continue;
        policy_commit(&r->cfg, &r->g[i], d, r->now);
        host_round |= policy_reason_is_host_round(d->reason);
        r->moves[i]++;
        if (d->action == POLICY_INFLATE)
            r->inflates[i]++;
        else
            r->deflates[i]++;
        if (arrive)
            policy_note_actual(&r->cfg, &r->g[i], d->to_bytes, r->now);
    }
    if (host_round)
        policy_host_commit(&r->host, r->now);
}

/* The sum of what the guests hold toward a budget: targets of moves on their way that
 * grow, else actuals. */
static inline uint64_t rig_held(const struct rig *r)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < r->n; i++) {
        const struct policy_guest *g = &r->g[i];
        uint64_t v = g->actual_bytes;
        if (g->target_set && !g->target_done && g->target_bytes > v)
            v = g->target_bytes;
        sum += v;
    }
    return sum;
}

#endif
