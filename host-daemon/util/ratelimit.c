/* Token bucket as GCRA: each unit pushes a theoretical arrival time forward by its cost;
 * a request fits when that time stays within the burst window ahead of now. */
#include "host-daemon/util/ratelimit.h"

#define NS_PER_S UINT64_C(1000000000)

/* See ratelimit.h. */
void ratelimit_init(struct ratelimit *rl, uint32_t rate_per_s, uint32_t burst)
{
    if (rate_per_s == 0)
        rate_per_s = 1;
    if (burst == 0)
        burst = 1;
    rl->interval_ns = NS_PER_S / rate_per_s;
    if (rl->interval_ns == 0)
        rl->interval_ns = 1;
    rl->burst_ns = rl->interval_ns * burst;
    rl->tat_ns = 0;
}

/* The arrival time after charging n units at now_ns, saturating instead of overflowing. */
static uint64_t next_tat(const struct ratelimit *rl, uint64_t n, uint64_t now_ns)
{
    uint64_t base = rl->tat_ns > now_ns ? rl->tat_ns : now_ns;
    if (n > (UINT64_MAX - base) / rl->interval_ns)
        return UINT64_MAX;
    return base + n * rl->interval_ns;
}

/* See ratelimit.h. */
bool ratelimit_take(struct ratelimit *rl, uint64_t n, uint64_t now_ns)
{
    uint64_t tat = next_tat(rl, n, now_ns);
    if (tat - now_ns > rl->burst_ns)
        return false;
    rl->tat_ns = tat;
    return true;
}

/* See ratelimit.h. */
uint64_t ratelimit_wait_ns(const struct ratelimit *rl, uint64_t n, uint64_t now_ns)
{
    uint64_t tat = next_tat(rl, n, now_ns);
    if (tat == UINT64_MAX)
        return UINT64_MAX;
    if (tat - now_ns <= rl->burst_ns)
        return 0;
    return tat - now_ns - rl->burst_ns;
}
