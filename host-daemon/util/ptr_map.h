/* A hash map from pointers to pointers (open addressing, linear probing, deletion by
 * backward shift: no tombstones). For state a module keeps per object of another layer
 * (e.g. per guest) without that object knowing. Pure. */
#ifndef BELLOWS_PTR_MAP_H
#define BELLOWS_PTR_MAP_H

#include <stddef.h>

struct ptr_map {
    struct ptr_map_slot {
        const void *key; /* NULL: empty */
        void *value;
    } * slots;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

void ptr_map_init(struct ptr_map *m);
/* Frees the table, not the values. */
void ptr_map_free(struct ptr_map *m);

/* Set key's value (key not NULL). Returns 0 or -ENOMEM (the map unchanged). */
int ptr_map_put(struct ptr_map *m, const void *key, void *value);
/* key's value, NULL when absent. */
void *ptr_map_get(const struct ptr_map *m, const void *key);
/* Take key out; returns its value, NULL when absent. */
void *ptr_map_remove(struct ptr_map *m, const void *key);

#endif
