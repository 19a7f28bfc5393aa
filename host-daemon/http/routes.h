/* What each URL of bellowsd's HTTP surface is (docs/operations.md): a pure map from a
 * request's method and path to a route, with the guest name checked as guest names are. */
#ifndef BELLOWS_ROUTES_H
#define BELLOWS_ROUTES_H

#include <stdbool.h>
#include <stdint.h>

#include "host-daemon/config/config.h"

enum http_route_kind {
    ROUTE_NOT_FOUND = 0,
    ROUTE_ASSET,         /* a dashboard file: "/" is index.html */
    ROUTE_METRICS,       /* /metrics */
    ROUTE_API_INDEX,     /* /api/v1 */
    ROUTE_GUESTS,        /* /api/v1/guests */
    ROUTE_GUEST,         /* /api/v1/guests/NAME */
    ROUTE_GUEST_HISTORY, /* /api/v1/guests/NAME/history */
    ROUTE_HOST,          /* /api/v1/host */
    ROUTE_HOST_HISTORY,  /* /api/v1/host/history */
    ROUTE_EVENTS,        /* /api/v1/events: the event stream */
};

struct http_route {
    enum http_route_kind kind;
    char guest[CONFIG_NAME_MAX + 1]; /* ROUTE_GUEST, ROUTE_GUEST_HISTORY */
    const char *asset;               /* ROUTE_ASSET: the file's name, into the path given */
};

/* Whether bellowsd answers this method at all (GET and HEAD: everything is read-only). */
bool http_method_allowed(const char *method);

/* The route of a path (no query string). Unknown paths and invalid guest names are
 * ROUTE_NOT_FOUND. */
struct http_route http_route_parse(const char *path);

/* The `since` query argument: Unix seconds, 0..2^32-1; NULL means 0. Returns 0 or
 * -EINVAL. */
int http_parse_since(const char *text, uint32_t *ret_since);

#endif
