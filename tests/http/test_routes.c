/* Routes of the HTTP surface: every endpoint, guest names checked as guest names are,
 * unknown paths not found, only GET and HEAD answered, the `since` argument. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/http/routes.h"

static void endpoints(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        enum http_route_kind kind;
        const char *guest;
        const char *asset;
    } cases[] = {
        {"/metrics", ROUTE_METRICS, NULL, NULL},
        {"/api/v1", ROUTE_API_INDEX, NULL, NULL},
        {"/api/v1/", ROUTE_API_INDEX, NULL, NULL},
        {"/api/v1/guests", ROUTE_GUESTS, NULL, NULL},
        {"/api/v1/guests/web-1", ROUTE_GUEST, "web-1", NULL},
        {"/api/v1/guests/db.prod_2/history", ROUTE_GUEST_HISTORY, "db.prod_2", NULL},
        {"/api/v1/host", ROUTE_HOST, NULL, NULL},
        {"/api/v1/host/history", ROUTE_HOST_HISTORY, NULL, NULL},
        {"/api/v1/events", ROUTE_EVENTS, NULL, NULL},
        {"/", ROUTE_ASSET, NULL, "index.html"},
        {"/app.js", ROUTE_ASSET, NULL, "app.js"},
        {"/vendor/uPlot.iife.min.js", ROUTE_ASSET, NULL, "vendor/uPlot.iife.min.js"},
        /* not found */
        {"/api/v1/guests/", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/-x", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/a b", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/a/decisions", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/a/history/x", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/../host", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v1/guests/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
         ROUTE_NOT_FOUND, NULL, NULL},
        {"/api/v2/guests", ROUTE_NOT_FOUND, NULL, NULL},
        {"/api", ROUTE_NOT_FOUND, NULL, NULL},
        {"/metrics/", ROUTE_ASSET, NULL, "metrics/"}, /* no such asset: the table says 404 */
        {"", ROUTE_NOT_FOUND, NULL, NULL},
        {"metrics", ROUTE_NOT_FOUND, NULL, NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct http_route r = http_route_parse(cases[i].path);
        if (r.kind != cases[i].kind)
            fail_msg("%s: route %d, expected %d", cases[i].path, r.kind, cases[i].kind);
        if (cases[i].guest)
            assert_string_equal(r.guest, cases[i].guest);
        if (cases[i].asset)
            assert_string_equal(r.asset, cases[i].asset);
    }
}

static void methods(void **state)
{
    (void)state;
    assert_true(http_method_allowed("GET"));
    assert_true(http_method_allowed("HEAD"));
    assert_false(http_method_allowed("POST"));
    assert_false(http_method_allowed("PUT"));
    assert_false(http_method_allowed("DELETE"));
    assert_false(http_method_allowed("get"));
    assert_false(http_method_allowed(""));
}

static void since(void **state)
{
    (void)state;
    uint32_t s = 99;
    assert_int_equal(http_parse_since(NULL, &s), 0);
    assert_int_equal(s, 0);
    assert_int_equal(http_parse_since("1700000000", &s), 0);
    assert_int_equal(s, 1700000000u);
    assert_int_equal(http_parse_since("4294967295", &s), 0);
    assert_int_equal(s, UINT32_MAX);
    static const char *const bad[] = {"", "-1", "4294967296", "12a", " 1", "99999999999", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = 7;
        assert_int_equal(http_parse_since(bad[i], &s), -EINVAL);
        assert_int_equal(s, 7);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(endpoints),
        cmocka_unit_test(methods),
        cmocka_unit_test(since),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
