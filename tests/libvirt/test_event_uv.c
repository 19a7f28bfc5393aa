/* libvirt's event API (virEventAddHandle & co.) dispatched to libvirt_event_uv on a uv loop,
 * exercised with pipes and socketpairs: events delivered, disabled, removed (also from
 * inside callbacks and from other threads), free callbacks run later, on the loop,
 * timeout semantics -1 / 0 / N ms. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <uv.h>
#include <cmocka.h>

#include "host-daemon/libvirt/libvirt_event_uv.h"

static uv_loop_t loop;

/* What callbacks saw. */
struct seen {
    int calls;
    int last_watch;
    int last_fd;
    int last_events;
    int all_events;
    int frees;
    int remove_self;       /* remove the watch / timeout from inside its callback */
    int frees_in_callback; /* frees counted at the moment the callback removed itself */
};

static void on_handle(int watch, int fd, int events, void *opaque)
{
    struct seen *s = opaque;
    s->calls++;
    s->last_watch = watch;
    s->last_fd = fd;
    s->last_events = events;
    s->all_events |= events;
    if (s->remove_self) {
        assert_int_equal(virEventRemoveHandle(watch), 0);
        s->frees_in_callback = s->frees;
    }
}

static void on_timeout(int timer, void *opaque)
{
    struct seen *s = opaque;
    s->calls++;
    s->last_watch = timer;
    if (s->remove_self) {
        assert_int_equal(virEventRemoveTimeout(timer), 0);
        s->frees_in_callback = s->frees;
    }
}

static void on_free(void *opaque)
{
    struct seen *s = opaque;
    s->frees++;
}

/* Run the loop until *count reaches want, or until limit_ms passed (a guard, not a wait). */
static uv_timer_t guard;
static int guard_expired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_expired = 1;
}

static void run_until(const int *count, int want, uint64_t limit_ms)
{
    guard_expired = 0;
    uv_timer_start(&guard, on_guard, limit_ms, 0);
    while ((count == NULL || *count < want) && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
}

/* Let every queued close callback (and so every ff) run. */
static void drain(void)
{
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static void make_pipe(int fds[2])
{
    assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
}

static void test_readable_then_removed(void **state)
{
    (void)state;
    struct seen s = {0};
    int fds[2];
    make_pipe(fds);

    int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &s, on_free);
    assert_true(w > 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 0); /* nothing to read yet */

    assert_int_equal(write(fds[1], "x", 1), 1);
    run_until(&s.calls, 1, 2000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.last_watch, w);
    assert_int_equal(s.last_fd, fds[0]);
    assert_int_equal(s.last_events, VIR_EVENT_HANDLE_READABLE);

    /* The byte is still unread: level triggered, it fires again. */
    run_until(&s.calls, 2, 2000);
    assert_int_equal(s.calls, 2);

    assert_int_equal(virEventRemoveHandle(w), 0);
    assert_int_equal(s.frees, 0);                  /* never from inside the remove call */
    assert_int_equal(virEventRemoveHandle(w), -1); /* already removed */
    drain();
    assert_int_equal(s.frees, 1);
    assert_int_equal(s.calls, 2); /* still readable, but removed: no more calls */
    assert_int_equal(libvirt_event_uv_pending(), 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_update_to_zero_disables(void **state)
{
    (void)state;
    struct seen s = {0};
    int fds[2];
    make_pipe(fds);
    assert_int_equal(write(fds[1], "x", 1), 1);

    int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &s, on_free);
    assert_true(w > 0);
    virEventUpdateHandle(w, 0);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 0);

    virEventUpdateHandle(w, VIR_EVENT_HANDLE_READABLE);
    run_until(&s.calls, 1, 2000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.last_events, VIR_EVENT_HANDLE_READABLE);

    assert_int_equal(virEventRemoveHandle(w), 0);
    drain();
    assert_int_equal(s.frees, 1);
    close(fds[0]);
    close(fds[1]);
}

static void test_remove_inside_callback(void **state)
{
    (void)state;
    struct seen s = {.remove_self = 1};
    int fds[2];
    make_pipe(fds);
    assert_int_equal(write(fds[1], "x", 1), 1);

    int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &s, on_free);
    assert_true(w > 0);
    run_until(&s.frees, 1, 2000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.frees_in_callback, 0);
    assert_int_equal(s.frees, 1);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 1);
    close(fds[0]);
    close(fds[1]);
}

static void test_writable(void **state)
{
    (void)state;
    struct seen s = {0};
    int fds[2];
    make_pipe(fds);

    int w = virEventAddHandle(fds[1], VIR_EVENT_HANDLE_WRITABLE, on_handle, &s, NULL);
    assert_true(w > 0);
    run_until(&s.calls, 1, 2000);
    assert_int_equal(s.last_events, VIR_EVENT_HANDLE_WRITABLE);
    assert_int_equal(s.last_fd, fds[1]);
    assert_int_equal(virEventRemoveHandle(w), 0); /* no ff given: fine */
    drain();
    close(fds[0]);
    close(fds[1]);
}

static void test_hangup_from_peer(void **state)
{
    (void)state;
    struct seen s = {0};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    int w = virEventAddHandle(sv[0], VIR_EVENT_HANDLE_READABLE, on_handle, &s, on_free);
    assert_true(w > 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 0);
    close(sv[1]);
    run_until(&s.calls, 1, 2000);
    assert_true(s.last_events & VIR_EVENT_HANDLE_HANGUP);
    assert_int_equal(virEventRemoveHandle(w), 0);
    drain();
    assert_int_equal(s.frees, 1);
    close(sv[0]);
}

static void test_error_on_broken_pipe(void **state)
{
    (void)state;
    struct seen s = {0};
    int fds[2];
    make_pipe(fds);
    /* Fill the pipe so the writer is not writable and only the error can wake it. */
    char buf[4096] = {0};
    while (write(fds[1], buf, sizeof(buf)) > 0)
        ;

    int w = virEventAddHandle(fds[1], VIR_EVENT_HANDLE_WRITABLE, on_handle, &s, on_free);
    assert_true(w > 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 0);
    close(fds[0]); /* no reader left: EPOLLERR on the writer */
    run_until(&s.calls, 1, 2000);
    assert_true(s.last_events & VIR_EVENT_HANDLE_ERROR);
    assert_int_equal(virEventRemoveHandle(w), 0);
    drain();
    assert_int_equal(s.frees, 1);
    close(fds[1]);
}

static void test_same_fd_twice(void **state)
{
    (void)state;
    struct seen rd = {0}, wr = {0};
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);

    int w1 = virEventAddHandle(sv[0], VIR_EVENT_HANDLE_READABLE, on_handle, &rd, on_free);
    int w2 = virEventAddHandle(sv[0], VIR_EVENT_HANDLE_WRITABLE, on_handle, &wr, on_free);
    assert_true(w1 > 0);
    assert_true(w2 > 0);
    assert_int_not_equal(w1, w2);

    run_until(&wr.calls, 1, 2000);
    assert_int_equal(wr.last_watch, w2);
    assert_int_equal(wr.last_fd, sv[0]);
    assert_int_equal(wr.last_events, VIR_EVENT_HANDLE_WRITABLE);
    assert_int_equal(rd.calls, 0);

    assert_int_equal(write(sv[1], "x", 1), 1);
    run_until(&rd.calls, 1, 2000);
    assert_int_equal(rd.last_watch, w1);
    assert_int_equal(rd.last_fd, sv[0]);
    assert_int_equal(rd.last_events, VIR_EVENT_HANDLE_READABLE);

    assert_int_equal(virEventRemoveHandle(w1), 0);
    assert_int_equal(virEventRemoveHandle(w2), 0);
    drain();
    assert_int_equal(rd.frees + wr.frees, 2);
    close(sv[0]);
    close(sv[1]);
}

static void test_timeout_zero_every_iteration(void **state)
{
    (void)state;
    struct seen s = {0};
    int t = virEventAddTimeout(0, on_timeout, &s, on_free);
    assert_true(t > 0);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 5);
    /* UV_RUN_ONCE would block for I/O; a 0 timeout keeps it from blocking. */
    for (int i = 0; i < 3; i++)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(s.calls, 8);
    assert_int_equal(s.last_watch, t);

    virEventUpdateTimeout(t, -1);
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 8);

    assert_int_equal(virEventRemoveTimeout(t), 0);
    assert_int_equal(s.frees, 0);
    assert_int_equal(virEventRemoveTimeout(t), -1);
    drain();
    assert_int_equal(s.frees, 1);
}

static void test_timeout_disabled_then_enabled(void **state)
{
    (void)state;
    struct seen s = {0};
    int t = virEventAddTimeout(-1, on_timeout, &s, on_free);
    assert_true(t > 0);
    run_until(NULL, 0, 50);
    assert_int_equal(s.calls, 0);

    virEventUpdateTimeout(t, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 1);

    assert_int_equal(virEventRemoveTimeout(t), 0);
    drain();
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.frees, 1);
}

static void test_timeout_periodic(void **state)
{
    (void)state;
    struct seen s = {0};
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    int t = virEventAddTimeout(20, on_timeout, &s, on_free);
    assert_true(t > 0);
    run_until(&s.calls, 3, 2000);
    assert_int_equal(s.calls, 3); /* periodic: fires again without being re-armed */
    assert_true(uv_now(&loop) - start >= 60);

    /* From periodic to every iteration, and back. */
    virEventUpdateTimeout(t, 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 5);
    virEventUpdateTimeout(t, 1000);
    uv_run(&loop, UV_RUN_NOWAIT);
    assert_int_equal(s.calls, 5);

    assert_int_equal(virEventRemoveTimeout(t), 0);
    drain();
    assert_int_equal(s.frees, 1);
}

static void test_timeout_removed_inside_callback(void **state)
{
    (void)state;
    struct seen s = {.remove_self = 1};
    int t = virEventAddTimeout(5, on_timeout, &s, on_free);
    assert_true(t > 0);
    run_until(&s.frees, 1, 2000);
    assert_int_equal(s.calls, 1);
    assert_int_equal(s.frees_in_callback, 0);
    assert_int_equal(s.frees, 1);
    run_until(NULL, 0, 30);
    assert_int_equal(s.calls, 1);
}

static void test_unknown_ids(void **state)
{
    (void)state;
    assert_int_equal(virEventRemoveHandle(999999), -1);
    assert_int_equal(virEventRemoveTimeout(999999), -1);
    virEventUpdateHandle(999999, VIR_EVENT_HANDLE_READABLE); /* ignored, no crash */
    virEventUpdateTimeout(999999, 0);
    assert_int_equal(libvirt_event_uv_pending(), 0);
}

/* What a thread asks, and what it got back. */
struct thread_ask {
    int fd;
    struct seen *seen;
    int watch, timer;
    int step; /* 0: add both; 1: update them; 2: remove them */
};

static uv_thread_t main_thread;

static void on_handle_checked(int watch, int fd, int events, void *opaque)
{
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &main_thread))
        ((struct seen *)opaque)->remove_self = -1; /* marks a callback off the loop thread */
    on_handle(watch, fd, events, opaque);
}

static void on_timeout_checked(int timer, void *opaque)
{
    uv_thread_t self = uv_thread_self();
    if (!uv_thread_equal(&self, &main_thread))
        ((struct seen *)opaque)->remove_self = -1;
    on_timeout(timer, opaque);
}

static void from_thread(void *arg)
{
    struct thread_ask *a = arg;
    switch (a->step) {
    case 0:
        a->watch = virEventAddHandle(a->fd, VIR_EVENT_HANDLE_READABLE, on_handle_checked,
                                     &a->seen[0], on_free);
        a->timer = virEventAddTimeout(10, on_timeout_checked, &a->seen[1], on_free);
        break;
    case 1:
        virEventUpdateHandle(a->watch, 0);
        virEventUpdateTimeout(a->timer, -1);
        break;
    case 2:
        assert_int_equal(virEventRemoveHandle(a->watch), 0);
        assert_int_equal(virEventRemoveTimeout(a->timer), 0);
        break;
    }
}

static void run_in_thread(struct thread_ask *a, int step)
{
    uv_thread_t th;
    a->step = step;
    assert_int_equal(uv_thread_create(&th, from_thread, a), 0);
    uv_thread_join(&th);
}

/* libvirt's remote driver changes its watch from whichever thread makes a call: adds,
 * updates and removals from another thread take effect on the loop (woken for it), and
 * every callback and free callback runs on the loop's thread. */
static void test_other_thread(void **state)
{
    (void)state;
    struct seen s[2] = {{0}, {0}};
    struct thread_ask a = {.seen = s};
    int fds[2];
    make_pipe(fds);
    a.fd = fds[0];
    main_thread = uv_thread_self();

    run_in_thread(&a, 0);
    assert_true(a.watch > 0);
    assert_true(a.timer > 0);
    assert_true(a.watch != a.timer);
    assert_int_equal(libvirt_event_uv_pending(), 2);
    assert_int_equal(write(fds[1], "x", 1), 1);
    run_until(&s[0].calls, 1, 2000); /* the loop was woken and polls the pipe */
    run_until(&s[1].calls, 2, 2000); /* and the periodic timeout runs */
    assert_true(s[0].calls >= 1);
    assert_true(s[1].calls >= 2);
    assert_int_equal(s[0].last_events, VIR_EVENT_HANDLE_READABLE);

    /* disabled from the thread: no more calls, though the byte is still there */
    run_in_thread(&a, 1);
    uv_run(&loop, UV_RUN_NOWAIT); /* the change applies */
    int calls[2] = {s[0].calls, s[1].calls};
    run_until(NULL, 0, 50);
    assert_int_equal(s[0].calls, calls[0]);
    assert_int_equal(s[1].calls, calls[1]);

    /* removed from the thread: freed on the loop, never inside the remove call */
    run_in_thread(&a, 2);
    assert_int_equal(s[0].frees + s[1].frees, 0);
    drain();
    assert_int_equal(s[0].frees, 1);
    assert_int_equal(s[1].frees, 1);
    assert_int_equal(s[0].remove_self, 0); /* no callback ran off the loop thread */
    assert_int_equal(s[1].remove_self, 0);
    assert_int_equal(libvirt_event_uv_pending(), 0);

    /* added and removed from the thread before the loop ever ran: only freed */
    run_in_thread(&a, 0);
    run_in_thread(&a, 2);
    drain();
    assert_int_equal(s[0].frees, 2);
    assert_int_equal(s[1].frees, 2);
    assert_int_equal(libvirt_event_uv_pending(), 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_register_twice(void **state)
{
    (void)state;
    uv_loop_t other;
    assert_int_equal(libvirt_event_uv_register(&loop), 0);
    assert_int_equal(uv_loop_init(&other), 0);
    assert_int_equal(libvirt_event_uv_register(&other), -EBUSY);
    assert_int_equal(uv_loop_close(&other), 0);
}

static int setup(void **state)
{
    (void)state;
    if (uv_loop_init(&loop) != 0)
        return -1;
    uv_timer_init(&loop, &guard);
    return libvirt_event_uv_register(&loop);
}

static int teardown(void **state)
{
    (void)state;
    uv_close((uv_handle_t *)&guard, NULL);
    libvirt_event_uv_release(); /* the wake-up handle, so that the loop can close */
    drain();
    /* Every test removed what it added: nothing may be left open. */
    if (libvirt_event_uv_pending() != 0)
        return -1;
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable_then_removed),
        cmocka_unit_test(test_update_to_zero_disables),
        cmocka_unit_test(test_remove_inside_callback),
        cmocka_unit_test(test_writable),
        cmocka_unit_test(test_hangup_from_peer),
        cmocka_unit_test(test_error_on_broken_pipe),
        cmocka_unit_test(test_same_fd_twice),
        cmocka_unit_test(test_timeout_zero_every_iteration),
        cmocka_unit_test(test_timeout_disabled_then_enabled),
        cmocka_unit_test(test_timeout_periodic),
        cmocka_unit_test(test_timeout_removed_inside_callback),
        cmocka_unit_test(test_unknown_ids),
        cmocka_unit_test(test_other_thread),
        cmocka_unit_test(test_register_twice),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
