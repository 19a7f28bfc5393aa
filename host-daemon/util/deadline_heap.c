/* A binary min-heap of embedded deadline entries (see deadline_heap.h). */
#include "host-daemon/util/deadline_heap.h"

#include <errno.h>
#include <stdlib.h>

/* See deadline_heap.h. */
void deadline_entry_init(struct deadline_entry *e)
{
    e->at = 0;
    e->pos = DEADLINE_HEAP_NONE;
}

/* See deadline_heap.h. */
bool deadline_entry_queued(const struct deadline_entry *e)
{
    return e->pos != DEADLINE_HEAP_NONE;
}

/* See deadline_heap.h. */
void deadline_heap_init(struct deadline_heap *h)
{
    h->items = NULL;
    h->n = h->cap = 0;
}

/* See deadline_heap.h. */
void deadline_heap_free(struct deadline_heap *h)
{
    for (size_t i = 0; i < h->n; i++)
        h->items[i]->pos = DEADLINE_HEAP_NONE;
    free(h->items);
    deadline_heap_init(h);
}

static void place(struct deadline_heap *h, size_t i, struct deadline_entry *e)
{
    h->items[i] = e;
    e->pos = i;
}

static void sift_up(struct deadline_heap *h, size_t i)
{
    struct deadline_entry *e = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (h->items[parent]->at <= e->at)
            break;
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, e);
}

static void sift_down(struct deadline_heap *h, size_t i)
{
    struct deadline_entry *e = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->items[child + 1]->at < h->items[child]->at)
            child++;
        if (e->at <= h->items[child]->at)
            break;
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, e);
}

/* See deadline_heap.h. */
int deadline_heap_set(struct deadline_heap *h, struct deadline_entry *e, int64_t at)
{
    if (e->pos != DEADLINE_HEAP_NONE) {
        int64_t old = e->at;
        e->at = at;
        if (at < old)
            sift_up(h, e->pos);
        else
            sift_down(h, e->pos);
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct deadline_entry **p = realloc(h->items, cap * sizeof(*p));
        if (!p)
            return -ENOMEM;
        h->items = p;
        h->cap = cap;
    }
    e->at = at;
    place(h, h->n++, e);
    sift_up(h, e->pos);
    return 0;
}

/* See deadline_heap.h. */
void deadline_heap_remove(struct deadline_heap *h, struct deadline_entry *e)
{
    size_t i = e->pos;
    if (i == DEADLINE_HEAP_NONE)
        return;
    e->pos = DEADLINE_HEAP_NONE;
    struct deadline_entry *last = h->items[--h->n];
    if (i == h->n)
        return;
    place(h, i, last);
    /* The moved entry may belong above or below its new place. */
    if (i > 0 && h->items[(i - 1) / 2]->at > last->at)
        sift_up(h, i);
    else
        sift_down(h, i);
}

/* See deadline_heap.h. */
struct deadline_entry *deadline_heap_top(const struct deadline_heap *h)
{
    return h->n ? h->items[0] : NULL;
}

/* See deadline_heap.h. */
struct deadline_entry *deadline_heap_pop_due(struct deadline_heap *h, int64_t now)
{
    struct deadline_entry *e = deadline_heap_top(h);
    if (!e || e->at > now)
        return NULL;
    deadline_heap_remove(h, e);
    return e;
}
