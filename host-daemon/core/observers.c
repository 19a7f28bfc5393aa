/* Observers: who subscribed to guests' samples, sizes and moves, and telling them. */
#include <errno.h>

#include "host-daemon/core/daemon_internal.h"

/* See daemon.h. */
int daemon_add_observer(struct daemon *d, const struct daemon_observer_ops *ops, void *opaque)
{
    if (d->n_observers == DAEMON_MAX_OBSERVERS)
        return -ENOSPC;
    d->observers[d->n_observers++] = (struct daemon_observer){.ops = ops, .opaque = opaque};
    return 0;
}

/* See daemon.h. */
void daemon_remove_observer(struct daemon *d, const struct daemon_observer_ops *ops, void *opaque)
{
    for (size_t i = 0; i < d->n_observers; i++) {
        if (d->observers[i].ops == ops && d->observers[i].opaque == opaque) {
            d->observers[i] = d->observers[--d->n_observers];
            return;
        }
    }
}

/* Call member `fn` of every observer that has it. */
#define NOTIFY(d, fn, ...)                                                                         \
    do {                                                                                           \
        for (size_t i_ = 0; i_ < (d)->n_observers; i_++)                                           \
            if ((d)->observers[i_].ops->fn)                                                        \
                (d)->observers[i_].ops->fn((d)->observers[i_].opaque, __VA_ARGS__);                \
    } while (0)

/* See daemon_internal.h. */
void observers_guest_added(struct daemon *d, const struct guest *g)
{
    NOTIFY(d, guest_added, g);
}

/* See daemon_internal.h. */
void observers_guest_removed(struct daemon *d, const struct guest *g)
{
    NOTIFY(d, guest_removed, g);
}

/* See daemon_internal.h. */
void observers_sample(struct daemon *d, const struct guest *g, const struct daemon_sample *s)
{
    NOTIFY(d, sample, g, s);
}

/* See daemon_internal.h. */
void observers_actual(struct daemon *d, const struct guest *g, uint64_t actual_bytes)
{
    NOTIFY(d, actual, g, actual_bytes, daemon_now(d));
}

/* See daemon_internal.h. */
void observers_move(struct daemon *d, const struct guest *g, const struct decision_entry *e)
{
    NOTIFY(d, move, g, e);
}
