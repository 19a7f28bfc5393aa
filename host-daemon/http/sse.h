/* Server-sent events (the text/event-stream format): the text of one event, and the
 * bounded queue of text waiting for one client. Pure: no I/O.
 *
 * A queue takes whole events or nothing: an event that does not fit marks the queue
 * overflowed for good (its client is too slow; it is dropped and its browser reconnects
 * and reloads), so memory per client never exceeds the cap. */
#ifndef BELLOWS_SSE_H
#define BELLOWS_SSE_H

#include <stdbool.h>
#include <stddef.h>

/* Write "event: NAME\ndata: ...\n\n" into buf (one data line per line of data; a CR or LF
 * inside data starts a new data line). Like snprintf: returns the length the event needs,
 * writes at most cap bytes with a NUL when cap > 0. name must be a single word. */
size_t sse_format(char *buf, size_t cap, const char *name, const char *data, size_t len);

struct sse_queue {
    char *buf;
    size_t alloc; /* bytes allocated, grows up to cap */
    size_t cap;   /* most bytes held at once */
    size_t start; /* first unread byte */
    size_t len;   /* unread bytes */
    bool overflowed;
};

/* An empty queue that will hold at most cap bytes (allocated as needed). */
void sse_queue_init(struct sse_queue *q, size_t cap);
void sse_queue_free(struct sse_queue *q);

/* Append len bytes (a whole event). Returns false, and marks the queue overflowed, when
 * they do not fit or memory runs out; an overflowed queue takes nothing more. */
bool sse_queue_push(struct sse_queue *q, const char *text, size_t len);

/* Move up to max unread bytes into out; returns how many. */
size_t sse_queue_read(struct sse_queue *q, char *out, size_t max);

#endif
