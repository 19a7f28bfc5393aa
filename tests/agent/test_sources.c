/* Pure parts of the sources and the command line: PSI trigger specs and their fallback,
 * vmpressure control lines and the v1 memory controller's mount point, agent options. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest-agent/options.h"
#include "guest-agent/psi_trigger.h"
#include "guest-agent/vmpressure.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void psi_spec_parse_table(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int r;
        bool enabled, full;
        uint32_t stall_us, window_us;
    } cases[] = {
        {"some:70:1000", 0, true, false, 70000, 1000000},
        {"full:700:1000", 0, true, true, 700000, 1000000},
        {"some:150:2000", 0, true, false, 150000, 2000000},
        {"some:10000:10000", 0, true, false, 10000000, 10000000},
        {"off", 0, false, false, 0, 0},
        {"some:0:1000", -EINVAL, 0, 0, 0, 0},    /* no stall */
        {"some:2000:1000", -EINVAL, 0, 0, 0, 0}, /* stall longer than the window */
        {"some:70:10001", -EINVAL, 0, 0, 0, 0},  /* window over 10 s */
        {"some:70", -EINVAL, 0, 0, 0, 0},
        {"some:70:1000:", -EINVAL, 0, 0, 0, 0},
        {"any:70:1000", -EINVAL, 0, 0, 0, 0},
        {"some:-1:1000", -EINVAL, 0, 0, 0, 0},
        {"some:70:1000x", -EINVAL, 0, 0, 0, 0},
        {"", -EINVAL, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct psi_spec s = {.stall_us = 42};
        int r = psi_spec_parse(cases[i].text, &s);
        if (r != cases[i].r)
            fail_msg("\"%s\": got %d, want %d", cases[i].text, r, cases[i].r);
        if (r < 0) {
            assert_int_equal(s.stall_us, 42);
            continue;
        }
        assert_int_equal(s.enabled, cases[i].enabled);
        assert_int_equal(s.full, cases[i].full);
        assert_int_equal(s.stall_us, cases[i].stall_us);
        assert_int_equal(s.window_us, cases[i].window_us);
        char back[32];
        assert_true(psi_spec_name(&s, back, sizeof(back)) > 0);
        assert_string_equal(back, cases[i].text);
    }
}

static void psi_trigger_text_and_defaults(void **state)
{
    (void)state;
    char t[64];
    struct psi_spec low = psi_spec_default(BP_LEVEL_LOW);
    struct psi_spec med = psi_spec_default(BP_LEVEL_MEDIUM);
    struct psi_spec crit = psi_spec_default(BP_LEVEL_CRITICAL);
    assert_int_equal(psi_spec_trigger(&low, t, sizeof(t)), 18);
    assert_string_equal(t, "some 20000 1000000");
    psi_spec_trigger(&med, t, sizeof(t));
    assert_string_equal(t, "some 70000 1000000"); /* Android lmkd's medium */
    psi_spec_trigger(&crit, t, sizeof(t));
    assert_string_equal(t, "full 700000 1000000"); /* Android lmkd's critical */
    assert_int_equal(psi_spec_trigger(&crit, t, 10), -ENOSPC);
    assert_false(psi_spec_default(BP_LEVEL_NONE).enabled);
}

static void psi_fallback_table(void **state)
{
    (void)state;
    static const struct {
        uint32_t stall_us, window_us;
        bool has;
        uint32_t want_stall, want_window;
    } cases[] = {
        {20000, 1000000, true, 40000, 2000000},      /* x2 */
        {70000, 1000000, true, 140000, 2000000},     /* x2 */
        {700000, 1000000, true, 1400000, 2000000},   /* x2 */
        {150000, 500000, true, 600000, 2000000},     /* x4 */
        {300000, 3000000, true, 400000, 4000000},    /* to the next multiple */
        {9000000, 9500000, true, 9473684, 10000000}, /* capped at 10 s */
        {140000, 2000000, false, 0, 0},              /* already a multiple */
        {1000000, 10000000, false, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct psi_spec in = {
            .enabled = true, .stall_us = cases[i].stall_us, .window_us = cases[i].window_us};
        struct psi_spec out = {0};
        bool has = psi_spec_fallback(&in, &out);
        assert_int_equal(has, cases[i].has);
        if (!has)
            continue;
        if (out.stall_us != cases[i].want_stall || out.window_us != cases[i].want_window)
            fail_msg("%u/%u: got %u/%u, want %u/%u", cases[i].stall_us, cases[i].window_us,
                     out.stall_us, out.window_us, cases[i].want_stall, cases[i].want_window);
        assert_int_equal(out.window_us % PSI_UNPRIV_WINDOW_US, 0);
        assert_true(out.stall_us <= out.window_us);
        assert_true(out.enabled);
    }
}

static void vmpressure_lines(void **state)
{
    (void)state;
    char buf[64];
    assert_int_equal(
        vmpressure_control_line(5, 4, BP_LEVEL_LOW, VMPRESSURE_MODE_DEFAULT, buf, sizeof(buf)), 7);
    assert_string_equal(buf, "5 4 low");
    vmpressure_control_line(12, 3, BP_LEVEL_CRITICAL, VMPRESSURE_MODE_HIERARCHY, buf, sizeof(buf));
    assert_string_equal(buf, "12 3 critical,hierarchy");
    vmpressure_control_line(7, 3, BP_LEVEL_MEDIUM, VMPRESSURE_MODE_LOCAL, buf, sizeof(buf));
    assert_string_equal(buf, "7 3 medium,local");
    assert_int_equal(
        vmpressure_control_line(7, 3, BP_LEVEL_NONE, VMPRESSURE_MODE_LOCAL, buf, sizeof(buf)),
        -EINVAL);
    assert_int_equal(vmpressure_control_line(7, 3, BP_LEVEL_LOW, VMPRESSURE_MODE_LOCAL, buf, 5),
                     -ENOSPC);
    enum vmpressure_mode m;
    assert_int_equal(vmpressure_mode_parse("hierarchy", &m), 0);
    assert_int_equal(m, VMPRESSURE_MODE_HIERARCHY);
    assert_int_equal(vmpressure_mode_parse("global", &m), -EINVAL);
}

static void vmpressure_mount_table(void **state)
{
    (void)state;
    static const char v1[] =
        "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
        "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
        "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n";
    static const char v2_only[] =
        "30 23 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    static const char escaped[] = "40 31 0:40 / /mnt/mem\\040cg rw - cgroup none rw,memory,cpu\n";
    static const char memory_in_other_field[] = "41 31 0:41 / /memory rw - cgroup memory rw,cpu\n";
    char path[256];

    assert_int_equal(vmpressure_find_mount(v1, sizeof(v1) - 1, path, sizeof(path)), 0);
    assert_string_equal(path, "/sys/fs/cgroup/memory");
    assert_int_equal(vmpressure_find_mount(v2_only, sizeof(v2_only) - 1, path, sizeof(path)),
                     -ENOENT);
    assert_int_equal(vmpressure_find_mount(escaped, sizeof(escaped) - 1, path, sizeof(path)), 0);
    assert_string_equal(path, "/mnt/mem cg");
    assert_int_equal(vmpressure_find_mount(memory_in_other_field, sizeof(memory_in_other_field) - 1,
                                           path, sizeof(path)),
                     -ENOENT);
    assert_int_equal(vmpressure_find_mount(v1, sizeof(v1) - 1, path, 8), -ENAMETOOLONG);
    assert_int_equal(vmpressure_find_mount("", 0, path, sizeof(path)), -ENOENT);
}

static int parse(struct agent_options *o, char *err, int argc, const char **argv)
{
    agent_options_default(o);
    return agent_options_parse(o, argc, (char **)argv, err, 256);
}

static void options_defaults(void **state)
{
    (void)state;
    struct agent_options o;
    char err[256];
    const char *argv[] = {"bellows-agent"};
    assert_int_equal(parse(&o, err, 1, argv), 0);
    assert_string_equal(o.port_name, "org.bellows.pressure.0");
    assert_null(o.device);
    assert_false(o.print);
    assert_true(o.sources_auto);
    assert_null(o.cgroup);
    assert_int_equal(o.vmpressure_mode, VMPRESSURE_MODE_DEFAULT);
    assert_string_equal(o.psi_file, "/proc/pressure/memory");
    assert_int_equal(o.psi[1].stall_us, 70000);
    assert_true(o.psi[2].full);
    assert_int_equal(o.report_ms, 5000);
    assert_int_equal(o.repeat_ms, 1000);
    assert_int_equal(o.critical_repeat_ms, 100);
    assert_int_equal(o.quiet_ms, 5000);
    assert_int_equal(o.reconnect_max_ms, 2000);
    assert_string_equal(o.proc_root, "/proc");
    assert_true(o.mlock);
}

static void options_all(void **state)
{
    (void)state;
    struct agent_options o;
    char err[256];
    const char *argv[] = {"bellows-agent",
                          "--port",
                          "my.port",
                          "--device",
                          "/run/x.sock",
                          "--print",
                          "--sources",
                          "psi",
                          "--cgroup",
                          "/cg/a",
                          "--vmpressure-mode",
                          "local",
                          "--psi-file",
                          "/cg2/memory.pressure",
                          "--psi-low",
                          "off",
                          "--psi-medium=some:100:2000",
                          "--psi-critical",
                          "full:500:2000",
                          "--report-interval",
                          "0",
                          "--repeat-interval",
                          "250",
                          "--critical-repeat-interval",
                          "0",
                          "--quiet-after",
                          "9000",
                          "--reconnect-max",
                          "8000",
                          "--proc-root",
                          "/fake",
                          "--no-mlock",
                          "-v"};
    assert_int_equal(parse(&o, err, sizeof(argv) / sizeof(argv[0]), argv), 0);
    assert_string_equal(o.port_name, "my.port");
    assert_string_equal(o.device, "/run/x.sock");
    assert_true(o.print);
    assert_false(o.sources_auto);
    assert_int_equal(o.sources, AGENT_SOURCE_PSI);
    assert_string_equal(o.cgroup, "/cg/a");
    assert_int_equal(o.vmpressure_mode, VMPRESSURE_MODE_LOCAL);
    assert_string_equal(o.psi_file, "/cg2/memory.pressure");
    assert_false(o.psi[0].enabled);
    assert_int_equal(o.psi[1].window_us, 2000000);
    assert_int_equal(o.psi[2].stall_us, 500000);
    assert_int_equal(o.report_ms, 0);
    assert_int_equal(o.repeat_ms, 250);
    assert_int_equal(o.critical_repeat_ms, 0);
    assert_int_equal(o.quiet_ms, 9000);
    assert_int_equal(o.reconnect_max_ms, 8000);
    assert_string_equal(o.proc_root, "/fake");
    assert_false(o.mlock);
    assert_true(o.verbose);

    const char *both[] = {"bellows-agent", "--sources", "psi,vmpressure"};
    assert_int_equal(parse(&o, err, 3, both), 0);
    assert_int_equal(o.sources, AGENT_SOURCE_PSI | AGENT_SOURCE_VMPRESSURE);
}

static void options_errors(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *needle; /* part of the message */
    } cases[] = {
        {{"--port", "../etc"}, "--port"},
        {{"--port", ""}, "--port"},
        {{"--sources", "psi,swap"}, "--sources"},
        {{"--sources", ""}, "--sources"},
        {{"--vmpressure-mode", "global"}, "--vmpressure-mode"},
        {{"--psi-medium", "some:70"}, "--psi-medium"},
        {{"--report-interval", "50"}, "--report-interval"},
        {{"--report-interval", "-1"}, "--report-interval"},
        {{"--repeat-interval", "1s"}, "--repeat-interval"},
        {{"--critical-repeat-interval", "x"}, "--critical-repeat-interval"},
        {{"--quiet-after", "0"}, "--quiet-after"},
        {{"--reconnect-max", "10"}, "--reconnect-max"},
        {{"--frobnicate"}, "unknown option --frobnicate"},
        {{"--device"}, "--device needs a value"},
        {{"stray"}, "unexpected argument"},
        {{"--sources", "psi", "--psi-low", "off"}, NULL}, /* two levels still on: fine */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[6] = {"bellows-agent"};
        int argc = 1;
        for (int k = 0; k < 4 && cases[i].args[k]; k++)
            argv[argc++] = cases[i].args[k];
        struct agent_options o;
        char err[256];
        int r = parse(&o, err, argc, argv);
        if (!cases[i].needle) {
            assert_int_equal(r, 0);
            continue;
        }
        if (r != -EINVAL || !strstr(err, cases[i].needle))
            fail_msg("case %zu: r=%d err=\"%s\", want \"%s\"", i, r, err, cases[i].needle);
    }
    const char *all_off[] = {
        "bellows-agent", "--sources",      "psi", "--psi-low", "off", "--psi-medium",
        "off",           "--psi-critical", "off"};
    struct agent_options o;
    char err[256];
    assert_int_equal(parse(&o, err, 9, all_off), -EINVAL);
}

static void options_usage_lists_every_option(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    agent_options_usage(f);
    fclose(f);
    static const char *const names[] = {
        "--port",
        "--device",
        "--print",
        "--reconnect-max",
        "--sources",
        "--cgroup",
        "--vmpressure-mode",
        "--psi-file",
        "--psi-low",
        "--psi-medium",
        "--psi-critical",
        "--report-interval",
        "--repeat-interval",
        "--critical-repeat-interval",
        "--quiet-after",
        "--proc-root",
        "--no-mlock",
        "--verbose",
        "--help",
        "--version",
        /* and the defaults */
        "org.bellows.pressure.0",
        "some:20:1000",
        "some:70:1000",
        "full:700:1000",
        "/proc/pressure/memory",
        "(default: 5000)",
        "(default: 1000)",
        "(default: 2000)",
        "(default: 100)",
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strstr(text, names[i]))
            fail_msg("--help lacks %s", names[i]);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(psi_spec_parse_table),
        cmocka_unit_test(psi_trigger_text_and_defaults),
        cmocka_unit_test(psi_fallback_table),
        cmocka_unit_test(vmpressure_lines),
        cmocka_unit_test(vmpressure_mount_table),
        cmocka_unit_test(options_defaults),
        cmocka_unit_test(options_all),
        cmocka_unit_test(options_errors),
        cmocka_unit_test(options_usage_lists_every_option),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
