/* bellowsctl top's model: a `list` reply read into rows (states, used memory, the last
 * move's age), each sort key, the summary, row and CSV text, and the errors a reply can
 * carry. The clock is passed in. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctl/top_model.h"

#define MIB (UINT64_C(1) << 20)
/* 2026-01-02T03:04:05.000Z */
#define T0_MS INT64_C(1767323045000)

static const char reply[] =
    "{\"ok\":true,\"dry_run\":true,"
    "\"host\":{\"psi_some_avg10\":1.5,\"mem_total\":25769803776,\"mem_available\":"
    "21474836480,\"pressure\":false,\"budget\":12884901888,\"held\":5368709120},"
    "\"guests\":["
    "{\"name\":\"idle\",\"level\":\"none\",\"paused\":false,\"psi_some_avg10\":0.1,"
    "\"mem_available\":536870912,\"mem_total\":1073741824,\"floor\":268435456,"
    "\"ceiling\":2147483648,\"balloon\":{\"actual\":1073741824,\"target\":1073741824},"
    "\"channel\":{\"connected\":true},\"qmp\":{\"ready\":true},\"libvirt\":null,"
    "\"last_move\":{\"time\":\"2026-01-02T03:03:05.000Z\",\"action\":\"inflate\","
    "\"reason\":\"quiet\",\"result\":\"done\"}},"
    "{\"name\":\"web\",\"level\":\"critical\",\"paused\":false,\"psi_some_avg10\":42.0,"
    "\"mem_available\":104857600,\"floor\":268435456,\"ceiling\":2147483648,"
    "\"balloon\":{\"actual\":1610612736,\"target\":1610612736},"
    "\"channel\":{\"connected\":true},\"qmp\":{\"ready\":true},\"libvirt\":null,"
    "\"last_move\":{\"time\":\"2026-01-02T03:04:00.500Z\",\"action\":\"deflate\","
    "\"reason\":\"critical\",\"result\":\"pending\"}},"
    "{\"name\":\"db\",\"level\":\"medium\",\"paused\":true,\"psi_some_avg10\":null,"
    "\"mem_available\":null,\"floor\":536870912,\"ceiling\":4294967296,"
    "\"balloon\":{\"actual\":null,\"target\":null},"
    "\"channel\":{\"connected\":false},\"qmp\":null,\"libvirt\":{\"connected\":false},"
    "\"last_move\":null},"
    "{\"name\":\"cache\",\"level\":\"low\",\"paused\":false,\"psi_some_avg10\":5,"
    "\"mem_available\":1,\"floor\":1,\"ceiling\":2,\"balloon\":{\"actual\":2,\"target\":null},"
    "\"channel\":{\"connected\":false},\"qmp\":{\"ready\":true},\"libvirt\":null,"
    "\"last_move\":null}"
    "]}";

static struct top_frame parse_ok(void)
{
    struct top_frame f;
    char err[200];
    int r = top_frame_parse(reply, &f, err, sizeof(err));
    if (r < 0)
        fail_msg("%s", err);
    return f;
}

static const struct top_guest *by_name(const struct top_frame *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->guests[i].name, name) == 0)
            return &f->guests[i];
    fail_msg("no guest %s", name);
    return NULL;
}

static void parse(void **state)
{
    (void)state;
    struct top_frame f = parse_ok();
    assert_int_equal(f.n, 4);
    assert_true(f.dry_run);
    assert_true(f.host_known);
    assert_true(f.host_psi == 1.5);
    assert_int_equal(f.levels[0], 1);
    assert_int_equal(f.levels[1], 1);
    assert_int_equal(f.levels[2], 1);
    assert_int_equal(f.levels[3], 1);

    const struct top_guest *idle = by_name(&f, "idle");
    assert_true(idle->used_known);
    assert_int_equal(idle->used, 512 * MIB); /* MemTotal - MemAvailable */
    assert_string_equal(idle->state, "managed");
    assert_true(idle->last_known);
    assert_int_equal(idle->last_ms, T0_MS - 60000);
    assert_string_equal(idle->reason, "quiet");

    const struct top_guest *web = by_name(&f, "web");
    assert_false(web->used_known); /* no MemTotal in the reply */
    assert_int_equal(web->last_ms, T0_MS - 4500);

    const struct top_guest *db = by_name(&f, "db");
    assert_string_equal(db->state, "paused");
    assert_false(db->psi_known);
    assert_false(db->actual_known);
    assert_false(db->last_known);

    assert_string_equal(by_name(&f, "cache")->state, "no-agent");
    top_frame_free(&f);
}

static void sort(void **state)
{
    (void)state;
    struct top_frame f = parse_ok();
    static const struct {
        enum top_sort by;
        const char *order[4];
    } cases[] = {
        {TOP_SORT_PRESSURE, {"web", "db", "cache", "idle"}},
        {TOP_SORT_MEMORY, {"web", "idle", "cache", "db"}},
        {TOP_SORT_TIME, {"web", "idle", "cache", "db"}},
        {TOP_SORT_NAME, {"cache", "db", "idle", "web"}},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        top_frame_sort(&f, cases[c].by);
        for (size_t i = 0; i < 4; i++)
            if (strcmp(f.guests[i].name, cases[c].order[i]) != 0)
                fail_msg("sort %s: position %zu is %s, expected %s", top_sort_name(cases[c].by), i,
                         f.guests[i].name, cases[c].order[i]);
    }
    top_frame_free(&f);
}

static void text(void **state)
{
    (void)state;
    struct top_frame f = parse_ok();
    top_frame_sort(&f, TOP_SORT_PRESSURE);
    char l1[512], l2[512], row[512], cols[512];
    top_format_summary(&f, T0_MS, TOP_SORT_PRESSURE, l1, l2, sizeof(l1));
    assert_non_null(strstr(l1, "4 guests: 1 critical, 1 medium, 1 low, 1 calm"));
    assert_non_null(strstr(l1, "sort: pressure"));
    assert_non_null(strstr(l1, "DRY RUN"));
    assert_string_equal(
        l2,
        "host: PSI some 10s 1.50%  available 20.00G of 24.00G  held 5.00G of budget 12.00G  calm");

    top_format_columns(cols, sizeof(cols));
    top_format_row(&f.guests[0], T0_MS, row, sizeof(row));
    assert_string_equal(row, "web              critical  42.00    1.50G    1.50G     256M    "
                             "2.00G        -  deflate critical          4s  managed");
    /* Columns and rows line up: each field starts under its heading. */
    static const struct {
        const char *heading, *value;
    } fields[] = {{"LEVEL", "critical"},
                  {"BALLOON", "   1.50G"},
                  {"LAST", "deflate"},
                  {"REASON", "critical"},
                  {"STATE", "managed"}};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        size_t at = (size_t)(strstr(cols, fields[i].heading) - cols);
        if (strncmp(row + at - (fields[i].value[0] == ' ' ? 1 : 0), fields[i].value,
                    strlen(fields[i].value)) != 0)
            fail_msg("%s is not under its heading in:\n%s\n%s", fields[i].value, cols, row);
    }
    top_format_row(&f.guests[3], T0_MS, row, sizeof(row));
    assert_non_null(strstr(row, "inflate quiet"));
    assert_non_null(strstr(row, "  60s  managed"));
    assert_non_null(strstr(row, "512M")); /* used */

    top_format_csv_header(l1, sizeof(l1));
    assert_string_equal(l1, "time,name,level,psi_some_avg10,balloon_bytes,target_bytes,floor_bytes,"
                            "ceiling_bytes,used_bytes,last_action,last_reason,last_age_s,state");
    top_format_csv_row(&f.guests[0], T0_MS, l1, sizeof(l1));
    assert_string_equal(l1, "1767323045,web,critical,42.00,1610612736,1610612736,268435456,"
                            "2147483648,,deflate,critical,4,managed");
    top_frame_free(&f);
}

static void errors(void **state)
{
    (void)state;
    struct top_frame f;
    char err[200];
    memset(&f, 0x5A, sizeof(f));
    assert_int_equal(top_frame_parse("{\"ok\":false,\"error\":\"nope\"}", &f, err, sizeof(err)),
                     -EINVAL);
    assert_string_equal(err, "bellowsd: nope");
    assert_int_equal(top_frame_parse("not json", &f, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "bad reply"));
    assert_int_equal(top_frame_parse("{\"ok\":true}", &f, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "no guest list"));
    assert_int_equal(((unsigned char *)&f)[0], 0x5A); /* untouched */
    /* An empty list is fine. */
    assert_int_equal(
        top_frame_parse("{\"ok\":true,\"host\":null,\"guests\":[]}", &f, err, sizeof(err)), 0);
    assert_int_equal(f.n, 0);
    assert_false(f.host_known);
    char l1[256], l2[256];
    top_format_summary(&f, T0_MS, TOP_SORT_NAME, l1, l2, sizeof(l1));
    assert_string_equal(l2, "host: not read yet");
    top_frame_free(&f);
}

/* No budget in force (off, or not computed yet): what the guests hold, and that. */
static void summary_without_budget(void **state)
{
    (void)state;
    struct top_frame f;
    char err[128], l1[256], l2[256];
    assert_int_equal(top_frame_parse("{\"ok\":true,\"host\":{\"psi_some_avg10\":0,"
                                     "\"mem_total\":2147483648,\"mem_available\":1073741824,"
                                     "\"pressure\":true,\"budget\":null,\"held\":536870912},"
                                     "\"guests\":[]}",
                                     &f, err, sizeof(err)),
                     0);
    assert_false(f.budget_known);
    assert_true(f.held_known);
    assert_int_equal(f.held, 512 * MIB);
    top_format_summary(&f, T0_MS, TOP_SORT_NAME, l1, l2, sizeof(l1));
    assert_string_equal(
        l2,
        "host: PSI some 10s 0.00%  available 1.00G of 2.00G  held 512M, no budget  UNDER PRESSURE");
    top_frame_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse),
        cmocka_unit_test(sort),
        cmocka_unit_test(text),
        cmocka_unit_test(errors),
        cmocka_unit_test(summary_without_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
