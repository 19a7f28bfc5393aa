/* History rings: order and overwrite of the ring, unit conversions, a pressure spike
 * between two samples kept, the columnar JSON views with their `since` filter and nulls
 * for unknown values, and the bytes one guest's hour costs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/history/history.h"

#include <cmocka.h>

#define MIB (UINT64_C(1) << 20)

static void ring_order_and_overwrite(void **state)
{
    (void)state;
    struct ring r;
    assert_int_equal(ring_init(&r, sizeof(int), 3), 0);
    assert_null(ring_at(&r, 0));
    assert_null(ring_newest(&r));
    for (int i = 1; i <= 5; i++)
        ring_push(&r, &i);
    assert_int_equal(r.count, 3);
    /* Oldest first: 1 and 2 were overwritten. */
    assert_int_equal(*(const int *)ring_at(&r, 0), 3);
    assert_int_equal(*(const int *)ring_at(&r, 1), 4);
    assert_int_equal(*(const int *)ring_at(&r, 2), 5);
    assert_null(ring_at(&r, 3));
    assert_int_equal(*(const int *)ring_newest(&r), 5);
    assert_int_equal(ring_bytes(&r), 3 * sizeof(int));
    ring_free(&r);
    assert_int_equal(ring_init(&r, sizeof(int), 0), -22);
}

static void conversions(void **state)
{
    (void)state;
    assert_int_equal(history_kib(false, 123), HISTORY_UNKNOWN);
    assert_int_equal(history_kib(true, 512 * MIB), 512 * 1024);
    assert_int_equal(history_kib(true, 1023), 0);
    /* Clamped below the unknown marker. */
    assert_int_equal(history_kib(true, UINT64_MAX), HISTORY_UNKNOWN - 1);
    assert_int_equal(history_psi(true, 12.345), 1235);
    assert_int_equal(history_psi(true, 0), 0);
    assert_int_equal(history_psi(true, 250), 10000);
    assert_int_equal(history_psi(true, -1), UINT16_MAX);
    assert_int_equal(history_psi(false, 5), UINT16_MAX);
}

static struct history_sample sample(uint32_t t, unsigned level)
{
    return (struct history_sample){
        .t = t,
        .actual_kib = history_kib(true, 1024 * MIB),
        .target_kib = HISTORY_UNKNOWN,
        .used_kib = history_kib(true, 300 * MIB),
        .psi_some = history_psi(true, 2.5),
        .level = (uint8_t)level,
    };
}

static void spike_between_samples(void **state)
{
    (void)state;
    struct history_guest h;
    assert_int_equal(history_guest_init(&h, 10, 4), 0);
    struct history_sample s = sample(100, 0);
    history_guest_sample(&h, &s);
    /* A critical event, then a report at none, before the next second's sample. */
    history_guest_note_level(&h, 3);
    history_guest_note_level(&h, 1);
    history_guest_note_level(&h, 9); /* out of range: ignored */
    s = sample(101, 0);
    history_guest_sample(&h, &s);
    s = sample(102, 1);
    history_guest_sample(&h, &s);
    const struct history_sample *got = ring_at(&h.samples, 0);
    assert_int_equal(got->level, 0);
    got = ring_at(&h.samples, 1);
    assert_int_equal(got->level, 3); /* the spike is kept */
    got = ring_at(&h.samples, 2);
    assert_int_equal(got->level, 1); /* and forgotten after its second */
    history_guest_free(&h);
}

static void guest_json(void **state)
{
    (void)state;
    struct history_guest h;
    assert_int_equal(history_guest_init(&h, 10, 4), 0);
    for (uint32_t t = 100; t < 105; t++) {
        struct history_sample s = sample(t, t == 103 ? 2 : 0);
        if (t == 101)
            s.actual_kib = HISTORY_UNKNOWN;
        history_guest_sample(&h, &s);
    }
    struct history_decision d1 = {7,      101500,      "deflate",  "critical",
                                  "done", 1024 * 1024, 1280 * 1024};
    struct history_decision d2 = {8,         103200,      "inflate",  "quiet",
                                  "pending", 1280 * 1024, 1216 * 1024};
    history_guest_decision(&h, &d1);
    history_guest_decision(&h, &d2);
    history_guest_decision_result(&h, 8, "failed");
    history_guest_decision_result(&h, 99, "done"); /* not held: nothing happens */

    json_t *j = history_guest_json(&h, 102);
    assert_non_null(j);
    json_t *t = json_object_get(j, "t");
    assert_int_equal(json_array_size(t), 3);
    assert_int_equal(json_integer_value(json_array_get(t, 0)), 102);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "actual"), 0)),
                     1024 * MIB);
    assert_true(json_is_null(json_array_get(json_object_get(j, "target"), 0)));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "used"), 0)), 300 * MIB);
    assert_true(json_real_value(json_array_get(json_object_get(j, "psi_some"), 0)) == 2.5);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "level"), 1)), 2);
    /* Only the decision at or after 102 s. */
    json_t *decisions = json_object_get(j, "decisions");
    assert_int_equal(json_array_size(decisions), 1);
    json_t *d = json_array_get(decisions, 0);
    assert_int_equal(json_integer_value(json_object_get(d, "t")), 103200);
    assert_string_equal(json_string_value(json_object_get(d, "reason")), "quiet");
    assert_string_equal(json_string_value(json_object_get(d, "result")), "failed");
    assert_int_equal(json_integer_value(json_object_get(d, "seq")), 8);
    assert_int_equal(json_integer_value(json_object_get(d, "to")), 1216 * MIB);
    json_decref(j);

    /* From the start: the unknown actual is null. */
    j = history_guest_json(&h, 0);
    assert_int_equal(json_array_size(json_object_get(j, "t")), 5);
    assert_true(json_is_null(json_array_get(json_object_get(j, "actual"), 1)));
    assert_int_equal(json_array_size(json_object_get(j, "decisions")), 2);
    json_decref(j);
    history_guest_free(&h);
}

static void host_json(void **state)
{
    (void)state;
    struct history_host h;
    assert_int_equal(history_host_init(&h, 2), 0);
    for (uint32_t t = 10; t < 13; t++) {
        struct history_host_sample s = {
            .t = t,
            .available_kib = history_kib(true, 1000 * MIB),
            .total_kib = history_kib(true, 4000 * MIB),
            .budget_kib = history_kib(t == 12, 3000 * MIB), /* computed from the third */
            .held_kib = history_kib(true, 2048 * MIB),
            .psi_some = history_psi(true, 0.5),
            .pressure = t == 12,
        };
        history_host_sample(&h, &s);
    }
    json_t *j = history_host_json(&h, 0);
    json_t *t = json_object_get(j, "t");
    assert_int_equal(json_array_size(t), 2); /* ring of 2: the oldest went */
    assert_int_equal(json_integer_value(json_array_get(t, 0)), 11);
    assert_true(json_is_null(json_array_get(json_object_get(j, "budget"), 0)));
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "budget"), 1)),
                     3000 * MIB);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "held"), 0)), 2048 * MIB);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "pressure"), 1)), 1);
    assert_int_equal(json_integer_value(json_array_get(json_object_get(j, "available"), 0)),
                     1000 * MIB);
    json_decref(j);
    assert_int_equal(history_host_bytes(&h), sizeof(h) + 2 * 24);
    history_host_free(&h);
    /* The figure docs/operations.md gives for the host: an hour at 1 s. */
    assert_int_equal(history_host_init(&h, 3600), 0);
    assert_int_equal(history_host_bytes(&h), sizeof(h) + 86400);
    history_host_free(&h);
}

/* The figure docs/operations.md gives: an hour at 1 s and 128 decisions per guest. */
static void bytes_per_guest(void **state)
{
    (void)state;
    struct history_guest h;
    assert_int_equal(history_guest_init(&h, 3600, 128), 0);
    size_t bytes = history_guest_bytes(&h);
    assert_int_equal(bytes, sizeof(h) + 3600 * sizeof(struct history_sample) +
                                128 * sizeof(struct history_decision));
    assert_true(bytes < 80 * 1024);
    print_message("history: %zu bytes per guest for 3600 samples and 128 decisions\n", bytes);
    history_guest_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ring_order_and_overwrite),
        cmocka_unit_test(conversions),
        cmocka_unit_test(spike_between_samples),
        cmocka_unit_test(guest_json),
        cmocka_unit_test(host_json),
        cmocka_unit_test(bytes_per_guest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
