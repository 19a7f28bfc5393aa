/* A test's libuv loop, run until a condition holds or a deadline passes. One deadline
 * timer serves every wait of the test program; each test program sets its own deadline
 * (far above what any awaited event takes), so a stuck test fails instead of hanging. */
#ifndef BELLOWS_TEST_LOOP_WAIT_H
#define BELLOWS_TEST_LOOP_WAIT_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>
#include <cmocka.h>

/* Make the deadline timer on loop; every WAIT_FOR then fails after wait_ms. */
void loop_wait_init(uv_loop_t *loop, uint64_t wait_ms);

/* Close the deadline timer (the loop's next run finishes the close). */
void loop_wait_close(void);

/* Close every handle of the loop that is not closing yet, but the deadline timer, which
 * the next wait uses again: what a test left open, at its end. */
void loop_wait_close_handles(void);

/* Let the loop run for ms, whatever happens meanwhile. */
void run_for(uint64_t ms);

/* For WAIT_FOR: start the deadline, has it passed, one loop turn, stop the deadline. */
void loop_wait_start(void);
bool loop_wait_expired(void);
void loop_wait_turn(void);
void loop_wait_stop(void);

/* Run the loop until cond holds; fail the test with cond's text at the deadline. */
#define WAIT_FOR(cond)                                                                             \
    do {                                                                                           \
        loop_wait_start();                                                                         \
        while (!(cond) && !loop_wait_expired())                                                    \
            loop_wait_turn();                                                                      \
        loop_wait_stop();                                                                          \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for: %s", #cond);                                          \
    } while (0)

#endif
