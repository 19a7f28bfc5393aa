/* A guest: making and freeing one, where it comes from, and its ring of recent moves. */
#include "host-daemon/core/guest.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* See guest.h. */
struct guest *guest_new(const struct config_guest *cfg, bool from_file)
{
    struct guest *g = calloc(1, sizeof(*g));
    if (!g)
        return NULL;
    strcpy(g->name, cfg->name);
    g->cfg = *cfg;
    g->from_file = from_file;
    if (from_file)
        g->file_cfg = *cfg;
    g->last_decision_at = POLICY_NEVER;
    g->channel_up_at = -1;
    deadline_entry_init(&g->deadline);
    return g;
}

/* See guest.h. */
void guest_free(struct guest *g)
{
    free(g);
}

/* See guest.h. */
const char *guest_origin(const struct guest *g)
{
    return g->source ? g->source : g->from_file ? "file" : "runtime";
}

/* See guest.h. */
struct decision_entry *guest_record_move(struct guest *g, const struct policy_decision *d,
                                         int64_t wall_ms, enum move_result result)
{
    struct decision_entry *e = &g->ring[g->ring_next];
    memset(e, 0, sizeof(*e));
    e->seq = ++g->ring_seq;
    e->wall_ms = wall_ms;
    e->action = d->action;
    e->reason = d->reason;
    e->from_bytes = d->from_bytes;
    e->to_bytes = d->to_bytes;
    e->result = result;
    g->ring_next = (g->ring_next + 1) % GUEST_DECISION_RING;
    if (g->ring_count < GUEST_DECISION_RING)
        g->ring_count++;
    return e;
}

/* See guest.h. */
const struct decision_entry *guest_ring_entry(const struct guest *g, size_t i)
{
    if (i >= g->ring_count)
        return NULL;
    size_t slot = (g->ring_next + GUEST_DECISION_RING - 1 - i) % GUEST_DECISION_RING;
    return &g->ring[slot];
}

/* See guest.h. */
struct decision_entry *guest_ring_find(struct guest *g, uint64_t seq)
{
    for (size_t i = 0; i < g->ring_count; i++) {
        struct decision_entry *e = (struct decision_entry *)guest_ring_entry(g, i);
        if (e->seq == seq)
            return e;
    }
    return NULL;
}

/* See guest.h. */
const char *move_result_name(enum move_result r)
{
    switch (r) {
    case MOVE_PENDING:
        return "pending";
    case MOVE_DONE:
        return "done";
    case MOVE_FAILED:
        return "failed";
    case MOVE_ADVISORY:
        return "advisory";
    }
    return "?";
}
