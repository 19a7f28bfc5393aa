/* virEventRegisterImpl() on libuv handles, callable from any thread. See
 * libvirt_event_uv.h for the semantics. */
#include "host-daemon/libvirt/libvirt_event_uv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

/* Every list and flag below is guarded by `lock`. libuv handles are only ever touched on
 * the loop's thread: a call from another thread records what it wants (dirty) and wakes
 * the loop, which applies it (apply_pending). No callback of libvirt's runs under the lock. */

struct watch {
    struct watch *next;
    int id;
    int fd;        /* the fd libvirt gave, passed back to its callback */
    int polled_fd; /* fd or, when fd was already polled in this loop, our dup of it */
    int events;    /* VIR_EVENT_HANDLE_* asked for */
    bool live;     /* poll handle initialised (on the loop thread) */
    bool dirty;    /* changed off the loop thread: apply on the loop */
    bool removed;
    bool broken; /* the poll handle could not be made: libvirt is told ERROR once */
    virEventHandleCallback cb;
    void *opaque;
    virFreeCallback ff;
    uv_poll_t poll;
};

struct timeout {
    struct timeout *next;
    int id;
    int frequency; /* ms; -1 disabled, 0 every iteration */
    bool live;
    bool dirty;
    bool removed;
    int open_handles; /* timer and idle: freed when both closed */
    virEventTimeoutCallback cb;
    void *opaque;
    virFreeCallback ff;
    uv_timer_t timer; /* frequency > 0 */
    uv_idle_t idle;   /* frequency == 0: runs once per loop iteration, loop does not block */
};

static uv_mutex_t lock;
static uv_loop_t *event_loop;
static uv_thread_t loop_thread;
static uv_async_t *wake; /* NULL after libvirt_event_uv_release() */
static bool releasing;   /* close `wake` once nothing is registered any more */
static struct watch *watches;
static struct timeout *timeouts;
static int last_id;
static unsigned pending;

static bool on_loop_thread(void)
{
    uv_thread_t self = uv_thread_self();
    return uv_thread_equal(&self, &loop_thread);
}

static int next_id(void)
{
    if (last_id == INT32_MAX)
        last_id = 0;
    return ++last_id;
}

static int uv_events_of(int vir_events)
{
    int ev = 0;
    if (vir_events & VIR_EVENT_HANDLE_READABLE)
        ev |= UV_READABLE;
    if (vir_events & VIR_EVENT_HANDLE_WRITABLE)
        ev |= UV_WRITABLE;
    return ev;
}

static struct watch *find_watch(int id)
{
    for (struct watch *w = watches; w; w = w->next)
        if (w->id == id && !w->removed)
            return w;
    return NULL;
}

static struct timeout *find_timeout(int id)
{
    for (struct timeout *t = timeouts; t; t = t->next)
        if (t->id == id && !t->removed)
            return t;
    return NULL;
}

/* Off the loop thread: the loop applies the change on its next turn. */
static void mark_dirty(bool *dirty)
{
    *dirty = true;
    if (wake)
        uv_async_send(wake);
}

static void on_wake_closed(uv_handle_t *handle)
{
    free(handle);
}

/* Loop thread, lock held: after a release, the wake-up handle goes with the last handle or
 * timeout (a connection closed by a worker thread removes its watch late). */
static void maybe_close_wake(void)
{
    if (!releasing || pending > 0 || !wake)
        return;
    uv_close((uv_handle_t *)wake, on_wake_closed);
    wake = NULL;
    releasing = false;
}

static void on_poll(uv_poll_t *poll, int status, int uv_events)
{
    struct watch *w = poll->data;
    int events = 0;

    uv_mutex_lock(&lock);
    bool removed = w->removed;
    uv_mutex_unlock(&lock);
    if (removed)
        return;
    if (status < 0) {
        /* libuv stopped the poll; libvirt decides (usually: closes and removes). */
        events = VIR_EVENT_HANDLE_ERROR;
    } else {
        if (uv_events & UV_READABLE)
            events |= VIR_EVENT_HANDLE_READABLE;
        if (uv_events & UV_WRITABLE)
            events |= VIR_EVENT_HANDLE_WRITABLE;
        if (uv_events & UV_DISCONNECT)
            events |= VIR_EVENT_HANDLE_HANGUP;
    }
    if (events)
        w->cb(w->id, w->fd, events, w->opaque);
}

/* Loop thread, lock held. */
static void arm_watch(struct watch *w)
{
    int ev = uv_events_of(w->events);
    if (ev == 0) {
        uv_poll_stop(&w->poll);
        return;
    }
    /* Always ask for hang-ups: libvirt's own loop reports them unasked too. Should the
     * start fail, nothing is polled until libvirt updates the watch. */
    if (uv_poll_start(&w->poll, ev | UV_DISCONNECT, on_poll) < 0)
        uv_poll_stop(&w->poll);
}

/* Loop thread, lock held: make the poll handle. */
static int init_watch(struct watch *w)
{
    int err = uv_poll_init(event_loop, &w->poll, w->fd);
    if (err == UV_EEXIST) {
        /* libuv polls an fd once per loop; libvirt may watch it twice with disjoint events. */
        w->polled_fd = dup(w->fd);
        if (w->polled_fd < 0) {
            w->polled_fd = w->fd;
            return -1;
        }
        err = uv_poll_init(event_loop, &w->poll, w->polled_fd);
    }
    if (err < 0) {
        if (w->polled_fd != w->fd)
            close(w->polled_fd);
        w->polled_fd = w->fd;
        return -1;
    }
    w->poll.data = w;
    w->live = true;
    arm_watch(w);
    return 0;
}

static void on_watch_closed(uv_handle_t *handle)
{
    struct watch *w = handle->data;

    uv_mutex_lock(&lock);
    for (struct watch **p = &watches; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    pending--;
    maybe_close_wake();
    uv_mutex_unlock(&lock);
    if (w->polled_fd != w->fd)
        close(w->polled_fd);
    if (w->ff)
        w->ff(w->opaque);
    free(w);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
    struct watch *w;

    if (fd < 0 || cb == NULL)
        return -1;
    w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->fd = fd;
    w->polled_fd = fd;
    w->events = events;
    w->cb = cb;
    w->opaque = opaque;
    w->ff = ff;

    uv_mutex_lock(&lock);
    if (event_loop == NULL || (on_loop_thread() && init_watch(w) < 0)) {
        uv_mutex_unlock(&lock);
        free(w);
        return -1;
    }
    w->id = next_id();
    w->next = watches;
    watches = w;
    pending++;
    if (!w->live)
        mark_dirty(&w->dirty);
    int id = w->id;
    uv_mutex_unlock(&lock);
    return id;
}

static void update_handle(int id, int events)
{
    uv_mutex_lock(&lock);
    struct watch *w = find_watch(id);
    if (w) {
        w->events = events;
        if (on_loop_thread() && w->live)
            arm_watch(w);
        else
            mark_dirty(&w->dirty);
    }
    uv_mutex_unlock(&lock);
}

static int remove_handle(int id)
{
    uv_mutex_lock(&lock);
    struct watch *w = find_watch(id);
    if (w == NULL) {
        uv_mutex_unlock(&lock);
        return -1;
    }
    w->removed = true;
    /* ff runs from the loop after the handle closed, never inside this call. */
    if (on_loop_thread() && w->live)
        uv_close((uv_handle_t *)&w->poll, on_watch_closed);
    else
        mark_dirty(&w->dirty);
    uv_mutex_unlock(&lock);
    return 0;
}

static void fire_timeout(struct timeout *t)
{
    uv_mutex_lock(&lock);
    bool removed = t->removed;
    uv_mutex_unlock(&lock);
    if (!removed)
        t->cb(t->id, t->opaque);
}

static void on_timer(uv_timer_t *timer)
{
    fire_timeout(timer->data);
}

static void on_idle(uv_idle_t *idle)
{
    fire_timeout(idle->data);
}

/* Loop thread, lock held. */
static void arm_timeout(struct timeout *t)
{
    uv_timer_stop(&t->timer);
    uv_idle_stop(&t->idle);
    if (t->frequency == 0)
        uv_idle_start(&t->idle, on_idle);
    else if (t->frequency > 0)
        uv_timer_start(&t->timer, on_timer, (uint64_t)t->frequency, (uint64_t)t->frequency);
}

/* Loop thread, lock held. Neither init can fail on an open loop. */
static void init_timeout(struct timeout *t)
{
    uv_timer_init(event_loop, &t->timer);
    uv_idle_init(event_loop, &t->idle);
    t->timer.data = t;
    t->idle.data = t;
    t->open_handles = 2;
    t->live = true;
    arm_timeout(t);
}

static void on_timeout_closed(uv_handle_t *handle)
{
    struct timeout *t = handle->data;

    uv_mutex_lock(&lock);
    if (--t->open_handles > 0) {
        uv_mutex_unlock(&lock);
        return;
    }
    for (struct timeout **p = &timeouts; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    pending--;
    maybe_close_wake();
    uv_mutex_unlock(&lock);
    if (t->ff)
        t->ff(t->opaque);
    free(t);
}

static void close_timeout(struct timeout *t)
{
    uv_close((uv_handle_t *)&t->timer, on_timeout_closed);
    uv_close((uv_handle_t *)&t->idle, on_timeout_closed);
}

static int add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
    struct timeout *t;

    if (cb == NULL)
        return -1;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    t->frequency = frequency;
    t->cb = cb;
    t->opaque = opaque;
    t->ff = ff;
    uv_mutex_lock(&lock);
    if (event_loop == NULL) {
        uv_mutex_unlock(&lock);
        free(t);
        return -1;
    }
    t->id = next_id();
    t->next = timeouts;
    timeouts = t;
    pending++;
    if (on_loop_thread())
        init_timeout(t);
    else
        mark_dirty(&t->dirty);
    int id = t->id;
    uv_mutex_unlock(&lock);
    return id;
}

static void update_timeout(int id, int frequency)
{
    uv_mutex_lock(&lock);
    struct timeout *t = find_timeout(id);
    if (t) {
        t->frequency = frequency;
        if (on_loop_thread() && t->live)
            arm_timeout(t);
        else
            mark_dirty(&t->dirty);
    }
    uv_mutex_unlock(&lock);
}

static int remove_timeout(int id)
{
    uv_mutex_lock(&lock);
    struct timeout *t = find_timeout(id);
    if (t == NULL) {
        uv_mutex_unlock(&lock);
        return -1;
    }
    t->removed = true;
    if (on_loop_thread() && t->live)
        close_timeout(t);
    else
        mark_dirty(&t->dirty);
    uv_mutex_unlock(&lock);
    return 0;
}

/* On the loop: carry out what other threads asked for. Free callbacks of watches and
 * timeouts that never had a handle run here, outside the lock. */
static void apply_pending(uv_async_t *async)
{
    struct watch *dead_w = NULL;
    struct timeout *dead_t = NULL;
    struct watch *broken = NULL;
    (void)async;

    uv_mutex_lock(&lock);
    for (struct watch **p = &watches; *p;) {
        struct watch *w = *p;
        if (!w->dirty) {
            p = &w->next;
            continue;
        }
        w->dirty = false;
        if (w->removed && !w->live) {
            *p = w->next;
            pending--;
            w->next = dead_w;
            dead_w = w;
            continue;
        }
        if (w->removed)
            uv_close((uv_handle_t *)&w->poll, on_watch_closed);
        else if (w->live)
            arm_watch(w);
        else if (!w->broken && init_watch(w) < 0)
            w->broken = true;
        p = &w->next;
    }
    for (struct timeout **p = &timeouts; *p;) {
        struct timeout *t = *p;
        if (!t->dirty) {
            p = &t->next;
            continue;
        }
        t->dirty = false;
        if (t->removed && !t->live) {
            *p = t->next;
            pending--;
            t->next = dead_t;
            dead_t = t;
            continue;
        }
        if (t->removed)
            close_timeout(t);
        else if (t->live)
            arm_timeout(t);
        else
            init_timeout(t);
        p = &t->next;
    }
    /* A watch that could not be polled: libvirt hears ERROR once and closes it. */
    for (struct watch *w = watches; w; w = w->next)
        if (w->broken && !w->removed && !broken)
            broken = w;
    maybe_close_wake();
    uv_mutex_unlock(&lock);

    while (dead_w) {
        struct watch *w = dead_w;
        dead_w = w->next;
        if (w->ff)
            w->ff(w->opaque);
        free(w);
    }
    while (dead_t) {
        struct timeout *t = dead_t;
        dead_t = t->next;
        if (t->ff)
            t->ff(t->opaque);
        free(t);
    }
    if (broken) {
        broken->broken = false; /* told once */
        broken->cb(broken->id, broken->fd, VIR_EVENT_HANDLE_ERROR, broken->opaque);
    }
}

static void init_lock(void)
{
    uv_mutex_init(&lock);
}

static void ensure_lock(void)
{
    static uv_once_t once = UV_ONCE_INIT;
    uv_once(&once, init_lock);
}

/* See libvirt_event_uv.h. */
int libvirt_event_uv_register(uv_loop_t *loop)
{
    static bool registered;
    if (loop == NULL)
        return -EINVAL;
    ensure_lock();
    uv_mutex_lock(&lock);
    if (event_loop != NULL && event_loop != loop) {
        uv_mutex_unlock(&lock);
        return -EBUSY;
    }
    event_loop = loop;
    loop_thread = uv_thread_self();
    releasing = false;
    if (wake == NULL) {
        wake = malloc(sizeof(*wake));
        if (wake == NULL || uv_async_init(loop, wake, apply_pending) < 0) {
            free(wake);
            wake = NULL;
            uv_mutex_unlock(&lock);
            return -ENOMEM;
        }
    }
    bool first = !registered;
    registered = true;
    uv_mutex_unlock(&lock);
    if (first)
        virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                             remove_timeout);
    return 0;
}

/* See libvirt_event_uv.h. */
void libvirt_event_uv_release(void)
{
    ensure_lock();
    uv_mutex_lock(&lock);
    bool have = wake != NULL;
    releasing = have;
    uv_mutex_unlock(&lock);
    if (have)
        apply_pending(wake); /* what other threads asked for so far; closes if nothing is left */
}

/* See libvirt_event_uv.h. */
unsigned libvirt_event_uv_pending(void)
{
    ensure_lock();
    uv_mutex_lock(&lock);
    unsigned n = pending;
    uv_mutex_unlock(&lock);
    return n;
}
