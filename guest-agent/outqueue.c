/* Bounded, coalescing queue of outgoing agent messages. */
#include "guest-agent/outqueue.h"

#include <errno.h>
#include <string.h>

int outq_init(struct outqueue *q, size_t cap)
{
    if (cap < OUTQ_MIN || cap > OUTQ_MAX)
        return -EINVAL;
    memset(q, 0, sizeof(*q));
    q->cap = cap;
    return 0;
}

static bool same_kind(const struct bp_msg *a, const struct bp_msg *b)
{
    if (a->type != b->type)
        return false;
    if (a->type == BP_MSG_REPORT)
        return true;
    return a->u.pressure.source == b->u.pressure.source &&
           a->u.pressure.level == b->u.pressure.level;
}

static bool is_critical(const struct bp_msg *m)
{
    return m->type == BP_MSG_PRESSURE && m->u.pressure.level == BP_LEVEL_CRITICAL;
}

static void remove_at(struct outqueue *q, size_t i)
{
    memmove(&q->items[i], &q->items[i + 1], (q->len - i - 1) * sizeof(q->items[0]));
    q->len--;
}

int outq_push(struct outqueue *q, const struct bp_msg *msg)
{
    int result = OUTQ_APPENDED;

    if (msg->type != BP_MSG_PRESSURE && msg->type != BP_MSG_REPORT)
        return -EINVAL;
    for (size_t i = 0; i < q->len; i++) {
        if (same_kind(&q->items[i], msg)) {
            remove_at(q, i);
            q->replaced++;
            result = OUTQ_REPLACED;
            break;
        }
    }
    if (q->len == q->cap) {
        /* Kinds are unique in the queue, so at most BP_SOURCE_COUNT criticals wait and
         * cap >= OUTQ_MIN guarantees a non-critical to evict. */
        for (size_t i = 0; i < q->len; i++) {
            if (!is_critical(&q->items[i])) {
                remove_at(q, i);
                q->evicted++;
                result = OUTQ_EVICTED;
                break;
            }
        }
    }
    q->items[q->len++] = *msg;
    return result;
}

bool outq_pop(struct outqueue *q, struct bp_msg *ret_msg)
{
    if (q->len == 0)
        return false;
    *ret_msg = q->items[0];
    remove_at(q, 0);
    return true;
}
