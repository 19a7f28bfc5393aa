/* Guest registry: guests, their policy state in one array, and their decision rings. */
#include "host-daemon/core/registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* See registry.h. */
void registry_init(struct registry *reg)
{
    memset(reg, 0, sizeof(*reg));
}

/* See registry.h. */
void registry_free(struct registry *reg)
{
    free(reg->guests);
    free(reg->policy);
    free(reg->decisions);
    registry_init(reg);
}

/* See registry.h. */
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
    return g;
}

/* See registry.h. */
void guest_free(struct guest *g)
{
    free(g);
}

static int grow(struct registry *reg)
{
    size_t cap = reg->cap ? reg->cap * 2 : 16;
    struct guest **guests = realloc(reg->guests, cap * sizeof(*guests));
    if (!guests)
        return -ENOMEM;
    reg->guests = guests;
    struct policy_guest *policy = realloc(reg->policy, cap * sizeof(*policy));
    if (!policy)
        return -ENOMEM;
    reg->policy = policy;
    struct policy_decision *decisions = realloc(reg->decisions, cap * sizeof(*decisions));
    if (!decisions)
        return -ENOMEM;
    reg->decisions = decisions;
    reg->cap = cap;
    return 0;
}

/* See registry.h. */
int registry_add(struct registry *reg, struct guest *g)
{
    if (registry_find(reg, g->name))
        return -EEXIST;
    if (reg->n == reg->cap && grow(reg) < 0)
        return -ENOMEM;
    g->index = reg->n;
    reg->guests[reg->n] = g;
    policy_guest_init(&reg->policy[reg->n], g->cfg.floor_bytes, g->cfg.ceiling_bytes,
                      g->cfg.weight);
    reg->n++;
    return 0;
}

/* See registry.h. */
void registry_remove(struct registry *reg, struct guest *g)
{
    size_t i = g->index;
    size_t last = reg->n - 1;
    if (i != last) {
        reg->guests[i] = reg->guests[last];
        reg->policy[i] = reg->policy[last];
        reg->guests[i]->index = i;
    }
    reg->n--;
}

/* See registry.h. */
struct guest *registry_find(const struct registry *reg, const char *name)
{
    for (size_t i = 0; i < reg->n; i++)
        if (strcmp(reg->guests[i]->name, name) == 0)
            return reg->guests[i];
    return NULL;
}

/* See registry.h. */
struct guest *registry_find_uuid(const struct registry *reg, const char *uuid)
{
    for (size_t i = 0; i < reg->n; i++)
        if (reg->guests[i]->backend == GUEST_BACKEND_LIBVIRT &&
            strcmp(reg->guests[i]->uuid, uuid) == 0)
            return reg->guests[i];
    return NULL;
}

/* See registry.h. */
struct policy_guest *registry_policy(struct registry *reg, const struct guest *g)
{
    return &reg->policy[g->index];
}

/* See registry.h. */
void registry_update_limits(struct registry *reg, struct guest *g, const struct config_guest *cfg)
{
    struct policy_guest *p = registry_policy(reg, g);
    g->cfg.floor_bytes = cfg->floor_bytes;
    g->cfg.ceiling_bytes = cfg->ceiling_bytes;
    g->cfg.weight = cfg->weight;
    p->floor_bytes = cfg->floor_bytes;
    p->ceiling_bytes = cfg->ceiling_bytes;
    p->weight = cfg->weight;
}

/* See registry.h. */
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

/* See registry.h. */
const struct decision_entry *guest_ring_entry(const struct guest *g, size_t i)
{
    if (i >= g->ring_count)
        return NULL;
    size_t slot = (g->ring_next + GUEST_DECISION_RING - 1 - i) % GUEST_DECISION_RING;
    return &g->ring[slot];
}

/* See registry.h. */
struct decision_entry *guest_ring_find(struct guest *g, uint64_t seq)
{
    for (size_t i = 0; i < g->ring_count; i++) {
        struct decision_entry *e = (struct decision_entry *)guest_ring_entry(g, i);
        if (e->seq == seq)
            return e;
    }
    return NULL;
}

/* See registry.h. */
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
