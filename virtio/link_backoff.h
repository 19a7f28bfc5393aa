/* Reconnect backoff for one link (the guest's port, the host's end of a guest channel, a
 * QMP monitor): how long to wait before the next attempt. Pure: time is passed in; no
 * clock, no timers.
 *
 * Each failed attempt or hang-up doubles the delay from min_ns up to max_ns. A connection
 * that stayed up for stable_ns or longer counts as healthy: the next hang-up starts again
 * at min_ns. One that drops sooner (a peer that accepts and closes at once, or a virtio
 * port whose host side is closed) keeps doubling, so nothing ever spins. */
#ifndef BELLOWS_LINK_BACKOFF_H
#define BELLOWS_LINK_BACKOFF_H

#include <stdbool.h>
#include <stdint.h>

struct link_backoff {
    uint64_t min_ns, max_ns, stable_ns;
    unsigned failures; /* consecutive attempts that did not last */
    bool up;
    uint64_t up_since_ns;
};

/* min_ns > 0 and min_ns <= max_ns, or the values are corrected to that. */
void link_backoff_init(struct link_backoff *b, uint64_t min_ns, uint64_t max_ns,
                       uint64_t stable_ns);

/* The port came up (opened or connected) at now_ns. */
void link_backoff_up(struct link_backoff *b, uint64_t now_ns);

/* An attempt failed or the port went down at now_ns: returns the delay in ns before the
 * next attempt. */
uint64_t link_backoff_down(struct link_backoff *b, uint64_t now_ns);

/* Something new happened (the socket was created again): the next delay is min_ns. */
void link_backoff_reset(struct link_backoff *b);

#endif
