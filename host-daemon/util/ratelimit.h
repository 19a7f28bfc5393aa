/* A token bucket, written as a generic cell rate algorithm: integers only, time passed in.
 * Used per guest for frames and for bytes, so one guest's flood costs only its own budget. */
#ifndef BELLOWS_RATELIMIT_H
#define BELLOWS_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

struct ratelimit {
    uint64_t interval_ns; /* cost of one unit: 1 s / rate */
    uint64_t burst_ns;    /* burst units times interval_ns */
    uint64_t tat_ns;      /* theoretical arrival time of the next unit */
};

/* rate units per second (> 0), up to burst units at once (>= 1). */
void ratelimit_init(struct ratelimit *rl, uint32_t rate_per_s, uint32_t burst);

/* Take n units at time now_ns (any monotonic clock). Returns true and charges them when the
 * bucket holds n units; false and charges nothing otherwise. */
bool ratelimit_take(struct ratelimit *rl, uint64_t n, uint64_t now_ns);

/* Nanoseconds from now_ns until n units are available (0 if they are now). */
uint64_t ratelimit_wait_ns(const struct ratelimit *rl, uint64_t n, uint64_t now_ns);

#endif
