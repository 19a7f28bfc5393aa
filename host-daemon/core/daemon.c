/* The daemon's lifecycle: making one, its modules, start, reload, stop, signals, and the
 * read access views and modules use. */
#include "host-daemon/core/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/fdlimit.h"
#include "host-daemon/util/log.h"

/* See daemon_internal.h. */
double daemon_mib(uint64_t bytes)
{
    return (double)bytes / (double)POLICY_MIB;
}

/* See daemon_internal.h. */
int64_t daemon_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- read access ---- */

/* See daemon.h. */
int64_t daemon_now(const struct daemon *d)
{
    return (int64_t)uv_now(d->loop);
}

/* See daemon.h. */
bool daemon_dry_run(const struct daemon *d)
{
    return d->dry_run_forced || d->cfg.daemon.dry_run;
}

/* See daemon.h. */
uv_loop_t *daemon_loop(const struct daemon *d)
{
    return d->loop;
}

/* See daemon.h. */
const struct config *daemon_config(const struct daemon *d)
{
    return &d->cfg;
}

/* See daemon.h. */
struct guest *daemon_find_guest(const struct daemon *d, const char *name)
{
    return registry_find(&d->reg, name);
}

/* See daemon.h. */
void daemon_view(const struct daemon *d, struct daemon_view *ret)
{
    *ret = (struct daemon_view){
        .reg = &d->reg,
        .policy = &d->cfg.policy,
        .host = &d->host,
        .host_sample = d->host_known ? &d->host_sample : NULL,
        .dry_run = daemon_dry_run(d),
        .now = daemon_now(d),
        .rounds = d->rounds,
    };
}

/* ---- modules ---- */

/* See daemon.h. */
struct daemon *daemon_new(void)
{
    struct daemon *d = calloc(1, sizeof(*d));
    if (d)
        registry_init(&d->reg);
    return d;
}

/* See daemon.h. */
int daemon_add_module(struct daemon *d, const struct daemon_module_ops *ops, void *opaque)
{
    if (d->n_modules == DAEMON_MAX_MODULES)
        return -ENOSPC;
    d->modules[d->n_modules++] = (struct daemon_module){.ops = ops, .opaque = opaque};
    return 0;
}

static int start_modules(struct daemon *d, bool before_guests)
{
    for (size_t i = 0; i < d->n_modules; i++) {
        struct daemon_module *m = &d->modules[i];
        if (m->ops->before_guests != before_guests)
            continue;
        int r = m->ops->start(m->opaque, d);
        if (r < 0)
            return r;
        m->started = true;
    }
    return 0;
}

/* See daemon.h. */
void daemon_vm_event(struct daemon *d, const char *event, const char *id, const char *name)
{
    bool taken = false;
    for (size_t i = 0; i < d->n_modules; i++) {
        struct daemon_module *m = &d->modules[i];
        if (m->started && m->ops->vm_event) {
            m->ops->vm_event(m->opaque, event, id, name);
            taken = true;
        }
    }
    if (!taken)
        log_debug("hook: %s %s (%s) ignored: no module takes hook events (no [libvirt] section)",
                  event, name, id);
}

/* ---- signals, start, reload, stop ---- */

static void on_signal(uv_signal_t *sig, int signum)
{
    struct daemon *d = sig->data;
    if (signum == SIGHUP) {
        log_info("SIGHUP: reloading %s", d->config_path[0] ? d->config_path : "(no file)");
        daemon_reload(d);
        return;
    }
    log_info("%s: stopping; balloons stay where they are",
             signum == SIGTERM ? "SIGTERM" : "SIGINT");
    daemon_stop(d);
}

/* See daemon.h. */
int daemon_start(struct daemon *d, uv_loop_t *loop, struct config *cfg, const char *config_path,
                 bool dry_run_forced, const struct balloon_factory *factory)
{
    d->loop = loop;
    d->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg)); /* taken over */
    snprintf(d->config_path, sizeof(d->config_path), "%s", config_path ? config_path : "");
    d->dry_run_forced = dry_run_forced;
    d->factory = factory;
    policy_host_init(&d->host);
    log_set_level(d->cfg.daemon.log_level);
    d->fd_limit = fdlimit_raise();
    if (d->fd_limit == 0)
        d->fd_limit = UINT64_MAX; /* unreadable: do not warn on a guess */
    /* Guests' links never take the descriptors host sampling, the control socket and
     * libvirt need (they wait for a place instead), and connect a batch at a time. */
    uint64_t reserve = FDLIMIT_RESERVE + d->cfg.daemon.control_max_clients;
    uint64_t max_open = d->fd_limit == UINT64_MAX   ? 0
                        : d->fd_limit > 2 * reserve ? d->fd_limit - reserve
                                                    : d->fd_limit / 2;
    guest_links_admission(DAEMON_CONNECTS_IN_FLIGHT, max_open);

    rounds_init(d);
    host_sampling_init(d);
    uv_signal_init(loop, &d->sig_hup);
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_int);
    d->sig_hup.data = d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);
    d->started = true;

    opstate_start(d); /* before any guest: each is paused or limited as kept */

    /* Listeners first: if one cannot start, no guest link ever opens. */
    int r = start_modules(d, true);
    if (r < 0) {
        daemon_stop(d);
        return r;
    }
    for (size_t i = 0; i < d->cfg.n_guests; i++) {
        char err[200];
        struct daemon_guest_spec spec = {.cfg = &d->cfg.guests[i], .from_file = true};
        if (daemon_add_guest(d, &spec, NULL, err, sizeof(err)) < 0)
            log_error("guest %s: %s", d->cfg.guests[i].name, err);
    }
    size_t n_static = d->reg.n;
    opstate_restore_added(d);
    /* Sources of guests after the file's: names in the file take precedence. */
    r = start_modules(d, false);
    if (r < 0) {
        daemon_stop(d);
        return r;
    }
    host_sampling_start(d, 0);
    log_info("started: %zu static guests, control socket %s, descriptor limit %" PRIu64 "%s%s%s",
             n_static, d->cfg.daemon.control_socket, d->fd_limit,
             d->cfg.libvirt.enabled ? ", libvirt " : "",
             d->cfg.libvirt.enabled ? d->cfg.libvirt.uri : "",
             daemon_dry_run(d) ? ", advisory mode (dry run): no balloon will move" : "");
    return 0;
}

static bool same_settings(const struct config_guest *a, const struct config_guest *b)
{
    return strcmp(a->qmp_path, b->qmp_path) == 0 && strcmp(a->channel_path, b->channel_path) == 0 &&
           a->floor_bytes == b->floor_bytes && a->ceiling_bytes == b->ceiling_bytes &&
           a->weight == b->weight;
}

/* The [libvirt] settings are equal (where they are in effect). */
static bool same_libvirt(const struct config_libvirt *a, const struct config_libvirt *b)
{
    if (!a->enabled || !b->enabled)
        return a->enabled == b->enabled;
    return strcmp(a->uri, b->uri) == 0 && a->default_floor_bytes == b->default_floor_bytes &&
           a->default_weight == b->default_weight &&
           a->keepalive_interval_ms == b->keepalive_interval_ms &&
           a->keepalive_count == b->keepalive_count;
}

/* See daemon.h. */
int daemon_reload(struct daemon *d)
{
    struct config nc;
    struct config_errors errs;
    char err[240];

    if (!d->config_path[0])
        return 0;
    int r = config_load_file(d->config_path, &nc, &errs);
    if (r < 0) {
        for (size_t i = 0; i < errs.count; i++)
            log_error("%s:%d: %s", d->config_path, errs.items[i].line, errs.items[i].message);
        log_error("reload: %zu error(s) in %s; the running configuration is kept",
                  errs.count + errs.dropped, d->config_path);
        return r;
    }

    size_t added = 0, removed = 0, changed = 0;
    /* Static guests no longer in the file go; backwards, since removal moves the last. */
    for (size_t i = d->reg.n; i-- > 0;) {
        struct guest *g = d->reg.guests[i];
        if (g->from_file && !config_find_guest(&nc, g->name)) {
            daemon_remove_guest(d, g, NULL, err, sizeof(err));
            removed++;
        }
    }
    /* Settings of the daemon and the policy. */
    if (strcmp(nc.daemon.control_socket, d->cfg.daemon.control_socket) != 0)
        log_warning("reload: control_socket changed; it takes effect at the next restart");
    if (strcmp(nc.daemon.proc_dir, d->cfg.daemon.proc_dir) != 0)
        log_warning("reload: proc_dir changed; it takes effect at the next restart");
    if (strcmp(nc.daemon.state_dir, d->cfg.daemon.state_dir) != 0)
        log_warning("reload: state_dir changed; it takes effect at the next restart");
    if (!same_libvirt(&nc.libvirt, &d->cfg.libvirt))
        log_warning("reload: [libvirt] changed; it takes effect at the next restart");
    /* The HTTP surface's socket, limits and history rings are made once, at start. */
    const struct config_daemon *od = &d->cfg.daemon;
    if (strcmp(nc.daemon.http_listen.text, od->http_listen.text) != 0 ||
        nc.daemon.http_max_clients != od->http_max_clients ||
        nc.daemon.http_timeout_ms != od->http_timeout_ms || nc.daemon.history_ms != od->history_ms)
        log_warning("reload: http_listen, http_max_clients, http_timeout or history changed; they "
                    "take effect at the next restart");
    strcpy(nc.daemon.control_socket, d->cfg.daemon.control_socket);
    strcpy(nc.daemon.proc_dir, d->cfg.daemon.proc_dir);
    strcpy(nc.daemon.state_dir, d->cfg.daemon.state_dir);
    nc.daemon.http_listen = od->http_listen;
    nc.daemon.http_max_clients = od->http_max_clients;
    nc.daemon.http_timeout_ms = od->http_timeout_ms;
    nc.daemon.history_ms = od->history_ms;
    nc.libvirt = d->cfg.libvirt;
    bool was_dry = daemon_dry_run(d);
    struct config old = d->cfg;
    d->cfg = nc;
    log_set_level(d->cfg.daemon.log_level);
    if (daemon_dry_run(d) != was_dry)
        log_info("reload: advisory mode (dry run) %s", daemon_dry_run(d) ? "on" : "off");
    if (was_dry && !daemon_dry_run(d))
        rounds_reread_balloons(d);
    if (old.daemon.host_sample_ms != d->cfg.daemon.host_sample_ms)
        host_sampling_start(d, d->cfg.daemon.host_sample_ms);

    /* New and changed static guests; unchanged ones are not touched at all. */
    for (size_t i = 0; i < d->cfg.n_guests; i++) {
        const struct config_guest *ng = &d->cfg.guests[i];
        struct guest *g = registry_find(&d->reg, ng->name);
        if (!g) {
            struct daemon_guest_spec spec = {.cfg = ng, .from_file = true};
            if (daemon_add_guest(d, &spec, NULL, err, sizeof(err)) < 0)
                log_error("reload: guest %s: %s", ng->name, err);
            else
                added++;
            continue;
        }
        if (g->from_file && same_settings(&g->file_cfg, ng))
            continue;
        if (g->source) {
            char what[200] = "";
            if (g->balloon)
                g->balloon->ops->describe(g->balloon, what, sizeof(what));
            log_error("reload: guest %s: that name is %s's; not added", ng->name, what);
            continue;
        }
        struct guest *owner = guests_path_owner(d, ng, g);
        if (owner) {
            log_error("reload: guest %s: a socket path is used by guest '%s'; not changed",
                      ng->name, owner->name);
            continue;
        }
        g->from_file = true;
        g->file_cfg = *ng;
        if (!same_settings(&g->cfg, ng)) {
            guests_update_from_file(d, g, ng);
            changed++;
        }
    }
    links_apply_channel_limits(d);
    config_free(&old);
    log_info("reloaded %s: %zu guests (%zu added, %zu removed, %zu changed)", d->config_path,
             d->reg.n, added, removed, changed);
    rounds_touch_all(d); /* the policy's settings may have changed: decide everyone */
    return 0;
}

/* See daemon.h. */
void daemon_stop(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    rounds_close(d);
    host_sampling_close(d);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    for (size_t i = 0; i < d->n_modules; i++) {
        struct daemon_module *m = &d->modules[i];
        if (m->started)
            m->ops->stop(m->opaque);
        m->started = false;
    }
    guests_remove_all(d);
    opstate_stop(d);
}

/* See daemon.h. */
void daemon_free(struct daemon *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n_modules; i++)
        if (d->modules[i].ops->release)
            d->modules[i].ops->release(d->modules[i].opaque);
    registry_free(&d->reg);
    opstate_free(d);
    config_free(&d->cfg);
    free(d);
}
