/* Guest registry: guests and their policy state in one array, by index and by name. */
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
struct policy_guest *registry_policy(struct registry *reg, const struct guest *g)
{
    return &reg->policy[g->index];
}

/* See registry.h. */
size_t registry_count(const struct registry *reg)
{
    return reg->n;
}

/* See registry.h. */
const struct guest *registry_at(const struct registry *reg, size_t i)
{
    return i < reg->n ? reg->guests[i] : NULL;
}

/* See registry.h. */
const struct policy_guest *registry_policy_of(const struct registry *reg, const struct guest *g)
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
