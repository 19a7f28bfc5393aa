/* A fixed-capacity ring of fixed-size records: the newest overwrites the oldest. Pure, one
 * allocation at init, nothing after. */
#ifndef BELLOWS_RING_H
#define BELLOWS_RING_H

#include <stddef.h>

struct ring {
    unsigned char *slots;
    size_t elem;  /* bytes per record */
    size_t cap;   /* records */
    size_t next;  /* slot the next record goes to */
    size_t count; /* records held, up to cap */
};

/* Allocate room for cap records of elem bytes. Returns 0 or -ENOMEM (-EINVAL for 0). */
int ring_init(struct ring *r, size_t elem, size_t cap);
void ring_free(struct ring *r);

/* Append a copy of the record, dropping the oldest when full. */
void ring_push(struct ring *r, const void *record);

/* The i-th oldest record (0 = oldest held), NULL past the end. */
const void *ring_at(const struct ring *r, size_t i);

/* The newest record, NULL when empty. */
const void *ring_newest(const struct ring *r);

/* Bytes allocated for the slots. */
size_t ring_bytes(const struct ring *r);

#endif
