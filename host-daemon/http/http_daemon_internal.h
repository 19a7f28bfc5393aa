/* The HTTP surface's state, shared by its module (http_daemon.c: lifecycle, observers,
 * history, events) and its API (http_api.c: what each URL answers). */
#ifndef BELLOWS_HTTP_DAEMON_INTERNAL_H
#define BELLOWS_HTTP_DAEMON_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/core/daemon.h"
#include "host-daemon/history/history.h"
#include "host-daemon/http/http_server.h"
#include "host-daemon/util/ptr_map.h"

#define HTTP_HISTORY_DECISIONS 128 /* moves kept per guest for the dashboard */
#define HTTP_TICK_MS 1000          /* one history sample and one `tick` event a second */

/* What the surface keeps per guest, beside the guest. */
struct guest_slot {
    struct history_guest hist;
    /* Moves decided (sent or advised) by action and reason, counted from the observer. */
    uint64_t moves[3][POLICY_R_COUNT];
    uint64_t last_seq; /* the newest move seen: its first notice counts it */
};

struct http_module {
    struct daemon *daemon;
    struct http_server *server; /* NULL when off or when it could not listen */
    uv_timer_t tick;
    bool tick_running;
    bool observing;
    struct ptr_map slots; /* const struct guest * -> struct guest_slot * */
    struct history_host host_hist;
    size_t history_samples;
};

/* http_api.c: answer one request. */
void http_api_handle(void *opaque, const struct http_request *req, struct http_reply *reply);

/* The slot of a guest, NULL if none. */
struct guest_slot *http_slot(const struct http_module *m, const struct guest *g);

/* Memory held by every history ring. */
uint64_t http_history_bytes(const struct http_module *m);

#endif
