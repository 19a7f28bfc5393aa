/* Control protocol: the request parser, and the handler that answers through control_ops. */
#include "host-daemon/control/control_proto.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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
    if (strlen(s) != CONTROL_UUID_LEN)
        return false;
    for (size_t i = 0; i < CONTROL_UUID_LEN; i++) {
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
        if (!text || strlen(text) > CONTROL_DOMAIN_MAX) {
            snprintf(err, err_cap, "\"domain\" must be a domain name of at most %d bytes",
                     CONTROL_DOMAIN_MAX);
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
bool control_is_change(enum control_cmd cmd)
{
    return cmd != CONTROL_LIST && cmd != CONTROL_SHOW;
}

/* See control_proto.h. */
json_t *control_handle(const struct control_ops *ops, void *ctx, const struct control_request *req)
{
    struct config_guest cfg;
    char err[240];
    json_t *reply;

    if (req->cmd != CONTROL_LIST && req->cmd != CONTROL_ADD && req->cmd != CONTROL_LIBVIRT_EVENT &&
        ops->find(ctx, req->name, &cfg) < 0)
        return error_reply("no guest named '%s'", req->name);
    switch (req->cmd) {
    case CONTROL_LIST: {
        json_t *members = ops->list(ctx);
        reply = ok_reply();
        if (reply && members)
            json_object_update(reply, members);
        json_decref(members);
        return reply;
    }
    case CONTROL_SHOW:
        return json_pack("{sbso}", "ok", 1, "guest", ops->show(ctx, req->name, true));
    case CONTROL_PAUSE:
    case CONTROL_RESUME:
        ops->pause(ctx, req->name, req->cmd == CONTROL_PAUSE);
        return ok_reply();
    case CONTROL_SET:
        if (apply_settings(req, &cfg, true, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        ops->set_limits(ctx, req->name, &cfg);
        return json_pack("{sbso}", "ok", 1, "guest", ops->show(ctx, req->name, false));
    case CONTROL_ADD:
        if (ops->find(ctx, req->name, &cfg) == 0)
            return error_reply("guest '%s' exists already", req->name);
        cfg = (struct config_guest){.weight = CONFIG_DEFAULT_WEIGHT};
        strcpy(cfg.name, req->name);
        if (apply_settings(req, &cfg, false, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        if (ops->add(ctx, &cfg, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        return ok_reply();
    case CONTROL_REMOVE:
        if (ops->remove(ctx, req->name, err, sizeof(err)) < 0)
            return error_reply("%s", err);
        return ok_reply();
    case CONTROL_LIBVIRT_EVENT:
        /* Only a nudge: the rescan runs after the reply is written. */
        ops->vm_event(ctx, req->event, req->uuid, req->domain);
        return ok_reply();
    }
    return error_reply("unhandled command");
}

/* See control_proto.h. */
json_t *control_handle_line(const struct control_ops *ops, void *ctx, const char *text, size_t len)
{
    struct control_request req;
    char err[240];
    if (control_parse_request(text, len, &req, err, sizeof(err)) < 0)
        return error_reply("%s", err);
    return control_handle(ops, ctx, &req);
}
