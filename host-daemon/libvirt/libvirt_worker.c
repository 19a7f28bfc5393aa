/* A pool of threads for libvirt calls, results back on the loop (see libvirt_worker.h). */
#include "host-daemon/libvirt/libvirt_worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Threads of every pool still alive (they outlive a closed pool until their call ends). */
static unsigned live_threads;
static uv_mutex_t live_lock;
static uv_once_t live_once = UV_ONCE_INIT;

static void init_live_lock(void)
{
    uv_mutex_init(&live_lock);
}

static void count_thread(int delta)
{
    uv_once(&live_once, init_live_lock);
    uv_mutex_lock(&live_lock);
    live_threads += (unsigned)delta;
    uv_mutex_unlock(&live_lock);
}

struct lv_pool {
    uv_mutex_t lock; /* everything below but the loop-only fields */
    uv_cond_t cond;  /* a job was queued, or the pool closed */
    struct lv_job *queue, **queue_tail;
    struct lv_job *finished, **finished_tail; /* run, waiting for done on the loop */
    char running_keys[64][LV_KEY_MAX];        /* keys of jobs being run, "" = free slot */
    unsigned max_threads, threads, idle, busy, queued;
    unsigned refs;
    bool closed;
    bool woken;

    /* loop side */
    uv_async_t async;
    void (*on_wake)(void *opaque);
    void *opaque;
};

static void free_pool(struct lv_pool *p)
{
    uv_cond_destroy(&p->cond);
    uv_mutex_destroy(&p->lock);
    free(p);
}

/* Lock held. */
static bool key_running(const struct lv_pool *p, const char *key)
{
    if (!key[0])
        return false;
    for (unsigned i = 0; i < p->max_threads; i++)
        if (strcmp(p->running_keys[i], key) == 0)
            return true;
    return false;
}

/* Lock held: the first queued job whose key is free, unlinked, with the slot that marks
 * its key as running (a job without a key takes a slot too, marked "\1"); NULL if none. */
static struct lv_job *take_job(struct lv_pool *p, unsigned *slot)
{
    unsigned free_slot = 0;
    while (free_slot < p->max_threads && p->running_keys[free_slot][0])
        free_slot++;
    if (free_slot == p->max_threads)
        return NULL; /* cannot happen: no more jobs run than there are threads */
    for (struct lv_job **j = &p->queue; *j; j = &(*j)->next) {
        if (key_running(p, (*j)->key))
            continue;
        struct lv_job *job = *j;
        *j = job->next;
        if (!*j)
            p->queue_tail = j;
        job->next = NULL;
        p->queued--;
        snprintf(p->running_keys[free_slot], LV_KEY_MAX, "%s", job->key[0] ? job->key : "\1");
        *slot = free_slot;
        return job;
    }
    return NULL;
}

static void worker(void *arg)
{
    struct lv_pool *p = arg;
    uv_mutex_lock(&p->lock);
    for (;;) {
        unsigned slot = 0;
        struct lv_job *job = NULL;
        /* Closed: only jobs that must run still do (closing a connection). */
        while (!(job = take_job(p, &slot)) && !p->closed) {
            p->idle++;
            uv_cond_wait(&p->cond, &p->lock);
            p->idle--;
        }
        if (!job)
            break; /* closed, and nothing left that must run */
        p->busy++;
        uv_mutex_unlock(&p->lock);
        job->run(job);
        uv_mutex_lock(&p->lock);
        p->busy--;
        p->running_keys[slot][0] = '\0';
        if (p->closed) {
            uv_mutex_unlock(&p->lock);
            job->release(job);
            uv_mutex_lock(&p->lock);
            continue;
        }
        *p->finished_tail = job;
        p->finished_tail = &job->next;
        uv_async_send(&p->async);
        /* The key is free again: a job of it may be waiting for a thread. */
        uv_cond_broadcast(&p->cond);
    }
    p->threads--;
    bool last = --p->refs == 0;
    uv_mutex_unlock(&p->lock);
    if (last)
        free_pool(p);
    count_thread(-1);
}

static void on_async(uv_async_t *async)
{
    struct lv_pool *p = async->data;
    uv_mutex_lock(&p->lock);
    struct lv_job *done = p->finished;
    p->finished = NULL;
    p->finished_tail = &p->finished;
    bool woken = p->woken;
    p->woken = false;
    uv_mutex_unlock(&p->lock);
    while (done && !p->closed) {
        struct lv_job *next = done->next;
        done->next = NULL;
        done->done(done);
        done = next;
    }
    while (done) { /* closed from a done callback: the rest only released */
        struct lv_job *next = done->next;
        done->release(done);
        done = next;
    }
    if (woken && !p->closed && p->on_wake)
        p->on_wake(p->opaque);
}

/* See libvirt_worker.h. */
int lv_pool_new(uv_loop_t *loop, unsigned max_threads, void (*on_wake)(void *opaque), void *opaque,
                struct lv_pool **ret)
{
    struct lv_pool *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    if (max_threads == 0)
        max_threads = 1;
    if (max_threads > 64)
        max_threads = 64;
    p->max_threads = max_threads;
    p->queue_tail = &p->queue;
    p->finished_tail = &p->finished;
    p->refs = 1; /* the loop side */
    p->on_wake = on_wake;
    p->opaque = opaque;
    if (uv_mutex_init(&p->lock) < 0) {
        free(p);
        return -ENOMEM;
    }
    if (uv_cond_init(&p->cond) < 0) {
        uv_mutex_destroy(&p->lock);
        free(p);
        return -ENOMEM;
    }
    int r = uv_async_init(loop, &p->async, on_async);
    if (r < 0) {
        free_pool(p);
        return r;
    }
    p->async.data = p;
    *ret = p;
    return 0;
}

/* See libvirt_worker.h. */
int lv_pool_submit(struct lv_pool *p, struct lv_job *job)
{
    int r = 0;
    job->next = NULL;
    uv_mutex_lock(&p->lock);
    *p->queue_tail = job;
    p->queue_tail = &job->next;
    p->queued++;
    /* A thread more when every one is busy (a hung domain holds its thread). */
    if (p->idle == 0 && p->threads < p->max_threads) {
        uv_thread_t th;
        uv_thread_options_t opt = {.flags = UV_THREAD_HAS_STACK_SIZE, .stack_size = 256 << 10};
        p->refs++;
        p->threads++;
        count_thread(1);
        r = uv_thread_create_ex(&th, &opt, worker, p);
        if (r < 0) {
            p->refs--;
            p->threads--;
            count_thread(-1);
            if (p->threads > 0)
                r = 0; /* the ones there will get to it */
        } else {
            pthread_detach(th); /* nobody waits for a thread that may be stuck in libvirt */
        }
    }
    if (r < 0) {
        /* No thread at all: take the job back. */
        struct lv_job **j = &p->queue;
        while (*j != job)
            j = &(*j)->next;
        *j = NULL;
        p->queue_tail = j;
        p->queued--;
    } else {
        uv_cond_signal(&p->cond);
    }
    uv_mutex_unlock(&p->lock);
    return r;
}

/* See libvirt_worker.h. */
void lv_pool_wake(struct lv_pool *p)
{
    uv_mutex_lock(&p->lock);
    if (!p->closed) {
        p->woken = true;
        uv_async_send(&p->async);
    }
    uv_mutex_unlock(&p->lock);
}

/* See libvirt_worker.h. */
void lv_pool_counts(struct lv_pool *p, unsigned *threads, unsigned *busy, unsigned *queued)
{
    uv_mutex_lock(&p->lock);
    *threads = p->threads;
    *busy = p->busy;
    *queued = p->queued;
    uv_mutex_unlock(&p->lock);
}

/* See libvirt_worker.h. */
void lv_pool_ref(struct lv_pool *p)
{
    uv_mutex_lock(&p->lock);
    p->refs++;
    uv_mutex_unlock(&p->lock);
}

/* See libvirt_worker.h. */
void lv_pool_unref(struct lv_pool *p)
{
    uv_mutex_lock(&p->lock);
    bool last = --p->refs == 0;
    uv_mutex_unlock(&p->lock);
    if (last)
        free_pool(p);
}

static void on_async_closed(uv_handle_t *h)
{
    lv_pool_unref(h->data);
}

/* See libvirt_worker.h. */
void lv_pool_close(struct lv_pool *p)
{
    uv_mutex_lock(&p->lock);
    p->closed = true;
    /* Jobs that must run stay queued for the threads; the others go. */
    struct lv_job *queued = NULL, *finished = p->finished;
    struct lv_job **keep = &p->queue;
    p->queued = 0;
    for (struct lv_job *j = p->queue, *next; j; j = next) {
        next = j->next;
        if (j->must_run) {
            *keep = j;
            keep = &j->next;
            p->queued++;
        } else {
            j->next = queued;
            queued = j;
        }
    }
    *keep = NULL;
    p->queue_tail = keep;
    p->finished = NULL;
    p->finished_tail = &p->finished;
    uv_cond_broadcast(&p->cond);
    uv_mutex_unlock(&p->lock);
    for (struct lv_job *j = queued, *next; j; j = next) {
        next = j->next;
        j->release(j);
    }
    for (struct lv_job *j = finished, *next; j; j = next) {
        next = j->next;
        j->release(j);
    }
    uv_close((uv_handle_t *)&p->async, on_async_closed);
}

/* See libvirt_worker.h. */
unsigned lv_pool_live_threads(void)
{
    uv_once(&live_once, init_live_lock);
    uv_mutex_lock(&live_lock);
    unsigned n = live_threads;
    uv_mutex_unlock(&live_lock);
    return n;
}
