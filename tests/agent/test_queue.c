/* The outgoing queue and the coalescing rules, table-driven, with time passed in. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "guest-agent/coalesce.h"
#include "guest-agent/outqueue.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MS UINT64_C(1000000)
#define VMP BP_SOURCE_VMPRESSURE
#define PSI BP_SOURCE_PSI
#define LOW BP_LEVEL_LOW
#define MED BP_LEVEL_MEDIUM
#define CRIT BP_LEVEL_CRITICAL

static const char *short_source(enum bp_source s)
{
    return s == VMP ? "vmp" : "psi";
}

/* "psi/low@500" for a pressure queued from an event at 500 ms, "report:none@1000". */
static void render(const struct bp_msg *m, char *buf, size_t cap)
{
    if (m->type == BP_MSG_PRESSURE)
        snprintf(buf, cap, "%s/%s@%llu", short_source(m->u.pressure.source),
                 bp_level_name(m->u.pressure.level),
                 (unsigned long long)(m->u.pressure.mono_ns / MS));
    else
        snprintf(buf, cap, "report:%s@%llu", bp_level_name(m->u.report.level),
                 (unsigned long long)(m->u.report.mono_ns / MS));
}

static struct bp_msg pressure(enum bp_source s, enum bp_level l, uint64_t at_ms)
{
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure.source = s;
    m.u.pressure.level = l;
    m.u.pressure.mono_ns = at_ms * MS;
    return m;
}

static struct bp_msg report(uint64_t at_ms)
{
    struct bp_msg m = {.type = BP_MSG_REPORT};
    m.u.report.mono_ns = at_ms * MS;
    return m;
}

static void drain_queue(struct outqueue *q, char *buf, size_t cap)
{
    struct bp_msg m;
    buf[0] = '\0';
    while (outq_pop(q, &m)) {
        char one[64];
        render(&m, one, sizeof(one));
        if (buf[0])
            strncat(buf, " ", cap - strlen(buf) - 1);
        strncat(buf, one, cap - strlen(buf) - 1);
    }
}

/* --- outqueue --- */

struct push_case {
    const char *name;
    size_t cap;
    struct bp_msg msgs[8];
    int n;
    int last_result; /* result of the last push */
    const char *queue;
};

static void outqueue_table(void **state)
{
    (void)state;
    const struct push_case cases[] = {
        {"in order",
         8,
         {pressure(PSI, LOW, 1), report(2), pressure(VMP, MED, 3)},
         3,
         OUTQ_APPENDED,
         "psi/low@1 report:none@2 vmp/medium@3"},
        {"newer report replaces older, moves to the back",
         8,
         {report(1), pressure(PSI, LOW, 2), report(3)},
         3,
         OUTQ_REPLACED,
         "psi/low@2 report:none@3"},
        {"same source and level replaced",
         8,
         {pressure(PSI, LOW, 1), pressure(PSI, MED, 2), pressure(PSI, LOW, 3)},
         3,
         OUTQ_REPLACED,
         "psi/medium@2 psi/low@3"},
        {"other source is another kind",
         8,
         {pressure(PSI, LOW, 1), pressure(VMP, LOW, 2)},
         2,
         OUTQ_APPENDED,
         "psi/low@1 vmp/low@2"},
        {"critical replaced only by a newer critical of its source",
         8,
         {pressure(PSI, CRIT, 1), pressure(VMP, CRIT, 2), pressure(PSI, CRIT, 3)},
         3,
         OUTQ_REPLACED,
         "vmp/critical@2 psi/critical@3"},
        {"full: oldest non-critical evicted",
         3,
         {pressure(PSI, CRIT, 1), pressure(PSI, LOW, 2), report(3), pressure(VMP, MED, 4)},
         4,
         OUTQ_EVICTED,
         "psi/critical@1 report:none@3 vmp/medium@4"},
        {"full of criticals and one more: the non-critical goes, criticals stay",
         3,
         {pressure(PSI, CRIT, 1), pressure(VMP, CRIT, 2), pressure(PSI, LOW, 3),
          pressure(VMP, LOW, 4), report(5)},
         5,
         OUTQ_EVICTED,
         "psi/critical@1 vmp/critical@2 report:none@5"},
        {"a critical arriving in a full queue evicts a non-critical",
         3,
         {pressure(PSI, LOW, 1), pressure(VMP, LOW, 2), report(3), pressure(VMP, CRIT, 4)},
         4,
         OUTQ_EVICTED,
         "vmp/low@2 report:none@3 vmp/critical@4"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct push_case *c = &cases[i];
        struct outqueue q;
        char got[512];
        int r = 0;
        assert_int_equal(outq_init(&q, c->cap), 0);
        for (int k = 0; k < c->n; k++)
            r = outq_push(&q, &c->msgs[k]);
        drain_queue(&q, got, sizeof(got));
        if (r != c->last_result || strcmp(got, c->queue) != 0)
            fail_msg("%s: result %d (want %d), queue \"%s\" (want \"%s\")", c->name, r,
                     c->last_result, got, c->queue);
    }
}

static void outqueue_limits(void **state)
{
    (void)state;
    struct outqueue q;
    struct bp_msg hello = {.type = BP_MSG_HELLO};
    assert_int_equal(outq_init(&q, OUTQ_MIN - 1), -EINVAL);
    assert_int_equal(outq_init(&q, OUTQ_MAX + 1), -EINVAL);
    assert_int_equal(outq_init(&q, OUTQ_MIN), 0);
    assert_int_equal(outq_push(&q, &hello), -EINVAL);
    assert_false(outq_pop(&q, &hello));
    /* A storm never grows the queue past its capacity, and never loses the critical. */
    struct bp_msg crit = pressure(VMP, CRIT, 0);
    outq_push(&q, &crit);
    for (int i = 1; i < 1000; i++) {
        struct bp_msg m = pressure(i % 2 ? PSI : VMP, (enum bp_level)(1 + i % 2), (uint64_t)i);
        outq_push(&q, &m);
        struct bp_msg r = report((uint64_t)i);
        outq_push(&q, &r);
        assert_true(q.len <= OUTQ_MIN);
    }
    struct bp_msg first;
    assert_true(outq_pop(&q, &first));
    assert_int_equal(first.u.pressure.level, CRIT);
}

/* --- coalescer --- */

enum op { EVENT, TICK, REPORT, DRAIN, DEADLINE, WELCOME, END };

struct step {
    uint64_t t_ms;
    enum op op;
    int a, b;          /* EVENT: source, level; WELCOME: interval ms, levels */
    int expect;        /* EVENT: verdict; TICK: report due; DEADLINE: ms (-1: never) */
    const char *queue; /* DRAIN: what comes out */
};

static void run_steps(const char *name, const struct co_config *cfg, const struct step *steps)
{
    struct coalescer c;
    struct bp_mem mem = {.mem_total_kb = 1000};
    assert_int_equal(co_init(&c, cfg, 0), 0);
    for (int i = 0; steps[i].op != END; i++) {
        const struct step *s = &steps[i];
        uint64_t now = s->t_ms * MS;
        int got = 0;
        char q[512] = "";
        switch (s->op) {
        case EVENT:
            got = co_event(&c, (enum bp_source)s->a, (enum bp_level)s->b, now, &mem);
            break;
        case TICK:
            got = co_tick(&c, now);
            break;
        case REPORT:
            co_report(&c, now, &mem);
            continue;
        case WELCOME:
            co_apply_welcome(&c, (uint32_t)s->a, (uint32_t)s->b, now);
            continue;
        case DEADLINE: {
            uint64_t d = co_next_deadline(&c);
            got = d == CO_NEVER ? -1 : (int)(d / MS);
            break;
        }
        case DRAIN: {
            struct bp_msg m;
            while (co_pop(&c, &m)) {
                char one[64];
                render(&m, one, sizeof(one));
                if (q[0])
                    strcat(q, " ");
                strcat(q, one);
            }
            if (strcmp(q, s->queue) != 0)
                fail_msg("%s, step %d (t=%llu): queue \"%s\", want \"%s\"", name, i,
                         (unsigned long long)s->t_ms, q, s->queue);
            continue;
        }
        case END:
            break;
        }
        if (got != s->expect)
            fail_msg("%s, step %d (t=%llu, op %d): got %d, want %d", name, i,
                     (unsigned long long)s->t_ms, s->op, got, s->expect);
    }
}

static const struct co_config base = {
    .repeat_ns = 1000 * MS,
    .critical_repeat_ns = 100 * MS,
    .report_ns = 5000 * MS,
    .quiet_ns = 3000 * MS,
    .levels = 0,
    .queue_cap = 8,
};

static void coalesce_changes_and_critical_immediate(void **state)
{
    (void)state;
    const struct step steps[] = {
        {0, DEADLINE, 0, 0, 5000, NULL}, /* first heartbeat */
        {10, EVENT, PSI, LOW, CO_QUEUED, NULL},
        {20, EVENT, PSI, MED, CO_QUEUED, NULL},    /* a rise: at once */
        {30, EVENT, PSI, CRIT, CO_QUEUED, NULL},   /* the agent's first critical: at once */
        {50, EVENT, PSI, LOW, CO_DEFERRED, NULL},  /* a fall: a second after medium@20 */
        {60, EVENT, VMP, LOW, CO_QUEUED, NULL},    /* each source on its own */
        {70, EVENT, VMP, CRIT, CO_DEFERRED, NULL}, /* the agent sent a critical 40 ms ago */
        {70, DRAIN, 0, 0, 0, "psi/low@10 psi/medium@20 psi/critical@30 vmp/low@60"},
        {70, DEADLINE, 0, 0, 130, NULL},
        {130, TICK, 0, 0, false, NULL},
        {130, DRAIN, 0, 0, 0, "vmp/critical@70"},
        {130, DEADLINE, 0, 0, 1020, NULL},
        {1019, TICK, 0, 0, false, NULL},
        {1019, DRAIN, 0, 0, 0, ""},
        {1020, TICK, 0, 0, false, NULL},
        {1020, DRAIN, 0, 0, 0, "psi/low@50"},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("changes", &base, steps);
}

static void coalesce_repeats_rate_limited(void **state)
{
    (void)state;
    const struct step steps[] = {
        {0, EVENT, VMP, LOW, CO_QUEUED, NULL},
        {100, EVENT, VMP, LOW, CO_DEFERRED, NULL},
        {200, EVENT, VMP, LOW, CO_DEFERRED, NULL}, /* replaces the one from 100 */
        {200, DEADLINE, 0, 0, 1000, NULL},         /* the rate limit ends */
        {999, TICK, 0, 0, false, NULL},
        {999, DRAIN, 0, 0, 0, "vmp/low@0"},
        {1000, TICK, 0, 0, false, NULL},
        {1000, DRAIN, 0, 0, 0, "vmp/low@200"}, /* the newest repeat, once */
        {1500, EVENT, VMP, LOW, CO_DEFERRED, NULL},
        {2000, TICK, 0, 0, false, NULL},
        {2000, DRAIN, 0, 0, 0, "vmp/low@1500"},
        {3500, EVENT, VMP, LOW, CO_QUEUED, NULL}, /* the interval has passed: at once */
        {3500, DRAIN, 0, 0, 0, "vmp/low@3500"},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("repeats", &base, steps);
}

static void coalesce_critical_storm(void **state)
{
    (void)state;
    /* vmpressure can signal critical hundreds of times a second: one message per 100 ms,
     * the first at once, the newest of each interval at its end. */
    const struct step steps[] = {
        {0, EVENT, VMP, CRIT, CO_QUEUED, NULL},
        {0, DRAIN, 0, 0, 0, "vmp/critical@0"},
        {5, EVENT, VMP, CRIT, CO_DEFERRED, NULL},
        {50, EVENT, VMP, CRIT, CO_DEFERRED, NULL},
        {99, EVENT, VMP, CRIT, CO_DEFERRED, NULL},
        {99, DEADLINE, 0, 0, 100, NULL},
        {100, TICK, 0, 0, false, NULL},
        {100, DRAIN, 0, 0, 0, "vmp/critical@99"},
        {150, EVENT, VMP, CRIT, CO_DEFERRED, NULL},
        /* A fall: at once, as nothing but criticals was sent (criticals do not hold a fall
         * back: the real vmpressure test's criticals every 100 ms once kept its low from
         * ever going); the held critical is stale. */
        {160, EVENT, VMP, MED, CO_QUEUED, NULL},
        {170, EVENT, VMP, CRIT, CO_DEFERRED, NULL}, /* within 100 ms of the last critical */
        {175, EVENT, PSI, CRIT, CO_DEFERRED, NULL}, /* from the other source too */
        {180, EVENT, VMP, LOW, CO_DEFERRED, NULL},  /* a fall a second after medium@160 */
        {180, EVENT, VMP, CRIT, CO_DEFERRED, NULL}, /* newer than that low: it replaces it */
        {180, DEADLINE, 0, 0, 200, NULL},
        {200, TICK, 0, 0, false, NULL},
        {200, DRAIN, 0, 0, 0, "vmp/medium@160 vmp/critical@180"}, /* one critical per 100 ms */
        {200, DEADLINE, 0, 0, 300, NULL},
        {300, TICK, 0, 0, false, NULL},
        {300, DRAIN, 0, 0, 0, "psi/critical@175"},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("critical storm", &base, steps);
    /* With a critical interval of 0 every critical goes at once. */
    struct co_config every = base;
    every.critical_repeat_ns = 0;
    const struct step all[] = {
        {0, EVENT, VMP, CRIT, CO_QUEUED, NULL},
        {1, EVENT, VMP, CRIT, CO_QUEUED, NULL},
        {2, EVENT, VMP, CRIT, CO_QUEUED, NULL},
        {2, DRAIN, 0, 0, 0, "vmp/critical@2"}, /* queued ones of the same kind replace */
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("every critical", &every, all);
}

/* The worst an honest agent sends: both sources signalling a random level every
 * millisecond for a minute, heartbeats due every 5 s. In every second it queues at most 20
 * messages, the host's default frame budget (guest_frame_rate = 20, a burst of 40:
 * docs/configuration.md), so the host never drops one of its frames (a late guest's agent
 * once had 10 frames dropped over the budget in a quality run). And each source's last
 * level reaches the queue: nothing is lost for good. */
static void coalesce_storm_stays_inside_the_host_budget(void **state)
{
    (void)state;
    struct coalescer c;
    struct bp_mem mem = {.mem_total_kb = 1000};
    struct co_config cfg = base;
    assert_int_equal(co_init(&c, &cfg, 0), 0);
    uint64_t seed = 0x2545F4914F6CDD1Dull;
    unsigned per_ms[61000] = {0};
    enum bp_level last[BP_SOURCE_COUNT] = {BP_LEVEL_NONE, BP_LEVEL_NONE};
    enum bp_level seen[BP_SOURCE_COUNT] = {BP_LEVEL_NONE, BP_LEVEL_NONE};
    for (uint64_t t = 0; t < 61000; t++) {
        uint64_t now = t * MS;
        for (int src = 0; src < BP_SOURCE_COUNT && t < 60000; src++) {
            seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
            last[src] = (enum bp_level)(BP_LEVEL_LOW + seed % 3);
            co_event(&c, (enum bp_source)src, last[src], now, &mem);
        }
        if (co_tick(&c, now))
            co_report(&c, now, &mem);
        struct bp_msg m;
        while (co_pop(&c, &m)) {
            per_ms[t]++;
            if (m.type == BP_MSG_PRESSURE)
                seen[m.u.pressure.source] = m.u.pressure.level;
        }
    }
    unsigned window = 0, worst = 0, total = 0;
    for (size_t t = 0; t < 61000; t++) {
        window += per_ms[t];
        total += per_ms[t];
        if (t >= 1000)
            window -= per_ms[t - 1000];
        if (window > worst)
            worst = window;
    }
    print_message("storm: %u messages in 61 s, at most %u in one second\n", total, worst);
    assert_true(worst <= 20);
    for (int src = 0; src < BP_SOURCE_COUNT; src++)
        assert_int_equal(seen[src], last[src]);
}

static void coalesce_change_drops_stale_repeat(void **state)
{
    (void)state;
    const struct step steps[] = {
        {0, EVENT, PSI, MED, CO_QUEUED, NULL},
        {300, EVENT, PSI, MED, CO_DEFERRED, NULL},
        {400, EVENT, PSI, CRIT, CO_QUEUED, NULL}, /* the held medium is older news */
        {1000, TICK, 0, 0, false, NULL},
        {1000, DRAIN, 0, 0, 0, "psi/medium@0 psi/critical@400"},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("stale repeat", &base, steps);
}

static void coalesce_heartbeat_and_quiet(void **state)
{
    (void)state;
    const struct step steps[] = {
        {4999, TICK, 0, 0, false, NULL},
        {5000, TICK, 0, 0, true, NULL}, /* heartbeat due */
        {5000, REPORT, 0, 0, 0, NULL},
        {5000, DEADLINE, 0, 0, 10000, NULL},
        {6000, EVENT, VMP, MED, CO_QUEUED, NULL},
        {6000, DEADLINE, 0, 0, 9000, NULL}, /* the level goes quiet at 6000 + 3000 */
        {7000, REPORT, 0, 0, 0, NULL},      /* a report carries the current level */
        {8999, TICK, 0, 0, false, NULL},
        {9000, TICK, 0, 0, true, NULL}, /* quiet again: a report at once */
        {9000, REPORT, 0, 0, 0, NULL},
        {9000, DRAIN, 0, 0, 0, "vmp/medium@6000 report:none@9000"},
        {9000, DEADLINE, 0, 0, 14000, NULL},
        {9500, EVENT, VMP, MED, CO_QUEUED, NULL}, /* after quiet, the same level is news */
        {9500, DRAIN, 0, 0, 0, "vmp/medium@9500"},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("heartbeat", &base, steps);
    /* The report at 7000 was replaced by the one at 9000 (same kind): check the level. */
    struct coalescer c;
    struct bp_mem mem = {0};
    struct bp_msg m;
    co_init(&c, &base, 0);
    co_event(&c, VMP, MED, 6000 * MS, &mem);
    co_event(&c, PSI, CRIT, 6100 * MS, &mem);
    assert_int_equal(co_level(&c), CRIT);
    co_report(&c, 6200 * MS, &mem);
    co_pop(&c, &m);
    co_pop(&c, &m);
    assert_true(co_pop(&c, &m));
    assert_int_equal(m.type, BP_MSG_REPORT);
    assert_int_equal(m.u.report.level, CRIT);
}

static void coalesce_welcome(void **state)
{
    (void)state;
    const struct step steps[] = {
        /* Only medium and critical wanted, heartbeat every 2 s. */
        {100, WELCOME, 2000, (1 << MED) | (1 << CRIT), 0, NULL},
        {100, DEADLINE, 0, 0, 2100, NULL},
        {200, EVENT, PSI, LOW, CO_FILTERED, NULL},
        {300, EVENT, PSI, MED, CO_QUEUED, NULL},
        {2100, TICK, 0, 0, true, NULL},
        {2100, REPORT, 0, 0, 0, NULL},
        {2100, DRAIN, 0, 0, 0, "psi/medium@300 report:medium@2100"},
        /* 0 keeps the interval, levels 0 means all again. */
        {3000, WELCOME, 0, 0, 0, NULL},
        {3000, DEADLINE, 0, 0, 3300, NULL}, /* quiet at 300 + 3000 comes first */
        {3100, EVENT, PSI, LOW, CO_QUEUED, NULL},
        {3100, DEADLINE, 0, 0, 5000, NULL}, /* heartbeat 3000 + 2000 */
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("welcome", &base, steps);
}

static void coalesce_no_heartbeat(void **state)
{
    (void)state;
    struct co_config cfg = base;
    cfg.report_ns = 0;
    const struct step steps[] = {
        {0, DEADLINE, 0, 0, -1, NULL},
        {100000, TICK, 0, 0, false, NULL},
        {END, END, 0, 0, 0, NULL},
    };
    run_steps("no heartbeat", &cfg, steps);
}

static void coalesce_bad_input(void **state)
{
    (void)state;
    struct coalescer c;
    struct bp_mem mem = {0};
    struct co_config cfg = base;
    co_init(&c, &base, 0);
    assert_int_equal(co_event(&c, VMP, BP_LEVEL_NONE, 0, &mem), -EINVAL);
    assert_int_equal(co_event(&c, (enum bp_source)7, LOW, 0, &mem), -EINVAL);
    assert_int_equal(co_event(&c, VMP, (enum bp_level)4, 0, &mem), -EINVAL);
    cfg.queue_cap = 1;
    assert_int_equal(co_init(&c, &cfg, 0), -EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(outqueue_table),
        cmocka_unit_test(outqueue_limits),
        cmocka_unit_test(coalesce_changes_and_critical_immediate),
        cmocka_unit_test(coalesce_repeats_rate_limited),
        cmocka_unit_test(coalesce_critical_storm),
        cmocka_unit_test(coalesce_storm_stays_inside_the_host_budget),
        cmocka_unit_test(coalesce_change_drops_stale_repeat),
        cmocka_unit_test(coalesce_heartbeat_and_quiet),
        cmocka_unit_test(coalesce_welcome),
        cmocka_unit_test(coalesce_no_heartbeat),
        cmocka_unit_test(coalesce_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
