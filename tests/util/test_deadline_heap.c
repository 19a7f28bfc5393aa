/* The deadline heap against a plain array doing the same by brute force: random inserts,
 * moves up and down, removals and pops keep the same earliest entry, pops come out in
 * time order, and every entry knows its place. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host-daemon/util/deadline_heap.h"

#define N 500

static struct deadline_entry entries[N];
static bool in[N];
static int64_t at[N];

static int64_t brute_min(void)
{
    int64_t best = INT64_MAX;
    for (int i = 0; i < N; i++)
        if (in[i] && at[i] < best)
            best = at[i];
    return best;
}

static void check_places(const struct deadline_heap *h)
{
    for (size_t i = 0; i < h->n; i++) {
        assert_int_equal(h->items[i]->pos, i);
        if (i > 0)
            assert_true(h->items[(i - 1) / 2]->at <= h->items[i]->at);
    }
}

static void random_operations(void **state)
{
    (void)state;
    struct deadline_heap h;
    deadline_heap_init(&h);
    for (int i = 0; i < N; i++)
        deadline_entry_init(&entries[i]);
    srand(11);
    for (int step = 0; step < 20000; step++) {
        int i = rand() % N;
        int op = rand() % 4;
        if (op < 2) { /* insert, or move up or down */
            at[i] = rand() % 100000;
            assert_int_equal(deadline_heap_set(&h, &entries[i], at[i]), 0);
            in[i] = true;
        } else if (op == 2) {
            deadline_heap_remove(&h, &entries[i]);
            in[i] = false;
        } else {
            struct deadline_entry *e = deadline_heap_pop_due(&h, 50000);
            int64_t m = brute_min();
            if (m <= 50000) {
                assert_non_null(e);
                assert_int_equal(e->at, m);
                in[e - entries] = false;
            } else {
                assert_null(e);
            }
        }
        assert_int_equal(deadline_entry_queued(&entries[i]), in[i]);
        struct deadline_entry *top = deadline_heap_top(&h);
        if (top)
            assert_int_equal(top->at, brute_min());
        else
            assert_int_equal(brute_min(), INT64_MAX);
        if (step % 997 == 0)
            check_places(&h);
    }
    /* everything left comes out in time order */
    int64_t last = INT64_MIN;
    struct deadline_entry *e;
    while ((e = deadline_heap_pop_due(&h, INT64_MAX))) {
        assert_true(e->at >= last);
        assert_false(deadline_entry_queued(e));
        last = e->at;
    }
    assert_int_equal(h.n, 0);
    deadline_heap_free(&h);
}

/* Nothing is due before its time; a removed entry never comes out. */
static void due_only(void **state)
{
    (void)state;
    struct deadline_heap h;
    struct deadline_entry a, b, c;
    deadline_heap_init(&h);
    deadline_entry_init(&a);
    deadline_entry_init(&b);
    deadline_entry_init(&c);
    deadline_heap_set(&h, &a, 300);
    deadline_heap_set(&h, &b, 100);
    deadline_heap_set(&h, &c, 200);
    assert_null(deadline_heap_pop_due(&h, 99));
    deadline_heap_remove(&h, &b);
    deadline_heap_remove(&h, &b); /* twice: nothing */
    assert_ptr_equal(deadline_heap_pop_due(&h, 250), &c);
    assert_null(deadline_heap_pop_due(&h, 250));
    deadline_heap_set(&h, &a, 10); /* moved earlier */
    assert_ptr_equal(deadline_heap_top(&h), &a);
    assert_ptr_equal(deadline_heap_pop_due(&h, 10), &a);
    assert_null(deadline_heap_top(&h));
    deadline_heap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(random_operations),
        cmocka_unit_test(due_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
