/* Host PSI and meminfo parsers on literal text and on fixture proc directories. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/host/hostmem.h"

#define FIXTURES "tests/daemon/data"

static int parse_psi(const char *text, struct hostmem_psi *psi)
{
    return hostmem_parse_psi(text, strlen(text), psi);
}

static void psi_some_and_full(void **state)
{
    (void)state;
    struct hostmem_psi psi;
    assert_int_equal(parse_psi("some avg10=1.50 avg60=0.25 avg300=0.00 total=1234\n"
                               "full avg10=0.75 avg60=0.00 avg300=0.00 total=99\n",
                               &psi),
                     0);
    assert_true(psi.some.avg10 > 1.49 && psi.some.avg10 < 1.51);
    assert_true(psi.some.avg60 > 0.24 && psi.some.avg60 < 0.26);
    assert_int_equal(psi.some.total_us, 1234);
    assert_true(psi.has_full);
    assert_true(psi.full.avg10 > 0.74 && psi.full.avg10 < 0.76);
    assert_int_equal(psi.full.total_us, 99);
}

static void psi_without_full_line(void **state)
{
    (void)state;
    struct hostmem_psi psi;
    assert_int_equal(parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=7", &psi), 0);
    assert_false(psi.has_full);
    assert_int_equal(psi.some.total_us, 7);
}

static void psi_malformed_is_refused_and_untouched(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "full avg10=0.00 avg60=0.00 avg300=0.00 total=1\n", /* no some line */
        "some avg10=0.00 avg60=0.00 total=1\n",             /* missing avg300 */
        "some avg10=abc avg60=0.00 avg300=0.00 total=1\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1 extra\n",
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=-1\n",
        "some avg10=101.00 avg60=0.00 avg300=0.00 total=1\n", /* not a percentage */
        "some avg10=0.00 avg60=0.00 avg300=0.00 total=1\nsome avg10=0.00 avg60=0.00 "
        "avg300=0.00 total=1\n", /* twice */
        "junk\nsome avg10=0.00 avg60=0.00 avg300=0.00 total=1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hostmem_psi psi;
        memset(&psi, 0xAB, sizeof(psi));
        assert_int_equal(parse_psi(bad[i], &psi), -EINVAL);
        assert_int_equal(((unsigned char *)&psi)[0], 0xAB);
    }
}

static void psi_not_nul_terminated(void **state)
{
    (void)state;
    /* The parser takes a length: bytes after it must not be read. */
    const char text[] = "some avg10=2.00 avg60=0.00 avg300=0.00 total=5JUNKJUNK";
    struct hostmem_psi psi;
    assert_int_equal(hostmem_parse_psi(text, strlen(text) - 8, &psi), 0);
    assert_int_equal(psi.some.total_us, 5);
}

static void meminfo_fields(void **state)
{
    (void)state;
    const char *text = "MemTotal:        2000 kB\nMemFree:          100 kB\n"
                       "MemAvailable:     300 kB\nBuffers: 1 kB\nSwapTotal: 50 kB\n"
                       "SwapFree: 40 kB\nHugePages_Total:       0\n";
    struct hostmem_meminfo mi;
    assert_int_equal(hostmem_parse_meminfo(text, strlen(text), &mi), 0);
    assert_int_equal(mi.mem_total_kb, 2000);
    assert_int_equal(mi.mem_free_kb, 100);
    assert_int_equal(mi.mem_available_kb, 300);
    assert_int_equal(mi.swap_total_kb, 50);
    assert_int_equal(mi.swap_free_kb, 40);
}

static void meminfo_missing_or_bad(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "MemTotal: 2000 kB\n",                        /* no MemAvailable */
        "MemAvailable: 2000 kB\n",                    /* no MemTotal */
        "MemTotal: 2000 kB\nMemAvailable: lots kB\n", /* not a number */
        "MemTotal: 2000 kB\nMemAvailable: 10 kB extra\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct hostmem_meminfo mi;
        assert_int_equal(hostmem_parse_meminfo(bad[i], strlen(bad[i]), &mi), -EINVAL);
    }
}

static void read_fixture_dirs(void **state)
{
    (void)state;
    struct hostmem_sample s;
    assert_int_equal(hostmem_read(FIXTURES "/proc-busy", &s), 0);
    assert_true(s.psi.some.avg10 > 12.49 && s.psi.some.avg10 < 12.51);
    assert_int_equal(s.psi.some.total_us, 987654321);
    assert_true(s.psi.has_full);
    assert_int_equal(s.meminfo.mem_available_kb, 301244);
    assert_int_equal(s.meminfo.mem_total_kb, 4028584);
    assert_int_equal(s.meminfo.swap_free_kb, 524288);

    assert_int_equal(hostmem_read(FIXTURES "/proc-old", &s), 0);
    assert_false(s.psi.has_full);

    assert_int_equal(hostmem_read(FIXTURES "/proc-bad", &s), -EINVAL);
    assert_int_equal(hostmem_read(FIXTURES "/no-such-dir", &s), -ENOENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(psi_some_and_full),
        cmocka_unit_test(psi_without_full_line),
        cmocka_unit_test(psi_malformed_is_refused_and_untouched),
        cmocka_unit_test(psi_not_nul_terminated),
        cmocka_unit_test(meminfo_fields),
        cmocka_unit_test(meminfo_missing_or_bad),
        cmocka_unit_test(read_fixture_dirs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
