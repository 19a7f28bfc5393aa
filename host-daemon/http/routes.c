/* URL routes of the HTTP surface. */
#include "host-daemon/http/routes.h"

#include <errno.h>
#include <string.h>

/* See routes.h. */
bool http_method_allowed(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* A guest name ending at end (or at the string's end when end is NULL). */
static bool take_guest(const char *start, const char *end, struct http_route *r)
{
    size_t len = end ? (size_t)(end - start) : strlen(start);
    if (len == 0 || len > CONFIG_NAME_MAX)
        return false;
    memcpy(r->guest, start, len);
    r->guest[len] = '\0';
    return config_guest_name_valid(r->guest);
}

/* See routes.h. */
struct http_route http_route_parse(const char *path)
{
    struct http_route r = {.kind = ROUTE_NOT_FOUND};
    static const struct {
        const char *path;
        enum http_route_kind kind;
    } fixed[] = {
        {"/metrics", ROUTE_METRICS},      {"/api/v1", ROUTE_API_INDEX},
        {"/api/v1/", ROUTE_API_INDEX},    {"/api/v1/guests", ROUTE_GUESTS},
        {"/api/v1/host", ROUTE_HOST},     {"/api/v1/host/history", ROUTE_HOST_HISTORY},
        {"/api/v1/events", ROUTE_EVENTS},
    };
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (strcmp(path, fixed[i].path) == 0) {
            r.kind = fixed[i].kind;
            return r;
        }
    }
    const char *prefix = "/api/v1/guests/";
    size_t pl = strlen(prefix);
    if (strncmp(path, prefix, pl) == 0) {
        const char *name = path + pl;
        const char *slash = strchr(name, '/');
        if (!slash) {
            if (take_guest(name, NULL, &r))
                r.kind = ROUTE_GUEST;
        } else if (strcmp(slash, "/history") == 0 && take_guest(name, slash, &r)) {
            r.kind = ROUTE_GUEST_HISTORY;
        }
        return r;
    }
    if (strncmp(path, "/api/", 5) == 0 || strcmp(path, "/api") == 0 || path[0] != '/')
        return r;
    /* Everything else may be a dashboard file; the asset table decides. */
    r.kind = ROUTE_ASSET;
    r.asset = path[1] ? path + 1 : "index.html";
    return r;
}

/* See routes.h. */
int http_parse_since(const char *text, uint32_t *ret_since)
{
    if (!text) {
        *ret_since = 0;
        return 0;
    }
    if (!*text || strlen(text) > 10)
        return -EINVAL;
    uint64_t v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (v > UINT32_MAX)
        return -EINVAL;
    *ret_since = (uint32_t)v;
    return 0;
}
