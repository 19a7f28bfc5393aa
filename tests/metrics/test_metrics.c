/* bellowsd's metric families from a view built from literals: structure of the text (each
 * family's HELP and TYPE once, its samples together), names and types as Prometheus wants
 * them, values converted to base units and ratios, unknown values absent.
 * `test-metrics --print` writes the same exposition to stdout, for promtool (meson test
 * metrics-promtool). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/metrics/metrics.h"

#include <cmocka.h>

#define MIB (UINT64_C(1) << 20)

static const struct metrics_move_count moves_a[] = {
    {"deflate", "critical", 3},
    {"deflate", "medium", 0},
    {"inflate", "quiet", 12},
};
static const struct metrics_frame_count frames_a[] = {
    {"accepted", 100},
    {"invalid_json", 2},
    {"rate_limited", 0},
};

static struct metrics_guest guests[] = {
    {
        .name = "web-1",
        .backend = "qmp",
        .source = "file",
        .domain = "",
        .uuid = "",
        .agent = "bellows-agent 0.1.0",
        .level = 2,
        .floor_bytes = 256 * MIB,
        .ceiling_bytes = 2048 * MIB,
        .weight = 100,
        .actual_known = true,
        .actual_bytes = 1536 * MIB,
        .target_known = true,
        .target_bytes = 1536 * MIB,
        .mem_known = true,
        .mem_total_bytes = 1500 * MIB,
        .mem_available_bytes = 300 * MIB,
        .psi_some_avg10 = 30.0,
        .psi_full_avg10 = 12.5,
        .psi_some_total_us = 2500000,
        .psi_full_total_us = 1000000,
        .need_known = true,
        .need_bytes = 1464 * MIB,
        .working_set_bytes = 1344 * MIB,
        .stall_known = true,
        .stall_pct = 2.5,
        .stall_base_pct = 1.25,
        .channel_connected = true,
        .backend_connected = true,
        .channel_connects = 1,
        .channel_read_bytes = 123456,
        .frames = frames_a,
        .n_frames = 3,
        .moves = moves_a,
        .n_moves = 3,
        .move_failures = 1,
        .reversals = 2,
    },
    {
        /* A libvirt guest whose balloon size is not known yet and whose agent never
         * spoke; its domain name needs escaping. */
        .name = "db",
        .backend = "libvirt",
        .source = "libvirt",
        .domain = "db \"prod\"\\1",
        .uuid = "c7a5fdbd-cdaf-9455-926a-d65c16db1809",
        .agent = "",
        .paused = true,
        .floor_bytes = 512 * MIB,
        .ceiling_bytes = 4096 * MIB,
        .weight = 300,
    },
};

static const struct metrics_http http = {
    .requests = 10,
    .responses = {0, 0, 8, 0, 2, 0},
    .streams_open = 1,
    .streams_dropped = 3,
    .connections_open = 5,
    .connections_cut = 4,
    .history_bytes = 150000,
};

static struct metrics_view view(bool host_known)
{
    struct metrics_view v = {
        .version = "0.1.0",
        .dry_run = false,
        .decision_rounds = 42,
        .host =
            {
                .known = host_known,
                .psi_some_avg10 = 1.25,
                .psi_full_avg10 = 0.5,
                .has_full = true,
                .psi_some_total_us = 7000000,
                .psi_full_total_us = 3000000,
                .mem_total_bytes = 24576 * MIB,
                .mem_available_bytes = 20000 * MIB,
                .pressure = false,
                .budget_known = true,
                .budget_bytes = 16384 * MIB,
                .budget_cgroup = "/sys/fs/cgroup/machine.slice",
                .guests_held_bytes = 3072 * MIB,
            },
        .guests = guests,
        .n_guests = 2,
        .http = &http,
    };
    return v;
}

static char *render(bool host_known)
{
    struct metrics_view v = view(host_known);
    size_t len = 0;
    char *text = metrics_render(&v, &len);
    assert_non_null(text);
    assert_int_equal(len, strlen(text));
    return text;
}

/* The line that starts with prefix (exactly, up to the value), or NULL. */
static const char *find_line(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return p;
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return NULL;
}

/* The value of the sample whose series is exactly series. */
static double value_of(const char *text, const char *series)
{
    const char *line = find_line(text, series);
    if (!line)
        fail_msg("no sample %s", series);
    return strtod(line + strlen(series) + 1, NULL);
}

/* Walk the text: each family announced once, by HELP then TYPE, its samples right after it
 * and nowhere else; counters end in _total and gauges do not. Returns the family count. */
static size_t check_structure(const char *text)
{
    char families[128][96];
    size_t n = 0;
    char current[96] = "";
    const char *p = text;
    while (*p) {
        const char *end = strchr(p, '\n');
        assert_non_null(end);
        size_t len = (size_t)(end - p);
        char line[1024];
        assert_true(len < sizeof(line));
        memcpy(line, p, len);
        line[len] = '\0';
        p = end + 1;
        if (strncmp(line, "# HELP ", 7) == 0) {
            char name[96];
            assert_int_equal(sscanf(line + 7, "%95s", name), 1);
            assert_true(prom_metric_name_valid(name));
            for (size_t i = 0; i < n; i++)
                if (strcmp(families[i], name) == 0)
                    fail_msg("family %s announced twice", name);
            assert_true(n < 128);
            strcpy(families[n++], name);
            strcpy(current, name);
            /* The TYPE line follows at once. */
            char type_line[200];
            snprintf(type_line, sizeof(type_line), "# TYPE %s ", name);
            assert_memory_equal(p, type_line, strlen(type_line));
            const char *type = p + strlen(type_line);
            bool counter = strncmp(type, "counter\n", 8) == 0;
            assert_true(counter || strncmp(type, "gauge\n", 6) == 0);
            size_t nl = strlen(name);
            bool total = nl > 6 && strcmp(name + nl - 6, "_total") == 0;
            if (counter != total)
                fail_msg("%s: a counter must end in _total and only a counter", name);
            p = strchr(p, '\n') + 1;
            continue;
        }
        assert_true(line[0] != '#');
        /* A sample of the current family. */
        size_t cl = strlen(current);
        assert_true(cl > 0);
        if (strncmp(line, current, cl) != 0 || (line[cl] != '{' && line[cl] != ' '))
            fail_msg("sample outside its family: %s (family %s)", line, current);
    }
    return n;
}

static void structure(void **state)
{
    (void)state;
    char *text = render(true);
    size_t families = check_structure(text);
    assert_true(families >= 30);
    free(text);
    text = render(false);
    check_structure(text);
    free(text);
}

static void values(void **state)
{
    (void)state;
    char *text = render(true);
    assert_true(value_of(text, "bellows_build_info{version=\"0.1.0\"}") == 1);
    assert_true(value_of(text, "bellows_guests") == 2);
    assert_true(value_of(text, "bellows_decision_rounds_total") == 42);
    assert_true(value_of(text, "bellows_guest_balloon_actual_bytes{guest=\"web-1\"}") ==
                1536.0 * MIB);
    assert_true(value_of(text, "bellows_guest_floor_bytes{guest=\"db\"}") == 512.0 * MIB);
    assert_true(value_of(text, "bellows_guest_pressure_level{guest=\"web-1\"}") == 2);
    assert_true(value_of(text, "bellows_guest_paused{guest=\"db\"}") == 1);
    /* Percent becomes a ratio, microseconds become seconds. */
    assert_true(value_of(text, "bellows_guest_memory_pressure_some_avg10_ratio{guest=\"web-1\"}") ==
                0.3);
    assert_true(value_of(text, "bellows_guest_memory_pressure_full_avg10_ratio{guest=\"web-1\"}") ==
                0.125);
    assert_true(
        value_of(text, "bellows_guest_memory_pressure_waiting_seconds_total{guest=\"web-1\"}") ==
        2.5);
    assert_true(
        value_of(text, "bellows_guest_memory_pressure_stalled_seconds_total{guest=\"web-1\"}") ==
        1.0);
    assert_true(value_of(text, "bellows_host_memory_pressure_some_avg10_ratio") == 0.0125);
    assert_true(value_of(text, "bellows_host_memory_pressure_waiting_seconds_total") == 7);
    assert_true(value_of(text, "bellows_host_budget_bytes") == 16384.0 * MIB);
    assert_true(value_of(text,
                         "bellows_guest_moves_total{guest=\"web-1\",action=\"inflate\",reason="
                         "\"quiet\"}") == 12);
    /* A zero count is still a series, so rate() sees its first increase. */
    assert_true(value_of(text,
                         "bellows_guest_moves_total{guest=\"web-1\",action=\"deflate\",reason="
                         "\"medium\"}") == 0);
    assert_true(
        value_of(text, "bellows_guest_frames_total{guest=\"web-1\",outcome=\"invalid_json\"}") ==
        2);
    assert_true(value_of(text, "bellows_guest_reversals_total{guest=\"web-1\"}") == 2);
    assert_true(value_of(text, "bellows_guest_need_bytes{guest=\"web-1\"}") == 1464.0 * MIB);
    assert_true(value_of(text, "bellows_guest_working_set_bytes{guest=\"web-1\"}") == 1344.0 * MIB);
    assert_true(value_of(text, "bellows_guest_stall_ratio{guest=\"web-1\"}") == 0.025);
    assert_true(value_of(text, "bellows_guest_stall_base_ratio{guest=\"web-1\"}") == 0.0125);
    assert_true(value_of(text, "bellows_http_requests_total{code=\"4xx\"}") == 2);
    assert_true(value_of(text, "bellows_http_event_streams_dropped_total") == 3);
    assert_true(value_of(text, "bellows_http_connections") == 5);
    assert_true(value_of(text, "bellows_http_slow_connections_closed_total") == 4);
    /* Identifying strings only on the info family, escaped. */
    assert_true(value_of(text, "bellows_guest_info{guest=\"db\",backend=\"libvirt\",source="
                               "\"libvirt\",domain=\"db \\\"prod\\\"\\\\1\",uuid=\"c7a5fdbd-cdaf-"
                               "9455-926a-d65c16db1809\",agent=\"\"}") == 1);
    free(text);
}

static void unknown_values_absent(void **state)
{
    (void)state;
    char *text = render(false);
    /* db's balloon size, target and snapshot are unknown: no samples, not zeros. */
    assert_null(find_line(text, "bellows_guest_balloon_actual_bytes{guest=\"db\"}"));
    assert_null(find_line(text, "bellows_guest_balloon_target_bytes{guest=\"db\"}"));
    assert_null(find_line(text, "bellows_guest_memory_available_bytes{guest=\"db\"}"));
    assert_null(find_line(text, "bellows_guest_memory_pressure_some_avg10_ratio{guest=\"db\"}"));
    /* Nor its need and stall; its working set always has a value (at least its floor). */
    assert_null(find_line(text, "bellows_guest_need_bytes{guest=\"db\"}"));
    assert_null(find_line(text, "bellows_guest_stall_ratio{guest=\"db\"}"));
    assert_null(find_line(text, "bellows_guest_stall_base_ratio{guest=\"db\"}"));
    assert_non_null(find_line(text, "bellows_guest_working_set_bytes{guest=\"db\"}"));
    assert_non_null(find_line(text, "bellows_guest_memory_available_bytes{guest=\"web-1\"}"));
    /* No host sample yet: no host series. */
    assert_null(strstr(text, "bellows_host_"));
    free(text);
}

/* Rendered view v, checked for structure. */
static char *render_view(const struct metrics_view *v)
{
    size_t len = 0;
    char *text = metrics_render(v, &len);
    assert_non_null(text);
    check_structure(text);
    return text;
}

static void budget_series(void **state)
{
    (void)state;
    /* A cgroup's budget: its size, what the guests hold, where it comes from. */
    struct metrics_view v = view(true);
    char *text = render_view(&v);
    assert_true(value_of(text, "bellows_host_budget_bytes") == 16384.0 * MIB);
    assert_true(value_of(text, "bellows_host_guests_held_bytes") == 3072.0 * MIB);
    assert_true(value_of(text, "bellows_host_budget_info{source=\"cgroup\",cgroup=\"/sys/fs/"
                               "cgroup/machine.slice\"}") == 1);
    free(text);
    /* The host's own memory: no cgroup label. */
    v.host.budget_cgroup = "";
    text = render_view(&v);
    assert_true(value_of(text, "bellows_host_budget_info{source=\"meminfo\"}") == 1);
    free(text);
    /* No budget in force (off, or not computed yet): no budget series, not a 0; what the
     * guests hold is still there. */
    v.host.budget_known = false;
    text = render_view(&v);
    assert_null(strstr(text, "bellows_host_budget_bytes"));
    assert_null(strstr(text, "bellows_host_budget_info"));
    assert_true(value_of(text, "bellows_host_guests_held_bytes") == 3072.0 * MIB);
    free(text);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--print") == 0) {
        struct metrics_view v = view(true);
        size_t len;
        char *text = metrics_render(&v, &len);
        if (!text)
            return 1;
        fwrite(text, 1, len, stdout);
        free(text);
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(structure),
        cmocka_unit_test(values),
        cmocka_unit_test(unknown_values_absent),
        cmocka_unit_test(budget_series),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
