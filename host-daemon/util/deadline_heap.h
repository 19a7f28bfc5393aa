/* A min-heap of deadlines: which item is due first, in O(log n) per change. The daemon
 * keeps one entry per guest (when its decision may change by itself), so a timer event
 * costs the same at 100 guests as at 10,000. Entries are embedded in their items and know
 * their place; the heap only holds pointers. Pure: no clock, times are numbers. */
#ifndef BELLOWS_DEADLINE_HEAP_H
#define BELLOWS_DEADLINE_HEAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEADLINE_HEAP_NONE ((size_t)-1)

/* Embed in an item; zero-initialised, call deadline_entry_init() before use. */
struct deadline_entry {
    int64_t at; /* meaningful while in the heap */
    size_t pos; /* index in the heap, DEADLINE_HEAP_NONE when not in it */
};

struct deadline_heap {
    struct deadline_entry **items;
    size_t n, cap;
};

/* An entry in no heap. */
void deadline_entry_init(struct deadline_entry *e);

/* Whether e is in a heap. */
bool deadline_entry_queued(const struct deadline_entry *e);

void deadline_heap_init(struct deadline_heap *h);
void deadline_heap_free(struct deadline_heap *h);

/* Put e in the heap at `at`, or move it there if it is in already. 0 or -ENOMEM. */
int deadline_heap_set(struct deadline_heap *h, struct deadline_entry *e, int64_t at);

/* Take e out (nothing if it is not in). */
void deadline_heap_remove(struct deadline_heap *h, struct deadline_entry *e);

/* The earliest entry, NULL when empty. */
struct deadline_entry *deadline_heap_top(const struct deadline_heap *h);

/* Take out and return the earliest entry if it is due (at <= now), else NULL. */
struct deadline_entry *deadline_heap_pop_due(struct deadline_heap *h, int64_t now);

#endif
