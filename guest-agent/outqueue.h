/* The agent's bounded queue of messages waiting for the port.
 *
 * A message's kind is "report" or "pressure from source S at level L". A newer message
 * replaces a waiting one of the same kind (the older state is stale) and goes to the back,
 * so the queue stays in time order. When the queue is full the oldest message that is not a
 * critical pressure is evicted. A critical is never evicted: it only leaves the queue by
 * being sent or by being replaced by a newer critical from the same source.
 * Pure: no I/O, no clock. */
#ifndef BELLOWS_OUTQUEUE_H
#define BELLOWS_OUTQUEUE_H

#include "protocol/bellows_protocol.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest capacity; the smallest is OUTQ_MIN, so criticals (one per source) always fit
 * beside at least one other message. */
#define OUTQ_MAX 32
#define OUTQ_MIN (BP_SOURCE_COUNT + 1)

enum outq_result {
    OUTQ_APPENDED, /* added at the back */
    OUTQ_REPLACED, /* a waiting message of the same kind was removed, this one added */
    OUTQ_EVICTED,  /* the queue was full: its oldest non-critical was removed */
};

struct outqueue {
    size_t cap;
    size_t len;
    uint64_t replaced; /* messages superseded by a newer one of their kind */
    uint64_t evicted;  /* messages pushed out because the queue was full */
    struct bp_msg items[OUTQ_MAX];
};

/* Empty queue holding at most cap messages. Returns 0, or -EINVAL when cap is outside
 * OUTQ_MIN..OUTQ_MAX. */
int outq_init(struct outqueue *q, size_t cap);

/* Add a pressure or report message. Returns what happened, or -EINVAL for other types. */
int outq_push(struct outqueue *q, const struct bp_msg *msg);

/* Take the oldest message. Returns false when the queue is empty. */
bool outq_pop(struct outqueue *q, struct bp_msg *ret_msg);

#endif
