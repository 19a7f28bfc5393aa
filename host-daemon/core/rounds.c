/* Decision rounds and moves: one policy round for every guest, each move through its
 * guest's balloon backend (one in flight per guest) or, in advisory mode, only simulated;
 * the timer at the policy's next deadline. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/log.h"

static void on_decide(uv_timer_t *timer);

/* See daemon_internal.h. */
void rounds_init(struct daemon *d)
{
    uv_timer_init(d->loop, &d->decide_timer);
    d->decide_timer.data = d;
}

/* See daemon_internal.h. */
void rounds_close(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->decide_timer, NULL);
}

/* See daemon.h. */
void daemon_kick(struct daemon *d)
{
    if (!d->started || d->stopping)
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

/* Advisory mode: log the move and simulate it, so the policy moves on as if it had
 * happened (its cooldowns start, its next decision starts from the new size). */
static bool advise(struct daemon *d, struct guest *g, const struct policy_decision *dec,
                   int64_t now)
{
    struct policy_guest *p = registry_policy(&d->reg, g);
    log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s) [dry run: not sent]", g->name,
             policy_action_name(dec->action), daemon_mib(dec->from_bytes),
             daemon_mib(dec->to_bytes), policy_reason_name(dec->reason));
    policy_commit(&d->cfg.policy, p, dec, now);
    policy_note_actual(&d->cfg.policy, p, dec->to_bytes, now);
    const struct decision_entry *e = guest_record_move(g, dec, daemon_wall_ms(), MOVE_ADVISORY);
    g->moves++;
    observers_move(d, g, e);
    return true;
}

/* Carry out one non-HOLD decision. Returns true when the move was issued (or advised). */
static bool act(struct daemon *d, struct guest *g, const struct policy_decision *dec, int64_t now)
{
    const char *action = policy_action_name(dec->action);
    const char *reason = policy_reason_name(dec->reason);
    char err[200] = "";
    char what[200];

    if (daemon_dry_run(d))
        return advise(d, g, dec, now);
    /* One move in flight per guest, and only on a balloon whose size was read. */
    if (g->move_in_flight || !g->balloon || !g->balloon_ready)
        return false;
    uint64_t token = g->ring_seq + 1; /* the seq its ring entry gets */
    int r = g->balloon->ops->set_target(g->balloon, dec->to_bytes, token, rounds_move_done, g, err,
                                        sizeof(err));
    if (r < 0) {
        struct decision_entry *e = guest_record_move(g, dec, daemon_wall_ms(), MOVE_FAILED);
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1, err);
        g->move_errors++;
        g->balloon->ops->describe(g->balloon, what, sizeof(what));
        log_error("guest %s: %s %.1f MiB -> %.1f MiB (%s) not sent: %s: %s", g->name, action,
                  daemon_mib(dec->from_bytes), daemon_mib(dec->to_bytes), reason, what, err);
        observers_move(d, g, e);
        return false;
    }
    policy_commit(&d->cfg.policy, registry_policy(&d->reg, g), dec, now);
    g->move_in_flight = true;
    const struct decision_entry *e = guest_record_move(g, dec, daemon_wall_ms(), MOVE_PENDING);
    g->moves++;
    log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s)%s", g->name, action,
             daemon_mib(dec->from_bytes), daemon_mib(dec->to_bytes), reason,
             g->balloon->ops->move_note);
    observers_move(d, g, e);
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
    /* The host's reclaim interval starts only when a host round really moved something. */
    if (host_round)
        policy_host_commit(&d->host, now);
    arm_deadline(d, now);
}

/* See daemon_internal.h. */
void rounds_move_done(void *opaque, uint64_t token, int status, const char *error)
{
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    struct decision_entry *e = guest_ring_find(g, token);
    char what[200];

    g->move_in_flight = false;
    if (status == 0) {
        if (e && e->result == MOVE_PENDING) {
            e->result = MOVE_DONE;
            if (!g->removing)
                observers_move(d, g, e);
        }
        return;
    }
    if (e && e->result == MOVE_PENDING) {
        e->result = MOVE_FAILED;
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1,
                 error ? error : strerror(-status));
    }
    g->move_errors++;
    if (g->removing || d->stopping)
        return;
    g->balloon->ops->describe(g->balloon, what, sizeof(what));
    log_error("guest %s: balloon command on %s failed: %s", g->name, what,
              error ? error : strerror(-status));
    if (e)
        observers_move(d, g, e);
}

/* Leaving advisory mode: one balloon's size read again. */
static void on_requery_done(void *opaque, int status, uint64_t actual_bytes, const char *error)
{
    struct guest *g = opaque;
    struct daemon *d = g->daemon;
    char what[200];

    if (g->removing || d->stopping)
        return;
    if (status < 0) {
        g->balloon->ops->describe(g->balloon, what, sizeof(what));
        log_warning("guest %s: cannot re-read the balloon on %s: %s; holding until it "
                    "reconnects or reports a change",
                    g->name, what, error ? error : strerror(-status));
        return;
    }
    policy_note_actual(&d->cfg.policy, registry_policy(&d->reg, g), actual_bytes, daemon_now(d));
    observers_actual(d, g, actual_bytes);
    daemon_kick(d);
}

/* See daemon_internal.h. */
void rounds_reread_balloons(struct daemon *d)
{
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        policy_forget_actual(registry_policy(&d->reg, g));
        if (g->balloon && g->balloon_ready)
            g->balloon->ops->query(g->balloon, on_requery_done, g);
    }
}
