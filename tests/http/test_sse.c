/* Server-sent events: the event text (multi-line data split into data lines, truncation
 * like snprintf) and the bounded per-client queue (whole events or nothing, overflow for
 * good, bytes read back in order across compaction and growth). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/http/sse.h"

static void format(void **state)
{
    (void)state;
    char buf[256];
    const char *data = "{\"a\":1}";
    size_t n = sse_format(buf, sizeof(buf), "sample", data, strlen(data));
    assert_string_equal(buf, "event: sample\ndata: {\"a\":1}\n\n");
    assert_int_equal(n, strlen(buf));

    /* A line break inside the data cannot end the event early. */
    data = "one\ntwo\r\nthree\rfour";
    n = sse_format(buf, sizeof(buf), "x", data, strlen(data));
    assert_string_equal(buf, "event: x\ndata: one\ndata: two\ndata: three\ndata: four\n\n");
    assert_int_equal(n, strlen(buf));

    /* Too small: the needed length is returned, the text cut and terminated. */
    char small[10];
    n = sse_format(small, sizeof(small), "sample", "{}", 2);
    assert_int_equal(n, strlen("event: sample\ndata: {}\n\n"));
    assert_string_equal(small, "event: sa");
    assert_int_equal(sse_format(NULL, 0, "sample", "{}", 2), n);
}

static void queue_in_order(void **state)
{
    (void)state;
    struct sse_queue q;
    sse_queue_init(&q, 64 * 1024);
    char event[100], out[300];
    size_t total_in = 0, total_out = 0;
    char expect[200000], got[200000];
    /* Interleave writes and partial reads so the buffer slides and grows. */
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(event, sizeof(event), "event: e\ndata: %d\n\n", i);
        assert_true(sse_queue_push(&q, event, (size_t)n));
        memcpy(expect + total_in, event, (size_t)n);
        total_in += (size_t)n;
        size_t r = sse_queue_read(&q, out, (size_t)(i % 7) * 5);
        memcpy(got + total_out, out, r);
        total_out += r;
    }
    size_t r;
    while ((r = sse_queue_read(&q, out, sizeof(out))) > 0) {
        memcpy(got + total_out, out, r);
        total_out += r;
    }
    assert_int_equal(total_out, total_in);
    assert_memory_equal(got, expect, total_in);
    assert_true(q.alloc <= q.cap);
    assert_false(q.overflowed);
    sse_queue_free(&q);
}

static void overflow_is_final(void **state)
{
    (void)state;
    struct sse_queue q;
    sse_queue_init(&q, 100);
    char event[60];
    memset(event, 'x', sizeof(event));
    assert_true(sse_queue_push(&q, event, 60));
    /* 60 + 60 > 100: refused whole, and the queue is marked. */
    assert_false(sse_queue_push(&q, event, 60));
    assert_true(q.overflowed);
    assert_int_equal(q.len, 60);
    /* Reading does not revive it: a slow client is dropped, not resumed with a gap. */
    char out[100];
    assert_int_equal(sse_queue_read(&q, out, sizeof(out)), 60);
    assert_false(sse_queue_push(&q, event, 10));
    assert_true(q.alloc <= 100);
    sse_queue_free(&q);
}

static void empty_read(void **state)
{
    (void)state;
    struct sse_queue q;
    sse_queue_init(&q, 100);
    char out[10];
    assert_int_equal(sse_queue_read(&q, out, sizeof(out)), 0);
    sse_queue_free(&q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(format),
        cmocka_unit_test(queue_in_order),
        cmocka_unit_test(overflow_is_final),
        cmocka_unit_test(empty_read),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
