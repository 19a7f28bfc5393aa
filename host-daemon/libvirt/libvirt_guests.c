/* bellowsd's libvirt side: libvirt_backend's callbacks onto the registry and the policy. */
#include "host-daemon/libvirt/libvirt_guests.h"

#include <errno.h>
#include <inttypes.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/core/daemon.h"
#include "host-daemon/libvirt/libvirt_client.h"
#include "host-daemon/util/log.h"

struct daemon_libvirt {
    struct libvirt_backend *backend;
    uv_timer_t rescan_timer; /* the hook's nudge, run on the next loop turn */
};

static double mib(uint64_t bytes)
{
    return (double)bytes / (double)POLICY_MIB;
}

/* See daemon_libvirt.h. */
bool daemon_libvirt_available(void)
{
    return true;
}

/* The guest name for a domain: its own name when that is a valid guest name nobody else
 * has, else its UUID (always valid, and unique among libvirt guests). */
static void guest_name_for(struct daemon *d, const struct libvirt_domain_info *info, char *out,
                           size_t cap)
{
    if (config_guest_name_valid(info->name) && !registry_find(&d->reg, info->name))
        snprintf(out, cap, "%.*s", CONFIG_NAME_MAX, info->name);
    else
        snprintf(out, cap, "%s", info->uuid);
}

static void on_domain_appeared(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                               uint64_t actual_bytes, void *opaque)
{
    (void)b;
    struct daemon *d = opaque;
    struct config_guest cfg = {0};
    struct guest *g;
    char err[240];

    if (info->errors[0])
        log_warning("libvirt domain %s: %s; falling back as docs/libvirt.md says", info->name,
                    info->errors);
    guest_name_for(d, info, cfg.name, sizeof(cfg.name));
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s", info->channel_path);
    cfg.floor_bytes = info->floor_bytes;
    cfg.ceiling_bytes = info->ceiling_bytes;
    cfg.weight = info->weight;
    if (daemon_add_domain(d, &cfg, info->uuid, info->name, &g, err, sizeof(err)) < 0) {
        log_error("libvirt domain %s (%s): not managed: %s", info->name, info->uuid, err);
        return;
    }
    g->libvirt_connected = true;
    log_info("guest %s: added: libvirt domain %s (%s), channel %s, balloon at %.1f MiB, floor "
             "%.1f MiB (%s), ceiling %.1f MiB (%s), weight %" PRIu32 " (%s)",
             g->name, info->name, info->uuid, cfg.channel_path, mib(actual_bytes),
             mib(cfg.floor_bytes), libvirt_limit_source_name(info->floor_from),
             mib(cfg.ceiling_bytes), libvirt_limit_source_name(info->ceiling_from), cfg.weight,
             libvirt_limit_source_name(info->weight_from));
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), actual_bytes, daemon_now(d));
    daemon_kick(d);
}

static void on_domain_disappeared(struct libvirt_backend *b, const char *uuid, const char *name,
                                  void *opaque)
{
    (void)b;
    struct daemon *d = opaque;
    struct guest *g = registry_find_uuid(&d->reg, uuid);
    if (!g)
        return;
    log_info("guest %s: libvirt domain %s stopped or left this host", g->name, name);
    daemon_remove_guest(d, g);
}

static void on_balloon_changed(struct libvirt_backend *b, const char *uuid, uint64_t actual_bytes,
                               void *opaque)
{
    (void)b;
    struct daemon *d = opaque;
    struct guest *g = registry_find_uuid(&d->reg, uuid);
    if (!g)
        return; /* the backend reports a new domain's size before it is ours */
    g->balloon_changes++;
    log_debug("guest %s: balloon now %.1f MiB (libvirt)", g->name, mib(actual_bytes));
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), actual_bytes, daemon_now(d));
    daemon_kick(d);
}

static void on_limits_changed(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                              void *opaque)
{
    (void)b;
    struct daemon *d = opaque;
    struct guest *g = registry_find_uuid(&d->reg, info->uuid);
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
    daemon_set_limits(d, g, &cfg);
}

static void on_connection_changed(struct libvirt_backend *b, bool connected, const char *why,
                                  void *opaque)
{
    (void)b;
    struct daemon *d = opaque;

    if (connected) {
        log_info("libvirt: connected to %s", why);
    } else {
        log_warning("libvirt: %s; balloons of libvirt guests hold until it is back", why);
    }
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        if (g->backend != GUEST_BACKEND_LIBVIRT)
            continue;
        g->libvirt_connected = connected;
        /* Never act blind: sizes read before the gap are void; the rescan reads them. */
        if (!connected)
            policy_forget_actual(registry_policy(&d->reg, g));
    }
    daemon_kick(d);
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
    log_warning("libvirt domain %s (%s): cannot be read: %s; retrying in %.1f s", name, uuid, why,
                (double)retry_ms / 1000);
}

/* libvirt prints every error to stderr by default; the backend keeps the message for the
 * daemon, which logs it once with its context. */
static void ignore_libvirt_error(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

/* See daemon_libvirt.h. */
int daemon_libvirt_start(struct daemon *d)
{
    const struct config_libvirt *c = &d->cfg.libvirt;
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

    struct daemon_libvirt *lv = calloc(1, sizeof(*lv));
    if (!lv)
        return -ENOMEM;
    virSetErrorFunc(NULL, ignore_libvirt_error);
    libvirt_backend_config_defaults(&bc);
    bc.uri = c->uri;
    bc.defaults.floor_bytes = c->default_floor_bytes;
    bc.defaults.weight = c->default_weight;
    bc.keepalive_interval_s = (int)(c->keepalive_interval_ms / 1000);
    bc.keepalive_count = c->keepalive_count;
    bc.reconnect_min_ms = d->cfg.daemon.reconnect_min_ms;
    bc.reconnect_max_ms = d->cfg.daemon.reconnect_max_ms;
    d->libvirt = lv;
    int r = libvirt_backend_new(d->loop, &bc, &cbs, d, &lv->backend);
    if (r < 0) {
        log_error("libvirt: cannot set up the backend: %s", strerror(-r));
        d->libvirt = NULL;
        free(lv);
        return r;
    }
    uv_timer_init(d->loop, &lv->rescan_timer);
    lv->rescan_timer.data = d;
    libvirt_backend_start(lv->backend); /* connection_changed says how it went */
    return 0;
}

static void on_rescan_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* See daemon_libvirt.h. */
void daemon_libvirt_stop(struct daemon *d)
{
    struct daemon_libvirt *lv = d->libvirt;
    if (!lv)
        return;
    d->libvirt = NULL;
    libvirt_backend_close(lv->backend);
    lv->rescan_timer.data = lv;
    uv_close((uv_handle_t *)&lv->rescan_timer, on_rescan_timer_closed);
}

/* A move's answer from the worker: the guest is looked up again (it may be gone). */
static void on_move_done(struct libvirt_backend *b, const char *uuid, int status, const char *error,
                         void *opaque)
{
    (void)b;
    struct daemon *d = opaque;
    struct guest *g = registry_find_uuid(&d->reg, uuid);
    if (!g)
        return;
    g->move_in_flight = false;
    if (status == 0 || status == -ECANCELED)
        return;
    struct decision_entry *e = guest_ring_find(g, g->ring_seq);
    if (e) {
        e->result = MOVE_FAILED;
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1, error);
    }
    g->move_errors++;
    log_error("guest %s: balloon move through libvirt domain %s failed: %s", g->name, g->domain,
              error);
    daemon_kick(d);
}

/* See daemon_libvirt.h. */
int daemon_libvirt_set_balloon(struct daemon *d, struct guest *g, uint64_t bytes, char *err,
                               size_t err_cap)
{
    struct daemon_libvirt *lv = d->libvirt;
    if (!lv) {
        snprintf(err, err_cap, "the libvirt backend is not running");
        return -ENOTCONN;
    }
    int r = libvirt_backend_move(lv->backend, g->uuid, bytes, 0, on_move_done, d);
    switch (r) {
    case 0:
        g->move_in_flight = true;
        break;
    case -ENOENT:
        snprintf(err, err_cap, "libvirt domain %s is gone", g->domain);
        break;
    case -ENOTCONN:
        snprintf(err, err_cap, "not connected to libvirtd");
        break;
    case -ERANGE:
        snprintf(err, err_cap, "target outside 1 MiB..the domain's maximum memory");
        break;
    case -EBUSY:
        snprintf(err, err_cap, "a move is in flight");
        break;
    default:
        snprintf(err, err_cap, "%s", strerror(-r));
        break;
    }
    return r;
}

/* See daemon_libvirt.h. */
int daemon_libvirt_actual(struct daemon *d, const struct guest *g, uint64_t *ret_bytes)
{
    if (!d->libvirt)
        return -EAGAIN;
    int r = libvirt_backend_actual(d->libvirt->backend, g->uuid, ret_bytes);
    return r < 0 ? -EAGAIN : 0;
}

static void on_rescan(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    if (d->libvirt && libvirt_backend_rescan(d->libvirt->backend) < 0)
        log_debug("libvirt: rescan skipped: not connected (the reconnect rescans)");
}

/* See daemon_libvirt.h. */
void daemon_libvirt_rescan_soon(struct daemon *d, const char *event, const char *uuid,
                                const char *domain)
{
    if (!d->libvirt) {
        log_debug("libvirt hook: %s %s (%s) ignored: no [libvirt] backend", event, domain, uuid);
        return;
    }
    log_debug("libvirt hook: %s %s (%s): looking at it", event, domain, uuid);
    /* One domain by UUID: a worker looks, the loop goes on (never a full rescan per hook). */
    if (libvirt_backend_rescan_domain(d->libvirt->backend, uuid) == -EINVAL)
        uv_timer_start(&d->libvirt->rescan_timer, on_rescan, 0, 0);
}
