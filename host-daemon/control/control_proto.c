/* Control protocol: request parser, handler and guest views, pure over the registry. */
#include "host-daemon/control/control_proto.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "host-daemon/channel/guest_channel.h"

static const struct {
    const char *name;
    enum control_cmd cmd;
    bool needs_name;
    const char *const *keys; /* settings allowed, NULL-terminated; NULL: none */
} commands[] = {
    {"list", CONTROL_LIST, false, NULL},
    {"show", CONTROL_SHOW, true, NULL},
    {"pause", CONTROL_PAUSE, true, NULL},
    {"resume", CONTROL_RESUME, true, NULL},
    {"set", CONTROL_SET, true, (const char *const[]){"floor", "ceiling", "weight", NULL}},
    {"add", CONTROL_ADD, true,
     (const char *const[]){"qmp", "channel", "floor", "ceiling", "weight", NULL}},
    {"remove", CONTROL_REMOVE, true, NULL},
    {"libvirt-event", CONTROL_LIBVIRT_EVENT, false, NULL},
};
#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static bool key_allowed(const char *const *keys, const char *key)
{
    for (; keys && *keys; keys++)
        if (strcmp(*keys, key) == 0)
            return true;
    return false;
}

/* A libvirt UUID as text: 8-4-4-4-12 hexadecimal digits. */
static bool uuid_valid(const char *s)
{
    if (strlen(s) != GUEST_UUID_LEN)
        return false;
    for (size_t i = 0; i < GUEST_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* One key of a libvirt-event request. */
static int parse_libvirt_field(struct control_request *req, const char *key, json_t *value,
                               char *err, size_t err_cap)
{
    const char *text = json_string_value(value);
    if (strcmp(key, "event") == 0) {
        if (!text || (strcmp(text, "started") != 0 && strcmp(text, "stopped") != 0 &&
                      strcmp(text, "reconnect") != 0)) {
            snprintf(err, err_cap, "\"event\" must be started, stopped or reconnect");
            return -EINVAL;
        }
        strcpy(req->event, text);
        return 0;
    }
    if (strcmp(key, "uuid") == 0) {
        if (!text || !uuid_valid(text)) {
            snprintf(err, err_cap, "\"uuid\" must be a UUID (8-4-4-4-12 hexadecimal digits)");
            return -EINVAL;
        }
        strcpy(req->uuid, text);
        return 0;
    }
    if (strcmp(key, "domain") == 0) {
        if (!text || strlen(text) > GUEST_DOMAIN_MAX) {
            snprintf(err, err_cap, "\"domain\" must be a domain name of at most %d bytes",
                     GUEST_DOMAIN_MAX);
            return -EINVAL;
        }
        for (const char *p = text; *p; p++) {
            if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                snprintf(err, err_cap, "\"domain\" contains a control character");
                return -EINVAL;
            }
        }
        strcpy(req->domain, text);
        return 0;
    }
    snprintf(err, err_cap, "'libvirt-event' takes no \"%.32s\"", key);
    return -EINVAL;
}

/* See control_proto.h. */
int control_parse_request(const char *text, size_t len, struct control_request *ret_req, char *err,
                          size_t err_cap)
{
    json_error_t jerr;
    struct control_request req;
    int r = -EINVAL;

    memset(&req, 0, sizeof(req));
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(err, err_cap, "not JSON: %s", jerr.text);
        return -EINVAL;
    }
    if (!json_is_object(root)) {
        snprintf(err, err_cap, "a request is a JSON object");
        goto out;
    }
    const char *cmd = json_string_value(json_object_get(root, "cmd"));
    if (!cmd) {
        snprintf(err, err_cap, "\"cmd\" is missing or not a string");
        goto out;
    }
    size_t c;
    for (c = 0; c < N_COMMANDS; c++)
        if (strcmp(commands[c].name, cmd) == 0)
            break;
    if (c == N_COMMANDS) {
        snprintf(err, err_cap,
                 "unknown command '%.32s' (list, show, pause, resume, set, add, "
                 "remove, libvirt-event)",
                 cmd);
        goto out;
    }
    req.cmd = commands[c].cmd;

    const char *key;
    json_t *value;
    json_object_foreach (root, key, value) {
        if (strcmp(key, "cmd") == 0)
            continue;
        if (strcmp(key, "name") == 0 && commands[c].needs_name) {
            const char *name = json_string_value(value);
            if (!name || !config_guest_name_valid(name)) {
                snprintf(err, err_cap, "\"name\" must be a guest name (1-%d of A-Z a-z 0-9 . _ -)",
                         CONFIG_NAME_MAX);
                goto out;
            }
            strcpy(req.name, name);
            continue;
        }
        if (req.cmd == CONTROL_LIBVIRT_EVENT) {
            if (parse_libvirt_field(&req, key, value, err, err_cap) < 0)
                goto out;
            continue;
        }
        if (!key_allowed(commands[c].keys, key)) {
            snprintf(err, err_cap, "'%s' takes no \"%.32s\"", cmd, key);
            goto out;
        }
        char *slot = req.settings[req.n_settings].value;
        size_t cap = sizeof(req.settings[0].value);
        if (json_is_string(value)) {
            if (strlen(json_string_value(value)) >= cap) {
                snprintf(err, err_cap, "\"%s\" is too long", key);
                goto out;
            }
            strcpy(slot, json_string_value(value));
        } else if (json_is_integer(value) && json_integer_value(value) >= 0) {
            snprintf(slot, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(value));
        } else {
            snprintf(err, err_cap, "\"%s\" must be a string or a non-negative integer", key);
            goto out;
        }
        strcpy(req.settings[req.n_settings].key, key);
        req.n_settings++;
    }
    if (commands[c].needs_name && !req.name[0]) {
        snprintf(err, err_cap, "'%s' needs a \"name\"", cmd);
        goto out;
    }
    if (req.cmd == CONTROL_LIBVIRT_EVENT && (!req.event[0] || !req.uuid[0])) {
        snprintf(err, err_cap, "'libvirt-event' needs an \"event\" and a \"uuid\"");
        goto out;
    }
    if (req.cmd == CONTROL_SET && req.n_settings == 0) {
        snprintf(err, err_cap, "'set' needs at least one of floor, ceiling, weight");
        goto out;
    }
    *ret_req = req;
    r = 0;
out:
    json_decref(root);
    return r;
}

static json_t *error_reply(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static json_t *error_reply(const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return json_pack("{sbss}", "ok", 0, "error", msg);
}

static json_t *ok_reply(void)
{
    return json_pack("{sb}", "ok", 1);
}

/* A size or time that may be unknown. */
static json_t *maybe_u64(bool known, uint64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *iso_time(int64_t wall_ms)
{
    char buf[40];
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(wall_ms % 1000));
    return json_string(buf);
}

static json_t *counters_json(const struct guest *g, const struct policy_guest *p)
{
    static const struct guest_channel_stats none;
    const struct guest_channel_stats *s = g->channel ? guest_channel_stats(g->channel) : &none;
    const struct {
        const char *name;
        uint64_t value;
    } counters[] = {
        {"bytes", s->bytes},
        {"frames", s->frames},
        {"messages", s->messages},
        {"pressure_events", s->pressure_events},
        {"reports", s->reports},
        {"invalid", s->invalid},
        {"json", s->rejected[BP_ERR_JSON]},
        {"version", s->rejected[BP_ERR_VERSION]},
        {"type", s->rejected[BP_ERR_TYPE]},
        {"field", s->rejected[BP_ERR_FIELD]},
        {"range", s->rejected[BP_ERR_RANGE]},
        {"seq_stale", s->seq_stale},
        {"seq_lost", s->seq_lost},
        {"resyncs", s->resyncs},
        {"unknown_type", s->unknown_type},
        {"junk_bytes", s->junk_bytes},
        {"oversized", s->oversized},
        {"truncated", s->truncated},
        {"rate_limited", s->rate_limited},
        {"throttled", s->throttled},
        {"welcomes_dropped", s->welcomes_dropped},
        {"channel_connects", s->connects},
        {"qmp_connects", g->qmp_connects},
        {"balloon_changes", g->balloon_changes},
        {"moves", g->moves},
        {"move_errors", g->move_errors},
        {"reversals", p->reversals},
    };
    json_t *j = json_object();
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        json_object_set_new(j, counters[i].name, json_integer((json_int_t)counters[i].value));
    return j;
}

static json_t *decision_json(const struct decision_entry *e)
{
    json_t *j = json_pack("{sIsosssssIsIss}", "seq", (json_int_t)e->seq, "time",
                          iso_time(e->wall_ms), "action", policy_action_name(e->action), "reason",
                          policy_reason_name(e->reason), "from", (json_int_t)e->from_bytes, "to",
                          (json_int_t)e->to_bytes, "result", move_result_name(e->result));
    if (j && e->result == MOVE_FAILED)
        json_object_set_new(j, "error", json_string(e->error));
    return j;
}

/* See control_proto.h. */
json_t *control_guest_json(const struct control_context *ctx, const struct guest *g,
                           bool with_decisions)
{
    const struct policy_guest *p = &ctx->reg->policy[g->index];
    enum bp_level level = policy_guest_level(ctx->policy, p, ctx->now);
    const struct guest_channel_stats *s = g->channel ? guest_channel_stats(g->channel) : NULL;

    json_t *last = json_null();
    if (g->last_decision_at != POLICY_NEVER)
        last = json_pack("{sssssIsIsI}", "action", policy_action_name(g->last_decision.action),
                         "reason", policy_reason_name(g->last_decision.reason), "from",
                         (json_int_t)g->last_decision.from_bytes, "to",
                         (json_int_t)g->last_decision.to_bytes, "age_ms",
                         (json_int_t)(ctx->now - g->last_decision_at));
    json_t *last_move = json_null();
    const struct decision_entry *e = guest_ring_entry(g, 0);
    if (e)
        last_move = decision_json(e);

    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(g->name));
    json_object_set_new(j, "source",
                        json_string(g->backend == GUEST_BACKEND_LIBVIRT ? "libvirt"
                                    : g->from_file                      ? "file"
                                                                        : "runtime"));
    json_object_set_new(j, "paused", json_boolean(p->paused));
    json_object_set_new(j, "level", json_string(bp_level_name(level)));
    json_object_set_new(j, "psi_some_avg10",
                        g->mem_known ? json_real(g->mem.psi_some_avg10) : json_null());
    json_object_set_new(j, "mem_available",
                        maybe_u64(g->mem_known, g->mem.mem_available_kb * 1024));
    json_object_set_new(j, "floor", json_integer((json_int_t)g->cfg.floor_bytes));
    json_object_set_new(j, "ceiling", json_integer((json_int_t)g->cfg.ceiling_bytes));
    json_object_set_new(j, "weight", json_integer(g->cfg.weight));
    json_t *balloon = json_object();
    json_object_set_new(balloon, "actual", maybe_u64(p->actual_known, p->actual_bytes));
    json_object_set_new(balloon, "target", maybe_u64(p->target_set, p->target_bytes));
    json_object_set_new(j, "balloon", balloon);
    json_t *channel = json_object();
    json_object_set_new(channel, "path", json_string(g->cfg.channel_path));
    json_object_set_new(channel, "connected",
                        json_boolean(s && guest_channel_connected(g->channel)));
    json_object_set_new(channel, "throttled",
                        json_boolean(s && guest_channel_throttled(g->channel)));
    json_object_set_new(j, "channel", channel);
    json_t *qmp = json_null(), *libvirt = json_null();
    if (g->backend == GUEST_BACKEND_LIBVIRT) {
        libvirt = json_object();
        json_object_set_new(libvirt, "domain", json_string(g->domain));
        json_object_set_new(libvirt, "uuid", json_string(g->uuid));
        json_object_set_new(libvirt, "connected", json_boolean(g->libvirt_connected));
    } else {
        qmp = json_object();
        json_object_set_new(qmp, "path", json_string(g->cfg.qmp_path));
        json_object_set_new(qmp, "ready", json_boolean(g->qmp_ready));
    }
    json_object_set_new(j, "qmp", qmp);
    json_object_set_new(j, "libvirt", libvirt);
    json_object_set_new(j, "agent", g->agent[0] ? json_string(g->agent) : json_null());
    json_object_set_new(j, "last_decision", last);
    json_object_set_new(j, "last_move", last_move);
    json_object_set_new(j, "counters", counters_json(g, p));
    if (!j)
        return NULL;
    if (with_decisions) {
        json_t *list = json_array();
        for (size_t i = 0; i < g->ring_count; i++)
            json_array_append_new(list, decision_json(guest_ring_entry(g, i)));
        json_object_set_new(j, "decisions", list);
    }
    return j;
}

static json_t *host_json(const struct control_context *ctx)
{
    if (!ctx->host_sample)
        return json_null();
    return json_pack("{sfsIsIsb}", "psi_some_avg10", ctx->host_sample->psi.some.avg10, "mem_total",
                     (json_int_t)(ctx->host_sample->meminfo.mem_total_kb * 1024), "mem_available",
                     (json_int_t)(ctx->host_sample->meminfo.mem_available_kb * 1024), "pressure",
                     ctx->host->pressure);
}

/* Apply settings to a copy of cfg; the caller commits it only when all are valid.
 * limits_only: set changes floor, ceiling and weight only (a libvirt guest has no QMP path). */
static int apply_settings(const struct control_request *req, struct config_guest *cfg,
                          bool limits_only, char *err, size_t err_cap)
{
    for (size_t i = 0; i < req->n_settings; i++)
        if (config_guest_set(cfg, req->settings[i].key, req->settings[i].value, err, err_cap) < 0)
            return -EINVAL;
    return limits_only ? config_guest_check_limits(cfg, err, err_cap)
                       : config_guest_check(cfg, err, err_cap);
}

/* See control_proto.h. */
json_t *control_handle(const struct control_context *ctx, const struct control_request *req)
{
    struct guest *g = NULL;
    char err[240];

    if (req->cmd != CONTROL_LIST && req->cmd != CONTROL_ADD && req->cmd != CONTROL_LIBVIRT_EVENT) {
        g = registry_find(ctx->reg, req->name);
        if (!g)
            return error_reply("no guest named '%s'", req->name);
    }
    switch (req->cmd) {
    case CONTROL_LIST: {
        json_t *list = json_array();
        for (size_t i = 0; i < ctx->reg->n; i++)
            json_array_append_new(list, control_guest_json(ctx, ctx->reg->guests[i], false));
        return json_pack("{sbsbsoso}", "ok", 1, "dry_run", ctx->dry_run, "host", host_json(ctx),
                         "guests", list);
    }
    case CONTROL_SHOW:
        return json_pack("{sbso}", "ok", 1, "guest", control_guest_json(ctx, g, true));
    case CONTROL_PAUSE:
    case CONTROL_RESUME:
        ctx->reg->policy[g->index].paused = req->cmd == CONTROL_PAUSE;
        if (ctx->ops->kick)
            ctx->ops->kick(ctx->ops_ctx);
        return ok_reply();
    case CONTROL_SET: {
        struct config_guest cfg = g->cfg;
        if (apply_settings(req, &cfg, true, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        registry_update_limits(ctx->reg, g, &cfg);
        if (ctx->ops->kick)
            ctx->ops->kick(ctx->ops_ctx);
        return json_pack("{sbso}", "ok", 1, "guest", control_guest_json(ctx, g, false));
    }
    case CONTROL_ADD: {
        struct config_guest cfg = {.weight = CONFIG_DEFAULT_WEIGHT};
        strcpy(cfg.name, req->name);
        if (registry_find(ctx->reg, req->name))
            return error_reply("guest '%s' exists already", req->name);
        if (apply_settings(req, &cfg, false, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        if (ctx->ops->add(ctx->ops_ctx, &cfg, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        return ok_reply();
    }
    case CONTROL_REMOVE:
        if (g->backend == GUEST_BACKEND_LIBVIRT)
            return error_reply("guest '%s' is libvirt domain %s: it goes when the domain stops "
                               "(to stop managing it, pause it)",
                               g->name, g->domain);
        ctx->ops->remove(ctx->ops_ctx, g);
        return ok_reply();
    case CONTROL_LIBVIRT_EVENT:
        /* Only a nudge: the caller rescans after the reply is written. */
        if (ctx->ops->libvirt_event)
            ctx->ops->libvirt_event(ctx->ops_ctx, req->event, req->uuid, req->domain);
        return ok_reply();
    }
    return error_reply("unhandled command");
}

/* See control_proto.h. */
json_t *control_handle_line(const struct control_context *ctx, const char *text, size_t len)
{
    struct control_request req;
    char err[240];
    if (control_parse_request(text, len, &req, err, sizeof(err)) < 0)
        return error_reply("%s", err);
    return control_handle(ctx, &req);
}
