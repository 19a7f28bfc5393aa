/* bellowsd's core: guests' links, host sampling, decision rounds, balloon moves, reload. */
#include "host-daemon/core/daemon.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/control/control.h"
#include "host-daemon/libvirt/libvirt_guests.h"
#include "host-daemon/qmp/qmp.h"
#include "host-daemon/util/fdlimit.h"
#include "host-daemon/util/log.h"

static double mib(uint64_t bytes)
{
    return (double)bytes / (double)POLICY_MIB;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* ---- decision rounds ---- */

static void on_decide(uv_timer_t *timer);

/* See daemon.h. */
void daemon_kick(struct daemon *d)
{
    if (d->stopping)
        return;
    uv_timer_start(&d->decide_timer, on_decide, 0, 0);
}

static void arm_deadline(struct daemon *d, int64_t now)
{
    int64_t next = policy_next_deadline(&d->cfg.policy, &d->host, d->reg.policy, d->reg.n, now);
    if (next == POLICY_NO_DEADLINE) {
        uv_timer_stop(&d->decide_timer);
        return;
    }
    /* At least 1 ms: a deadline at or before now must not turn into a busy loop. */
    uint64_t delay = next > now ? (uint64_t)(next - now) : 1;
    uv_timer_start(&d->decide_timer, on_decide, delay, 0);
}

static void on_balloon_done(struct qmp_client *c, const struct qmp_result *res, void *opaque);

/* A move through libvirt: synchronous, so it is done (or failed) when the call returns. */
static bool act_libvirt(struct daemon *d, struct guest *g, const struct policy_decision *dec,
                        int64_t now)
{
    const char *action = policy_action_name(dec->action);
    const char *reason = policy_reason_name(dec->reason);
    char err[200];

    if (!g->libvirt_connected || g->move_in_flight)
        return false; /* one move in flight per guest, as with QMP */
    int r = daemon_libvirt_set_balloon(d, g, dec->to_bytes, err, sizeof(err));
    if (r < 0) {
        struct decision_entry *e = guest_record_move(g, dec, wall_ms(), MOVE_FAILED);
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1, err);
        g->move_errors++;
        log_error("guest %s: %s %.1f MiB -> %.1f MiB (%s) not sent: libvirt domain %s: %s", g->name,
                  action, mib(dec->from_bytes), mib(dec->to_bytes), reason, g->domain, err);
        return false;
    }
    policy_commit(&d->cfg.policy, registry_policy(&d->reg, g), dec, now);
    guest_record_move(g, dec, wall_ms(), MOVE_DONE);
    g->moves++;
    log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s) [libvirt]", g->name, action,
             mib(dec->from_bytes), mib(dec->to_bytes), reason);
    return true;
}

/* Carry out one non-HOLD decision. Returns true when the move was issued (or advised). */
static bool act(struct daemon *d, struct guest *g, const struct policy_decision *dec, int64_t now)
{
    struct policy_guest *p = registry_policy(&d->reg, g);
    const char *action = policy_action_name(dec->action);
    const char *reason = policy_reason_name(dec->reason);

    if (daemon_dry_run(d)) {
        log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s) [dry run: not sent]", g->name, action,
                 mib(dec->from_bytes), mib(dec->to_bytes), reason);
        /* Simulate the move so the policy moves on as if it had happened. */
        policy_commit(&d->cfg.policy, p, dec, now);
        policy_note_actual(&d->cfg.policy, p, dec->to_bytes, now);
        guest_record_move(g, dec, wall_ms(), MOVE_ADVISORY);
        g->moves++;
        return true;
    }
    if (g->backend == GUEST_BACKEND_LIBVIRT)
        return act_libvirt(d, g, dec, now);
    if (g->move_in_flight || !g->qmp || !qmp_client_is_ready(g->qmp))
        return false;
    int r = qmp_client_set_balloon(g->qmp, (int64_t)dec->to_bytes, on_balloon_done, g);
    if (r < 0) {
        struct decision_entry *e = guest_record_move(g, dec, wall_ms(), MOVE_FAILED);
        snprintf(e->error, sizeof(e->error), "%s", strerror(-r));
        g->move_errors++;
        log_error("guest %s: %s %.1f MiB -> %.1f MiB (%s) not sent: QMP %s: %s", g->name, action,
                  mib(dec->from_bytes), mib(dec->to_bytes), reason, g->cfg.qmp_path, strerror(-r));
        return false;
    }
    policy_commit(&d->cfg.policy, p, dec, now);
    g->move_in_flight = true;
    guest_record_move(g, dec, wall_ms(), MOVE_PENDING);
    g->moves++;
    log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s)", g->name, action, mib(dec->from_bytes),
             mib(dec->to_bytes), reason);
    return true;
}

static void on_decide(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    int64_t now = daemon_now(d);
    size_t n = d->reg.n;
    bool host_round = false;

    if (d->stopping)
        return;
    policy_decide(&d->cfg.policy, &d->host, d->reg.policy, n, now, d->reg.decisions);
    d->rounds++;
    for (size_t i = 0; i < n; i++) {
        struct guest *g = d->reg.guests[i];
        const struct policy_decision *dec = &d->reg.decisions[i];
        g->last_decision = *dec;
        g->last_decision_at = now;
        if (dec->action == POLICY_HOLD)
            continue;
        if (act(d, g, dec, now) && dec->reason == POLICY_R_HOST_PRESSURE)
            host_round = true;
    }
    if (host_round)
        policy_host_commit(&d->host, now);
    arm_deadline(d, now);
}

/* ---- QMP glue ---- */

static void on_balloon_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    struct decision_entry *e = guest_ring_find(g, g->ring_seq);

    g->move_in_flight = false;
    if (res->status == 0) {
        if (e && e->result == MOVE_PENDING)
            e->result = MOVE_DONE;
        return;
    }
    if (e && e->result == MOVE_PENDING) {
        e->result = MOVE_FAILED;
        snprintf(e->error, sizeof(e->error), "%s",
                 res->error_desc ? res->error_desc : strerror(-res->status));
    }
    g->move_errors++;
    if (g->removing || g->daemon->stopping)
        return;
    log_error("guest %s: balloon command on QMP %s failed: %s%s%s", g->name, g->cfg.qmp_path,
              res->status == -EREMOTEIO ? res->error_class : strerror(-res->status),
              res->error_desc ? ": " : "", res->error_desc ? res->error_desc : "");
}

static void on_qmp_ready(struct qmp_client *c, int64_t actual_bytes, void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    g->qmp_ready = true;
    g->qmp_warned = false;
    g->qmp_connects++;
    log_info("guest %s: QMP %s ready, balloon at %.1f MiB", g->name, g->cfg.qmp_path,
             mib((uint64_t)actual_bytes));
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), (uint64_t)actual_bytes,
                       daemon_now(d));
    daemon_kick(d);
}

static void on_qmp_balloon_change(struct qmp_client *c, int64_t actual_bytes, void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    g->balloon_changes++;
    log_debug("guest %s: balloon now %.1f MiB", g->name, mib((uint64_t)actual_bytes));
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), (uint64_t)actual_bytes,
                       daemon_now(d));
    daemon_kick(d);
}

static void on_qmp_disconnect(struct qmp_client *c, int err, const char *reason, bool was_ready,
                              void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    g->qmp_ready = false;
    if (was_ready)
        g->qmp_disconnects++;
    /* Never act blind: until the next on_ready reads the balloon, this guest holds. */
    policy_forget_actual(registry_policy(&d->reg, g));
    if (!g->qmp_warned || was_ready)
        log_warning("guest %s: QMP %s: %s (%s); retrying", g->name, g->cfg.qmp_path, strerror(-err),
                    reason ? reason : "");
    else
        log_debug("guest %s: QMP %s: %s (%s); retrying", g->name, g->cfg.qmp_path, strerror(-err),
                  reason ? reason : "");
    g->qmp_warned = true;
}

static int start_qmp(struct daemon *d, struct guest *g)
{
    struct qmp_client_config qc = {
        .backoff_min_ms = d->cfg.daemon.reconnect_min_ms,
        .backoff_max_ms = d->cfg.daemon.reconnect_max_ms,
    };
    struct qmp_callbacks cbs = {
        .on_ready = on_qmp_ready,
        .on_balloon_change = on_qmp_balloon_change,
        .on_disconnect = on_qmp_disconnect,
    };
    int r = qmp_client_new(d->loop, g->cfg.qmp_path, &qc, &cbs, g, &g->qmp);
    if (r < 0)
        return r;
    return qmp_client_start(g->qmp);
}

/* ---- agent channel glue ---- */

static void on_guest_message(struct guest_channel *gc, const struct bp_msg *msg, void *opaque)
{
    (void)gc;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    int64_t now = daemon_now(d);
    enum bp_level level;
    const struct bp_mem *mem;

    switch (msg->type) {
    case BP_MSG_HELLO:
        snprintf(g->agent, sizeof(g->agent), "%s", msg->u.hello.agent);
        log_info("guest %s: agent '%s' says hello (protocol %" PRIu32 ", boot %s)", g->name,
                 msg->u.hello.agent, msg->u.hello.protocol_version, msg->u.hello.boot_id);
        return;
    case BP_MSG_PRESSURE:
        level = msg->u.pressure.level;
        mem = &msg->u.pressure.mem;
        log_debug("guest %s: %s pressure (%s)", g->name, bp_level_name(level),
                  bp_source_name(msg->u.pressure.source));
        break;
    case BP_MSG_REPORT:
        level = msg->u.report.level;
        mem = &msg->u.report.mem;
        break;
    default:
        return;
    }
    g->mem = *mem;
    g->mem_known = true;
    g->last_msg_level = level;
    policy_note_event(&d->cfg.policy, registry_policy(&d->reg, g), level, mem, now);
    daemon_kick(d);
}

static void on_guest_link(struct guest_channel *gc, bool connected, int err, void *opaque)
{
    struct guest *g = opaque;
    if (connected) {
        log_info("guest %s: channel %s connected", g->name, guest_channel_path(gc));
        g->channel_warned = false;
        return;
    }
    if (!g->channel_warned)
        log_warning("guest %s: channel %s: %s; retrying with backoff", g->name,
                    guest_channel_path(gc), strerror(-err));
    else
        log_debug("guest %s: channel %s: %s; retrying", g->name, guest_channel_path(gc),
                  strerror(-err));
    g->channel_warned = true;
}

static void on_guest_first_reject(struct guest_channel *gc, const char *reason, const char *detail,
                                  void *opaque)
{
    (void)gc;
    struct guest *g = opaque;
    log_warning("guest %s: dropped a frame from its agent: %s (%s); more of this kind are "
                "counted, summarised once a minute",
                g->name, reason, detail);
}

/* Once a minute: one line per guest whose agent sent anything that was dropped. */
static void summarise_rejects(struct daemon *d)
{
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        if (!g->channel)
            continue;
        const struct guest_channel_stats *s = guest_channel_stats(g->channel);
        struct guest_channel_stats *o = &g->reject_summary;
        uint64_t invalid = s->invalid - o->invalid, rate = s->rate_limited - o->rate_limited,
                 stale = s->seq_stale - o->seq_stale, junk = s->junk_bytes - o->junk_bytes,
                 big = s->oversized - o->oversized, cut = s->truncated - o->truncated;
        if (invalid + rate + stale + junk + big + cut > 0)
            log_warning("guest %s: in the last minute dropped %" PRIu64 " invalid, %" PRIu64
                        " over budget, %" PRIu64 " stale, %" PRIu64 " oversized, %" PRIu64
                        " truncated frames and %" PRIu64 " junk bytes",
                        g->name, invalid, rate, stale, big, cut, junk);
        *o = *s;
    }
}

static struct guest_channel_limits channel_limits(const struct config_daemon *c)
{
    return (struct guest_channel_limits){
        .frame_rate = c->guest_frame_rate,
        .frame_burst = c->guest_frame_burst,
        .byte_rate = c->guest_byte_rate,
        .byte_burst = c->guest_byte_burst,
        .backoff_min_ms = c->reconnect_min_ms,
        .backoff_max_ms = c->reconnect_max_ms,
    };
}

static int start_channel(struct daemon *d, struct guest *g)
{
    struct guest_channel_limits lim = channel_limits(&d->cfg.daemon);
    struct bp_welcome welcome = {.protocol_version = BP_PROTOCOL_VERSION};
    struct guest_channel_callbacks cbs = {.on_message = on_guest_message,
                                          .on_link = on_guest_link,
                                          .on_first_reject = on_guest_first_reject};
    return guest_channel_new(d->loop, g->cfg.channel_path, &lim, &welcome, &cbs, g, &g->channel);
}

/* ---- guests ---- */

/* Two socket paths that are set and equal (a libvirt guest has no QMP path). */
static bool same_path(const char *a, const char *b)
{
    return a[0] && strcmp(a, b) == 0;
}

/* Another guest already uses one of cfg's socket paths. */
static struct guest *path_owner(struct daemon *d, const struct config_guest *cfg,
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

/* Checks common to every new guest, once its own settings are valid. */
static int check_new_guest(struct daemon *d, const struct config_guest *cfg, char *err,
                           size_t err_cap)
{
    if (registry_find(&d->reg, cfg->name)) {
        snprintf(err, err_cap, "guest '%s' exists already", cfg->name);
        return -EEXIST;
    }
    struct guest *owner = path_owner(d, cfg, NULL);
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
    uint64_t needed = fdlimit_needed(d->n_qmp_guests, d->n_libvirt_guests);
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
                d->n_qmp_guests + d->n_libvirt_guests, needed, d->fd_limit);
}

/* A new guest into the registry; NULL (err set) when out of memory. */
static struct guest *insert_guest(struct daemon *d, const struct config_guest *cfg, bool from_file,
                                  enum guest_backend backend, char *err, size_t err_cap)
{
    struct guest *g = guest_new(cfg, from_file);
    if (!g || registry_add(&d->reg, g) < 0) {
        guest_free(g);
        snprintf(err, err_cap, "out of memory");
        return NULL;
    }
    g->daemon = d;
    g->backend = backend;
    if (backend == GUEST_BACKEND_LIBVIRT)
        d->n_libvirt_guests++;
    else
        d->n_qmp_guests++;
    check_fd_budget(d);
    return g;
}

/* See daemon.h. */
int daemon_add_guest(struct daemon *d, const struct config_guest *cfg, bool from_file, char *err,
                     size_t err_cap)
{
    if (!config_guest_name_valid(cfg->name)) {
        snprintf(err, err_cap, "'%s' is not a valid guest name", cfg->name);
        return -EINVAL;
    }
    if (config_guest_check(cfg, err, err_cap) < 0)
        return -EINVAL;
    int r = check_new_guest(d, cfg, err, err_cap);
    if (r < 0)
        return r;
    struct guest *g = insert_guest(d, cfg, from_file, GUEST_BACKEND_QMP, err, err_cap);
    if (!g)
        return -ENOMEM;
    r = start_channel(d, g);
    if (r == 0)
        r = start_qmp(d, g);
    if (r < 0) {
        snprintf(err, err_cap, "cannot start its links: %s", strerror(-r));
        daemon_remove_guest(d, g);
        return r;
    }
    log_info("guest %s: added (qmp %s, channel %s, floor %.1f MiB, ceiling %.1f MiB, weight "
             "%" PRIu32 "%s)",
             g->name, cfg->qmp_path, cfg->channel_path, mib(cfg->floor_bytes),
             mib(cfg->ceiling_bytes), cfg->weight, from_file ? "" : ", at run time");
    daemon_kick(d);
    return 0;
}

static void on_qmp_closed(struct qmp_client *c, void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    if (g->removing)
        guest_free(g);
}

/* See daemon.h. */
int daemon_add_domain(struct daemon *d, const struct config_guest *cfg, const char *uuid,
                      const char *domain, struct guest **ret_guest, char *err, size_t err_cap)
{
    if (!config_guest_name_valid(cfg->name)) {
        snprintf(err, err_cap, "'%s' is not a valid guest name", cfg->name);
        return -EINVAL;
    }
    if (!cfg->channel_path[0]) {
        snprintf(err, err_cap, "no channel socket path");
        return -EINVAL;
    }
    if (config_guest_check_limits(cfg, err, err_cap) < 0)
        return -EINVAL;
    int r = check_new_guest(d, cfg, err, err_cap);
    if (r < 0)
        return r;
    struct guest *g = insert_guest(d, cfg, false, GUEST_BACKEND_LIBVIRT, err, err_cap);
    if (!g)
        return -ENOMEM;
    snprintf(g->uuid, sizeof(g->uuid), "%s", uuid);
    snprintf(g->domain, sizeof(g->domain), "%s", domain);
    r = start_channel(d, g);
    if (r < 0) {
        snprintf(err, err_cap, "cannot start its channel: %s", strerror(-r));
        daemon_remove_guest(d, g);
        return r;
    }
    *ret_guest = g; /* the caller logs it, with where its limits came from */
    daemon_kick(d);
    return 0;
}

/* See daemon.h. */
void daemon_remove_guest(struct daemon *d, struct guest *g)
{
    g->removing = true;
    registry_remove(&d->reg, g);
    if (g->backend == GUEST_BACKEND_LIBVIRT)
        d->n_libvirt_guests--;
    else
        d->n_qmp_guests--;
    if (!d->stopping)
        check_fd_budget(d);
    if (g->channel)
        guest_channel_close(g->channel);
    g->channel = NULL;
    if (!d->stopping)
        log_info("guest %s: removed; its balloon stays where it is", g->name);
    if (g->qmp)
        qmp_client_close(g->qmp, on_qmp_closed); /* frees g once closed */
    else
        guest_free(g);
    daemon_kick(d);
}

/* See daemon.h. */
void daemon_set_limits(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    registry_update_limits(&d->reg, g, cfg);
    log_info("guest %s: floor %.1f MiB, ceiling %.1f MiB, weight %" PRIu32, g->name,
             mib(cfg->floor_bytes), mib(cfg->ceiling_bytes), cfg->weight);
    daemon_kick(d);
}

/* See daemon.h. */
void daemon_set_paused(struct daemon *d, struct guest *g, bool paused)
{
    struct policy_guest *p = registry_policy(&d->reg, g);
    if (p->paused == paused)
        return;
    p->paused = paused;
    log_info("guest %s: management %s", g->name, paused ? "paused" : "resumed");
    daemon_kick(d);
}

/* A static guest's socket path changed: reconnect only that link. */
static void relink(struct daemon *d, struct guest *g, const struct config_guest *cfg)
{
    if (strcmp(g->cfg.channel_path, cfg->channel_path) != 0) {
        guest_channel_close(g->channel);
        g->channel = NULL;
        strcpy(g->cfg.channel_path, cfg->channel_path);
        if (start_channel(d, g) < 0)
            log_error("guest %s: cannot open channel %s", g->name, cfg->channel_path);
    }
    if (strcmp(g->cfg.qmp_path, cfg->qmp_path) != 0) {
        struct qmp_client *old = g->qmp;
        g->qmp = NULL;
        g->qmp_ready = false;
        if (old)
            qmp_client_close(old, NULL); /* its pending move, if any, fails now */
        g->move_in_flight = false;
        policy_forget_actual(registry_policy(&d->reg, g));
        strcpy(g->cfg.qmp_path, cfg->qmp_path);
        if (start_qmp(d, g) < 0)
            log_error("guest %s: cannot open QMP %s", g->name, cfg->qmp_path);
    }
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

/* ---- host pressure ---- */

static void on_host_sample(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    struct hostmem_sample s;
    int64_t now = daemon_now(d);
    if (now - d->last_summary_at >= 60000) {
        summarise_rejects(d);
        d->last_summary_at = now;
    }
    int r = hostmem_read(d->cfg.daemon.proc_dir, &s);
    if (r < 0) {
        if (!d->host_warned)
            log_warning("host pressure: cannot read %s/pressure/memory and %s/meminfo: %s; "
                        "host reclaim is off until it can",
                        d->cfg.daemon.proc_dir, d->cfg.daemon.proc_dir, strerror(-r));
        d->host_warned = true;
        return;
    }
    if (d->host_warned)
        log_info("host pressure: readable again");
    d->host_warned = false;
    d->host_sample = s;
    d->host_known = true;
    policy_host_input(&d->host, s.psi.some.avg10, s.meminfo.mem_total_kb * 1024,
                      s.meminfo.mem_available_kb * 1024);
    daemon_kick(d);
}

/* Leaving advisory mode: the policy's sizes were simulated; read the real ones. */
static void on_requery_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    (void)c;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    if (g->removing || d->stopping)
        return;
    if (res->status < 0 || res->actual_bytes < 0) {
        log_warning("guest %s: cannot re-read the balloon on QMP %s: %s; holding until QMP "
                    "reconnects or reports a change",
                    g->name, g->cfg.qmp_path, strerror(-res->status));
        return;
    }
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), (uint64_t)res->actual_bytes,
                       daemon_now(d));
    daemon_kick(d);
}

static void reread_balloons(struct daemon *d)
{
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        uint64_t actual;
        policy_forget_actual(registry_policy(&d->reg, g));
        if (g->qmp && qmp_client_is_ready(g->qmp))
            qmp_client_query_balloon(g->qmp, on_requery_done, g);
        else if (g->backend == GUEST_BACKEND_LIBVIRT && daemon_libvirt_actual(d, g, &actual) == 0)
            policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), actual, daemon_now(d));
    }
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
                 bool dry_run_forced)
{
    memset(d, 0, sizeof(*d));
    d->loop = loop;
    d->cfg = *cfg;
    memset(cfg, 0, sizeof(*cfg)); /* taken over */
    snprintf(d->config_path, sizeof(d->config_path), "%s", config_path ? config_path : "");
    d->dry_run_forced = dry_run_forced;
    registry_init(&d->reg);
    policy_host_init(&d->host);
    log_set_level(d->cfg.daemon.log_level);
    d->fd_limit = fdlimit_raise();
    if (d->fd_limit == 0)
        d->fd_limit = UINT64_MAX; /* unreadable: do not warn on a guess */

    uv_timer_init(loop, &d->decide_timer);
    d->decide_timer.data = d;
    uv_timer_init(loop, &d->host_timer);
    d->host_timer.data = d;
    uv_signal_init(loop, &d->sig_hup);
    uv_signal_init(loop, &d->sig_term);
    uv_signal_init(loop, &d->sig_int);
    d->sig_hup.data = d->sig_term.data = d->sig_int.data = d;
    uv_signal_start(&d->sig_hup, on_signal, SIGHUP);
    uv_signal_start(&d->sig_term, on_signal, SIGTERM);
    uv_signal_start(&d->sig_int, on_signal, SIGINT);

    int r = control_server_start(d, d->cfg.daemon.control_socket, d->cfg.daemon.control_max_clients,
                                 &d->control);
    if (r < 0) {
        log_error("control socket %s: %s", d->cfg.daemon.control_socket, strerror(-r));
        daemon_stop(d);
        return r;
    }

    for (size_t i = 0; i < d->cfg.n_guests; i++) {
        char err[200];
        if (daemon_add_guest(d, &d->cfg.guests[i], true, err, sizeof(err)) < 0)
            log_error("guest %s: %s", d->cfg.guests[i].name, err);
    }
    size_t n_static = d->reg.n;
    if (d->cfg.libvirt.enabled) {
        r = daemon_libvirt_start(d);
        if (r < 0) {
            daemon_stop(d);
            return r;
        }
    }
    uv_timer_start(&d->host_timer, on_host_sample, 0, d->cfg.daemon.host_sample_ms);
    log_info("started: %zu static guests, control socket %s, descriptor limit %" PRIu64 "%s%s%s",
             n_static, d->cfg.daemon.control_socket, d->fd_limit,
             d->cfg.libvirt.enabled ? ", libvirt " : "",
             d->cfg.libvirt.enabled ? d->cfg.libvirt.uri : "",
             daemon_dry_run(d) ? ", advisory mode (dry run): no balloon will move" : "");
    return 0;
}

/* See daemon.h. */
int daemon_reload(struct daemon *d)
{
    struct config nc;
    struct config_errors errs;

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
            daemon_remove_guest(d, g);
            removed++;
        }
    }
    /* Settings of the daemon and the policy. */
    if (strcmp(nc.daemon.control_socket, d->cfg.daemon.control_socket) != 0)
        log_warning("reload: control_socket changed; it takes effect at the next restart");
    if (strcmp(nc.daemon.proc_dir, d->cfg.daemon.proc_dir) != 0)
        log_warning("reload: proc_dir changed; it takes effect at the next restart");
    if (!same_libvirt(&nc.libvirt, &d->cfg.libvirt))
        log_warning("reload: [libvirt] changed; it takes effect at the next restart");
    strcpy(nc.daemon.control_socket, d->cfg.daemon.control_socket);
    strcpy(nc.daemon.proc_dir, d->cfg.daemon.proc_dir);
    nc.libvirt = d->cfg.libvirt;
    bool was_dry = daemon_dry_run(d);
    struct config old = d->cfg;
    d->cfg = nc;
    log_set_level(d->cfg.daemon.log_level);
    if (daemon_dry_run(d) != was_dry)
        log_info("reload: advisory mode (dry run) %s", daemon_dry_run(d) ? "on" : "off");
    if (was_dry && !daemon_dry_run(d))
        reread_balloons(d);
    if (old.daemon.host_sample_ms != d->cfg.daemon.host_sample_ms)
        uv_timer_start(&d->host_timer, on_host_sample, d->cfg.daemon.host_sample_ms,
                       d->cfg.daemon.host_sample_ms);
    struct guest_channel_limits lim = channel_limits(&d->cfg.daemon);

    /* New and changed static guests; unchanged ones are not touched at all. */
    for (size_t i = 0; i < d->cfg.n_guests; i++) {
        const struct config_guest *ng = &d->cfg.guests[i];
        struct guest *g = registry_find(&d->reg, ng->name);
        char err[200];
        if (!g) {
            if (daemon_add_guest(d, ng, true, err, sizeof(err)) < 0)
                log_error("reload: guest %s: %s", ng->name, err);
            else
                added++;
            continue;
        }
        if (g->from_file && same_settings(&g->file_cfg, ng))
            continue;
        if (g->backend == GUEST_BACKEND_LIBVIRT) {
            log_error("reload: guest %s: that name is libvirt domain %s's; not added", ng->name,
                      g->domain);
            continue;
        }
        struct guest *owner = path_owner(d, ng, g);
        if (owner) {
            log_error("reload: guest %s: a socket path is used by guest '%s'; not changed",
                      ng->name, owner->name);
            continue;
        }
        g->from_file = true;
        g->file_cfg = *ng;
        if (!same_settings(&g->cfg, ng)) {
            relink(d, g, ng);
            daemon_set_limits(d, g, ng);
            changed++;
        }
    }
    for (size_t i = 0; i < d->reg.n; i++)
        if (d->reg.guests[i]->channel)
            guest_channel_set_limits(d->reg.guests[i]->channel, &lim);
    config_free(&old);
    log_info("reloaded %s: %zu guests (%zu added, %zu removed, %zu changed)", d->config_path,
             d->reg.n, added, removed, changed);
    daemon_kick(d);
    return 0;
}

/* See daemon.h. */
void daemon_stop(struct daemon *d)
{
    if (d->stopping)
        return;
    d->stopping = true;
    uv_close((uv_handle_t *)&d->decide_timer, NULL);
    uv_close((uv_handle_t *)&d->host_timer, NULL);
    uv_close((uv_handle_t *)&d->sig_hup, NULL);
    uv_close((uv_handle_t *)&d->sig_term, NULL);
    uv_close((uv_handle_t *)&d->sig_int, NULL);
    if (d->control)
        control_server_close(d->control);
    d->control = NULL;
    daemon_libvirt_stop(d);
    while (d->reg.n > 0)
        daemon_remove_guest(d, d->reg.guests[d->reg.n - 1]);
}

/* See daemon.h. */
void daemon_free(struct daemon *d)
{
    registry_free(&d->reg);
    config_free(&d->cfg);
}
