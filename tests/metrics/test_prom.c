/* The Prometheus text writer: families, label and help escaping, number formats, names,
 * and a failed allocation leaving no half-written text behind. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/metrics/prom.h"

#include <cmocka.h>

static char *take(struct prom_buf *b)
{
    size_t len = 0;
    char *text = prom_buf_take(b, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

static void family_and_samples(void **state)
{
    (void)state;
    struct prom_buf b;
    prom_buf_init(&b);
    prom_family(&b, "bellows_x_bytes", PROM_GAUGE, "Some bytes.");
    struct prom_label l[] = {{"guest", "a"}, {"reason", "quiet"}};
    prom_sample_u64(&b, "bellows_x_bytes", l, 2, UINT64_C(18446744073709551615));
    prom_sample_u64(&b, "bellows_x_bytes", NULL, 0, 0);
    prom_family(&b, "bellows_y_total", PROM_COUNTER, "Some events.");
    prom_sample(&b, "bellows_y_total", NULL, 0, 1.5);
    char *text = take(&b);
    assert_string_equal(text, "# HELP bellows_x_bytes Some bytes.\n"
                              "# TYPE bellows_x_bytes gauge\n"
                              "bellows_x_bytes{guest=\"a\",reason=\"quiet\"} 18446744073709551615\n"
                              "bellows_x_bytes 0\n"
                              "# HELP bellows_y_total Some events.\n"
                              "# TYPE bellows_y_total counter\n"
                              "bellows_y_total 1.5\n");
    free(text);
}

static void escaping(void **state)
{
    (void)state;
    struct prom_buf b;
    prom_buf_init(&b);
    prom_family(&b, "m", PROM_GAUGE, "back\\slash \"quoted\"\nnext line");
    struct prom_label l = {"v", "a\\b \"c\"\nd"};
    prom_sample_u64(&b, "m", &l, 1, 7);
    char *text = take(&b);
    /* HELP escapes backslash and newline but not quotes; label values all three. */
    assert_string_equal(text, "# HELP m back\\\\slash \"quoted\"\\nnext line\n"
                              "# TYPE m gauge\n"
                              "m{v=\"a\\\\b \\\"c\\\"\\nd\"} 7\n");
    free(text);
}

static void numbers(void **state)
{
    (void)state;
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.0, "0"},
        {0.1, "0.1"},
        {0.30000000000000004, "0.30000000000000004"},
        {1e-7, "1e-07"},
        {123456789012.0, "123456789012"},
        {-2.5, "-2.5"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {NAN, "NaN"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct prom_buf b;
        prom_buf_init(&b);
        prom_sample(&b, "m", NULL, 0, cases[i].v);
        char *text = take(&b);
        char want[64];
        snprintf(want, sizeof(want), "m %s\n", cases[i].text);
        assert_string_equal(text, want);
        /* Every finite value reads back exactly. */
        if (isfinite(cases[i].v))
            assert_true(strtod(text + 2, NULL) == cases[i].v);
        free(text);
    }
}

static void names(void **state)
{
    (void)state;
    assert_true(prom_metric_name_valid("bellows_guest_moves_total"));
    assert_true(prom_metric_name_valid("_x9"));
    assert_false(prom_metric_name_valid(""));
    assert_false(prom_metric_name_valid("9x"));
    assert_false(prom_metric_name_valid("a:b")); /* reserved for recording rules */
    assert_false(prom_metric_name_valid("a-b"));
    assert_false(prom_metric_name_valid(NULL));
    assert_true(prom_label_name_valid("guest"));
    assert_false(prom_label_name_valid("__name__"));
    assert_false(prom_label_name_valid("a b"));
}

static void empty_take(void **state)
{
    (void)state;
    struct prom_buf b;
    prom_buf_init(&b);
    char *text = take(&b);
    assert_string_equal(text, "");
    free(text);
}

/* A buffer marked failed (as after a realloc failure) writes nothing and hands out NULL. */
static void failure_is_sticky(void **state)
{
    (void)state;
    struct prom_buf b;
    prom_buf_init(&b);
    prom_family(&b, "m", PROM_GAUGE, "x");
    b.failed = true;
    size_t before = b.len;
    prom_sample_u64(&b, "m", NULL, 0, 1);
    prom_printf(&b, "%s", "more");
    assert_int_equal(b.len, before);
    size_t len = 99;
    assert_null(prom_buf_take(&b, &len));
    assert_null(b.data);
}

/* Growth past the first allocation keeps every byte. */
static void grows(void **state)
{
    (void)state;
    struct prom_buf b;
    prom_buf_init(&b);
    for (int i = 0; i < 5000; i++)
        prom_printf(&b, "line %d\n", i);
    char *text = take(&b);
    assert_non_null(strstr(text, "line 0\nline 1\n"));
    assert_non_null(strstr(text, "line 4998\nline 4999\n"));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(family_and_samples),
        cmocka_unit_test(escaping),
        cmocka_unit_test(numbers),
        cmocka_unit_test(names),
        cmocka_unit_test(empty_take),
        cmocka_unit_test(failure_is_sticky),
        cmocka_unit_test(grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
