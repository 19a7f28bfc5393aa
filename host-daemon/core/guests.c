/* Guests coming and going: adding one (its checks: name, settings, unique socket paths,
 * the descriptor budget), removing one, new limits, pause, and a static guest whose
 * settings changed in the file. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/fdlimit.h"
#include "host-daemon/util/log.h"

/* Two socket paths that are set and equal (a guest of a source may have no QMP path). */
static bool same_path(const char *a, const char *b)
{
    return a[0] && strcmp(a, b) == 0;
}

/* See daemon_internal.h. */
struct guest *guests_path_owner(struct daemon *d, const struct config_guest *cfg,
                                const struct guest *except)
{
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *o = d->reg.guests[i];
        if (o == except)
            continue;
        if (same_path(o->cfg.qmp_path, cfg->qmp_path) ||
            same_path(o->cfg.qmp_path, cfg->channel_path) ||
            same_path(o->cfg.channel_path, cfg->qmp_path) ||
            same_path(o->cfg.channel_path, cfg->channel_path))
            return o;
    }
    return NULL;
}

/* The guest's own settings: complete for a guest whose balloon the factory opens from
 * them, a channel and limits for a guest that brings its balloon. */
static int check_settings(const struct daemon_guest_spec *spec, char *err, size_t err_cap)
{
    const struct config_guest *cfg = spec->cfg;
    if (!config_guest_name_valid(cfg->name)) {
        snprintf(err, err_cap, "'%s' is not a valid guest name", cfg->name);
        return -EINVAL;
    }
    if (!spec->balloon)
        return config_guest_check(cfg, err, err_cap) < 0 ? -EINVAL : 0;
    if (!cfg->channel_path[0]) {
        snprintf(err, err_cap, "no channel socket path");
        return -EINVAL;
    }
    return config_guest_check_limits(cfg, err, err_cap) < 0 ? -EINVAL : 0;
}

/* Checks against the other guests and the daemon's own socket. */
static int check_new_guest(struct daemon *d, const struct config_guest *cfg, char *err,
                           size_t err_cap)
{
    if (registry_find(&d->reg, cfg->name)) {
        snprintf(err, err_cap, "guest '%s' exists already", cfg->name);
        return -EEXIST;
    }
    struct guest *owner = guests_path_owner(d, cfg, NULL);
    if (owner) {
        snprintf(err, err_cap, "guest '%s' uses one of these socket paths already", owner->name);
        return -EINVAL;
    }
    if (strcmp(cfg->qmp_path, d->cfg.daemon.control_socket) == 0 ||
        strcmp(cfg->channel_path, d->cfg.daemon.control_socket) == 0) {
        snprintf(err, err_cap, "that is the control socket's path");
        return -EINVAL;
    }
    return 0;
}

/* Warn once when the guests need more descriptors than RLIMIT_NOFILE gives. */
static void check_fd_budget(struct daemon *d)
{
    uint64_t needed = fdlimit_needed(d->guest_fds);
    if (needed <= d->fd_limit) {
        d->fd_warned = false;
        return;
    }
    if (d->fd_warned)
        return;
    d->fd_warned = true;
    log_warning("%zu guests need about %" PRIu64 " open descriptors, but RLIMIT_NOFILE is %" PRIu64
                ": connects past it fail (EMFILE), and host sampling and the control socket "
                "with them; raise the limit (systemd: LimitNOFILE=)",
                d->reg.n, needed, d->fd_limit);
}

static void on_balloon_closed(void *opaque)
{
    guest_free(opaque);
}

/* Take g out and close its links; it is freed once its balloon has closed. */
static void remove_now(struct daemon *d, struct guest *g)
{
    g->removing = true;
    observers_guest_removed(d, g);
    rounds_forget(d, g);
    registry_remove(&d->reg, g);
    d->guest_fds -= g->fds;
    if (!d->stopping)
        check_fd_budget(d);
    if (g->channel)
        guest_channel_close(g->channel);
    g->channel = NULL;
    if (!d->stopping)
        log_info("guest %s: removed; its balloon stays where it is", g->name);
    if (g->balloon)
        links_close_balloon(g, on_balloon_closed, g); /* frees g once closed */
    else
        guest_free(g);
    daemon_kick(d); /* the host's rounds weigh one guest less */
}

/* See daemon.h. */
int daemon_add_guest(struct daemon *d, const struct daemon_guest_spec *spec,
                     struct guest **ret_guest, char *err, size_t err_cap)
{
    const struct config_guest *cfg = spec->cfg;
    struct guest *g = NULL;

    int r = check_settings(spec, err, err_cap);
    if (r == 0)
        r = check_new_guest(d, cfg, err, err_cap);
    if (r == 0) {
        g = guest_new(cfg, spec->from_file);
        if (!g || registry_add(&d->reg, g) < 0) {
            guest_free(g);
            snprintf(err, err_cap, "out of memory");
            r = -ENOMEM;
        }
    }
    if (r < 0) {
        if (spec->balloon) /* taken over */
            spec->balloon->ops->close(spec->balloon, NULL, NULL);
        return r;
    }
    g->daemon = d;
    g->source = spec->source;
    snprintf(g->vm_id, sizeof(g->vm_id), "%s", spec->vm_id ? spec->vm_id : "");
    g->balloon = spec->balloon;
    if (!g->balloon)
        r = d->factory->open(d->loop, cfg, &d->cfg.daemon, &g->balloon);
    g->fds = 1 + (g->balloon ? g->balloon->ops->fds : 0);
    d->guest_fds += g->fds;
    check_fd_budget(d);
    if (r == 0)
        r = links_start_channel(d, g);
    if (r == 0)
        r = links_start_balloon(d, g);
    if (r < 0) {
        snprintf(err, err_cap, "cannot start its links: %s", strerror(-r));
        remove_now(d, g);
        return r;
    }
    if (spec->detail)
        log_info("guest %s: added: %s", g->name, spec->detail);
    else
        log_info("guest %s: added (qmp %s, channel %s, floor %.1f MiB, ceiling %.1f MiB, weight "
                 "%" PRIu32 "%s)",
                 g->name, cfg->qmp_path, cfg->channel_path, daemon_mib(cfg->floor_bytes),
                 daemon_mib(cfg->ceiling_bytes), cfg->weight,
                 spec->from_file ? "" : ", at run time");
    opstate_apply(d, g);  /* paused, operator limits, as before a restart */
    opstate_record(d, g); /* a guest added at run time is kept */
    observers_guest_added(d, g);
    if (ret_guest)
        *ret_guest = g;
    rounds_touch(d, g);
    return 0;
}

/* See daemon.h. */
int daemon_remove_guest(struct daemon *d, struct guest *g, const char *by, char *err,
                        size_t err_cap)
{
    if (g->source && (!by || strcmp(by, g->source) != 0)) {
        char what[200];
        if (g->balloon)
            g->balloon->ops->describe(g->balloon, what, sizeof(what));
        else
            snprintf(what, sizeof(what), "a guest of %s", g->source);
        snprintf(err, err_cap,
                 "guest '%s' is %s: it goes when the domain stops (to stop managing it, pause "
                 "it)",
                 g->name, what);
        return -EPERM;
    }
    if (!by)
        opstate_forget(d, g);
    else
        opstate_keep_policy(d, g); /* its VM may come back */
    remove_now(d, g);
    return 0;
}

/* See daemon_internal.h. */
void guests_remove_all(struct daemon *d)
{
    while (d->reg.n > 0) {
        struct guest *g = d->reg.guests[d->reg.n - 1];
        opstate_keep_policy(d, g); /* the daemon stops: for when it starts again */
        remove_now(d, g);
    }
}

static void set_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg,
                       bool by_operator)
{
    registry_update_limits(&d->reg, g, cfg);
    g->operator_limits = by_operator;
    log_info("guest %s: floor %.1f MiB, ceiling %.1f MiB, weight %" PRIu32 "%s", g->name,
             daemon_mib(cfg->floor_bytes), daemon_mib(cfg->ceiling_bytes), cfg->weight,
             by_operator ? " (kept across restarts)" : "");
    opstate_record(d, g);
    rounds_touch(d, g);
}

/* See daemon.h. */
void daemon_set_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    set_limits(d, g, cfg, false);
}

/* See daemon.h. */
void daemon_set_operator_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    set_limits(d, g, cfg, true);
}

/* See daemon.h. */
void daemon_set_paused(struct daemon *d, struct guest *g, bool paused)
{
    struct policy_guest *p = registry_policy(&d->reg, g);
    if (p->paused == paused)
        return;
    p->paused = paused;
    log_info("guest %s: management %s", g->name, paused ? "paused" : "resumed");
    opstate_record(d, g);
    rounds_touch(d, g);
}

/* A static guest's socket path changed: reconnect only that link. */
static void relink(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    if (strcmp(g->cfg.channel_path, cfg->channel_path) != 0) {
        guest_channel_close(g->channel);
        g->channel = NULL;
        strcpy(g->cfg.channel_path, cfg->channel_path);
        if (links_start_channel(d, g) < 0)
            log_error("guest %s: cannot open channel %s", g->name, cfg->channel_path);
    }
    if (strcmp(g->cfg.qmp_path, cfg->qmp_path) != 0) {
        if (g->balloon)
            links_close_balloon(g, NULL, NULL); /* its pending move, if any, fails now */
        g->move_in_flight = false;
        policy_forget_actual(registry_policy(&d->reg, g));
        strcpy(g->cfg.qmp_path, cfg->qmp_path);
        int r = d->factory->open(d->loop, &g->cfg, &d->cfg.daemon, &g->balloon);
        if (r == 0)
            r = links_start_balloon(d, g);
        if (r < 0)
            log_error("guest %s: cannot open %s %s: %s", g->name, d->factory->kind, cfg->qmp_path,
                      strerror(-r));
    }
}

/* See daemon_internal.h. */
void guests_update_from_file(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    relink(d, g, cfg);
    daemon_set_limits(d, g, cfg);
}
