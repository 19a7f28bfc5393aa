/* The one deadline timer behind WAIT_FOR and run_for (loop_wait.h). */
#include "tests/harness/loop_wait.h"

static uv_loop_t *wait_loop;
static uv_timer_t deadline;
static uint64_t deadline_ms;
static bool deadline_expired;

static void on_deadline(uv_timer_t *t)
{
    (void)t;
    deadline_expired = true;
}

void loop_wait_init(uv_loop_t *loop, uint64_t wait_ms)
{
    wait_loop = loop;
    deadline_ms = wait_ms;
    uv_timer_init(loop, &deadline);
}

void loop_wait_close(void)
{
    uv_close((uv_handle_t *)&deadline, NULL);
}

static void close_unless_deadline(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (h != (uv_handle_t *)&deadline && !uv_is_closing(h))
        uv_close(h, NULL);
}

void loop_wait_close_handles(void)
{
    uv_walk(wait_loop, close_unless_deadline, NULL);
}

void run_for(uint64_t ms)
{
    deadline_expired = false;
    uv_timer_start(&deadline, on_deadline, ms, 0);
    while (!deadline_expired)
        uv_run(wait_loop, UV_RUN_ONCE);
}

void loop_wait_start(void)
{
    deadline_expired = false;
    uv_timer_start(&deadline, on_deadline, deadline_ms, 0);
}

bool loop_wait_expired(void)
{
    return deadline_expired;
}

void loop_wait_turn(void)
{
    uv_run(wait_loop, UV_RUN_ONCE);
}

void loop_wait_stop(void)
{
    uv_timer_stop(&deadline);
}
