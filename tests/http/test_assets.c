/* The dashboard's embedded files: each one the page needs is there with its type and an
 * ETag, the uPlot licence travels with uPlot, and index.html loads nothing from anywhere
 * but bellowsd itself (every src and href is a relative path, or inline data:). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/http/assets.h"

static void files_present(void **state)
{
    (void)state;
    static const struct {
        const char *path;
        const char *type;
    } want[] = {
        {"index.html", "text/html; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"style.css", "text/css; charset=utf-8"},
        {"vendor/uPlot.iife.min.js", "text/javascript; charset=utf-8"},
        {"vendor/uPlot.min.css", "text/css; charset=utf-8"},
        {"vendor/uPlot.LICENSE", "text/plain; charset=utf-8"},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct web_asset *a = web_asset_find(want[i].path);
        if (!a)
            fail_msg("%s is not embedded", want[i].path);
        assert_string_equal(a->content_type, want[i].type);
        assert_true(a->len > 100);
        assert_true(strlen(a->etag) == 18 && a->etag[0] == '"');
    }
    assert_null(web_asset_find("nope.js"));
    assert_null(web_asset_find(""));
    assert_null(web_asset_find("../index.html"));
    const struct web_asset *lic = web_asset_find("vendor/uPlot.LICENSE");
    assert_non_null(memmem(lic->data, lic->len, "MIT License", 11));
}

/* Every src= and href= value in the page is relative (no scheme, no //host) or inline
 * (data:). */
static void page_is_self_contained(void **state)
{
    (void)state;
    const struct web_asset *a = web_asset_find("index.html");
    char *html = strndup((const char *)a->data, a->len);
    static const char *const attrs[] = {"src=\"", "href=\""};
    int refs = 0;
    for (size_t k = 0; k < 2; k++) {
        for (const char *p = strstr(html, attrs[k]); p; p = strstr(p + 1, attrs[k])) {
            const char *v = p + strlen(attrs[k]);
            const char *end = strchr(v, '"');
            assert_non_null(end);
            char value[256];
            snprintf(value, sizeof(value), "%.*s", (int)(end - v), v);
            /* A data: URL is inline: nothing is fetched (the empty favicon). */
            if (strncmp(value, "data:", 5) == 0)
                continue;
            if (strchr(value, ':') || strncmp(value, "//", 2) == 0)
                fail_msg("index.html loads %s from elsewhere", value);
            /* ... and it is one of the embedded files. */
            if (!web_asset_find(value))
                fail_msg("index.html loads %s, which is not embedded", value);
            refs++;
        }
    }
    assert_true(refs >= 4);
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(files_present),
        cmocka_unit_test(page_is_self_contained),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
