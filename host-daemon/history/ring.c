/* Fixed-capacity ring of fixed-size records. */
#include "host-daemon/history/ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* See ring.h. */
int ring_init(struct ring *r, size_t elem, size_t cap)
{
    memset(r, 0, sizeof(*r));
    if (elem == 0 || cap == 0)
        return -EINVAL;
    r->slots = calloc(cap, elem);
    if (!r->slots)
        return -ENOMEM;
    r->elem = elem;
    r->cap = cap;
    return 0;
}

/* See ring.h. */
void ring_free(struct ring *r)
{
    free(r->slots);
    memset(r, 0, sizeof(*r));
}

/* See ring.h. */
void ring_push(struct ring *r, const void *record)
{
    if (!r->slots)
        return;
    memcpy(r->slots + r->next * r->elem, record, r->elem);
    r->next = (r->next + 1) % r->cap;
    if (r->count < r->cap)
        r->count++;
}

/* See ring.h. */
const void *ring_at(const struct ring *r, size_t i)
{
    if (i >= r->count)
        return NULL;
    size_t oldest = (r->next + r->cap - r->count) % r->cap;
    return r->slots + ((oldest + i) % r->cap) * r->elem;
}

/* See ring.h. */
const void *ring_newest(const struct ring *r)
{
    return r->count ? ring_at(r, r->count - 1) : NULL;
}

/* See ring.h. */
size_t ring_bytes(const struct ring *r)
{
    return r->elem * r->cap;
}
