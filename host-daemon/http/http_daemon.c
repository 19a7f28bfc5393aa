/* The HTTP surface as a module of the daemon: the server on the daemon's loop, the
 * observer that keeps each guest's history and move counts and turns pressure events and
 * moves into server-sent events, and the one-second tick that samples every guest and
 * the host into the history and sends the `tick` event. docs/operations.md describes
 * what it serves. */
#include "host-daemon/http/http_daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host-daemon/http/http_daemon_internal.h"
#include "host-daemon/http/sse.h"
#include "host-daemon/util/log.h"
#include "host-daemon/views/views.h"

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See http_daemon_internal.h. */
struct guest_slot *http_slot(const struct http_module *m, const struct guest *g)
{
    return ptr_map_get(&m->slots, g);
}

/* See http_daemon_internal.h. */
uint64_t http_history_bytes(const struct http_module *m)
{
    uint64_t bytes = history_host_bytes(&m->host_hist);
    for (size_t i = 0; i < m->slots.cap; i++)
        if (m->slots.slots[i].key)
            bytes += history_guest_bytes(&((struct guest_slot *)m->slots.slots[i].value)->hist);
    return bytes;
}

/* ---- events ---- */

/* Send one event to every stream client; nothing is built when nobody listens. */
static void broadcast(struct http_module *m, const char *name, json_t *data)
{
    char *text = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(10));
    json_decref(data);
    if (!text)
        return;
    size_t len = strlen(text);
    size_t need = sse_format(NULL, 0, name, text, len);
    char *event = malloc(need + 1);
    if (event) {
        sse_format(event, need + 1, name, text, len);
        http_server_broadcast(m->server, event, need);
        free(event);
    }
    free(text);
}

static bool listening(const struct http_module *m)
{
    return m->server && http_server_stats(m->server)->streams_open > 0;
}

static json_t *maybe_bytes(bool known, uint64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

/* ---- observer ---- */

static void on_guest_added(void *opaque, const struct guest *g)
{
    struct http_module *m = opaque;
    struct guest_slot *slot = calloc(1, sizeof(*slot));
    if (!slot || history_guest_init(&slot->hist, m->history_samples, HTTP_HISTORY_DECISIONS) < 0 ||
        ptr_map_put(&m->slots, g, slot) < 0) {
        if (slot)
            history_guest_free(&slot->hist);
        free(slot);
        log_warning("http: guest %s: out of memory for its history; the dashboard shows it "
                    "without one",
                    g->name);
        return;
    }
    if (listening(m))
        broadcast(m, "guests", json_pack("{ssss}", "added", g->name, "source", guest_origin(g)));
}

static void on_guest_removed(void *opaque, const struct guest *g)
{
    struct http_module *m = opaque;
    struct guest_slot *slot = ptr_map_remove(&m->slots, g);
    if (slot) {
        history_guest_free(&slot->hist);
        free(slot);
    }
    if (listening(m))
        broadcast(m, "guests", json_pack("{ss}", "removed", g->name));
}

static void on_sample(void *opaque, const struct guest *g, const struct daemon_sample *s)
{
    struct http_module *m = opaque;
    struct guest_slot *slot = http_slot(m, g);
    if (slot)
        history_guest_note_level(&slot->hist, s->level);
    if (s->type != BP_MSG_PRESSURE || !listening(m))
        return;
    /* Reports reach the page with the next tick; a pressure event goes out at once. */
    json_t *j = json_pack("{sssIssss}", "guest", g->name, "t", (json_int_t)wall_ms(), "level",
                          bp_level_name(s->level), "source",
                          bp_source_name(s->source) ? bp_source_name(s->source) : "?");
    if (j && s->mem) {
        json_object_set_new(j, "psi_some", json_real(s->mem->psi_some_avg10));
        json_object_set_new(j, "mem_available",
                            json_integer((json_int_t)(s->mem->mem_available_kb * 1024)));
        json_object_set_new(j, "mem_total",
                            json_integer((json_int_t)(s->mem->mem_total_kb * 1024)));
    }
    broadcast(m, "pressure", j);
}

static void on_move(void *opaque, const struct guest *g, const struct decision_entry *e)
{
    struct http_module *m = opaque;
    struct guest_slot *slot = http_slot(m, g);
    const char *action = policy_action_name(e->action);
    const char *reason = policy_reason_name(e->reason);
    const char *result = move_result_name(e->result);
    if (slot && e->seq > slot->last_seq) {
        /* A move's first notice: decided. It counts unless it could not even be sent. */
        slot->last_seq = e->seq;
        if (e->result != MOVE_FAILED && e->action < 3 && e->reason < POLICY_R_COUNT)
            slot->moves[e->action][e->reason]++;
        struct history_decision d = {
            .seq = e->seq,
            .t_ms = e->wall_ms,
            .action = action,
            .reason = reason,
            .result = result,
            .from_kib = history_kib(true, e->from_bytes),
            .to_kib = history_kib(true, e->to_bytes),
        };
        history_guest_decision(&slot->hist, &d);
    } else if (slot) {
        history_guest_decision_result(&slot->hist, e->seq, result);
    }
    if (!listening(m))
        return;
    json_t *j =
        json_pack("{sssIsIsssssIsIss}", "guest", g->name, "seq", (json_int_t)e->seq, "t",
                  (json_int_t)e->wall_ms, "action", action, "reason", reason, "from",
                  (json_int_t)e->from_bytes, "to", (json_int_t)e->to_bytes, "result", result);
    if (j && e->result == MOVE_FAILED)
        json_object_set_new(j, "error", json_string(e->error));
    broadcast(m, "decision", j);
}

static const struct daemon_observer_ops observer_ops = {
    .guest_added = on_guest_added,
    .guest_removed = on_guest_removed,
    .sample = on_sample,
    .move = on_move,
};

/* ---- the tick: one sample a second into the history, and to the page ---- */

static void on_tick(uv_timer_t *t)
{
    struct http_module *m = t->data;
    struct daemon_view v;
    daemon_view(m->daemon, &v);
    uint32_t now_s = (uint32_t)(wall_ms() / 1000);
    bool live = listening(m);
    json_t *rows = live ? json_array() : NULL;

    for (size_t i = 0; i < registry_count(v.reg); i++) {
        const struct guest *g = registry_at(v.reg, i);
        const struct policy_guest *p = registry_policy_of(v.reg, g);
        struct guest_slot *slot = http_slot(m, g);
        bool used_known = g->mem_known && g->mem.mem_total_kb >= g->mem.mem_available_kb;
        /* The policy's reading: for a guest that counts its balloon as used, MemTotal -
         * MemAvailable would show the balloon as its use. */
        uint64_t used = used_known ? policy_guest_used(p) : 0;
        struct history_sample s = {
            .t = now_s,
            .actual_kib = history_kib(p->actual_known, p->actual_bytes),
            .target_kib = history_kib(p->target_set, p->target_bytes),
            .used_kib = history_kib(used_known, used),
            .psi_some = history_psi(g->mem_known, g->mem.psi_some_avg10),
            .level = (uint8_t)policy_guest_level(v.policy, p, v.now),
        };
        uint8_t level = s.level;
        if (slot) {
            history_guest_sample(&slot->hist, &s);
            /* With the spikes of the second (history_guest_note_level) folded in. */
            level = ((const struct history_sample *)ring_newest(&slot->hist.samples))->level;
        }
        if (!live)
            continue;
        json_t *row = json_pack("{sssisosososo}", "name", g->name, "level", (int)level, "psi_some",
                                g->mem_known ? json_real(g->mem.psi_some_avg10) : json_null(),
                                "actual", maybe_bytes(p->actual_known, p->actual_bytes), "target",
                                maybe_bytes(p->target_set, p->target_bytes), "used",
                                maybe_bytes(used_known, used));
        json_array_append_new(rows, row);
    }

    json_t *host = json_null();
    if (v.host_sample) {
        const struct hostmem_sample *h = v.host_sample;
        uint64_t held = view_held_bytes(&v);
        struct history_host_sample hs = {
            .t = now_s,
            .available_kib = history_kib(true, h->meminfo.mem_available_kb * 1024),
            .total_kib = history_kib(true, h->meminfo.mem_total_kb * 1024),
            .budget_kib = history_kib(v.host->budget_known, v.host->budget_bytes),
            .held_kib = history_kib(true, held),
            .psi_some = history_psi(true, h->psi.some.avg10),
            .pressure = v.host->pressure,
        };
        history_host_sample(&m->host_hist, &hs);
        if (live)
            host = json_pack("{sfsIsIsosIsb}", "psi_some", h->psi.some.avg10, "available",
                             (json_int_t)(h->meminfo.mem_available_kb * 1024), "total",
                             (json_int_t)(h->meminfo.mem_total_kb * 1024), "budget",
                             maybe_bytes(v.host->budget_known, v.host->budget_bytes), "held",
                             (json_int_t)held, "pressure", v.host->pressure);
    }
    if (live)
        broadcast(m, "tick",
                  json_pack("{sIsoso}", "t", (json_int_t)now_s, "host", host, "guests", rows));
    else
        json_decref(host);
}

/* ---- lifecycle ---- */

static void on_server_log(void *opaque, bool warning, const char *msg)
{
    (void)opaque;
    if (warning)
        log_warning("http: %s", msg);
    else
        log_debug("http: %s", msg);
}

static int module_start(void *opaque, struct daemon *d)
{
    struct http_module *m = opaque;
    const struct config_daemon *cfg = &daemon_config(d)->daemon;
    m->daemon = d;
    if (!cfg->http_listen.enabled) {
        log_info("http: off (http_listen = off)");
        return 0;
    }
    struct http_server_limits lim;
    http_server_limits_default(&lim);
    lim.max_clients = cfg->http_max_clients;
    lim.timeout_s = lim.request_s = (unsigned)(cfg->http_timeout_ms / 1000);
    if (lim.max_streams > lim.max_clients)
        lim.max_streams = lim.max_clients;
    m->history_samples = (size_t)(cfg->history_ms / HTTP_TICK_MS);
    char err[200];
    int r = history_host_init(&m->host_hist, m->history_samples);
    if (r == 0)
        r = http_server_start(daemon_loop(d), &cfg->http_listen, &lim, http_api_handle,
                              on_server_log, m, &m->server, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "out of memory");
    if (r < 0) {
        /* The balloons matter more than their dashboard: go on without it. */
        log_error("http: %s; bellowsd goes on without metrics, API and dashboard", err);
        m->server = NULL;
        return 0;
    }
    if (daemon_add_observer(d, &observer_ops, m) == 0)
        m->observing = true;
    uv_timer_init(daemon_loop(d), &m->tick);
    m->tick.data = m;
    uv_timer_start(&m->tick, on_tick, HTTP_TICK_MS, HTTP_TICK_MS);
    m->tick_running = true;
    log_info("http: metrics, API and dashboard on http://%s/%s", cfg->http_listen.text,
             netaddr_is_loopback(&cfg->http_listen) ? ""
                                                    : " (not loopback: reachable from the "
                                                      "network, read-only)");
    return 0;
}

static void module_stop(void *opaque)
{
    struct http_module *m = opaque;
    if (m->observing)
        daemon_remove_observer(m->daemon, &observer_ops, m);
    m->observing = false;
    if (m->tick_running)
        uv_close((uv_handle_t *)&m->tick, NULL);
    m->tick_running = false;
    http_server_close(m->server);
    m->server = NULL;
}

static void module_release(void *opaque)
{
    struct http_module *m = opaque;
    for (size_t i = 0; i < m->slots.cap; i++) {
        struct guest_slot *slot = m->slots.slots[i].value;
        if (m->slots.slots[i].key && slot) {
            history_guest_free(&slot->hist);
            free(slot);
        }
    }
    ptr_map_free(&m->slots);
    history_host_free(&m->host_hist);
    free(m);
}

static const struct daemon_module_ops module_ops = {
    .name = "http",
    .before_guests = true,
    .start = module_start,
    .stop = module_stop,
    .release = module_release,
};

/* See http_daemon.h. */
int http_daemon_attach(struct daemon *d)
{
    struct http_module *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    ptr_map_init(&m->slots);
    int r = daemon_add_module(d, &module_ops, m);
    if (r < 0)
        free(m);
    return r;
}
