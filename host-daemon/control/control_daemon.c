/* The control socket's module: control_ops onto the daemon's functions and views. */
#include "host-daemon/control/control_daemon.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/control/control.h"
#include "host-daemon/core/daemon.h"
#include "host-daemon/util/log.h"
#include "host-daemon/views/views.h"

struct control_daemon {
    struct daemon *daemon;
    struct control_server *server;
};

static int ops_find(void *ctx, const char *name, struct config_guest *ret_cfg)
{
    struct control_daemon *c = ctx;
    const struct guest *g = daemon_find_guest(c->daemon, name);
    if (!g)
        return -ENOENT;
    *ret_cfg = g->cfg;
    return 0;
}

static json_t *ops_list(void *ctx)
{
    struct control_daemon *c = ctx;
    struct daemon_view v;
    daemon_view(c->daemon, &v);
    return view_list(&v);
}

static json_t *ops_show(void *ctx, const char *name, bool with_decisions)
{
    struct control_daemon *c = ctx;
    struct daemon_view v;
    const struct guest *g = daemon_find_guest(c->daemon, name);
    if (!g)
        return json_null();
    daemon_view(c->daemon, &v);
    return view_guest(&v, g, with_decisions);
}

static void ops_pause(void *ctx, const char *name, bool paused)
{
    struct control_daemon *c = ctx;
    struct guest *g = daemon_find_guest(c->daemon, name);
    if (g)
        daemon_set_paused(c->daemon, g, paused);
}

static void ops_set_limits(void *ctx, const char *name, const struct config_guest *cfg)
{
    struct control_daemon *c = ctx;
    struct guest *g = daemon_find_guest(c->daemon, name);
    if (g)
        daemon_set_operator_limits(c->daemon, g, cfg);
}

static int ops_add(void *ctx, const struct config_guest *cfg, char *err, size_t err_cap)
{
    struct control_daemon *c = ctx;
    struct daemon_guest_spec spec = {.cfg = cfg};
    return daemon_add_guest(c->daemon, &spec, NULL, err, err_cap);
}

static int ops_remove(void *ctx, const char *name, char *err, size_t err_cap)
{
    struct control_daemon *c = ctx;
    struct guest *g = daemon_find_guest(c->daemon, name);
    if (!g)
        return -ENOENT;
    return daemon_remove_guest(c->daemon, g, NULL, err, err_cap);
}

static void ops_vm_event(void *ctx, const char *event, const char *uuid, const char *domain)
{
    struct control_daemon *c = ctx;
    daemon_vm_event(c->daemon, event, uuid, domain);
}

static const struct control_ops daemon_ops = {
    .find = ops_find,
    .list = ops_list,
    .show = ops_show,
    .pause = ops_pause,
    .set_limits = ops_set_limits,
    .add = ops_add,
    .remove = ops_remove,
    .vm_event = ops_vm_event,
};

static int module_start(void *opaque, struct daemon *d)
{
    struct control_daemon *c = opaque;
    const struct config_daemon *cfg = &daemon_config(d)->daemon;
    c->daemon = d;
    int r = control_server_start(daemon_loop(d), cfg->control_socket, cfg->control_max_clients,
                                 &daemon_ops, c, &c->server);
    if (r < 0)
        log_error("control socket %s: %s", cfg->control_socket, strerror(-r));
    return r;
}

static void module_stop(void *opaque)
{
    struct control_daemon *c = opaque;
    control_server_close(c->server);
    c->server = NULL;
}

static void module_release(void *opaque)
{
    free(opaque);
}

static const struct daemon_module_ops module_ops = {
    .name = "control",
    .before_guests = true,
    .start = module_start,
    .stop = module_stop,
    .release = module_release,
};

/* See control_daemon.h. */
int control_daemon_attach(struct daemon *d)
{
    struct control_daemon *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int r = daemon_add_module(d, &module_ops, c);
    if (r < 0)
        free(c);
    return r;
}
