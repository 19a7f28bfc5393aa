/* The operator's run-time state kept across restarts: `pause`, limits set with `set`,
 * guests added with `add` (state/state.h), in <state_dir>/state.json. Read once at start;
 * written (off the loop) after each change; applied to each guest as it is added, found
 * by its VM id (a libvirt domain's UUID, so a domain's pause survives the domain's
 * restart) or else by name.
 *
 * Each guest's policy state (what policy_state_format keeps: hurt size, reversals, ...)
 * rides in the same entries. It changes with decisions, so it is not written at each
 * change: every OPSTATE_POLICY_SAVE_MS the guests whose policy_state_key changed get a
 * fresh line, and the file is written once if any did; a guest that goes (its domain
 * stops, the daemon stops) gets its line at once, and a clean stop writes it. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/state/state_store.h"
#include "host-daemon/util/log.h"

/* Policy lines are looked at, and the file written for them, at most this often. What a
 * crash can lose is then 30 s of learning, against a hurt memory of minutes and a flip
 * backoff of an hour; and 10,000 guests cost one scan of their keys (microseconds each)
 * and at most one write of a ~3 MB file per 30 s, whatever their decisions do. */
#define OPSTATE_POLICY_SAVE_MS 30000
/* Entries of guests gone for good (a deleted domain: a new UUID every time on a busy cloud
 * host) would pile up for ever: at the first tick and then every hour, those holding only a
 * policy line older than the policy's lifetime go, and the lines of guests present are
 * written again once half that old, so that only a guest away that long loses its line. */
#define OPSTATE_PRUNE_TICKS (3600000 / OPSTATE_POLICY_SAVE_MS)

static void on_saved(struct state_store *s, int err, void *opaque)
{
    (void)s;
    struct daemon *d = opaque;
    if (err < 0 && !d->opstate_warned) {
        log_error("operator state: cannot write %s/%s: %s; pause, set and add are kept in "
                  "memory only until a write works",
                  d->cfg.daemon.state_dir, STATE_FILE_NAME, strerror(-err));
        d->opstate_warned = true;
    } else if (err == 0 && d->opstate_warned) {
        log_info("operator state: %s/%s written again", d->cfg.daemon.state_dir, STATE_FILE_NAME);
        d->opstate_warned = false;
    }
}

static void on_policy_timer(uv_timer_t *t);

/* FNV-1a of a guest's policy key: a change shows as another value. */
static uint64_t key_hash(const struct policy_guest *p)
{
    char key[POLICY_STATE_MAX];
    int n = policy_state_key(p, key, sizeof(key));
    uint64_t h = UINT64_C(14695981039346656037);
    for (int i = 0; i < n; i++)
        h = (h ^ (unsigned char)key[i]) * UINT64_C(1099511628211);
    return h;
}

/* See daemon_internal.h. */
void opstate_start(struct daemon *d)
{
    char err[400];
    const char *dir = d->cfg.daemon.state_dir;
    state_init(&d->opstate);
    int r = state_file_load(dir, &d->opstate, err, sizeof(err));
    if (r == -EINVAL) {
        /* A file we cannot read is kept aside for people, not overwritten. */
        log_error("operator state: %s; set aside as %s.bad, starting without it", err,
                  STATE_FILE_NAME);
        state_file_set_aside(dir);
    } else if (r < 0) {
        log_warning("operator state: %s; pause, set and add are not kept across restarts", err);
        return;
    }
    if (state_store_new(d->loop, dir, on_saved, d, &d->opstate_store) < 0)
        return;
    uv_timer_init(d->loop, &d->policy_timer);
    d->policy_timer.data = d;
    uv_timer_start(&d->policy_timer, on_policy_timer, OPSTATE_POLICY_SAVE_MS,
                   OPSTATE_POLICY_SAVE_MS);
    d->policy_timer_on = true;
    if (d->opstate.n)
        log_info("operator state: %zu guests' settings read from %s/%s", d->opstate.n, dir,
                 STATE_FILE_NAME);
}

/* See daemon_internal.h. */
void opstate_restore_added(struct daemon *d)
{
    for (size_t i = 0; i < d->opstate.n; i++) {
        struct state_guest sg = d->opstate.guests[i];
        if (!sg.added)
            continue;
        if (daemon_find_guest(d, sg.name)) {
            log_warning("guest %s: added at run time before the restart, but that name is "
                        "taken now (the config file?): not added again",
                        sg.name);
            continue;
        }
        struct config_guest cfg = {
            .floor_bytes = sg.floor_bytes, .ceiling_bytes = sg.ceiling_bytes, .weight = sg.weight};
        snprintf(cfg.name, sizeof(cfg.name), "%s", sg.name);
        snprintf(cfg.qmp_path, sizeof(cfg.qmp_path), "%s", sg.qmp_path);
        snprintf(cfg.channel_path, sizeof(cfg.channel_path), "%s", sg.channel_path);
        struct daemon_guest_spec spec = {.cfg = &cfg, .detail = NULL};
        char err[240];
        if (daemon_add_guest(d, &spec, NULL, err, sizeof(err)) < 0)
            log_error("guest %s: added at run time before the restart, cannot be added again: %s",
                      sg.name, err);
    }
}

/* g's policy state as kept in sg, on its freshly initialised one. Text the policy does not
 * read (another version, junk) is dropped with one line: g starts fresh. */
static void restore_policy(struct daemon *d, struct guest *g, struct state_guest *sg)
{
    struct policy_guest *p = registry_policy(&d->reg, g);
    if (sg->policy[0] && policy_state_parse(&d->cfg.policy, p, sg->policy, strlen(sg->policy),
                                            daemon_now(d), daemon_wall_ms()) == 0) {
        log_debug("guest %s: policy state as before: %s", g->name, sg->policy);
        g->policy_kept = key_hash(p);
        return;
    }
    if (!sg->policy[0] && !sg->policy_bad)
        return;
    log_warning("guest %s: its policy state in %s/%s is not one this version reads; it "
                "starts fresh (the operator's settings are kept)",
                g->name, d->cfg.daemon.state_dir, STATE_FILE_NAME);
    struct state_guest clean = *sg;
    clean.policy[0] = '\0';
    clean.policy_bad = false;
    state_put(&d->opstate, &clean); /* replaces sg (or removes it): never grows */
    d->policy_due = true;
}

/* See daemon_internal.h. */
void opstate_apply(struct daemon *d, struct guest *g)
{
    g->policy_kept = key_hash(registry_policy(&d->reg, g)); /* fresh: nothing to keep */
    struct state_guest *sg = state_find(&d->opstate, g->name, g->vm_id);
    if (!sg)
        return;
    struct policy_guest *p = registry_policy(&d->reg, g);
    if (sg->has_limits && !sg->added) {
        struct config_guest cfg = g->cfg;
        cfg.floor_bytes = sg->floor_bytes;
        cfg.ceiling_bytes = sg->ceiling_bytes;
        cfg.weight = sg->weight;
        char err[200];
        if (config_guest_check_limits(&cfg, err, sizeof(err)) == 0) {
            registry_update_limits(&d->reg, g, &cfg);
            g->operator_limits = true;
            log_info("guest %s: floor %.1f MiB, ceiling %.1f MiB, weight %" PRIu32
                     " as set before the restart",
                     g->name, daemon_mib(cfg.floor_bytes), daemon_mib(cfg.ceiling_bytes),
                     cfg.weight);
        }
    }
    if (sg->paused && !p->paused) {
        p->paused = true;
        log_info("guest %s: management paused, as before the restart", g->name);
    }
    restore_policy(d, g, sg);
}

/* The guest's entry as it is now. */
static struct state_guest entry_of(const struct daemon *d, const struct guest *g)
{
    const struct policy_guest *p = registry_policy((struct registry *)&d->reg, g);
    struct state_guest sg = {.paused = p->paused};
    snprintf(sg.name, sizeof(sg.name), "%s", g->name);
    snprintf(sg.uuid, sizeof(sg.uuid), "%s", g->vm_id);
    sg.added = !g->from_file && !g->source;
    sg.has_limits = g->operator_limits || sg.added;
    sg.floor_bytes = g->cfg.floor_bytes;
    sg.ceiling_bytes = g->cfg.ceiling_bytes;
    sg.weight = g->cfg.weight;
    if (sg.added) {
        snprintf(sg.qmp_path, sizeof(sg.qmp_path), "%s", g->cfg.qmp_path);
        snprintf(sg.channel_path, sizeof(sg.channel_path), "%s", g->cfg.channel_path);
    }
    /* The policy line stays as last kept (opstate_keep_policy). */
    const struct state_guest *old = state_find((struct state *)&d->opstate, g->name, g->vm_id);
    if (old)
        memcpy(sg.policy, old->policy, sizeof(sg.policy));
    return sg;
}

static void save(struct daemon *d)
{
    d->policy_due = false; /* the policy lines go with it */
    if (d->opstate_store && state_store_save(d->opstate_store, &d->opstate) < 0)
        log_error("operator state: out of memory; not written");
}

static bool same_entry(const struct state_guest *a, const struct state_guest *b)
{
    return a->paused == b->paused && a->has_limits == b->has_limits && a->added == b->added &&
           (!a->has_limits || (a->floor_bytes == b->floor_bytes &&
                               a->ceiling_bytes == b->ceiling_bytes && a->weight == b->weight)) &&
           (!a->added || (strcmp(a->qmp_path, b->qmp_path) == 0 &&
                          strcmp(a->channel_path, b->channel_path) == 0)) &&
           strcmp(a->name, b->name) == 0;
}

/* See daemon_internal.h. */
void opstate_record(struct daemon *d, struct guest *g)
{
    struct state_guest sg = entry_of(d, g);
    struct state_guest *old = state_find(&d->opstate, sg.name, sg.uuid);
    if (old ? same_entry(old, &sg) : !sg.paused && !sg.has_limits && !sg.added)
        return; /* nothing new to keep */
    if (state_put(&d->opstate, &sg) < 0) {
        log_error("guest %s: operator state full or out of memory; not kept", g->name);
        return;
    }
    save(d);
}

/* See daemon_internal.h. */
void opstate_forget(struct daemon *d, const struct guest *g)
{
    if (!state_find(&d->opstate, g->name, g->vm_id))
        return;
    state_remove(&d->opstate, g->name, g->vm_id);
    save(d);
}

/* See daemon_internal.h. */
void opstate_keep_policy(struct daemon *d, struct guest *g)
{
    if (!d->opstate_store)
        return; /* nothing is kept */
    const struct policy_guest *p = registry_policy(&d->reg, g);
    uint64_t h = key_hash(p);
    if (h == g->policy_kept)
        return;
    struct state_guest sg = entry_of(d, g);
    if (policy_state_format(p, daemon_now(d), daemon_wall_ms(), sg.policy, sizeof(sg.policy)) < 0)
        return; /* cannot happen: the line is shorter than POLICY_STATE_MAX */
    if (state_put(&d->opstate, &sg) < 0) {
        log_error("guest %s: state full or out of memory; its policy state is not kept", g->name);
        return;
    }
    g->policy_kept = h;
    d->policy_due = true;
}

/* The entry belongs to a guest the daemon has now. */
static bool guest_present(const struct state_guest *sg, void *opaque)
{
    struct daemon *d = opaque;
    struct guest *g = daemon_find_guest(d, sg->name);
    return g && (!sg->uuid[0] || strcmp(g->vm_id, sg->uuid) == 0);
}

/* See OPSTATE_PRUNE_TICKS. */
static void prune(struct daemon *d)
{
    int64_t wall = daemon_wall_ms();
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        const struct state_guest *sg = state_find(&d->opstate, g->name, g->vm_id);
        int64_t written;
        if (sg && sg->policy[0] && policy_state_wall(sg->policy, &written) == 0 &&
            written < wall - POLICY_STATE_LIFETIME_MS / 2)
            g->policy_kept = ~key_hash(registry_policy(&d->reg, g)); /* written again below */
    }
    size_t dropped =
        state_prune_policy(&d->opstate, wall - POLICY_STATE_LIFETIME_MS, guest_present, d);
    if (dropped) {
        log_info("operator state: dropped the policy state of %zu guests gone away (last "
                 "written %.0f days ago or more)",
                 dropped, (double)POLICY_STATE_LIFETIME_MS / (24 * 3600 * 1000));
        d->policy_due = true;
    }
}

/* Every OPSTATE_POLICY_SAVE_MS: the lines of guests whose policy state changed, one write. */
static void on_policy_timer(uv_timer_t *t)
{
    struct daemon *d = t->data;
    if (d->policy_ticks++ % OPSTATE_PRUNE_TICKS == 0)
        prune(d);
    for (size_t i = 0; i < d->reg.n; i++)
        opstate_keep_policy(d, d->reg.guests[i]);
    if (d->policy_due)
        save(d);
}

/* See daemon_internal.h. */
void opstate_stop(struct daemon *d)
{
    if (d->policy_timer_on)
        uv_close((uv_handle_t *)&d->policy_timer, NULL);
    d->policy_timer_on = false;
    for (size_t i = 0; i < d->reg.n; i++) /* none left after guests_remove_all; in case */
        opstate_keep_policy(d, d->reg.guests[i]);
    if (d->policy_due)
        save(d);
    state_store_close(d->opstate_store); /* what waits is written before it goes */
    d->opstate_store = NULL;
}

/* See daemon_internal.h. */
void opstate_free(struct daemon *d)
{
    state_free(&d->opstate);
}
