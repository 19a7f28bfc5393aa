/* libFuzzer target: every parser of the operator surface fed arbitrary bytes. The first
 * byte picks one: a URL path (http_route_parse), a `since` value (http_parse_since), a
 * listening address (netaddr_parse), a `list` reply as bellowsctl top reads it
 * (top_frame_parse, then sorting and formatting every row), or event text through the
 * event-stream format and a small queue. Each checks what its result promises. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/top_model.h"
#include "host-daemon/config/config.h"
#include "host-daemon/http/routes.h"
#include "host-daemon/http/sse.h"
#include "host-daemon/util/netaddr.h"

#define CHECK(x)                                                                                   \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "check failed: %s\n", #x);                                             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static void route(const char *text)
{
    struct http_route r = http_route_parse(text);
    if (r.kind == ROUTE_GUEST || r.kind == ROUTE_GUEST_HISTORY)
        CHECK(config_guest_name_valid(r.guest));
    if (r.kind == ROUTE_ASSET)
        CHECK(r.asset && text[0] == '/' && strncmp(text, "/api/", 5) != 0);
    if (r.kind != ROUTE_NOT_FOUND)
        CHECK(text[0] == '/');
}

static void since(const char *text)
{
    uint32_t v = 12345;
    if (http_parse_since(text, &v) == 0) {
        CHECK(text[0] != '\0');
        for (const char *p = text; *p; p++)
            CHECK(*p >= '0' && *p <= '9');
        CHECK(strtoull(text, NULL, 10) == v);
    } else {
        CHECK(v == 12345);
    }
}

static void address(const char *text)
{
    struct netaddr a;
    char err[200];
    if (netaddr_parse(text, &a, err, sizeof(err)) == 0) {
        CHECK(a.enabled == (strcmp(text, "off") != 0));
        CHECK(!a.enabled || a.addr_len > 0);
    } else {
        CHECK(err[0] != '\0');
    }
}

static void top(const char *text)
{
    struct top_frame f;
    char err[300];
    if (top_frame_parse(text, &f, err, sizeof(err)) < 0)
        return;
    char l1[512], l2[512];
    for (int by = 0; by < TOP_SORT_COUNT; by++) {
        top_frame_sort(&f, (enum top_sort)by);
        top_format_summary(&f, 1767323045000, (enum top_sort)by, l1, l2, sizeof(l1));
        for (size_t i = 0; i < f.n; i++) {
            CHECK(f.guests[i].level <= 3);
            top_format_row(&f.guests[i], 1767323045000, l1, sizeof(l1));
            top_format_csv_row(&f.guests[i], 1767323045000, l2, sizeof(l2));
        }
    }
    top_frame_free(&f);
}

static void events(const char *data, size_t len)
{
    size_t need = sse_format(NULL, 0, "x", data, len);
    char *text = malloc(need + 1);
    CHECK(text);
    CHECK(sse_format(text, need + 1, "x", data, len) == need);
    CHECK(strlen(text) == need || memchr(data, '\0', len));
    /* The event ends at its blank line and nowhere before. */
    CHECK(need >= 2 && text[need - 1] == '\n' && text[need - 2] == '\n');
    struct sse_queue q;
    sse_queue_init(&q, 256);
    char out[32];
    /* Pushed faster than read: bounded, and once refused, refused for good. */
    for (int i = 0; i < 20; i++) {
        bool was = q.overflowed;
        bool ok = sse_queue_push(&q, text, need > 100 ? 100 : need);
        CHECK(!(was && ok));
        CHECK(q.len <= q.cap && q.alloc <= q.cap);
        sse_queue_read(&q, out, sizeof(out));
    }
    sse_queue_free(&q);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *text = malloc(size);
    if (!text)
        return 0;
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    switch (data[0] % 5) {
    case 0:
        route(text);
        break;
    case 1:
        since(text);
        break;
    case 2:
        address(text);
        break;
    case 3:
        top(text);
        break;
    case 4:
        events((const char *)data + 1, size - 1);
        break;
    }
    free(text);
    return 0;
}
