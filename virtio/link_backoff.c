/* Doubling reconnect backoff with a reset after a stable connection. */
#include "virtio/link_backoff.h"

/* See link_backoff.h. */
void link_backoff_init(struct link_backoff *b, uint64_t min_ns, uint64_t max_ns, uint64_t stable_ns)
{
    if (min_ns == 0)
        min_ns = 1;
    if (max_ns < min_ns)
        max_ns = min_ns;
    *b = (struct link_backoff){.min_ns = min_ns, .max_ns = max_ns, .stable_ns = stable_ns};
}

/* See link_backoff.h. */
void link_backoff_up(struct link_backoff *b, uint64_t now_ns)
{
    b->up = true;
    b->up_since_ns = now_ns;
}

/* See link_backoff.h. */
uint64_t link_backoff_down(struct link_backoff *b, uint64_t now_ns)
{
    if (b->up && now_ns - b->up_since_ns >= b->stable_ns)
        b->failures = 0;
    b->up = false;

    uint64_t delay = b->min_ns;
    for (unsigned i = 0; i < b->failures && delay < b->max_ns; i++)
        delay *= 2;
    if (delay > b->max_ns)
        delay = b->max_ns;
    if (delay < b->max_ns)
        b->failures++;
    return delay;
}

/* See link_backoff.h. */
void link_backoff_reset(struct link_backoff *b)
{
    b->failures = 0;
}
