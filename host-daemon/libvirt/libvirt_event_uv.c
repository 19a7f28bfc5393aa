/* virEventRegisterImpl() on libuv handles. See libvirt_event_uv.h for the semantics. */
#include "host-daemon/libvirt/libvirt_event_uv.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include <libvirt/libvirt.h>

struct watch {
    struct watch *next;
    int id;
    int fd;        /* the fd libvirt gave, passed back to its callback */
    int polled_fd; /* fd or, when fd was already polled in this loop, our dup of it */
    int events;    /* VIR_EVENT_HANDLE_* asked for */
    bool removed;
    virEventHandleCallback cb;
    void *opaque;
    virFreeCallback ff;
    uv_poll_t poll;
};

struct timeout {
    struct timeout *next;
    int id;
    int frequency; /* ms; -1 disabled, 0 every iteration */
    bool removed;
    int open_handles; /* timer and idle: freed when both closed */
    virEventTimeoutCallback cb;
    void *opaque;
    virFreeCallback ff;
    uv_timer_t timer; /* frequency > 0 */
    uv_idle_t idle;   /* frequency == 0: runs once per loop iteration, loop does not block */
};

static uv_loop_t *event_loop;
static uv_thread_t loop_thread;
static struct watch *watches;
static struct timeout *timeouts;
static int last_id;
static unsigned pending;

static bool on_loop_thread(void)
{
    uv_thread_t self = uv_thread_self();
    return event_loop != NULL && uv_thread_equal(&self, &loop_thread);
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

static void on_poll(uv_poll_t *poll, int status, int uv_events)
{
    struct watch *w = poll->data;
    int events = 0;

    if (w->removed)
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

static int arm_watch(struct watch *w)
{
    int ev = uv_events_of(w->events);
    if (ev == 0)
        return uv_poll_stop(&w->poll);
    /* Always ask for hang-ups: libvirt's own loop reports them unasked too. */
    return uv_poll_start(&w->poll, ev | UV_DISCONNECT, on_poll);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
    struct watch *w;
    int err;

    if (!on_loop_thread() || fd < 0 || cb == NULL)
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

    err = uv_poll_init(event_loop, &w->poll, fd);
    if (err == UV_EEXIST) {
        /* libuv polls an fd once per loop; libvirt may watch it twice with disjoint events. */
        w->polled_fd = dup(fd);
        if (w->polled_fd < 0) {
            free(w);
            return -1;
        }
        err = uv_poll_init(event_loop, &w->poll, w->polled_fd);
    }
    if (err < 0) {
        if (w->polled_fd != fd)
            close(w->polled_fd);
        free(w);
        return -1;
    }
    w->poll.data = w;
    w->id = next_id();
    w->next = watches;
    watches = w;
    pending++;
    if (arm_watch(w) < 0) {
        /* Keep the watch (libvirt may update it later); nothing is polled for now. */
        uv_poll_stop(&w->poll);
    }
    return w->id;
}

static void update_handle(int id, int events)
{
    struct watch *w;

    if (!on_loop_thread())
        return;
    w = find_watch(id);
    if (w == NULL)
        return;
    w->events = events;
    if (arm_watch(w) < 0)
        uv_poll_stop(&w->poll);
}

static void on_watch_closed(uv_handle_t *handle)
{
    struct watch *w = handle->data;
    struct watch **p;

    for (p = &watches; *p; p = &(*p)->next) {
        if (*p == w) {
            *p = w->next;
            break;
        }
    }
    if (w->polled_fd != w->fd)
        close(w->polled_fd);
    pending--;
    if (w->ff)
        w->ff(w->opaque);
    free(w);
}

static int remove_handle(int id)
{
    struct watch *w;

    if (!on_loop_thread())
        return -1;
    w = find_watch(id);
    if (w == NULL)
        return -1;
    w->removed = true;
    uv_close((uv_handle_t *)&w->poll, on_watch_closed);
    return 0;
}

static void fire_timeout(struct timeout *t)
{
    if (!t->removed)
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

static void arm_timeout(struct timeout *t)
{
    uv_timer_stop(&t->timer);
    uv_idle_stop(&t->idle);
    if (t->frequency == 0)
        uv_idle_start(&t->idle, on_idle);
    else if (t->frequency > 0)
        uv_timer_start(&t->timer, on_timer, (uint64_t)t->frequency, (uint64_t)t->frequency);
}

static int add_timeout(int frequency, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
    struct timeout *t;

    if (!on_loop_thread() || cb == NULL)
        return -1;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -1;
    /* Neither init can fail on an open loop. */
    uv_timer_init(event_loop, &t->timer);
    uv_idle_init(event_loop, &t->idle);
    t->timer.data = t;
    t->idle.data = t;
    t->open_handles = 2;
    t->frequency = frequency;
    t->cb = cb;
    t->opaque = opaque;
    t->ff = ff;
    t->id = next_id();
    t->next = timeouts;
    timeouts = t;
    pending++;
    arm_timeout(t);
    return t->id;
}

static void update_timeout(int id, int frequency)
{
    struct timeout *t;

    if (!on_loop_thread())
        return;
    t = find_timeout(id);
    if (t == NULL)
        return;
    t->frequency = frequency;
    arm_timeout(t);
}

static void on_timeout_closed(uv_handle_t *handle)
{
    struct timeout *t = handle->data;
    struct timeout **p;

    if (--t->open_handles > 0)
        return;
    for (p = &timeouts; *p; p = &(*p)->next) {
        if (*p == t) {
            *p = t->next;
            break;
        }
    }
    pending--;
    if (t->ff)
        t->ff(t->opaque);
    free(t);
}

static int remove_timeout(int id)
{
    struct timeout *t;

    if (!on_loop_thread())
        return -1;
    t = find_timeout(id);
    if (t == NULL)
        return -1;
    t->removed = true;
    uv_close((uv_handle_t *)&t->timer, on_timeout_closed);
    uv_close((uv_handle_t *)&t->idle, on_timeout_closed);
    return 0;
}

int libvirt_event_uv_register(uv_loop_t *loop)
{
    if (loop == NULL)
        return -EINVAL;
    if (event_loop != NULL)
        return event_loop == loop ? 0 : -EBUSY;
    event_loop = loop;
    loop_thread = uv_thread_self();
    virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                         remove_timeout);
    return 0;
}

unsigned libvirt_event_uv_pending(void)
{
    return pending;
}
