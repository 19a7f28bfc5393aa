/* Threads that make bellowsd's libvirt calls, so that the loop never waits for libvirtd.
 *
 * A libvirt call is a round trip to libvirtd, and some wait there for a domain's job lock
 * (up to libvirtd's 30 s job timeout while a migration or a dump holds it) or for a
 * libvirtd that hangs. Jobs run on a small pool of threads made as needed (up to
 * max_threads); their results come back on the loop, where `done` runs. Jobs with the
 * same non-empty key (a domain's UUID) run one at a time, in order: a slow or hung domain
 * holds one thread and its own queue, nothing else.
 *
 * The loop side (submit, close) is for the loop's thread; wake and the reference counts
 * are safe from any thread. Closing does not wait for a job stuck in libvirt: the pool's
 * threads finish on their own and the last one out frees what is left.
 */
#ifndef BELLOWS_LIBVIRT_WORKER_H
#define BELLOWS_LIBVIRT_WORKER_H

#include <stdbool.h>
#include <stddef.h>

#include <uv.h>

#define LV_KEY_MAX 40

struct lv_pool;

struct lv_job {
    struct lv_job *next;
    char key[LV_KEY_MAX]; /* "" runs alongside anything; else one at a time per key */
    /* On a worker thread: the libvirt calls. */
    void (*run)(struct lv_job *job);
    /* On the loop, after run: use the result and free the job. */
    void (*done)(struct lv_job *job);
    /* Any thread, instead of done, when the pool was closed before done could run (run
     * may or may not have run): free the job and what it holds. */
    void (*release)(struct lv_job *job);
    /* Run even when the pool is closed (then released, not done): closing a connection. */
    bool must_run;
};

/* A pool on loop. on_wake(opaque) runs on the loop after lv_pool_wake() (any thread).
 * Returns 0, or a negative errno. */
int lv_pool_new(uv_loop_t *loop, unsigned max_threads, void (*on_wake)(void *opaque), void *opaque,
                struct lv_pool **ret);

/* Queue a job (loop thread). Its done runs later, on the loop, never inside this call.
 * Returns 0, or -ENOMEM / -EAGAIN when no thread could be made and none runs. */
int lv_pool_submit(struct lv_pool *p, struct lv_job *job);

/* From any thread: run on_wake on the loop soon. Does nothing once the pool is closed. */
void lv_pool_wake(struct lv_pool *p);

/* Threads made, threads running a job, jobs waiting. For tests and views. */
void lv_pool_counts(struct lv_pool *p, unsigned *threads, unsigned *busy, unsigned *queued);

/* Extra references for things that outlive the loop side (libvirt's free callbacks). */
void lv_pool_ref(struct lv_pool *p);
void lv_pool_unref(struct lv_pool *p);

/* Close (loop thread): no done or on_wake runs after this returns; queued jobs are
 * released without running (but must_run ones run first), running ones are released when
 * their call returns. The pool's loop handle is closed; its memory goes with the last
 * reference. */
void lv_pool_close(struct lv_pool *p);

/* Threads of all pools still alive (a closed pool's threads end when their call returns);
 * for tests that must see everything gone. */
unsigned lv_pool_live_threads(void);

#endif
