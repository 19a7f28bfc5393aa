/* Decision rounds and moves. A round decides the guests whose inputs changed since their
 * last decision (rounds_touch) and those whose deadline came (a heap of per-guest
 * deadlines), so an event's cost does not grow with the number of guests; while the host
 * is under pressure (its rounds may take from any guest) every guest is decided. Each
 * move goes through its guest's balloon backend, one in flight per guest; a guest whose
 * moves fail waits longer and longer before the next (1 s doubling to 60 s), and says so
 * once, then once a minute. In advisory mode moves are only simulated. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/faillog.h"
#include "host-daemon/util/log.h"

#define MOVE_RETRY_MIN_MS 1000
#define MOVE_RETRY_MAX_MS 60000
#define FUNDING_RETRY_MS 200 /* a deflate whose funding did not go out tries again */

static void on_decide(uv_timer_t *timer);

/* See daemon_internal.h. */
void rounds_init(struct daemon *d)
{
    uv_timer_init(d->loop, &d->decide_timer);
    d->decide_timer.data = d;
    deadline_heap_init(&d->deadlines);
}

/* See daemon_internal.h. */
void rounds_close(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->decide_timer, NULL);
    for (size_t i = 0; i < d->n_dirty; i++)
        d->dirty[i]->dirty = false;
    deadline_heap_free(&d->deadlines);
    free(d->dirty);
    free(d->scratch_ptrs);
    free(d->scratch_dec);
    free(d->scratch_guests);
    d->dirty = NULL;
    d->scratch_ptrs = NULL;
    d->scratch_guests = NULL;
    d->scratch_dec = NULL;
    d->n_dirty = d->cap_dirty = d->cap_scratch = 0;
}

/* See daemon.h. */
void daemon_kick(struct daemon *d)
{
    if (!d->started || d->stopping)
        return;
    uv_timer_start(&d->decide_timer, on_decide, 0, 0);
}

/* Into the dirty list (without scheduling). */
static void mark(struct daemon *d, struct guest *g)
{
    if (g->dirty || g->removing)
        return;
    if (d->n_dirty == d->cap_dirty) {
        size_t cap = d->cap_dirty ? d->cap_dirty * 2 : 64;
        struct guest **p = realloc(d->dirty, cap * sizeof(*p));
        if (!p) {
            rounds_touch_all(d); /* out of memory: decide everyone instead */
            return;
        }
        d->dirty = p;
        d->cap_dirty = cap;
    }
    g->dirty = true;
    d->dirty[d->n_dirty++] = g;
}

/* See daemon_internal.h. */
void rounds_touch(struct daemon *d, struct guest *g)
{
    mark(d, g);
    daemon_kick(d);
}

/* See daemon_internal.h. */
void rounds_touch_all(struct daemon *d)
{
    /* Every guest at the next round: their deadlines say "now". */
    for (size_t i = 0; i < d->reg.n; i++)
        deadline_heap_set(&d->deadlines, &d->reg.guests[i]->deadline, POLICY_NEVER);
    daemon_kick(d);
}

/* See daemon_internal.h. */
void rounds_forget(struct daemon *d, struct guest *g)
{
    d->budget_use -= g->budget_held;
    g->budget_held = 0;
    deadline_heap_remove(&d->deadlines, &g->deadline);
    if (!g->dirty)
        return;
    for (size_t i = 0; i < d->n_dirty; i++) {
        if (d->dirty[i] == g) {
            d->dirty[i] = d->dirty[--d->n_dirty];
            break;
        }
    }
    g->dirty = false;
}

/* See daemon_internal.h. */
void rounds_budget_sampled(struct daemon *d, uint64_t old_budget)
{
    uint64_t use = 0;
    bool grew = d->host.budget_known && d->host.budget_bytes > old_budget;
    for (size_t i = 0; i < d->reg.n; i++) {
        struct guest *g = d->reg.guests[i];
        g->budget_held = policy_held_most(&d->reg.policy[i]);
        use += g->budget_held;
        if (grew && g->last_decision.reason == POLICY_R_BUDGET)
            mark(d, g);
    }
    d->budget_use = use;
}

/* When g's decision may change with no new input: the policy's own deadline for g alone
 * (the host's part is the scheduler's: see arm_timer), or the end of a move backoff. */
static void reschedule(struct daemon *d, struct guest *g, int64_t now)
{
    static const struct policy_host calm; /* no host part in a guest's deadline */
    const struct policy_guest *p = registry_policy(&d->reg, g);
    int64_t next = policy_next_deadline_ptrs(&d->cfg.policy, &calm, &p, 1, now);
    if (g->move_retry_at > now && g->move_retry_at < next)
        next = g->move_retry_at;
    if (next == POLICY_NO_DEADLINE)
        deadline_heap_remove(&d->deadlines, &g->deadline);
    else
        deadline_heap_set(&d->deadlines, &g->deadline, next);
}

static void arm_timer(struct daemon *d, int64_t now)
{
    if (d->n_dirty > 0) { /* touched during the round (a move answered at once, say) */
        uv_timer_start(&d->decide_timer, on_decide, 0, 0);
        return;
    }
    /* The host's own deadline (its next reclaim round), and the earliest guest's. */
    int64_t next = policy_next_deadline_ptrs(&d->cfg.policy, &d->host, NULL, 0, now);
    const struct deadline_entry *top = deadline_heap_top(&d->deadlines);
    if (top && top->at < next)
        next = top->at;
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

/* A deflate the host budget cut says so in its log line. */
static const char *budget_note(const struct policy_decision *dec)
{
    static char note[80];
    if (!dec->wanted_bytes)
        return "";
    snprintf(note, sizeof(note), " [cut by the host budget from %.1f MiB]",
             daemon_mib(dec->wanted_bytes));
    return note;
}

/* A move failed (refused at once or answered with an error): the guest's next move waits
 * a doubling delay; the failure is logged when it starts or changes, then once a minute. */
static void move_failed(struct daemon *d, struct guest *g, int status, const char *what,
                        const char *error)
{
    int64_t now = daemon_now(d);
    g->move_errors++;
    g->move_backoff_ms = g->move_backoff_ms ? g->move_backoff_ms * 2 : MOVE_RETRY_MIN_MS;
    if (g->move_backoff_ms > MOVE_RETRY_MAX_MS)
        g->move_backoff_ms = MOVE_RETRY_MAX_MS;
    g->move_retry_at = now + (int64_t)g->move_backoff_ms;
    switch (faillog_fail(&g->move_log, status, "move", now)) {
    case FAILLOG_NEW:
        log_error("guest %s: balloon command on %s failed: %s; its next move waits %.1f s, "
                  "longer while they fail",
                  g->name, what, error, (double)g->move_backoff_ms / 1000);
        break;
    case FAILLOG_SUMMARY:
        log_error("guest %s: balloon commands on %s still failing: %" PRIu64
                  " in the last %.0f s, %" PRIu64 " since %.0f s ago (%s); next in %.1f s",
                  g->name, what, g->move_log.summarised, FAILLOG_SUMMARY_MS / 1000.0,
                  g->move_log.total, (double)(now - g->move_log.since_ms) / 1000, error,
                  (double)g->move_backoff_ms / 1000);
        break;
    case FAILLOG_QUIET:
        log_debug("guest %s: balloon command on %s failed: %s; next in %.1f s", g->name, what,
                  error, (double)g->move_backoff_ms / 1000);
        break;
    }
}

static void move_worked(struct daemon *d, struct guest *g)
{
    g->move_backoff_ms = 0;
    g->move_retry_at = 0;
    uint64_t failures = g->move_log.total;
    int64_t since = g->move_log.since_ms;
    if (faillog_ok(&g->move_log, daemon_now(d)))
        log_info("guest %s: balloon commands work again after %" PRIu64 " failures over %.0f s",
                 g->name, failures, (double)(daemon_now(d) - since) / 1000);
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
    /* One move in flight per guest, only on a balloon whose size was read, and none while
     * a failed one's backoff lasts (reschedule() brings the guest back when it ends). */
    if (g->move_in_flight || !g->balloon || !g->balloon_ready || now < g->move_retry_at)
        return false;
    uint64_t token = g->ring_seq + 1; /* the seq its ring entry gets */
    int r = g->balloon->ops->set_target(g->balloon, dec->to_bytes, token, rounds_move_done, g, err,
                                        sizeof(err));
    if (r < 0) {
        struct decision_entry *e = guest_record_move(g, dec, daemon_wall_ms(), MOVE_FAILED);
        if (!err[0])
            snprintf(err, sizeof(err), "%s", strerror(-r));
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1, err);
        g->balloon->ops->describe(g->balloon, what, sizeof(what));
        char text[400];
        snprintf(text, sizeof(text), "%s %.1f MiB -> %.1f MiB (%s) not sent: %s", action,
                 daemon_mib(dec->from_bytes), daemon_mib(dec->to_bytes), reason, err);
        move_failed(d, g, r, what, text);
        observers_move(d, g, e);
        return false;
    }
    policy_commit(&d->cfg.policy, registry_policy(&d->reg, g), dec, now);
    g->move_in_flight = true;
    const struct decision_entry *e = guest_record_move(g, dec, daemon_wall_ms(), MOVE_PENDING);
    g->moves++;
    log_info("guest %s: %s %.1f MiB -> %.1f MiB (%s)%s%s", g->name, action,
             daemon_mib(dec->from_bytes), daemon_mib(dec->to_bytes), reason,
             g->balloon->ops->move_note, budget_note(dec));
    observers_move(d, g, e);
    return true;
}

/* g's part of the budget bound (daemon_internal.h: budget_use) read again. */
static void track(struct daemon *d, struct guest *g)
{
    uint64_t held = policy_held_most(registry_policy(&d->reg, g));
    d->budget_use = d->budget_use - g->budget_held + held;
    g->budget_held = held;
}

/* Decided: note it, act on it (unless held back), and when it may change by itself.
 * Returns true when a move was issued. */
static bool conclude(struct daemon *d, struct guest *g, const struct policy_decision *dec,
                     bool held_back, int64_t now)
{
    bool sent = false;
    g->last_decision = *dec;
    g->last_decision_at = now;
    if (dec->action != POLICY_HOLD && !held_back)
        sent = act(d, g, dec, now);
    track(d, g);
    reschedule(d, g, now);
    /* A deflate held back for its funding is decided again shortly. */
    if (held_back)
        deadline_heap_set(&d->deadlines, &g->deadline, now + FUNDING_RETRY_MS);
    return sent;
}

static int grow_scratch(struct daemon *d, size_t n)
{
    if (n <= d->cap_scratch)
        return 0;
    size_t cap = d->cap_scratch ? d->cap_scratch : 64;
    while (cap < n)
        cap *= 2;
    const struct policy_guest **p = realloc(d->scratch_ptrs, cap * sizeof(*p));
    if (!p)
        return -ENOMEM;
    d->scratch_ptrs = p;
    struct guest **gs = realloc(d->scratch_guests, cap * sizeof(*gs));
    if (!gs)
        return -ENOMEM;
    d->scratch_guests = gs;
    struct policy_decision *dec = realloc(d->scratch_dec, cap * sizeof(*dec));
    if (!dec)
        return -ENOMEM;
    d->scratch_dec = dec;
    d->cap_scratch = cap;
    return 0;
}

/* Every guest: while the host is under pressure (its rounds may take from any guest) and
 * when a deflate may not fit in the host budget (funding takes from other guests). */
static bool full_round(struct daemon *d, int64_t now)
{
    size_t n = d->reg.n;
    bool host_round = false;
    d->full_rounds++;
    for (size_t i = 0; i < d->n_dirty; i++)
        d->dirty[i]->dirty = false;
    d->n_dirty = 0;
    policy_decide(&d->cfg.policy, &d->host, d->reg.policy, n, now, d->reg.decisions);
    /* Inflates first: a deflate the budget funded from other guests goes out only when
     * every funding move did (else it is decided again shortly). */
    bool funding_failed = false;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < n; i++) {
            const struct policy_decision *dec = &d->reg.decisions[i];
            if ((dec->action == POLICY_DEFLATE) != (pass == 1))
                continue;
            bool held_back = pass == 1 && funding_failed;
            bool sent = conclude(d, d->reg.guests[i], dec, held_back, now);
            if (sent && policy_reason_is_host_round(dec->reason))
                host_round = true;
            if (!sent && dec->action == POLICY_INFLATE &&
                (dec->reason == POLICY_R_FUND || dec->reason == POLICY_R_SHARE))
                funding_failed = true;
        }
    }
    return host_round;
}

/* Do the dirty guests' deflates fit in the host budget whatever the other guests hold?
 * Checked against budget_use, a bound on what all guests hold, so that a round of a few
 * guests needs no pass over all of them; when they may not fit, a full round decides
 * (funding, cuts) from exact figures. */
static bool fits_budget(struct daemon *d, size_t k)
{
    if (!d->host.budget_known)
        return true;
    uint64_t need = 0;
    for (size_t i = 0; i < k; i++) {
        const struct policy_decision *dec = &d->scratch_dec[i];
        if (dec->reason == POLICY_R_BUDGET || dec->wanted_bytes)
            return false; /* cut among the dirty guests alone: short overall too */
        if (dec->action != POLICY_DEFLATE)
            continue;
        uint64_t held = d->scratch_guests[i]->budget_held;
        need += dec->to_bytes > held ? dec->to_bytes - held : 0;
    }
    return need == 0 || d->budget_use + need <= d->host.budget_bytes;
}

static void on_decide(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    int64_t now = daemon_now(d);
    bool host_round = false;

    if (d->stopping)
        return;
    d->rounds++;
    /* Guests whose decision may have changed by itself. */
    struct deadline_entry *e;
    while ((e = deadline_heap_pop_due(&d->deadlines, now)))
        mark(d, (struct guest *)((char *)e - offsetof(struct guest, deadline)));

    /* The dirty guests only; the policy also updates the host's pressure state here. */
    size_t k = d->n_dirty;
    bool was_pressure = d->host.pressure;
    if (grow_scratch(d, k) < 0) {
        host_round = full_round(d, now);
        goto out;
    }
    for (size_t i = 0; i < k; i++) {
        d->scratch_guests[i] = d->dirty[i];
        d->scratch_ptrs[i] = registry_policy(&d->reg, d->dirty[i]);
        track(d, d->dirty[i]); /* its size may have changed */
    }
    policy_decide_ptrs(&d->cfg.policy, &d->host, d->scratch_ptrs, k, now, d->scratch_dec);
    if (d->host.pressure || d->host.pressure != was_pressure) {
        /* The host's rounds weigh every guest, and its state changes every guest's
         * decision: decide them all (rare: while the host is short of memory). */
        host_round = full_round(d, now);
        goto out;
    }
    if (!fits_budget(d, k)) {
        host_round = full_round(d, now);
        goto out;
    }
    /* The dirty list is emptied first: acting may touch a guest again (next round). */
    for (size_t i = 0; i < k; i++)
        d->scratch_guests[i]->dirty = false;
    d->n_dirty = 0;
    for (size_t i = 0; i < k; i++) {
        const struct policy_decision *dec = &d->scratch_dec[i];
        if (conclude(d, d->scratch_guests[i], dec, false, now) &&
            policy_reason_is_host_round(dec->reason))
            host_round = true;
    }
out:
    /* The host's reclaim interval starts only when a host round really moved something. */
    if (host_round)
        policy_host_commit(&d->host, now);
    arm_timer(d, now);
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
        move_worked(d, g);
        if (!g->removing) /* one move in flight: this answer is the last commit's */
            policy_note_delivered(registry_policy(&d->reg, g), daemon_now(d));
        if (e && e->result == MOVE_PENDING) {
            e->result = MOVE_DONE;
            if (!g->removing)
                observers_move(d, g, e);
        }
        if (!g->removing && !d->stopping)
            rounds_touch(d, g);
        return;
    }
    if (e && e->result == MOVE_PENDING) {
        e->result = MOVE_FAILED;
        snprintf(e->error, sizeof(e->error), "%.*s", (int)sizeof(e->error) - 1,
                 error ? error : strerror(-status));
    }
    if (g->removing || d->stopping)
        return;
    /* Refused or lost: that target is not on its way; the next decision starts afresh. */
    policy_forget_target(registry_policy(&d->reg, g));
    if (status == -ESTALE) {
        /* Not sent: the balloon was not where the decision thought (its new size came
         * first). Not a failure of the link: decide again now. */
        log_debug("guest %s: move not sent: %s", g->name, error ? error : "stale size");
    } else {
        g->balloon->ops->describe(g->balloon, what, sizeof(what));
        move_failed(d, g, status, what, error ? error : strerror(-status));
    }
    if (e)
        observers_move(d, g, e);
    rounds_touch(d, g);
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
    rounds_touch(d, g);
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
    rounds_touch_all(d);
}
