/* Internal to the policy files (policy.c, policy_host.c): shared helpers. Not for the
 * daemon: it uses policy.h only. */
#ifndef BELLOWS_POLICY_INTERNAL_H
#define BELLOWS_POLICY_INTERNAL_H

#include "host-daemon/policy/policy.h"

/* Saturating arithmetic: numbers a guest sends can be anything, nothing may wrap. */

static inline uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static inline uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t dist_u64(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* pct percent of x, saturating at UINT64_MAX. */
static inline uint64_t pct_of(uint64_t x, double pct)
{
    double v = (double)x * pct / 100.0;
    if (!(v > 0))
        return 0;
    if (v >= 18446744073709551615.0)
        return UINT64_MAX;
    return (uint64_t)v;
}

/* A step for this guest: max(bytes, pct of its ceiling). */
static inline uint64_t step_of(const struct policy_guest *g, uint64_t bytes, double pct)
{
    return max_u64(bytes, pct_of(g->ceiling_bytes, pct));
}

/* The guests of one decision round, given as an array or as an array of pointers. */
struct policy__guests {
    const struct policy_guest *array;
    const struct policy_guest *const *ptrs;
    size_t n;
};

static inline const struct policy_guest *policy__guest(const struct policy__guests *gs, size_t i)
{
    return gs->array ? &gs->array[i] : gs->ptrs[i];
}

/* True while a committed move may still be on its way: the actual is not yet within the
 * dead band of the target, and the settle timeout has not passed. */
bool policy__settling(const struct policy_config *cfg, const struct policy_guest *g, int64_t now);

/* used * (1 + pct/100) + overhead: the smallest size that leaves the guest that buffer.
 * Only meaningful when g->mem_known and g->overhead_known. */
uint64_t policy__guest_need(const struct policy_guest *g, double pct);

/* How long after the last deflate an inflate must wait at now, flip backoff included. */
int64_t policy__inflate_wait(const struct policy_config *cfg, const struct policy_guest *g,
                             int64_t now);

/* Enter or leave host pressure from the latest reading (policy_host.c). */
void policy__host_update(const struct policy_config *cfg, struct policy_host *host, int64_t now);

/* Under host pressure, turn some guests' decisions into host-pressure inflates
 * (policy_host.c). decisions[] holds each guest's own decision on entry. */
void policy__host_round(const struct policy_config *cfg, const struct policy_host *host,
                        const struct policy__guests *gs, int64_t now,
                        struct policy_decision *decisions);

#endif
