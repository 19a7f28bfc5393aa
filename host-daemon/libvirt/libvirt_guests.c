/* bellowsd's libvirt guests module: libvirt_client's callbacks onto the daemon's functions. */
#include "host-daemon/libvirt/libvirt_guests.h"

#include <errno.h>
#include <inttypes.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/core/daemon.h"
#include "host-daemon/libvirt/libvirt_balloon.h"
#include "host-daemon/libvirt/libvirt_client.h"
#include "host-daemon/util/faillog.h"
#include "host-daemon/util/log.h"

#define SOURCE "libvirt" /* the guests' source, and the module's name */

struct libvirt_guests {
    struct daemon *daemon;
    struct libvirt_backend *backend;
    struct libvirt_balloons balloons;
    uv_timer_t rescan_timer; /* the hook's nudge, run on the next loop turn */
    struct faillog conn_log; /* connection failures: a line on a change, a summary a minute */
};

static double mib(uint64_t bytes)
{
    return (double)bytes / (double)POLICY_MIB;
}

/* See libvirt_guests.h. */
bool libvirt_guests_available(void)
{
    return true;
}

/* The daemon's guest of a managed domain, NULL if none. */
static struct guest *guest_of(struct libvirt_guests *lv, const char *uuid)
{
    struct balloon *b = libvirt_balloons_find(&lv->balloons, uuid);
    return b ? daemon_find_guest(lv->daemon, libvirt_balloon_guest(b)) : NULL;
}

/* The guest name for a domain: its own name when that is a valid guest name nobody else
 * has, else its UUID (always valid, and unique among libvirt guests). */
static void guest_name_for(struct libvirt_guests *lv, const struct libvirt_domain_info *info,
                           char *out, size_t cap)
{
    if (config_guest_name_valid(info->name) && !daemon_find_guest(lv->daemon, info->name))
        snprintf(out, cap, "%.*s", CONFIG_NAME_MAX, info->name);
    else
        snprintf(out, cap, "%s", info->uuid);
}

static void on_domain_appeared(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                               uint64_t actual_bytes, void *opaque)
{
    struct libvirt_guests *lv = opaque;
    struct config_guest cfg = {0};
    char err[240], detail[600];

    if (info->errors[0])
        log_warning("libvirt domain %s: %s; falling back as docs/libvirt.md says", info->name,
                    info->errors);
    guest_name_for(lv, info, cfg.name, sizeof(cfg.name));
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s", info->channel_path);
    cfg.floor_bytes = info->floor_bytes;
    cfg.ceiling_bytes = info->ceiling_bytes;
    cfg.weight = info->weight;
    struct balloon *balloon = libvirt_balloon_new(&lv->balloons, b, daemon_loop(lv->daemon),
                                                  cfg.name, info->uuid, info->name, actual_bytes);
    if (!balloon) {
        log_error("libvirt domain %s (%s): not managed: out of memory", info->name, info->uuid);
        return;
    }
    snprintf(detail, sizeof(detail),
             "libvirt domain %s (%s), channel %s, balloon at %.1f MiB, floor %.1f MiB (%s), "
             "ceiling %.1f MiB (%s), weight %" PRIu32 " (%s)",
             info->name, info->uuid, cfg.channel_path, mib(actual_bytes), mib(cfg.floor_bytes),
             libvirt_limit_source_name(info->floor_from), mib(cfg.ceiling_bytes),
             libvirt_limit_source_name(info->ceiling_from), cfg.weight,
             libvirt_limit_source_name(info->weight_from));
    struct daemon_guest_spec spec = {
        .cfg = &cfg, .balloon = balloon, .source = SOURCE, .vm_id = info->uuid, .detail = detail};
    if (daemon_add_guest(lv->daemon, &spec, NULL, err, sizeof(err)) < 0)
        log_error("libvirt domain %s (%s): not managed: %s", info->name, info->uuid, err);
}

static void on_domain_disappeared(struct libvirt_backend *b, const char *uuid, const char *name,
                                  void *opaque)
{
    (void)b;
    struct libvirt_guests *lv = opaque;
    struct guest *g = guest_of(lv, uuid);
    char err[240];
    if (!g)
        return;
    log_info("guest %s: libvirt domain %s stopped or left this host", g->name, name);
    daemon_remove_guest(lv->daemon, g, SOURCE, err, sizeof(err));
}

static void on_balloon_changed(struct libvirt_backend *b, const char *uuid, uint64_t actual_bytes,
                               void *opaque)
{
    (void)b;
    struct libvirt_guests *lv = opaque;
    struct balloon *balloon = libvirt_balloons_find(&lv->balloons, uuid);
    if (balloon) /* the client reports a new domain's size before it is ours */
        libvirt_balloon_note_actual(balloon, actual_bytes);
}

static void on_limits_changed(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                              void *opaque)
{
    (void)b;
    struct libvirt_guests *lv = opaque;
    struct guest *g = guest_of(lv, info->uuid);
    if (!g)
        return;
    if (info->errors[0])
        log_warning("libvirt domain %s: %s; falling back as docs/libvirt.md says", info->name,
                    info->errors);
    struct config_guest cfg = g->cfg;
    cfg.floor_bytes = info->floor_bytes;
    cfg.ceiling_bytes = info->ceiling_bytes;
    cfg.weight = info->weight;
    char err[240];
    if (config_guest_check_limits(&cfg, err, sizeof(err)) < 0) {
        log_error("guest %s: new limits from libvirt refused: %s", g->name, err);
        return;
    }
    log_info("guest %s: bellows metadata of libvirt domain %s changed", g->name, info->name);
    daemon_set_limits(lv->daemon, g, &cfg);
}

static void on_connection_changed(struct libvirt_backend *b, bool connected, const char *why,
                                  void *opaque)
{
    (void)b;
    struct libvirt_guests *lv = opaque;
    int64_t now = daemon_now(lv->daemon);
    if (connected) {
        uint64_t failures = lv->conn_log.total;
        if (faillog_ok(&lv->conn_log, now))
            log_info("libvirt: connected to %s after %llu failed attempts", why,
                     (unsigned long long)failures);
        else
            log_info("libvirt: connected to %s", why);
    } else {
        /* The reason's kind: a connection that was up and went, or one that cannot be made. */
        const char *kind = strstr(why, "connection lost") ? "lost" : "connect";
        switch (faillog_fail(&lv->conn_log, -ENOTCONN, kind, now)) {
        case FAILLOG_NEW:
            log_warning("libvirt: %s; balloons of libvirt guests hold until it is back; "
                        "retrying with backoff",
                        why);
            break;
        case FAILLOG_SUMMARY:
            log_warning("libvirt: still not connected: %llu failed attempts in the last %.0f s "
                        "(%s)",
                        (unsigned long long)lv->conn_log.summarised, FAILLOG_SUMMARY_MS / 1000.0,
                        why);
            break;
        case FAILLOG_QUIET:
            log_debug("libvirt: %s; retrying", why);
            break;
        }
    }
    libvirt_balloons_set_connected(&lv->balloons, connected, why);
}

static void on_domain_rejected(struct libvirt_backend *b, const char *name, const char *why,
                               void *opaque)
{
    (void)b;
    (void)opaque;
    log_warning("libvirt domain %s: not managed: %s", name, why);
}

static void on_domain_failed(struct libvirt_backend *b, const char *uuid, const char *name,
                             const char *why, uint64_t retry_ms, void *opaque)
{
    (void)b;
    (void)opaque;
    log_warning("libvirt domain %s (%s): cannot be read: %s; trying again in %.1f s",
                name[0] ? name : "?", uuid, why, (double)retry_ms / 1000);
}

/* libvirt prints every error to stderr by default; the client keeps the message for the
 * daemon, which logs it once with its context. */
static void ignore_libvirt_error(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

static void on_rescan(uv_timer_t *timer)
{
    struct libvirt_guests *lv = timer->data;
    if (lv->backend && libvirt_backend_rescan(lv->backend) < 0)
        log_debug("libvirt: rescan skipped: not connected (the reconnect rescans)");
}

static int module_start(void *opaque, struct daemon *d)
{
    struct libvirt_guests *lv = opaque;
    const struct config *cfg = daemon_config(d);
    const struct config_libvirt *c = &cfg->libvirt;
    struct libvirt_backend_config bc;
    static const struct libvirt_backend_callbacks cbs = {
        .domain_appeared = on_domain_appeared,
        .domain_disappeared = on_domain_disappeared,
        .balloon_changed = on_balloon_changed,
        .limits_changed = on_limits_changed,
        .connection_changed = on_connection_changed,
        .domain_rejected = on_domain_rejected,
        .domain_failed = on_domain_failed,
    };

    lv->daemon = d;
    virSetErrorFunc(NULL, ignore_libvirt_error);
    libvirt_backend_config_defaults(&bc);
    bc.uri = c->uri;
    bc.defaults.floor_bytes = c->default_floor_bytes;
    bc.defaults.weight = c->default_weight;
    bc.keepalive_interval_s = (int)(c->keepalive_interval_ms / 1000);
    bc.keepalive_count = c->keepalive_count;
    bc.reconnect_min_ms = cfg->daemon.reconnect_min_ms;
    bc.reconnect_max_ms = cfg->daemon.reconnect_max_ms;
    int r = libvirt_backend_new(daemon_loop(d), &bc, &cbs, lv, &lv->backend);
    if (r < 0) {
        log_error("libvirt: cannot set up the backend: %s", strerror(-r));
        lv->backend = NULL;
        return r;
    }
    uv_timer_init(daemon_loop(d), &lv->rescan_timer);
    lv->rescan_timer.data = lv;
    libvirt_backend_start(lv->backend); /* on a worker: connection_changed tells */
    return 0;
}

static void module_stop(void *opaque)
{
    struct libvirt_guests *lv = opaque;
    /* The daemon closes the guests' balloons right after: they must not reach the client. */
    libvirt_balloons_detach(&lv->balloons);
    libvirt_backend_close(lv->backend);
    lv->backend = NULL;
    uv_close((uv_handle_t *)&lv->rescan_timer, NULL);
}

static void module_release(void *opaque)
{
    free(opaque);
}

/* Only a nudge: that one domain is looked at by UUID on a worker, never inside the
 * control request (libvirtd waits for its hook while the hook waits for the reply). An id
 * that is not a UUID makes a full rescan, on the next loop turn. */
static void module_vm_event(void *opaque, const char *event, const char *id, const char *name)
{
    struct libvirt_guests *lv = opaque;
    log_debug("libvirt hook: %s %s (%s): looking at it", event, name, id);
    if (lv->backend && libvirt_backend_rescan_domain(lv->backend, id) == -EINVAL)
        uv_timer_start(&lv->rescan_timer, on_rescan, 0, 0);
}

static const struct daemon_module_ops module_ops = {
    .name = SOURCE,
    .before_guests = false,
    .start = module_start,
    .stop = module_stop,
    .vm_event = module_vm_event,
    .release = module_release,
};

/* See libvirt_guests.h. */
int libvirt_guests_attach(struct daemon *d)
{
    struct libvirt_guests *lv = calloc(1, sizeof(*lv));
    if (!lv)
        return -ENOMEM;
    int r = daemon_add_module(d, &module_ops, lv);
    if (r < 0)
        free(lv);
    return r;
}
