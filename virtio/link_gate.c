/* Admission of link connects: a bound on connects in flight and on open links (see
 * link_gate.h). */
#include "virtio/link_gate.h"

#include <stddef.h>

/* See link_gate.h. */
struct link_gate *link_gate_shared(void)
{
    static struct link_gate shared;
    return &shared;
}

static bool has_room(const struct link_gate *g)
{
    return (!g->max_in_flight || g->in_flight < g->max_in_flight) &&
           (!g->max_open || g->open < g->max_open);
}

static void unlink_waiter(struct link_gate *g, struct link_gate_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        g->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        g->tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    g->queued--;
}

/* Let waiters in while there is room, first come first served. */
static void admit_waiting(struct link_gate *g)
{
    while (g->head && has_room(g)) {
        struct link_gate_waiter *w = g->head;
        unlink_waiter(g, w);
        g->in_flight++;
        g->open++;
        g->admitted++;
        w->admit(w); /* may connect, fail at once, close: all counted above */
    }
}

/* See link_gate.h. */
void link_gate_set_limits(struct link_gate *g, unsigned max_in_flight, uint64_t max_open)
{
    g->max_in_flight = max_in_flight;
    g->max_open = max_open;
    admit_waiting(g);
}

/* See link_gate.h. */
bool link_gate_enter(struct link_gate *g, struct link_gate_waiter *w, link_gate_admit_cb admit)
{
    if (w->queued)
        return false;
    if (!g->head && has_room(g)) {
        g->in_flight++;
        g->open++;
        g->admitted++;
        return true;
    }
    w->admit = admit;
    w->queued = true;
    w->next = NULL;
    w->prev = g->tail;
    if (g->tail)
        g->tail->next = w;
    else
        g->head = w;
    g->tail = w;
    g->queued++;
    g->waited++;
    return false;
}

/* See link_gate.h. */
void link_gate_connected(struct link_gate *g)
{
    if (g->in_flight)
        g->in_flight--;
    admit_waiting(g);
}

/* See link_gate.h. */
void link_gate_failed(struct link_gate *g)
{
    if (g->in_flight)
        g->in_flight--;
    if (g->open)
        g->open--;
    admit_waiting(g);
}

/* See link_gate.h. */
void link_gate_closed(struct link_gate *g)
{
    if (g->open)
        g->open--;
    admit_waiting(g);
}

/* See link_gate.h. */
void link_gate_leave(struct link_gate *g, struct link_gate_waiter *w)
{
    if (w->queued)
        unlink_waiter(g, w);
}
