/* JSON views of guests, their decisions, the host and the whole daemon, read-only. */
#include "host-daemon/views/views.h"

#include <stdio.h>
#include <time.h>

#include "host-daemon/channel/guest_channel.h"

/* A size or time that may be unknown. */
static json_t *maybe_u64(bool known, uint64_t v)
{
    return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *iso_time(int64_t wall_ms)
{
    char buf[40];
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)(wall_ms % 1000));
    return json_string(buf);
}

static json_t *counters_json(const struct guest *g, const struct policy_guest *p)
{
    static const struct guest_channel_stats none;
    const struct guest_channel_stats *s = g->channel ? guest_channel_stats(g->channel) : &none;
    const struct {
        const char *name;
        uint64_t value;
    } counters[] = {
        {"bytes", s->bytes},
        {"frames", s->frames},
        {"messages", s->messages},
        {"pressure_events", s->pressure_events},
        {"reports", s->reports},
        {"invalid", s->invalid},
        {"json", s->rejected[BP_ERR_JSON]},
        {"version", s->rejected[BP_ERR_VERSION]},
        {"type", s->rejected[BP_ERR_TYPE]},
        {"field", s->rejected[BP_ERR_FIELD]},
        {"range", s->rejected[BP_ERR_RANGE]},
        {"seq_stale", s->seq_stale},
        {"seq_lost", s->seq_lost},
        {"resyncs", s->resyncs},
        {"unknown_type", s->unknown_type},
        {"junk_bytes", s->junk_bytes},
        {"oversized", s->oversized},
        {"truncated", s->truncated},
        {"rate_limited", s->rate_limited},
        {"throttled", s->throttled},
        {"welcomes_dropped", s->welcomes_dropped},
        {"channel_connects", s->connects},
        {"qmp_connects", g->balloon_connects},
        {"balloon_changes", g->balloon_changes},
        {"moves", g->moves},
        {"move_errors", g->move_errors},
        {"reversals", p->reversals},
    };
    json_t *j = json_object();
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++)
        json_object_set_new(j, counters[i].name, json_integer((json_int_t)counters[i].value));
    return j;
}

/* See views.h. */
json_t *view_decision(const struct decision_entry *e)
{
    json_t *j = json_pack("{sIsosssssIsIss}", "seq", (json_int_t)e->seq, "time",
                          iso_time(e->wall_ms), "action", policy_action_name(e->action), "reason",
                          policy_reason_name(e->reason), "from", (json_int_t)e->from_bytes, "to",
                          (json_int_t)e->to_bytes, "result", move_result_name(e->result));
    if (j && e->result == MOVE_FAILED)
        json_object_set_new(j, "error", json_string(e->error));
    return j;
}

/* See views.h. */
json_t *view_decisions(const struct guest *g)
{
    json_t *list = json_array();
    for (size_t i = 0; i < g->ring_count; i++)
        json_array_append_new(list, view_decision(guest_ring_entry(g, i)));
    return list;
}

/* A percentage rounded to hundredths: the measure's noise is in points, not in the 15th
 * digit a double prints. */
static json_t *pct_json(double pct)
{
    return json_real((double)(int64_t)(pct * 100.0 + 0.5) / 100.0);
}

/* What the policy knows about sizing the guest (struct policy_sizing): show's "sizing". */
static json_t *view_sizing(const struct daemon_view *v, const struct policy_guest *p)
{
    struct policy_sizing z;
    policy_guest_sizing(v->policy, p, v->now, &z);
    json_t *stall = json_null();
    if (z.stall_known)
        stall = json_pack("{sosososososb}", "last_pct", pct_json(z.stall_pct), "avg_pct",
                          pct_json(z.stall_avg_pct), "level_pct", pct_json(z.stall_level_pct),
                          "base_pct", pct_json(z.stall_base_pct), "margin_pct",
                          pct_json(z.stall_margin_pct), "measuring", z.measuring);
    json_t *hurt = json_null();
    if (z.hurt_live)
        hurt = json_pack("{sIsI}", "size", (json_int_t)z.hurt_bytes, "forgotten_in_ms",
                         (json_int_t)z.hurt_left_ms);
    json_t *stuck = json_null();
    if (z.stuck_left_ms > 0)
        stuck = json_pack("{sIsI}", "count", (json_int_t)z.stuck_count, "retry_in_ms",
                          (json_int_t)z.stuck_left_ms);
    return json_pack("{sosososososIsosIso}", "used", maybe_u64(z.need_known, z.used_bytes),
                     "overhead", maybe_u64(z.need_known, z.overhead_bytes), "need",
                     maybe_u64(z.need_known, z.need_bytes), "working_set",
                     json_integer((json_int_t)z.working_set_bytes), "stall", stall, "flips",
                     (json_int_t)z.flips, "hurt", hurt, "inflate_wait_ms",
                     (json_int_t)z.inflate_wait_ms, "stuck", stuck);
}

/* See views.h. */
json_t *view_guest(const struct daemon_view *v, const struct guest *g, bool with_decisions)
{
    const struct policy_guest *p = registry_policy_of(v->reg, g);
    enum bp_level level = policy_guest_level(v->policy, p, v->now);
    const struct guest_channel_stats *s = g->channel ? guest_channel_stats(g->channel) : NULL;

    json_t *last = json_null();
    if (g->last_decision_at != POLICY_NEVER)
        last = json_pack("{sssssIsIsI}", "action", policy_action_name(g->last_decision.action),
                         "reason", policy_reason_name(g->last_decision.reason), "from",
                         (json_int_t)g->last_decision.from_bytes, "to",
                         (json_int_t)g->last_decision.to_bytes, "age_ms",
                         (json_int_t)(v->now - g->last_decision_at));
    json_t *last_move = json_null();
    const struct decision_entry *e = guest_ring_entry(g, 0);
    if (e)
        last_move = view_decision(e);

    json_t *j = json_object();
    json_object_set_new(j, "name", json_string(g->name));
    json_object_set_new(j, "source", json_string(guest_origin(g)));
    json_object_set_new(j, "paused", json_boolean(p->paused));
    json_object_set_new(j, "level", json_string(bp_level_name(level)));
    json_object_set_new(j, "psi_some_avg10",
                        g->mem_known ? json_real(g->mem.psi_some_avg10) : json_null());
    json_object_set_new(j, "mem_available",
                        maybe_u64(g->mem_known, g->mem.mem_available_kb * 1024));
    json_object_set_new(j, "mem_total", maybe_u64(g->mem_known, g->mem.mem_total_kb * 1024));
    json_object_set_new(j, "balloon_counted_as_used", json_boolean(p->balloon_counted_used));
    json_object_set_new(j, "floor", json_integer((json_int_t)g->cfg.floor_bytes));
    json_object_set_new(j, "ceiling", json_integer((json_int_t)g->cfg.ceiling_bytes));
    json_object_set_new(j, "weight", json_integer(g->cfg.weight));
    json_t *balloon = json_object();
    json_object_set_new(balloon, "actual", maybe_u64(p->actual_known, p->actual_bytes));
    json_object_set_new(balloon, "target", maybe_u64(p->target_set, p->target_bytes));
    json_object_set_new(j, "balloon", balloon);
    json_t *channel = json_object();
    json_object_set_new(channel, "path", json_string(g->cfg.channel_path));
    json_object_set_new(channel, "connected",
                        json_boolean(s && guest_channel_connected(g->channel)));
    json_object_set_new(channel, "throttled",
                        json_boolean(s && guest_channel_throttled(g->channel)));
    json_object_set_new(j, "channel", channel);
    /* Each backend fills its own key; the others stay null. */
    json_object_set_new(j, "qmp", json_null());
    json_object_set_new(j, "libvirt", json_null());
    if (g->balloon)
        g->balloon->ops->view(g->balloon, j);
    json_object_set_new(j, "agent", g->agent[0] ? json_string(g->agent) : json_null());
    json_object_set_new(j, "last_decision", last);
    json_object_set_new(j, "last_move", last_move);
    json_object_set_new(j, "counters", counters_json(g, p));
    if (!j)
        return NULL;
    if (with_decisions) {
        json_object_set_new(j, "sizing", view_sizing(v, p));
        json_object_set_new(j, "decisions", view_decisions(g));
    }
    return j;
}

/* See views.h. */
uint64_t view_held_bytes(const struct daemon_view *v)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < registry_count(v->reg); i++) {
        const struct policy_guest *p = registry_policy_of(v->reg, registry_at(v->reg, i));
        if (p->actual_known)
            sum += p->actual_bytes;
    }
    return sum;
}

/* See views.h. */
json_t *view_host(const struct daemon_view *v)
{
    if (!v->host_sample)
        return json_null();
    json_t *j =
        json_pack("{sfsIsIsb}", "psi_some_avg10", v->host_sample->psi.some.avg10, "mem_total",
                  (json_int_t)(v->host_sample->meminfo.mem_total_kb * 1024), "mem_available",
                  (json_int_t)(v->host_sample->meminfo.mem_available_kb * 1024), "pressure",
                  v->host->pressure);
    if (j)
        json_object_set_new(j, "budget",
                            v->host->budget_known ? json_integer((json_int_t)v->host->budget_bytes)
                                                  : json_null());
    if (j)
        json_object_set_new(j, "held", json_integer((json_int_t)view_held_bytes(v)));
    return j;
}

/* See views.h. */
json_t *view_list(const struct daemon_view *v)
{
    json_t *list = json_array();
    for (size_t i = 0; i < registry_count(v->reg); i++)
        json_array_append_new(list, view_guest(v, registry_at(v->reg, i), false));
    return json_pack("{sbsoso}", "dry_run", v->dry_run, "host", view_host(v), "guests", list);
}
