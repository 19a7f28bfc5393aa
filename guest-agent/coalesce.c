/* Coalescing of pressure notifications, rate limits and heartbeat. */
#include "guest-agent/coalesce.h"

#include <errno.h>
#include <string.h>

#define NS_PER_MS UINT64_C(1000000)

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > CO_NEVER - b ? CO_NEVER : a + b;
}

static void schedule_report(struct coalescer *c, uint64_t now_ns)
{
    c->next_report_ns = c->cfg.report_ns ? add_sat(now_ns, c->cfg.report_ns) : CO_NEVER;
}

int co_init(struct coalescer *c, const struct co_config *cfg, uint64_t now_ns)
{
    memset(c, 0, sizeof(*c));
    c->cfg = *cfg;
    int r = outq_init(&c->queue, cfg->queue_cap);
    if (r < 0)
        return r;
    schedule_report(c, now_ns);
    return 0;
}

static bool wanted(const struct coalescer *c, enum bp_level level)
{
    return c->cfg.levels == 0 || (c->cfg.levels & (1u << level));
}

/* When a message from source s at level may be queued (0: at once). A critical waits out
 * critical_repeat_ns after the agent's last critical from any source: two sources each
 * signalling critical hundreds of times a second send at most one per interval between
 * them. Any other level goes at once when it is a rise for its source; the same level
 * again or a fall (no news the host must act on) waits out repeat_ns after the source's
 * last message other than a critical (so a stream of criticals cannot hold a fall back
 * for ever). So an honest agent stays well inside the host's frame budget (20 a second
 * by default), and the host never has to drop a frame of it (docs/agent.md). */
static uint64_t may_queue_at(const struct coalescer *c, const struct co_source *s,
                             enum bp_level level)
{
    if (level == BP_LEVEL_CRITICAL)
        return c->critical_sent ? add_sat(c->critical_sent_ns, c->cfg.critical_repeat_ns) : 0;
    if (level > s->sent_level)
        return 0;
    return s->other_sent ? add_sat(s->other_sent_ns, c->cfg.repeat_ns) : 0;
}

static void queue_pressure(struct coalescer *c, struct co_source *s, const struct bp_pressure *p,
                           uint64_t now_ns)
{
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure = *p;
    outq_push(&c->queue, &m);
    s->sent_level = p->level;
    if (p->level == BP_LEVEL_CRITICAL) {
        c->critical_sent = true;
        c->critical_sent_ns = now_ns;
    } else {
        s->other_sent = true;
        s->other_sent_ns = now_ns;
    }
    c->stats.queued++;
}

int co_event(struct coalescer *c, enum bp_source source, enum bp_level level, uint64_t now_ns,
             const struct bp_mem *mem)
{
    if ((unsigned)source >= BP_SOURCE_COUNT || level < BP_LEVEL_LOW || level > BP_LEVEL_CRITICAL)
        return -EINVAL;
    struct co_source *s = &c->src[source];
    struct bp_pressure p = {
        .mono_ns = now_ns,
        .level = level,
        .source = source,
        .mem = *mem,
    };

    c->stats.events++;
    s->level = level;
    s->last_event_ns = now_ns;
    if (!wanted(c, level)) {
        c->stats.filtered++;
        return CO_FILTERED;
    }
    bool held = now_ns < may_queue_at(c, s, level);
    if (!held) {
        /* A waiting repeat is older news than this one. */
        if (s->has_deferred)
            c->stats.merged++;
        s->has_deferred = false;
        queue_pressure(c, s, &p, now_ns);
        return CO_QUEUED;
    }
    if (s->has_deferred)
        c->stats.merged++;
    s->has_deferred = true;
    s->deferred = p;
    return CO_DEFERRED;
}

enum bp_level co_level(const struct coalescer *c)
{
    enum bp_level level = BP_LEVEL_NONE;
    for (int i = 0; i < BP_SOURCE_COUNT; i++)
        if (c->src[i].level > level)
            level = c->src[i].level;
    return level;
}

bool co_tick(struct coalescer *c, uint64_t now_ns)
{
    for (int i = 0; i < BP_SOURCE_COUNT; i++) {
        struct co_source *s = &c->src[i];
        if (s->has_deferred && now_ns >= may_queue_at(c, s, s->deferred.level)) {
            s->has_deferred = false;
            queue_pressure(c, s, &s->deferred, now_ns);
        }
    }
    bool was_pressured = co_level(c) != BP_LEVEL_NONE;
    for (int i = 0; i < BP_SOURCE_COUNT; i++) {
        struct co_source *s = &c->src[i];
        if (s->level != BP_LEVEL_NONE && now_ns - s->last_event_ns >= c->cfg.quiet_ns &&
            !s->has_deferred) {
            s->level = BP_LEVEL_NONE;
            s->sent_level = BP_LEVEL_NONE;
        }
    }
    if (was_pressured && co_level(c) == BP_LEVEL_NONE)
        c->report_now = true;
    return c->report_now || now_ns >= c->next_report_ns;
}

void co_report(struct coalescer *c, uint64_t now_ns, const struct bp_mem *mem)
{
    struct bp_msg m = {.type = BP_MSG_REPORT};
    m.u.report.mono_ns = now_ns;
    m.u.report.level = co_level(c);
    m.u.report.mem = *mem;
    outq_push(&c->queue, &m);
    c->report_now = false;
    c->stats.reports++;
    schedule_report(c, now_ns);
}

uint64_t co_next_deadline(const struct coalescer *c)
{
    uint64_t t = c->report_now ? 0 : c->next_report_ns;
    for (int i = 0; i < BP_SOURCE_COUNT; i++) {
        const struct co_source *s = &c->src[i];
        uint64_t d = CO_NEVER;
        if (s->has_deferred)
            d = may_queue_at(c, s, s->deferred.level);
        else if (s->level != BP_LEVEL_NONE)
            d = add_sat(s->last_event_ns, c->cfg.quiet_ns);
        if (d < t)
            t = d;
    }
    return t;
}

void co_apply_welcome(struct coalescer *c, uint32_t report_interval_ms, uint32_t levels,
                      uint64_t now_ns)
{
    if (report_interval_ms)
        c->cfg.report_ns = report_interval_ms * NS_PER_MS;
    c->cfg.levels = levels;
    schedule_report(c, now_ns);
}

bool co_pop(struct coalescer *c, struct bp_msg *ret_msg)
{
    return outq_pop(&c->queue, ret_msg);
}
