/* Admission of link connects (guest channels, QMP monitors), shared by every link of the
 * process: at most max_in_flight connects at once, and no new link while max_open links
 * are open. A reload that adds thousands of guests then connects them a batch at a time
 * instead of starting every connect at once (and seeing them all time out), and the
 * descriptors past max_open stay free for what must not fail: host sampling, the control
 * socket, libvirt, the state file.
 *
 * A link asks before each attempt (link_gate_enter). Admitted, it connects; else it waits
 * in line (first come, first served) and its admit callback runs when a place frees. It
 * then says how the attempt ended (link_gate_connected / link_gate_failed) and when an
 * open link closes (link_gate_closed). Pure bookkeeping on one loop's thread: no I/O, no
 * clock. Callbacks run from inside the call that freed the place. */
#ifndef BELLOWS_LINK_GATE_H
#define BELLOWS_LINK_GATE_H

#include <stdbool.h>
#include <stdint.h>

struct link_gate_waiter;
typedef void (*link_gate_admit_cb)(struct link_gate_waiter *w);

/* Embedded in a link. */
struct link_gate_waiter {
    struct link_gate_waiter *prev, *next;
    link_gate_admit_cb admit;
    bool queued;
};

struct link_gate {
    unsigned max_in_flight; /* 0: no limit */
    uint64_t max_open;      /* 0: no limit */
    unsigned in_flight;
    uint64_t open; /* open links and connects in flight */
    uint64_t queued;
    uint64_t admitted, waited; /* counters: attempts let through, attempts that waited */
    struct link_gate_waiter *head, *tail;
};

/* The gate every link of this process uses (no limits until set). */
struct link_gate *link_gate_shared(void);

/* New limits (0: none); waiters are admitted as far as they now allow. */
void link_gate_set_limits(struct link_gate *g, unsigned max_in_flight, uint64_t max_open);

/* Before an attempt: true when the link may connect now (it counts as in flight and
 * open); false when it waits in line (w->admit runs when it may; then it counts). */
bool link_gate_enter(struct link_gate *g, struct link_gate_waiter *w, link_gate_admit_cb admit);

/* The attempt connected: no longer in flight, still open. */
void link_gate_connected(struct link_gate *g);

/* The attempt failed: neither in flight nor open. */
void link_gate_failed(struct link_gate *g);

/* An open link closed. */
void link_gate_closed(struct link_gate *g);

/* A waiting link gives up its place in line (closing); nothing if it is not waiting. */
void link_gate_leave(struct link_gate *g, struct link_gate_waiter *w);

#endif
