/* What each URL of the HTTP surface answers: the dashboard's files, /metrics, and the JSON
 * API over the control socket's views and the history. Read-only; never blocks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/http/assets.h"
#include "host-daemon/http/http_daemon_internal.h"
#include "host-daemon/http/routes.h"
#include "host-daemon/metrics/metrics.h"
#include "host-daemon/views/views.h"

/* Content-Security-Policy of the dashboard: everything from bellowsd itself. */
#define DASHBOARD_CSP                                                                              \
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "                 \
    "frame-ancestors 'none'"

/* ---- /metrics ---- */

/* Which reasons go with which action (policy.h): their counters exist from the start, at
 * 0, so that rate() sees the first move. Other pairs appear once they happen. */
static const struct {
    enum policy_action action;
    enum policy_reason reason;
} move_kinds[] = {
    {POLICY_DEFLATE, POLICY_R_CRITICAL},      {POLICY_DEFLATE, POLICY_R_MEDIUM},
    {POLICY_DEFLATE, POLICY_R_BUFFER},        {POLICY_DEFLATE, POLICY_R_BELOW_FLOOR},
    {POLICY_INFLATE, POLICY_R_ABOVE_CEILING}, {POLICY_INFLATE, POLICY_R_QUIET},
    {POLICY_INFLATE, POLICY_R_HOST_PRESSURE},
};
#define N_MOVE_KINDS (sizeof(move_kinds) / sizeof(move_kinds[0]))

static bool move_kind_known(enum policy_action a, enum policy_reason r)
{
    for (size_t i = 0; i < N_MOVE_KINDS; i++)
        if (move_kinds[i].action == a && move_kinds[i].reason == r)
            return true;
    return false;
}

#define N_FRAME_OUTCOMES 12
#define MOVES_MAX (2 * POLICY_R_COUNT)

/* Storage behind one metrics_guest: the arrays and strings it points into. */
struct guest_metrics_store {
    struct metrics_frame_count frames[N_FRAME_OUTCOMES];
    struct metrics_move_count moves[MOVES_MAX];
    char domain[256];
    char uuid[64];
};

/* The libvirt domain and UUID of a guest, from its backend's own part of the view (the
 * core knows no backend; a QMP guest has none). */
static void backend_ids(const struct guest *g, struct guest_metrics_store *st)
{
    st->domain[0] = st->uuid[0] = '\0';
    if (!g->balloon || !g->balloon->ops->view)
        return;
    json_t *tmp = json_object();
    g->balloon->ops->view(g->balloon, tmp);
    json_t *lv = json_object_get(tmp, "libvirt");
    const char *domain = json_string_value(json_object_get(lv, "domain"));
    const char *uuid = json_string_value(json_object_get(lv, "uuid"));
    snprintf(st->domain, sizeof(st->domain), "%s", domain ? domain : "");
    snprintf(st->uuid, sizeof(st->uuid), "%s", uuid ? uuid : "");
    json_decref(tmp);
}

static void fill_guest(const struct http_module *m, const struct daemon_view *v,
                       const struct guest *g, struct metrics_guest *mg,
                       struct guest_metrics_store *st)
{
    const struct policy_guest *p = registry_policy_of(v->reg, g);
    static const struct guest_channel_stats none;
    const struct guest_channel_stats *s = g->channel ? guest_channel_stats(g->channel) : &none;
    struct policy_sizing z;
    policy_guest_sizing(v->policy, p, v->now, &z);
    backend_ids(g, st);
    *mg = (struct metrics_guest){
        .name = g->name,
        .backend = g->balloon ? g->balloon->ops->kind : "",
        .source = guest_origin(g),
        .domain = st->domain,
        .uuid = st->uuid,
        .agent = g->agent,
        .paused = p->paused,
        .level = policy_guest_level(v->policy, p, v->now),
        .floor_bytes = g->cfg.floor_bytes,
        .ceiling_bytes = g->cfg.ceiling_bytes,
        .weight = g->cfg.weight,
        .actual_known = p->actual_known,
        .actual_bytes = p->actual_bytes,
        .target_known = p->target_set,
        .target_bytes = p->target_bytes,
        .mem_known = g->mem_known,
        .mem_total_bytes = g->mem.mem_total_kb * 1024,
        .mem_available_bytes = g->mem.mem_available_kb * 1024,
        .psi_some_avg10 = g->mem.psi_some_avg10,
        .psi_full_avg10 = g->mem.psi_full_avg10,
        .psi_some_total_us = g->mem.psi_some_total_us,
        .psi_full_total_us = g->mem.psi_full_total_us,
        .need_known = z.need_known,
        .need_bytes = z.need_bytes,
        .working_set_bytes = z.working_set_bytes,
        .stall_known = z.stall_known,
        .stall_pct = z.stall_pct,
        .stall_base_pct = z.stall_base_pct,
        .channel_connected = g->channel && guest_channel_connected(g->channel),
        .backend_connected = g->balloon_ready,
        .channel_connects = s->connects,
        .channel_read_bytes = s->bytes,
        .channel_junk_bytes = s->junk_bytes,
        .move_failures = g->move_errors,
        .reversals = p->reversals,
    };
    /* Frames by what became of them (guest_channel.h); oversized and truncated ones never
     * became frames the decoder saw, but they were frames the agent sent. */
    const struct metrics_frame_count frames[N_FRAME_OUTCOMES] = {
        {"accepted", s->messages},
        {"invalid_json", s->rejected[BP_ERR_JSON]},
        {"invalid_version", s->rejected[BP_ERR_VERSION]},
        {"invalid_type", s->rejected[BP_ERR_TYPE]},
        {"invalid_field", s->rejected[BP_ERR_FIELD]},
        {"invalid_range", s->rejected[BP_ERR_RANGE]},
        {"unknown_type", s->unknown_type},
        {"wrong_direction", s->wrong_direction},
        {"seq_stale", s->seq_stale},
        {"rate_limited", s->rate_limited},
        {"oversized", s->oversized},
        {"truncated", s->truncated},
    };
    memcpy(st->frames, frames, sizeof(frames));
    mg->frames = st->frames;
    mg->n_frames = N_FRAME_OUTCOMES;
    const struct guest_slot *slot = http_slot(m, g);
    size_t n = 0;
    for (enum policy_action a = POLICY_DEFLATE; a <= POLICY_INFLATE; a++) {
        for (enum policy_reason r = 0; r < POLICY_R_COUNT && n < MOVES_MAX; r++) {
            uint64_t count = slot ? slot->moves[a][r] : 0;
            if (count == 0 && !move_kind_known(a, r))
                continue;
            st->moves[n++] =
                (struct metrics_move_count){policy_action_name(a), policy_reason_name(r), count};
        }
    }
    mg->moves = st->moves;
    mg->n_moves = n;
}

static void reply_metrics(struct http_module *m, struct http_reply *r)
{
    struct daemon_view v;
    daemon_view(m->daemon, &v);
    size_t n = registry_count(v.reg);
    struct metrics_guest *guests = calloc(n ? n : 1, sizeof(*guests));
    struct guest_metrics_store *stores = calloc(n ? n : 1, sizeof(*stores));
    if (!guests || !stores) {
        free(guests);
        free(stores);
        http_reply_error(r, 500, "out of memory");
        return;
    }
    for (size_t i = 0; i < n; i++)
        fill_guest(m, &v, registry_at(v.reg, i), &guests[i], &stores[i]);

    const struct http_server_stats *hs = http_server_stats(m->server);
    struct metrics_http http = {
        .requests = hs->requests,
        .streams_open = hs->streams_open,
        .streams_dropped = hs->streams_dropped,
        .connections_open = hs->connections_open,
        .connections_cut = hs->connections_cut,
        .history_bytes = http_history_bytes(m),
    };
    memcpy(http.responses, hs->responses, sizeof(http.responses));
    struct metrics_view mv = {
        .version = BELLOWS_VERSION,
        .dry_run = v.dry_run,
        .decision_rounds = v.rounds,
        .guests = guests,
        .n_guests = n,
        .http = &http,
    };
    if (v.host_sample) {
        const struct hostmem_sample *h = v.host_sample;
        mv.host = (struct metrics_host){
            .known = true,
            .psi_some_avg10 = h->psi.some.avg10,
            .psi_full_avg10 = h->psi.full.avg10,
            .has_full = h->psi.has_full,
            .psi_some_total_us = h->psi.some.total_us,
            .psi_full_total_us = h->psi.full.total_us,
            .mem_total_bytes = h->meminfo.mem_total_kb * 1024,
            .mem_available_bytes = h->meminfo.mem_available_kb * 1024,
            .pressure = v.host->pressure,
            .budget_known = v.host->budget_known,
            .budget_bytes = v.host->budget_bytes,
            .budget_cgroup = daemon_config(m->daemon)->daemon.budget_cgroup,
            .guests_held_bytes = view_held_bytes(&v),
        };
    }
    size_t len;
    char *text = metrics_render(&mv, &len);
    free(guests);
    free(stores);
    if (!text) {
        http_reply_error(r, 500, "out of memory");
        return;
    }
    r->status = 200;
    r->content_type = PROM_CONTENT_TYPE;
    r->body = text;
    r->len = len;
}

/* ---- the JSON API ---- */

static void reply_index(struct http_reply *r)
{
    json_t *j = json_pack(
        "{ss s{ssssssssssssss}}", "version", BELLOWS_VERSION, "endpoints", "/api/v1/guests",
        "every guest (the control socket's list)", "/api/v1/guests/NAME",
        "one guest with its recent decisions (show)", "/api/v1/guests/NAME/history",
        "one guest's samples and moves, one a second (?since=UNIX_SECONDS)", "/api/v1/host",
        "the host's last reading and pressure state", "/api/v1/host/history",
        "the host's samples, one a second (?since=UNIX_SECONDS)", "/api/v1/events",
        "server-sent events: tick, pressure, decision, guests", "/metrics",
        "Prometheus text format");
    http_reply_json(r, 200, j);
}

static bool since_arg(const struct http_request *req, struct http_reply *r, uint32_t *since)
{
    if (http_parse_since(http_request_arg(req, "since"), since) < 0) {
        http_reply_error(r, 400, "since must be a time in Unix seconds");
        return false;
    }
    return true;
}

static void reply_asset(const struct http_request *req, const struct http_route *route,
                        struct http_reply *r)
{
    const struct web_asset *a = web_asset_find(route->asset);
    if (!a) {
        http_reply_error(r, 404, "no such page: %s", req->path);
        return;
    }
    /* Revalidated each time (no-cache), sent again only when it changed. */
    r->cache_control = "no-cache";
    http_reply_header(r, "ETag", a->etag);
    if (strcmp(a->content_type, "text/html; charset=utf-8") == 0)
        http_reply_header(r, "Content-Security-Policy", DASHBOARD_CSP);
    const char *inm = http_request_header(req, "If-None-Match");
    r->content_type = a->content_type;
    r->body_static = true;
    if (inm && strcmp(inm, a->etag) == 0) {
        r->status = 304;
        r->body = "";
        r->len = 0;
        return;
    }
    r->status = 200;
    r->body = (char *)a->data;
    r->len = a->len;
}

/* See http_daemon_internal.h. */
void http_api_handle(void *opaque, const struct http_request *req, struct http_reply *r)
{
    struct http_module *m = opaque;
    struct http_route route = http_route_parse(req->path);
    struct daemon_view v;
    const struct guest *g = NULL;
    uint32_t since;

    if (route.kind == ROUTE_GUEST || route.kind == ROUTE_GUEST_HISTORY) {
        g = daemon_find_guest(m->daemon, route.guest);
        if (!g) {
            http_reply_error(r, 404, "no guest named '%s'", route.guest);
            return;
        }
    }
    daemon_view(m->daemon, &v);
    switch (route.kind) {
    case ROUTE_NOT_FOUND:
        http_reply_error(r, 404, "no such path: %.200s (see /api/v1)", req->path);
        return;
    case ROUTE_ASSET:
        reply_asset(req, &route, r);
        return;
    case ROUTE_METRICS:
        reply_metrics(m, r);
        return;
    case ROUTE_API_INDEX:
        reply_index(r);
        return;
    case ROUTE_GUESTS:
        http_reply_json(r, 200, view_list(&v));
        return;
    case ROUTE_GUEST:
        http_reply_json(r, 200, view_guest(&v, g, true));
        return;
    case ROUTE_GUEST_HISTORY: {
        if (!since_arg(req, r, &since))
            return;
        const struct guest_slot *slot = http_slot(m, g);
        if (!slot) {
            http_reply_error(r, 404, "guest '%s' has no history", g->name);
            return;
        }
        http_reply_json(r, 200, history_guest_json(&slot->hist, since));
        return;
    }
    case ROUTE_HOST:
        http_reply_json(r, 200, view_host(&v));
        return;
    case ROUTE_HOST_HISTORY:
        if (!since_arg(req, r, &since))
            return;
        http_reply_json(r, 200, history_host_json(&m->host_hist, since));
        return;
    case ROUTE_EVENTS:
        r->status = 200;
        r->content_type = "text/event-stream";
        /* EventSource reconnects after 2 s when the stream breaks. */
        r->body = "retry: 2000\n\n";
        r->len = strlen(r->body);
        r->body_static = true;
        r->stream = true;
        return;
    }
    http_reply_error(r, 500, "unhandled route");
}
