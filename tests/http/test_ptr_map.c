/* The pointer map: put, get, replace, remove, growth, and removal inside probe runs
 * checked against a plain array over many random operations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/util/ptr_map.h"

static void basics(void **state)
{
    (void)state;
    struct ptr_map m;
    ptr_map_init(&m);
    int a, b, c;
    assert_null(ptr_map_get(&m, &a));
    assert_null(ptr_map_remove(&m, &a));
    assert_int_equal(ptr_map_put(&m, &a, &b), 0);
    assert_ptr_equal(ptr_map_get(&m, &a), &b);
    assert_int_equal(ptr_map_put(&m, &a, &c), 0); /* replace */
    assert_int_equal(m.n, 1);
    assert_ptr_equal(ptr_map_get(&m, &a), &c);
    assert_ptr_equal(ptr_map_remove(&m, &a), &c);
    assert_null(ptr_map_get(&m, &a));
    assert_int_equal(m.n, 0);
    ptr_map_free(&m);
}

/* Keys from one array (close addresses, as guests from one allocator); random puts and
 * removes mirrored in a plain table, every key checked after each step. */
static void against_a_table(void **state)
{
    (void)state;
    enum { N = 600, STEPS = 20000 };
    static char keys[N];
    static void *want[N];
    struct ptr_map m;
    ptr_map_init(&m);
    srand(7);
    size_t count = 0;
    for (int step = 0; step < STEPS; step++) {
        size_t k = (size_t)rand() % N;
        if (rand() % 3) {
            void *v = (void *)(uintptr_t)(step + 1);
            assert_int_equal(ptr_map_put(&m, &keys[k], v), 0);
            count += want[k] == NULL;
            want[k] = v;
        } else {
            assert_ptr_equal(ptr_map_remove(&m, &keys[k]), want[k]);
            count -= want[k] != NULL;
            want[k] = NULL;
        }
        assert_int_equal(m.n, count);
        if (step % 97 == 0)
            for (size_t i = 0; i < N; i++)
                assert_ptr_equal(ptr_map_get(&m, &keys[i]), want[i]);
    }
    for (size_t i = 0; i < N; i++)
        assert_ptr_equal(ptr_map_get(&m, &keys[i]), want[i]);
    assert_true(m.cap >= 16 && (m.cap & (m.cap - 1)) == 0);
    ptr_map_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basics),
        cmocka_unit_test(against_a_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
