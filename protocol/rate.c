/* Token bucket for the host's per-guest frame budget, kept in nanoseconds of credit so
 * that it needs no floating point and no division on the hot path. */
#include "bellows_protocol.h"

#include <string.h>

#define COST_NS (UINT64_C(1000000000) / BP_RATE_PER_S)
#define CAP_NS (COST_NS * BP_RATE_BURST)

void bp_rate_init(struct bp_rate *rate, uint64_t now_ns)
{
    memset(rate, 0, sizeof(*rate));
    rate->last_ns = now_ns;
    rate->credit_ns = CAP_NS;
}

bool bp_rate_allow(struct bp_rate *rate, uint64_t now_ns)
{
    if (now_ns > rate->last_ns) {
        uint64_t gained = now_ns - rate->last_ns;
        rate->credit_ns = gained >= CAP_NS - rate->credit_ns ? CAP_NS : rate->credit_ns + gained;
        rate->last_ns = now_ns;
    }
    if (rate->credit_ns < COST_NS) {
        rate->dropped++;
        return false;
    }
    rate->credit_ns -= COST_NS;
    rate->allowed++;
    return true;
}
