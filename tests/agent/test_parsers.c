/* The /proc parsers (meminfo, vmstat, PSI text) on fixture files and literal buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest-agent/meminfo.h"
#include "guest-agent/psi_stats.h"
#include "guest-agent/snapshot.h"
#include "guest-agent/vmstat.h"
#include "tests/agent/fixture.h"

#include <errno.h>
#include <string.h>

static void meminfo_real_kernel(void **state)
{
    (void)state;
    size_t len;
    char *buf = fixture_read("linux-6.18/meminfo", &len);
    struct meminfo m;
    assert_int_equal(meminfo_parse(buf, len, &m), 0);
    assert_int_equal(m.mem_total_kb, 24684084);
    assert_int_equal(m.mem_free_kb, 23829336);
    assert_int_equal(m.mem_available_kb, 24135072);
    assert_int_equal(m.committed_as_kb, 1738352);
    assert_int_equal(m.swap_total_kb, 0);
    assert_int_equal(m.found, MEMINFO_MEM_TOTAL | MEMINFO_MEM_FREE | MEMINFO_MEM_AVAILABLE |
                                  MEMINFO_COMMITTED_AS | MEMINFO_SWAP_TOTAL | MEMINFO_SWAP_FREE);
    free(buf);
}

static void meminfo_pressured_guest(void **state)
{
    (void)state;
    size_t len;
    char *buf = fixture_read("pressured/meminfo", &len);
    struct meminfo m;
    assert_int_equal(meminfo_parse(buf, len, &m), 0);
    assert_int_equal(m.mem_total_kb, 481296);
    assert_int_equal(m.mem_free_kb, 12044);
    assert_int_equal(m.mem_available_kb, 20480);
    assert_int_equal(m.committed_as_kb, 912345);
    assert_int_equal(m.swap_total_kb, 524284);
    assert_int_equal(m.swap_free_kb, 102400);
    free(buf);
}

static void meminfo_old_kernel_without_available(void **state)
{
    (void)state;
    size_t len;
    char *buf = fixture_read("old-kernel/meminfo", &len);
    struct meminfo m;
    assert_int_equal(meminfo_parse(buf, len, &m), 0);
    assert_int_equal(m.mem_total_kb, 1016232);
    assert_int_equal(m.mem_available_kb, 0);
    assert_false(m.found & MEMINFO_MEM_AVAILABLE);
    free(buf);
}

static void meminfo_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int err;
    } cases[] = {
        {"invalid/meminfo-no-total", -EINVAL}, {"invalid/meminfo-bad-number", -EINVAL},
        {"invalid/meminfo-bad-unit", -EINVAL}, {"invalid/meminfo-overflow", -ERANGE},
        {"invalid/meminfo-no-value", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *buf = fixture_read(cases[i].file, &len);
        struct meminfo m = {.mem_total_kb = 7};
        int r = meminfo_parse(buf, len, &m);
        if (r != cases[i].err)
            fail_msg("%s: got %d, want %d", cases[i].file, r, cases[i].err);
        assert_int_equal(m.mem_total_kb, 7); /* untouched on error */
        free(buf);
    }
    struct meminfo m;
    assert_int_equal(meminfo_parse("", 0, &m), -EINVAL);
}

static void meminfo_buffer_not_terminated(void **state)
{
    (void)state;
    /* The length bounds the parse: the digits after it must not be read. */
    const char text[] = "MemFree: 5 kB\nMemTotal: 10 kB9999";
    struct meminfo m;
    assert_int_equal(meminfo_parse(text, sizeof(text) - 1 - 4, &m), 0);
    assert_int_equal(m.mem_total_kb, 10);
    /* A last line without its newline still counts. */
    assert_int_equal(meminfo_parse("MemTotal: 3 kB\nMemFree: 2 kB", 28, &m), 0);
    assert_int_equal(m.mem_free_kb, 2);
}

static void vmstat_files(void **state)
{
    (void)state;
    size_t len;
    struct vmstat v;
    char *buf = fixture_read("linux-6.18/vmstat", &len);
    assert_int_equal(vmstat_parse(buf, len, &v), 0);
    assert_int_equal(v.pswpin, 0);
    assert_int_equal(v.pgmajfault, 1416);
    assert_int_equal(v.found, VMSTAT_PSWPIN | VMSTAT_PSWPOUT | VMSTAT_PGMAJFAULT);
    free(buf);

    buf = fixture_read("pressured/vmstat", &len);
    assert_int_equal(vmstat_parse(buf, len, &v), 0);
    assert_int_equal(v.pswpin, 105512);
    assert_int_equal(v.pswpout, 210877);
    assert_int_equal(v.pgmajfault, 52841);
    free(buf);

    buf = fixture_read("old-kernel/vmstat", &len);
    assert_int_equal(vmstat_parse(buf, len, &v), 0);
    assert_int_equal(v.found, VMSTAT_PGMAJFAULT);
    assert_int_equal(v.pgmajfault, 77);
    free(buf);
}

static void vmstat_invalid(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        int err;
    } cases[] = {
        {"invalid/vmstat-overflow", -ERANGE},
        {"invalid/vmstat-extra-field", -EINVAL},
        {"invalid/vmstat-none", -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *buf = fixture_read(cases[i].file, &len);
        struct vmstat v;
        int r = vmstat_parse(buf, len, &v);
        if (r != cases[i].err)
            fail_msg("%s: got %d, want %d", cases[i].file, r, cases[i].err);
        free(buf);
    }
}

static void psi_files(void **state)
{
    (void)state;
    size_t len;
    struct psi_stats s;
    char *buf = fixture_read("pressured/pressure/memory", &len);
    assert_int_equal(psi_stats_parse(buf, len, &s), 0);
    assert_true(s.has_some);
    assert_true(s.has_full);
    assert_float_equal(s.some.avg10, 41.27, 1e-9);
    assert_float_equal(s.some.avg60, 12.50, 1e-9);
    assert_float_equal(s.some.avg300, 3.01, 1e-9);
    assert_int_equal(s.some.total_us, 8412345);
    assert_float_equal(s.full.avg10, 18.90, 1e-9);
    assert_int_equal(s.full.total_us, 3123456);
    free(buf);

    buf = fixture_read("linux-6.18/pressure/memory", &len);
    assert_int_equal(psi_stats_parse(buf, len, &s), 0);
    assert_float_equal(s.some.avg10, 0.0, 1e-9);
    free(buf);

    /* cpu.pressure before 5.13: only a "some" line. */
    const char cpu[] = "some avg10=1.50 avg60=0.20 avg300=0.00 total=99\n";
    assert_int_equal(psi_stats_parse(cpu, sizeof(cpu) - 1, &s), 0);
    assert_false(s.has_full);
    assert_int_equal(s.some.total_us, 99);
    /* Keys a later kernel might add are skipped. */
    const char more[] = "some avg10=1.00 avg60=0.00 avg300=0.00 avg900=0.5 total=1\n";
    assert_int_equal(psi_stats_parse(more, sizeof(more) - 1, &s), 0);
}

static void psi_invalid(void **state)
{
    (void)state;
    static const char *const files[] = {
        "invalid/pressure-avg-over-100", "invalid/pressure-missing-avg300",
        "invalid/pressure-no-some",      "invalid/pressure-negative",
        "invalid/pressure-bad-total",    "invalid/pressure-bad-kind",
    };
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len;
        char *buf = fixture_read(files[i], &len);
        struct psi_stats s = {.has_some = false, .some = {.total_us = 5}};
        int r = psi_stats_parse(buf, len, &s);
        if (r != -EINVAL)
            fail_msg("%s: got %d, want %d", files[i], r, -EINVAL);
        assert_int_equal(s.some.total_us, 5);
        free(buf);
    }
}

static void snapshot_from_proc_root(void **state)
{
    (void)state;
    struct snapshot_reader *r = malloc(sizeof(*r));
    struct bp_mem m;

    assert_int_equal(snapshot_open(r, FIXTURES "pressured"), 0);
    assert_int_equal(snapshot_read(r, &m), 0);
    assert_int_equal(m.mem_total_kb, 481296);
    assert_int_equal(m.swap_free_kb, 102400);
    assert_int_equal(m.pswpout, 210877);
    assert_int_equal(m.pgmajfault, 52841);
    assert_float_equal(m.psi_some_avg10, 41.27, 1e-9);
    assert_float_equal(m.psi_full_avg10, 18.90, 1e-9);
    assert_int_equal(m.psi_full_total_us, 3123456);
    /* Read again: the same numbers (pread from the start, not appended). */
    assert_int_equal(snapshot_read(r, &m), 0);
    assert_int_equal(m.mem_total_kb, 481296);
    snapshot_close(r);

    /* No PSI file and a short vmstat: those fields are 0, the rest is there. */
    assert_int_equal(snapshot_open(r, FIXTURES "old-kernel"), 0);
    assert_int_equal(snapshot_read(r, &m), 0);
    assert_int_equal(m.mem_total_kb, 1016232);
    assert_int_equal(m.pgmajfault, 77);
    assert_int_equal(m.psi_some_total_us, 0);
    snapshot_close(r);

    assert_int_equal(snapshot_open(r, FIXTURES "no-such-root"), -ENOENT);
    free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(meminfo_real_kernel),
        cmocka_unit_test(meminfo_pressured_guest),
        cmocka_unit_test(meminfo_old_kernel_without_available),
        cmocka_unit_test(meminfo_invalid),
        cmocka_unit_test(meminfo_buffer_not_terminated),
        cmocka_unit_test(vmstat_files),
        cmocka_unit_test(vmstat_invalid),
        cmocka_unit_test(psi_files),
        cmocka_unit_test(psi_invalid),
        cmocka_unit_test(snapshot_from_proc_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
