/* A guest's two links as the core sees them: its agent's channel (messages into the
 * policy, link and reject logs) and its balloon backend's events (sizes into the policy). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/escape.h"
#include "host-daemon/util/faillog.h"
#include "host-daemon/util/log.h"

/* ---- the balloon backend's events ---- */

static void on_balloon_ready(void *opaque, uint64_t actual_bytes)
{
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    struct policy_guest *p = registry_policy(&d->reg, g);
    g->balloon_ready = true;
    g->balloon_connects++;
    /* A move sent before the link went (to a QEMU since killed, say) is not on its way any
     * more: it is forgotten, and the guest is decided again from the size read now. */
    if (p->target_set) {
        log_debug("guest %s: the target %.1f MiB sent before the link was lost is dropped; "
                  "deciding again from %.1f MiB",
                  g->name, daemon_mib(p->target_bytes), daemon_mib(actual_bytes));
        policy_forget_target(p);
    }
    policy_note_actual(&d->cfg.policy, p, actual_bytes, daemon_now(d));
    observers_actual(d, g, actual_bytes);
    rounds_touch(d, g);
}

static void on_balloon_actual(void *opaque, uint64_t actual_bytes)
{
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    g->balloon_changes++;
    log_debug("guest %s: balloon now %.1f MiB", g->name, daemon_mib(actual_bytes));
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), actual_bytes, daemon_now(d));
    observers_actual(d, g, actual_bytes);
    rounds_touch(d, g);
}

static void on_balloon_lost(void *opaque, const char *reason)
{
    (void)reason; /* the backend logged it, with its details */
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    if (g->balloon_ready)
        g->balloon_losses++;
    g->balloon_ready = false;
    /* Never act blind: until the next ready reads the balloon, this guest holds. */
    policy_forget_actual(registry_policy(&d->reg, g));
    rounds_touch(d, g);
}

static const struct balloon_events balloon_events = {
    .ready = on_balloon_ready,
    .actual = on_balloon_actual,
    .lost = on_balloon_lost,
};

/* See daemon_internal.h. */
int links_start_balloon(struct daemon *d, struct guest *g)
{
    (void)d;
    balloon_bind(g->balloon, &balloon_events, g);
    return g->balloon->ops->start(g->balloon);
}

/* See daemon_internal.h. */
void links_close_balloon(struct guest *g, balloon_closed_cb closed, void *opaque)
{
    struct balloon *b = g->balloon;
    /* g->balloon stays set while close runs: a move it cancels completes inside. */
    b->ops->close(b, closed, opaque);
    g->balloon = NULL;
    g->balloon_ready = false;
}

/* ---- the agent's channel ---- */

static void on_guest_message(struct guest_channel *gc, const struct bp_msg *msg, void *opaque)
{
    (void)gc;
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    struct daemon_sample s = {.type = msg->type, .now = daemon_now(d)};

    switch (msg->type) {
    case BP_MSG_HELLO: {
        /* Logged when the agent or its boot changes: a guest repeating its hello (as often
         * as its frame budget lets it) costs no log line. The text is the guest's: escaped. */
        bool new_boot = strcmp(g->boot_id, msg->u.hello.boot_id) != 0;
        bool rebooted = new_boot && g->boot_id[0]; /* not the first hello we hear */
        bool news = new_boot || strcmp(g->agent, msg->u.hello.agent) != 0;
        char agent[4 * BP_MAX_AGENT_LEN + 1], boot[4 * BP_MAX_BOOT_ID_LEN + 1];
        text_escape_str(msg->u.hello.agent, agent, sizeof(agent));
        text_escape_str(msg->u.hello.boot_id, boot, sizeof(boot));
        snprintf(g->agent, sizeof(g->agent), "%s", msg->u.hello.agent);
        snprintf(g->boot_id, sizeof(g->boot_id), "%s", msg->u.hello.boot_id);
        log_msg(news ? LOG_LEVEL_INFO : LOG_LEVEL_DEBUG,
                "guest %s: agent '%s' says hello (protocol %" PRIu32 ", boot %s)%s", g->name, agent,
                msg->u.hello.protocol_version, boot, news ? "" : " again");
        /* A guest that rebooted is a guest just booted (its QEMU and balloon the same). */
        if (rebooted)
            policy_note_boot(registry_policy(&d->reg, g), s.now);
        return;
    }
    case BP_MSG_PRESSURE:
        s.level = msg->u.pressure.level;
        s.source = msg->u.pressure.source;
        s.mem = &msg->u.pressure.mem;
        log_debug("guest %s: %s pressure (%s)", g->name, bp_level_name(s.level),
                  bp_source_name(s.source));
        break;
    case BP_MSG_REPORT:
        s.level = msg->u.report.level;
        s.mem = &msg->u.report.mem;
        break;
    default:
        return;
    }
    g->mem = *s.mem;
    g->mem_known = true;
    g->last_msg_level = s.level;
    /* A report repeats the agent's level: an echo, not a new event (policy.h). */
    if (msg->type == BP_MSG_REPORT)
        policy_note_report(&d->cfg.policy, registry_policy(&d->reg, g), s.level, s.mem, s.now);
    else
        policy_note_event(&d->cfg.policy, registry_policy(&d->reg, g), s.level, s.mem, s.now);
    observers_sample(d, g, &s);
    rounds_touch(d, g);
}

/* The channel counts as healthy again once it stayed up this long (the host channel's
 * own rule for its backoff). */
static int64_t channel_stable_ms(const struct daemon *d)
{
    uint64_t max = d->cfg.daemon.reconnect_max_ms;
    return (int64_t)(max > 1000 ? max : 1000);
}

/* Logged when the link's state changes, then summarised a minute: a chardev that accepts
 * and closes at once costs a few lines, not two per attempt. */
static void on_guest_link(struct guest_channel *gc, bool connected, int err, void *opaque)
{
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    int64_t now = daemon_now(d);
    const char *path = guest_channel_path(gc);

    if (connected) {
        g->channel_up_at = now;
        if (!g->channel_log.failing)
            log_info("guest %s: channel %s connected", g->name, path);
        else if (!g->channel_told)
            log_info("guest %s: channel %s connected after %" PRIu64 " failed attempts", g->name,
                     path, g->channel_log.total);
        else
            log_debug("guest %s: channel %s connected again", g->name, path);
        g->channel_told = true;
        return;
    }
    /* A link that stayed up long enough ended the last failure episode. */
    if (g->channel_up_at >= 0 && now - g->channel_up_at >= channel_stable_ms(d))
        faillog_ok(&g->channel_log, now);
    g->channel_up_at = -1;
    switch (faillog_fail(&g->channel_log, err, "channel", now)) {
    case FAILLOG_NEW:
        g->channel_told = false;
        log_warning("guest %s: channel %s: %s; retrying with backoff", g->name, path,
                    strerror(-err));
        break;
    case FAILLOG_SUMMARY:
        log_warning(
            "guest %s: channel %s still failing: %" PRIu64 " times in the last %.0f s, %" PRIu64
            " since %.0f s ago (%s); retrying with backoff",
            g->name, path, g->channel_log.summarised, FAILLOG_SUMMARY_MS / 1000.0,
            g->channel_log.total, (double)(now - g->channel_log.since_ms) / 1000, strerror(-err));
        break;
    case FAILLOG_QUIET:
        log_debug("guest %s: channel %s: %s; retrying", g->name, path, strerror(-err));
        break;
    }
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

/* See daemon_internal.h. */
void links_summarise_rejects(struct daemon *d)
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

/* See daemon_internal.h. */
int links_start_channel(struct daemon *d, struct guest *g)
{
    struct guest_channel_limits lim = channel_limits(&d->cfg.daemon);
    struct bp_welcome welcome = {.protocol_version = BP_PROTOCOL_VERSION};
    struct guest_channel_callbacks cbs = {.on_message = on_guest_message,
                                          .on_link = on_guest_link,
                                          .on_first_reject = on_guest_first_reject};
    return guest_channel_new(d->loop, g->cfg.channel_path, &lim, &welcome, &cbs, g, &g->channel);
}

/* See daemon_internal.h. */
void links_apply_channel_limits(struct daemon *d)
{
    struct guest_channel_limits lim = channel_limits(&d->cfg.daemon);
    for (size_t i = 0; i < d->reg.n; i++)
        if (d->reg.guests[i]->channel)
            guest_channel_set_limits(d->reg.guests[i]->channel, &lim);
}
