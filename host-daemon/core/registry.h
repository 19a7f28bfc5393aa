/* The guest registry: every guest bellowsd manages and its policy state. The policy wants
 * all guests' state in one array (policy_decide takes `struct policy_guest *guests, size_t
 * n`), so the registry keeps that array and each guest knows its index; removal moves the
 * last guest into the hole. Pointers into the policy array are only valid until the next
 * add or remove. Read access (count, at, find, policy_of) takes a const registry: views
 * and observers use only those. */
#ifndef BELLOWS_REGISTRY_H
#define BELLOWS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/config/config.h"
#include "host-daemon/core/guest.h"
#include "host-daemon/policy/policy.h"

struct registry {
    struct guest **guests;             /* n entries */
    struct policy_guest *policy;       /* n entries, policy[g->index] belongs to g */
    struct policy_decision *decisions; /* n entries, scratch for policy_decide */
    size_t n;
    size_t cap;
};

void registry_init(struct registry *reg);
/* Frees the arrays, not the guests. */
void registry_free(struct registry *reg);

/* Add g: its policy state starts fresh (policy_guest_init). Returns 0 or -ENOMEM.
 * -EEXIST if a guest of that name is present. */
int registry_add(struct registry *reg, struct guest *g);
/* Take g out (its slot is filled by the last guest). */
void registry_remove(struct registry *reg, struct guest *g);
struct guest *registry_find(const struct registry *reg, const char *name);
struct policy_guest *registry_policy(struct registry *reg, const struct guest *g);

/* Read access: the number of guests, the i-th (i < count), g's policy state. */
size_t registry_count(const struct registry *reg);
const struct guest *registry_at(const struct registry *reg, size_t i);
const struct policy_guest *registry_policy_of(const struct registry *reg, const struct guest *g);

/* Apply new floor/ceiling/weight to g and its policy state (policy state kept). */
void registry_update_limits(struct registry *reg, struct guest *g, const struct config_guest *cfg);

#endif
