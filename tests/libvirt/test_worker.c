/* The worker pool for libvirt calls, with fake jobs: calls run off the loop thread and
 * answer on it; a job that hangs holds its own key and one thread, nothing else (other
 * keys complete, the loop's timers keep firing); jobs of one key run in order; closing
 * never waits for a hung job, releases what never ran, and still runs what must run. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>
#include <cmocka.h>

#include "host-daemon/libvirt/libvirt_worker.h"

static uv_loop_t loop;
static uv_thread_t loop_thread;

/* A gate a job waits at until the test opens it (a libvirt call that hangs). */
struct gate {
    uv_mutex_t lock;
    uv_cond_t cond;
    bool open;
    bool entered;
};

struct fake {
    struct lv_job base;
    struct gate *gate;
    int id;
    bool ran_off_loop;
    int *done_order; /* ids in the order their done ran */
    int *n_done;
    int *released;
};

static void gate_init(struct gate *g)
{
    uv_mutex_init(&g->lock);
    uv_cond_init(&g->cond);
    g->open = false;
    g->entered = false;
}

static void gate_open(struct gate *g)
{
    uv_mutex_lock(&g->lock);
    g->open = true;
    uv_cond_broadcast(&g->cond);
    uv_mutex_unlock(&g->lock);
}

static bool gate_entered(struct gate *g)
{
    uv_mutex_lock(&g->lock);
    bool e = g->entered;
    uv_mutex_unlock(&g->lock);
    return e;
}

static void fake_run(struct lv_job *base)
{
    struct fake *f = (struct fake *)base;
    uv_thread_t self = uv_thread_self();
    f->ran_off_loop = !uv_thread_equal(&self, &loop_thread);
    if (f->gate) {
        uv_mutex_lock(&f->gate->lock);
        f->gate->entered = true;
        while (!f->gate->open)
            uv_cond_wait(&f->gate->cond, &f->gate->lock);
        uv_mutex_unlock(&f->gate->lock);
    }
}

static void fake_done(struct lv_job *base)
{
    struct fake *f = (struct fake *)base;
    uv_thread_t self = uv_thread_self();
    assert_true(uv_thread_equal(&self, &loop_thread)); /* answers on the loop */
    assert_true(f->ran_off_loop);
    f->done_order[(*f->n_done)++] = f->id;
    free(f);
}

static void fake_release(struct lv_job *base)
{
    struct fake *f = (struct fake *)base;
    __atomic_add_fetch(f->released, 1, __ATOMIC_SEQ_CST);
    free(f);
}

static int order[32], n_done, released;

static struct fake *fake(const char *key, int id, struct gate *gate)
{
    struct fake *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->base.key, sizeof(f->base.key), "%s", key);
    f->base.run = fake_run;
    f->base.done = fake_done;
    f->base.release = fake_release;
    f->id = id;
    f->gate = gate;
    f->done_order = order;
    f->n_done = &n_done;
    f->released = &released;
    return f;
}

static uv_timer_t guard, tick;
static bool guard_fired;
static int ticks;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = true;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    ticks++;
}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        guard_fired = false;                                                                       \
        uv_timer_start(&guard, on_guard, 5000, 0);                                                 \
        while (!(cond) && !guard_fired)                                                            \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_timer_stop(&guard);                                                                     \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)

static int woken;
static void on_wake(void *opaque)
{
    (void)opaque;
    woken++;
}

static int setup(void **state)
{
    (void)state;
    n_done = released = woken = ticks = 0;
    memset(order, 0, sizeof(order));
    loop_thread = uv_thread_self();
    assert_int_equal(uv_loop_init(&loop), 0);
    uv_timer_init(&loop, &guard);
    uv_timer_init(&loop, &tick);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

/* A hung job (key A) does not hold back key B, nor A's own queue past it, nor the loop. */
static void hung_key_stalls_only_itself(void **state)
{
    (void)state;
    struct lv_pool *p;
    struct gate g;
    gate_init(&g);
    assert_int_equal(lv_pool_new(&loop, 4, on_wake, NULL, &p), 0);

    assert_int_equal(lv_pool_submit(p, &fake("A", 1, &g)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("A", 2, NULL)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("B", 3, NULL)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("", 4, NULL)->base), 0);
    assert_int_equal(n_done, 0); /* never inside submit */
    uv_timer_start(&tick, on_tick, 10, 10);
    RUN_UNTIL(n_done == 2 && ticks >= 5);
    /* B and the keyless one answered, the loop ticked; A's second waits behind its first */
    assert_true((order[0] == 3 && order[1] == 4) || (order[0] == 4 && order[1] == 3));
    assert_true(gate_entered(&g));
    unsigned threads, busy, queued;
    lv_pool_counts(p, &threads, &busy, &queued);
    assert_int_equal(busy, 1);
    assert_int_equal(queued, 1);
    assert_true(threads >= 2 && threads <= 4);
    gate_open(&g);
    RUN_UNTIL(n_done == 4);
    assert_int_equal(order[2], 1); /* A in order */
    assert_int_equal(order[3], 2);
    uv_timer_stop(&tick);
    lv_pool_close(p);
    RUN_UNTIL(lv_pool_live_threads() == 0);
}

/* At most max_threads threads, however many keys hang; more jobs wait, none is lost. */
static void threads_bounded(void **state)
{
    (void)state;
    struct lv_pool *p;
    struct gate g;
    gate_init(&g);
    assert_int_equal(lv_pool_new(&loop, 2, NULL, NULL, &p), 0);
    assert_int_equal(lv_pool_submit(p, &fake("A", 1, &g)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("B", 2, &g)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("C", 3, NULL)->base), 0);
    RUN_UNTIL(gate_entered(&g));
    unsigned threads, busy, queued;
    RUN_UNTIL((lv_pool_counts(p, &threads, &busy, &queued), busy == 2));
    assert_int_equal(threads, 2);
    assert_int_equal(queued, 1);
    assert_int_equal(n_done, 0);
    gate_open(&g);
    RUN_UNTIL(n_done == 3);
    lv_pool_close(p);
    RUN_UNTIL(lv_pool_live_threads() == 0);
}

/* Closing does not wait: a hung job is released when it returns, a queued one at once,
 * a must-run one runs anyway; no done and no wake after close. */
static void close_does_not_wait(void **state)
{
    (void)state;
    struct lv_pool *p;
    struct gate g;
    gate_init(&g);
    assert_int_equal(lv_pool_new(&loop, 1, on_wake, NULL, &p), 0);
    assert_int_equal(lv_pool_submit(p, &fake("A", 1, &g)->base), 0);
    assert_int_equal(lv_pool_submit(p, &fake("B", 2, NULL)->base), 0);
    struct fake *must = fake("C", 3, NULL);
    must->base.must_run = true;
    assert_int_equal(lv_pool_submit(p, &must->base), 0);
    RUN_UNTIL(gate_entered(&g));
    lv_pool_wake(p);
    lv_pool_close(p);
    assert_int_equal(released, 1); /* B, at once, inside close */
    assert_int_equal(lv_pool_live_threads(), 1);
    gate_open(&g);
    RUN_UNTIL(lv_pool_live_threads() == 0);
    assert_int_equal(__atomic_load_n(&released, __ATOMIC_SEQ_CST), 3); /* A, then C ran */
    assert_int_equal(n_done, 0);
    assert_int_equal(woken, 0);
}

static void wake_from_thread(void *arg)
{
    lv_pool_wake(arg);
}

/* Any thread may wake the loop side. */
static void wake_runs_on_loop(void **state)
{
    (void)state;
    struct lv_pool *p;
    uv_thread_t th;
    assert_int_equal(lv_pool_new(&loop, 1, on_wake, NULL, &p), 0);
    assert_int_equal(uv_thread_create(&th, wake_from_thread, p), 0);
    uv_thread_join(&th);
    RUN_UNTIL(woken == 1);
    lv_pool_close(p);
    RUN_UNTIL(lv_pool_live_threads() == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hung_key_stalls_only_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(threads_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(close_does_not_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(wake_runs_on_loop, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
