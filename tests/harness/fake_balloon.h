/* A fake balloon backend for tests of the core in-process: an ops table the test drives.
 * It starts at once, says nothing by itself (the test emits ready, actual and lost with
 * balloon_emit_*), keeps a move pending until the test completes it, and closes on a
 * later loop turn, as a real backend does. Every fake balloon is known by its guest's
 * name until it is freed. */
#ifndef BELLOWS_TEST_FAKE_BALLOON_H
#define BELLOWS_TEST_FAKE_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/core/balloon_backend.h"

struct fake_balloon {
    struct balloon base;
    char guest[CONFIG_NAME_MAX + 1];
    bool started;
    bool closed;
    int sets, queries;
    uint64_t target, token;
    bool pending;
    balloon_done_cb done;
    void *done_opaque;
    int set_result; /* < 0: refuse set_target with it */
    uv_timer_t close_timer;
    balloon_closed_cb closed_cb;
    void *closed_opaque;
};

/* The core's factory for guests of the configuration file: a fake balloon each. */
extern const struct balloon_factory fake_balloon_factory;

/* Forget every fake balloon and the count of those freed (before each test); the new ones
 * start with this set_result (0: take moves). */
void fake_balloons_reset(int set_result);

/* A fake balloon for guest, on loop (for a module's guest: the test hands it over). */
struct fake_balloon *fake_balloon_new(uv_loop_t *loop, const char *guest);

/* The open fake balloon of a guest, by name; fails the test when there is none. */
struct fake_balloon *fake_balloon_of(const char *guest);

/* Complete the pending move (from the test's own code: a later loop turn). */
void fake_balloon_complete(struct fake_balloon *f, int status, const char *error);

/* How many fake balloons were closed and freed since the last reset. */
int fake_balloons_freed(void);

#endif
