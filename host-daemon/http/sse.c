/* Server-sent events: event text and bounded per-client queues. */
#include "host-daemon/http/sse.h"

#include <stdlib.h>
#include <string.h>

/* Copy n bytes at *pos when they fit (always count them). */
static void emit(char *buf, size_t cap, size_t *pos, const char *s, size_t n)
{
    if (cap > 0 && *pos < cap - 1) {
        size_t room = cap - 1 - *pos;
        memcpy(buf + *pos, s, n < room ? n : room);
    }
    *pos += n;
}

/* See sse.h. */
size_t sse_format(char *buf, size_t cap, const char *name, const char *data, size_t len)
{
    size_t pos = 0;
    emit(buf, cap, &pos, "event: ", 7);
    emit(buf, cap, &pos, name, strlen(name));
    emit(buf, cap, &pos, "\ndata: ", 7);
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' || data[i] == '\n') {
            if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
                i++;
            emit(buf, cap, &pos, "\ndata: ", 7);
            continue;
        }
        emit(buf, cap, &pos, &data[i], 1);
    }
    emit(buf, cap, &pos, "\n\n", 2);
    if (cap > 0)
        buf[pos < cap ? pos : cap - 1] = '\0';
    return pos;
}

/* See sse.h. */
void sse_queue_init(struct sse_queue *q, size_t cap)
{
    memset(q, 0, sizeof(*q));
    q->cap = cap;
}

/* See sse.h. */
void sse_queue_free(struct sse_queue *q)
{
    free(q->buf);
    sse_queue_init(q, q->cap);
}

/* See sse.h. */
bool sse_queue_push(struct sse_queue *q, const char *text, size_t len)
{
    if (q->overflowed)
        return false;
    if (len > q->cap - q->len) {
        q->overflowed = true;
        return false;
    }
    if (q->start + q->len + len > q->alloc) {
        /* Slide the unread bytes to the front, then grow if that is not enough. */
        if (q->len)
            memmove(q->buf, q->buf + q->start, q->len);
        q->start = 0;
        if (q->len + len > q->alloc) {
            size_t alloc = q->alloc ? q->alloc : 4096;
            while (alloc < q->len + len)
                alloc *= 2;
            if (alloc > q->cap)
                alloc = q->cap;
            char *buf = realloc(q->buf, alloc);
            if (!buf) {
                q->overflowed = true;
                return false;
            }
            q->buf = buf;
            q->alloc = alloc;
        }
    }
    memcpy(q->buf + q->start + q->len, text, len);
    q->len += len;
    return true;
}

/* See sse.h. */
size_t sse_queue_read(struct sse_queue *q, char *out, size_t max)
{
    size_t n = q->len < max ? q->len : max;
    if (n == 0)
        return 0;
    memcpy(out, q->buf + q->start, n);
    q->start += n;
    q->len -= n;
    if (q->len == 0)
        q->start = 0;
    return n;
}
