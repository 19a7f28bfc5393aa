/* The INI configuration parser: a valid file, size and duration units, and each invalid
 * case with the line its error must point at. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-daemon/config/config.h"
#include "host-daemon/util/units.h"

static int parse(const char *text, struct config *cfg, struct config_errors *errs)
{
    return config_parse_buffer(text, strlen(text), cfg, errs);
}

/* The error list holds one error at `line` whose message contains `needle`. */
static void expect_error(const char *text, int line, const char *needle)
{
    struct config cfg;
    struct config_errors errs;
    memset(&cfg, 0x5A, sizeof(cfg));
    int r = parse(text, &cfg, &errs);
    if (r != -EINVAL || errs.count == 0)
        fail_msg("accepted: %s", text);
    bool found = false;
    for (size_t i = 0; i < errs.count; i++)
        if (errs.items[i].line == line && strstr(errs.items[i].message, needle))
            found = true;
    if (!found) {
        for (size_t i = 0; i < errs.count; i++)
            print_message("  got line %d: %s\n", errs.items[i].line, errs.items[i].message);
        fail_msg("no error at line %d containing '%s' for:\n%s", line, needle, text);
    }
    /* On failure the output is untouched. */
    assert_int_equal(((unsigned char *)&cfg)[0], 0x5A);
}

static const char valid_text[] = "# bellowsd test config\n"
                                 "[daemon]\n"
                                 "control_socket = /run/test/ctl.sock\n"
                                 "log_level = debug\n"
                                 "dry_run = yes\n"
                                 "host_sample_interval = 500ms\n"
                                 "guest_frame_rate = 10\n"
                                 "guest_byte_rate = 32K\n"
                                 "reconnect_max = 1min ; inline comment\n"
                                 "\n"
                                 "[policy]\n"
                                 "quiet_ms = 2min\n"
                                 "critical_step_bytes = 256M\n"
                                 "[guest web1]\n"
                                 "qmp = /run/vm/web1.qmp\n"
                                 "channel = /run/vm/web1.chan\n"
                                 "floor = 512M\n"
                                 "ceiling = 2G\n"
                                 "weight = 300\n"
                                 "\n"
                                 "[guest db.2]\n"
                                 "qmp = /run/vm/db2.qmp\n"
                                 "channel = /run/vm/db2.chan\n"
                                 "floor = 1048576\n"
                                 "ceiling = 1GiB\n";

static void valid_file(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse(valid_text, &cfg, &errs), 0);
    assert_int_equal(errs.count, 0);
    assert_string_equal(cfg.daemon.control_socket, "/run/test/ctl.sock");
    assert_int_equal(cfg.daemon.log_level, LOG_LEVEL_DEBUG);
    assert_true(cfg.daemon.dry_run);
    assert_int_equal(cfg.daemon.host_sample_ms, 500);
    assert_int_equal(cfg.daemon.guest_frame_rate, 10);
    assert_int_equal(cfg.daemon.guest_frame_burst, 40); /* default kept */
    assert_int_equal(cfg.daemon.guest_byte_rate, 32768);
    assert_int_equal(cfg.daemon.reconnect_max_ms, 60000);
    assert_string_equal(cfg.daemon.proc_dir, "/proc");
    struct policy_config defaults;
    policy_config_defaults(&defaults);
    assert_int_equal(cfg.policy.quiet_ms, 120000);
    assert_int_equal(cfg.policy.critical_step_bytes, 256ull << 20);
    assert_int_equal(cfg.policy.medium_dwell_ms, defaults.medium_dwell_ms);

    assert_int_equal(cfg.n_guests, 2);
    const struct config_guest *g = config_find_guest(&cfg, "web1");
    assert_non_null(g);
    assert_string_equal(g->qmp_path, "/run/vm/web1.qmp");
    assert_string_equal(g->channel_path, "/run/vm/web1.chan");
    assert_int_equal(g->floor_bytes, 512ull << 20);
    assert_int_equal(g->ceiling_bytes, 2ull << 30);
    assert_int_equal(g->weight, 300);
    assert_int_equal(g->line, 14);
    g = config_find_guest(&cfg, "db.2");
    assert_non_null(g);
    assert_int_equal(g->floor_bytes, 1048576);
    assert_int_equal(g->ceiling_bytes, 1ull << 30);
    assert_int_equal(g->weight, CONFIG_DEFAULT_WEIGHT);
    assert_null(config_find_guest(&cfg, "nope"));
    config_free(&cfg);
}

static void empty_file_gives_defaults(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse("", &cfg, &errs), 0);
    assert_int_equal(cfg.n_guests, 0);
    assert_string_equal(cfg.daemon.control_socket, CONFIG_DEFAULT_CONTROL_SOCKET);
    assert_false(cfg.daemon.dry_run);
    assert_int_equal(cfg.daemon.guest_frame_rate, 20);
    assert_int_equal(cfg.daemon.guest_frame_burst, 40);
    assert_int_equal(cfg.daemon.host_sample_ms, 1000);
    config_free(&cfg);
}

static void sizes_and_durations(void **state)
{
    (void)state;
    uint64_t v;
    assert_int_equal(units_parse_size("0", &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(units_parse_size("64K", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(units_parse_size("64kb", &v), 0);
    assert_int_equal(v, 65536);
    assert_int_equal(units_parse_size("3M", &v), 0);
    assert_int_equal(v, 3u << 20);
    assert_int_equal(units_parse_size(" 2GiB ", &v), 0);
    assert_int_equal(v, 2ull << 30);
    assert_int_equal(units_parse_size("1T", &v), 0);
    assert_int_equal(v, 1ull << 40);
    assert_int_equal(units_parse_size("100B", &v), 0);
    assert_int_equal(v, 100);
    assert_int_equal(units_parse_size("", &v), -EINVAL);
    assert_int_equal(units_parse_size("M", &v), -EINVAL);
    assert_int_equal(units_parse_size("1.5G", &v), -EINVAL);
    assert_int_equal(units_parse_size("-1", &v), -EINVAL);
    assert_int_equal(units_parse_size("12X", &v), -EINVAL);
    assert_int_equal(units_parse_size("1G G", &v), -EINVAL);
    assert_int_equal(units_parse_size("99999999999999999999", &v), -ERANGE);
    assert_int_equal(units_parse_size("16777216T", &v), -ERANGE);

    char buf[32];
    assert_string_equal(units_format_size(512ull << 20, buf, sizeof(buf)), "512M");
    assert_string_equal(units_format_size(1536ull << 10, buf, sizeof(buf)), "1536K");
    assert_string_equal(units_format_size(7, buf, sizeof(buf)), "7");
    assert_string_equal(units_format_size(0, buf, sizeof(buf)), "0");

    assert_int_equal(units_parse_duration_ms("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(units_parse_duration_ms("2s", &v), 0);
    assert_int_equal(v, 2000);
    assert_int_equal(units_parse_duration_ms("5min", &v), 0);
    assert_int_equal(v, 300000);
    assert_int_equal(units_parse_duration_ms("5", &v), -EINVAL);
    assert_int_equal(units_parse_duration_ms("5h", &v), -EINVAL);
    assert_int_equal(units_parse_duration_ms("s", &v), -EINVAL);
}

#define GUEST_OK "qmp = /q.sock\nchannel = /c.sock\nfloor = 256M\nceiling = 1G\n"

static void invalid_cases_point_at_their_line(void **state)
{
    (void)state;
    /* Key errors: the line of the key. */
    expect_error("[daemon]\nlog_level = loud\n", 2, "not a log level");
    expect_error("[daemon]\n\ndry_run = maybe\n", 3, "not a boolean");
    expect_error("[daemon]\nhost_sample_interval = 5\n", 2, "not a duration");
    expect_error("[daemon]\nhost_sample_interval = 10ms\n", 2, "out of range");
    expect_error("[daemon]\ncontrol_socket = relative.sock\n", 2, "not an absolute path");
    expect_error("[daemon]\nguest_frame_rate = ten\n", 2, "not a whole number");
    expect_error("[daemon]\nbogus = 1\n", 2, "unknown key 'bogus'");
    expect_error("[daemon]\nlog_level = info\ndry_run = no\nlog_level = debug\n", 4,
                 "set twice in [daemon] (first at line 2)");
    expect_error("log_level = info\n", 1, "outside any section");
    expect_error("[daemon]\nlog_level = info\n[nonsense]\na = 1\nb = 2\n", 3,
                 "unknown section [nonsense]");
    expect_error("[daemon]\nreconnect_min = 2s\nreconnect_max = 1s\n", 3,
                 "reconnect_max is below reconnect_min");
    expect_error("[policy]\nquiet_ms = 2min\nbogus_ms = 1s\n", 3,
                 "unknown key 'bogus_ms' in [policy]");
    expect_error("[policy]\nquiet_ms = soon\n", 2, "bad value for quiet_ms");
    expect_error("[policy]\nquiet_ms = 2min\n[daemon]\ndry_run = 1\n[policy]\nquiet_ms = 1min\n", 6,
                 "'quiet_ms' is set twice in [policy] (first at line 2)");
    expect_error("[daemon]\ndry_run = 1\n[policy]\nhost_psi_enter = 5\nhost_psi_exit = 10\n", 3,
                 "[policy]: ");
    /* Syntax: inih's own line. */
    expect_error("[daemon]\nlog_level info\n", 2, "syntax error");
    expect_error("[daemon]\nlog_level = info\n\n[daemon\n", 4, "syntax error");

    /* Guests. */
    expect_error("[guest a]\nqmp = /q.sock\nchannel = /c.sock\nfloor = lots\nceiling = 1G\n", 4,
                 "not a size");
    expect_error("[guest a]\nqmp = /q.sock\nchannel = /c.sock\nfloor = 2G\nceiling = 1G\n", 5,
                 "floor 2G is above ceiling 1G");
    expect_error("[guest a]\nqmp = /q.sock\nchannel = /c.sock\nceiling = 1G\nfloor = 2G\n", 5,
                 "floor 2G is above ceiling 1G");
    expect_error("[guest a]\nchannel = /c.sock\nfloor = 256M\nceiling = 1G\n", 1,
                 "no qmp socket path");
    expect_error("[guest a]\nqmp = /q.sock\nfloor = 256M\nceiling = 1G\n", 1,
                 "no channel socket path");
    expect_error("[guest a]\nqmp = /q.sock\nchannel = /c.sock\nceiling = 1G\n", 1,
                 "needs both floor and ceiling");
    expect_error("[guest a]\n" GUEST_OK "weight = 0\n", 6, "weight");
    expect_error("[guest a]\n" GUEST_OK "weight = 10001\n", 6, "weight");
    expect_error("[guest a]\n" GUEST_OK "colour = blue\n", 6, "unknown key 'colour'");
    expect_error("[guest a]\n" GUEST_OK "floor = 128M\n", 6,
                 "'floor' is set twice in [guest a] (first at line 4)");
    expect_error("[guest a]\nqmp = /q.sock\nchannel = /c.sock\nfloor = 512\nceiling = 1G\n", 4,
                 "below 1M");
    expect_error("[guest bad/name]\n" GUEST_OK, 1, "not a valid guest name");
    expect_error("[guest ]\n" GUEST_OK, 1, "not a valid guest name");
    expect_error("[guest a]\nqmp = /same.sock\nchannel = /same.sock\nfloor = 1G\nceiling = 1G\n", 1,
                 "same path");
    expect_error("[guest a]\n" GUEST_OK "[guest b]\n", 6, "section has no keys");

    /* Duplicates across guests. */
    expect_error("[guest a]\n" GUEST_OK "\n[guest a]\nqmp = /q2.sock\nchannel = /c2.sock\n"
                 "floor = 256M\nceiling = 1G\n",
                 7, "guest 'a' is defined twice (first at line 1)");
    expect_error("[guest a]\n" GUEST_OK "[guest b]\nqmp = /q2.sock\nchannel = /c.sock\n"
                 "floor = 256M\nceiling = 1G\n",
                 6, "uses the path /c.sock of guest 'a' (line 1)");
    expect_error("[daemon]\ncontrol_socket = /q.sock\n[guest a]\n" GUEST_OK, 3,
                 "control socket's path");

    /* Lines too long for inih and NUL bytes are refused, not truncated. */
    char longline[400];
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "[daemon]\nproc_dir = /", 21);
    strcpy(longline + sizeof(longline) - 2, "\n");
    expect_error(longline, 2, "line is");
}

static void every_error_is_reported(void **state)
{
    (void)state;
    const char *text = "[daemon]\nlog_level = loud\ndry_run = maybe\n[guest a]\nweight = x\n";
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse(text, &cfg, &errs), -EINVAL);
    /* log_level, dry_run, weight, and the incomplete guest. */
    assert_int_equal(errs.count, 4);
    assert_int_equal(errs.items[0].line, 2);
    assert_int_equal(errs.items[1].line, 3);
    assert_int_equal(errs.items[2].line, 5);
    assert_int_equal(errs.items[3].line, 4);
}

static void nul_byte_is_an_error(void **state)
{
    (void)state;
    const char text[] = "[daemon]\nlog_level = info\0 = x\n";
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(config_parse_buffer(text, sizeof(text) - 1, &cfg, &errs), -EINVAL);
    assert_int_equal(errs.items[0].line, 2);
    assert_non_null(strstr(errs.items[0].message, "NUL"));
}

static void many_guests_and_file_wrapper(void **state)
{
    (void)state;
    char dir[128];
    snprintf(dir, sizeof(dir), "%s/bellows-config-XXXXXX", P_tmpdir);
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/bellowsd.conf", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "[daemon]\ndry_run = true\n");
    for (int i = 0; i < 500; i++)
        fprintf(f,
                "[guest vm%d]\nqmp = /run/vm%d.qmp\nchannel = /run/vm%d.chan\n"
                "floor = 128M\nceiling = 1G\n",
                i, i, i);
    fclose(f);

    struct config cfg;
    struct config_errors errs;
    assert_int_equal(config_load_file(path, &cfg, &errs), 0);
    assert_int_equal(cfg.n_guests, 500);
    assert_string_equal(cfg.guests[499].name, "vm499");
    assert_int_equal(cfg.guests[499].line, 2 + 499 * 5 + 1);
    config_free(&cfg);

    unlink(path);
    assert_int_equal(config_load_file(path, &cfg, &errs), -ENOENT);
    assert_int_equal(errs.count, 1);
    assert_int_equal(errs.items[0].line, 0);
    assert_non_null(strstr(errs.items[0].message, "No such file"));
    rmdir(dir);
}

static void guest_setters_for_the_control_socket(void **state)
{
    (void)state;
    struct config_guest g = {.name = "x", .weight = 100};
    char err[200];
    assert_int_equal(config_guest_set(&g, "qmp", "/a", err, sizeof(err)), 0);
    assert_int_equal(config_guest_set(&g, "channel", "/b", err, sizeof(err)), 0);
    assert_int_equal(config_guest_set(&g, "floor", "1G", err, sizeof(err)), 0);
    assert_int_equal(config_guest_check(&g, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "floor and ceiling"));
    assert_int_equal(config_guest_set(&g, "ceiling", "512M", err, sizeof(err)), 0);
    assert_int_equal(config_guest_check(&g, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "above ceiling"));
    assert_int_equal(config_guest_set(&g, "ceiling", "2G", err, sizeof(err)), 0);
    assert_int_equal(config_guest_check(&g, err, sizeof(err)), 0);
    assert_int_equal(config_guest_set(&g, "weight", "abc", err, sizeof(err)), -EINVAL);
    assert_int_equal(g.weight, 100);
    assert_int_equal(config_guest_set(&g, "colour", "red", err, sizeof(err)), -EINVAL);
    assert_true(config_guest_name_valid("web-1.example_2"));
    assert_false(config_guest_name_valid("-web"));
    assert_false(config_guest_name_valid("a b"));
    assert_false(config_guest_name_valid(""));
}

/* [libvirt]: off without the section, on with it, every key, and its errors. */
static void libvirt_section(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;

    assert_int_equal(parse("", &cfg, &errs), 0);
    assert_false(cfg.libvirt.enabled);
    config_free(&cfg);

    assert_int_equal(parse("[daemon]\nlog_level = info\n[libvirt]\nenabled = true\n", &cfg, &errs),
                     0);
    assert_true(cfg.libvirt.enabled);
    assert_int_equal(cfg.libvirt.line, 3);
    assert_string_equal(cfg.libvirt.uri, "qemu:///system");
    assert_int_equal(cfg.libvirt.default_floor_bytes, 256u << 20);
    assert_int_equal(cfg.libvirt.default_weight, CONFIG_DEFAULT_WEIGHT);
    assert_int_equal(cfg.libvirt.keepalive_interval_ms, 5000);
    assert_int_equal(cfg.libvirt.keepalive_count, 3);
    config_free(&cfg);

    assert_int_equal(parse("[libvirt]\nuri = qemu+ssh://root@host/system\ndefault_floor = 1G\n"
                           "default_weight = 50\nkeepalive_interval = 10s\nkeepalive_count = 5\n"
                           "[guest a]\nqmp = /q\nchannel = /c\nfloor = 1G\nceiling = 2G\n",
                           &cfg, &errs),
                     0);
    assert_true(cfg.libvirt.enabled);
    assert_string_equal(cfg.libvirt.uri, "qemu+ssh://root@host/system");
    assert_int_equal(cfg.libvirt.default_floor_bytes, UINT64_C(1) << 30);
    assert_int_equal(cfg.libvirt.default_weight, 50);
    assert_int_equal(cfg.libvirt.keepalive_interval_ms, 10000);
    assert_int_equal(cfg.libvirt.keepalive_count, 5);
    assert_int_equal(cfg.n_guests, 1); /* both backends in one daemon */
    config_free(&cfg);

    /* The section kept but turned off. */
    assert_int_equal(parse("[libvirt]\nenabled = no\nuri = test:///default\n", &cfg, &errs), 0);
    assert_false(cfg.libvirt.enabled);
    config_free(&cfg);

    expect_error("[libvirt]\nuri = qemu:///system extra\n", 2, "is not a libvirt URI");
    expect_error("[libvirt]\nuri =\n", 2, "is not a libvirt URI");
    expect_error("[libvirt]\ndefault_floor = 512K\n", 2, "out of range");
    expect_error("[libvirt]\ndefault_weight = 0\n", 2, "out of range");
    expect_error("[libvirt]\ndefault_weight = 10001\n", 2, "out of range");
    expect_error("[libvirt]\nkeepalive_interval = 500ms\n", 2, "out of range");
    expect_error("[libvirt]\nkeepalive_count = 0\n", 2, "out of range");
    expect_error("[libvirt]\nsocket = /x\n", 2, "unknown key 'socket' in [libvirt]");
    expect_error("[libvirt]\nuri = a:///\nuri = b:///\n", 3, "'uri' is set twice in [libvirt]");
    expect_error("[libvirt]\n", 1, "section has no keys");
    expect_error("[libvrit]\nuri = a:///\n", 1, "known: [daemon], [policy], [libvirt]");
}

/* The host budget's keys: defaults, values, ranges. */
static void budget_keys(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse("[daemon]\nlog_level = info\n", &cfg, &errs), 0);
    assert_true(cfg.daemon.budget);
    assert_string_equal(cfg.daemon.budget_cgroup, "");
    assert_int_equal(cfg.daemon.budget_reserve_bytes, 256ull << 20);
    assert_int_equal(cfg.daemon.budget_reserve_pct, 10);
    assert_int_equal(cfg.daemon.budget_guest_overhead, 64ull << 20);
    config_free(&cfg);
    assert_int_equal(parse("[daemon]\nbudget = off\nbudget_cgroup = /sys/fs/cgroup/memory/vms\n"
                           "budget_reserve = 1G\nbudget_reserve_pct = 0\n"
                           "budget_guest_overhead = 96M\n",
                           &cfg, &errs),
                     0);
    assert_false(cfg.daemon.budget);
    assert_string_equal(cfg.daemon.budget_cgroup, "/sys/fs/cgroup/memory/vms");
    assert_int_equal(cfg.daemon.budget_reserve_bytes, 1ull << 30);
    assert_int_equal(cfg.daemon.budget_reserve_pct, 0);
    assert_int_equal(cfg.daemon.budget_guest_overhead, 96ull << 20);
    config_free(&cfg);
    expect_error("[daemon]\nbudget_reserve_pct = 91\n", 2, "out of range");
    expect_error("[daemon]\nbudget_cgroup = machine.slice\n", 2, "absolute path");
    expect_error("[daemon]\nbudget = maybe\n", 2, "boolean");
}

/* The commented example shipped in packaging/ is a valid configuration (tests run in the
 * source root). */
static void shipped_example_is_valid(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    int r = config_load_file("packaging/bellowsd.conf.example", &cfg, &errs);
    for (size_t i = 0; i < errs.count; i++)
        print_message("line %d: %s\n", errs.items[i].line, errs.items[i].message);
    assert_int_equal(r, 0);
    assert_int_equal(cfg.n_guests, 2);
    assert_false(cfg.libvirt.enabled); /* commented out: plain QEMU hosts by default */
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(shipped_example_is_valid),
        cmocka_unit_test(budget_keys),
        cmocka_unit_test(libvirt_section),
        cmocka_unit_test(valid_file),
        cmocka_unit_test(empty_file_gives_defaults),
        cmocka_unit_test(sizes_and_durations),
        cmocka_unit_test(invalid_cases_point_at_their_line),
        cmocka_unit_test(every_error_is_reported),
        cmocka_unit_test(nul_byte_is_an_error),
        cmocka_unit_test(many_guests_and_file_wrapper),
        cmocka_unit_test(guest_setters_for_the_control_socket),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
