/* Pointer-to-pointer hash map, open addressing. */
#include "host-daemon/util/ptr_map.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* See ptr_map.h. */
void ptr_map_init(struct ptr_map *m)
{
    memset(m, 0, sizeof(*m));
}

/* See ptr_map.h. */
void ptr_map_free(struct ptr_map *m)
{
    free(m->slots);
    ptr_map_init(m);
}

static size_t hash(const void *key, size_t cap)
{
    /* Fibonacci hashing of the address: allocations are aligned, the low bits alike. */
    uint64_t h = (uint64_t)(uintptr_t)key * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 32) & (cap - 1);
}

static size_t find(const struct ptr_map *m, const void *key)
{
    size_t i = hash(key, m->cap);
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static int grow(struct ptr_map *m)
{
    size_t cap = m->cap ? m->cap * 2 : 16;
    struct ptr_map_slot *slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return -ENOMEM;
    struct ptr_map old = *m;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            m->slots[find(m, old.slots[i].key)] = old.slots[i];
    free(old.slots);
    return 0;
}

/* See ptr_map.h. */
int ptr_map_put(struct ptr_map *m, const void *key, void *value)
{
    /* At most 3/4 full: probes stay short. */
    if ((m->n + 1) * 4 > m->cap * 3 && grow(m) < 0)
        return -ENOMEM;
    size_t i = find(m, key);
    if (!m->slots[i].key)
        m->n++;
    m->slots[i].key = key;
    m->slots[i].value = value;
    return 0;
}

/* See ptr_map.h. */
void *ptr_map_get(const struct ptr_map *m, const void *key)
{
    if (m->n == 0)
        return NULL;
    size_t i = find(m, key);
    return m->slots[i].key ? m->slots[i].value : NULL;
}

/* See ptr_map.h. */
void *ptr_map_remove(struct ptr_map *m, const void *key)
{
    if (m->n == 0)
        return NULL;
    size_t i = find(m, key);
    if (!m->slots[i].key)
        return NULL;
    void *value = m->slots[i].value;
    m->slots[i].key = NULL;
    m->n--;
    /* Shift back the entries of the same run that probed past the hole. */
    size_t hole = i;
    for (size_t j = (i + 1) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        size_t home = hash(m->slots[j].key, m->cap);
        /* j may move into the hole when its home is not in (hole, j], cyclically. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays)
            continue;
        m->slots[hole] = m->slots[j];
        m->slots[j].key = NULL;
        hole = j;
    }
    return value;
}
