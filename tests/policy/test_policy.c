/* The balloon policy, rule by rule, with stepped time: table-driven scenarios, host
 * reclaim order, properties over random inputs, and simulated hours of a guest whose
 * kernel hurts below a size the policy does not know. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/policy/policy.h"
#include "tests/policy/drive.h"

#define MIB POLICY_MIB
#define GIB (1024 * MIB)
#define SEC 1000
#define MIN (60 * SEC)

/* What the guest's kernel keeps to itself in these tests: actual - MemTotal. */
#define OVERHEAD (32 * MIB)

/* Default steps for a 4 GiB ceiling: max(bytes, pct of 4 GiB). */
#define CRIT_STEP (1 * GIB)             /* 25 % */
#define MEDIUM_STEP UINT64_C(429496729) /* 10 % */
#define INFLATE_STEP UINT64_C(85899345) /* 2 % */
#define HOST_STEP UINT64_C(214748364)   /* 5 % */

/* A snapshot of a guest using used_bytes while its balloon is at actual. */
static struct bp_mem snapshot(uint64_t actual, uint64_t used_bytes)
{
    struct bp_mem m = {0};
    uint64_t total = actual - OVERHEAD;
    m.mem_total_kb = total / 1024;
    m.mem_available_kb = total > used_bytes ? (total - used_bytes) / 1024 : 0;
    m.mem_free_kb = m.mem_available_kb / 2;
    return m;
}

/* used * (1 + pct/100) + overhead, as the policy computes it (exact for the sizes used). */
#define NEED(used, pct) ((used) + (used) * (pct) / 100 + OVERHEAD)

static struct policy_decision decide1(const struct policy_config *cfg, struct policy_host *host,
                                      struct policy_guest *g, int64_t now)
{
    struct policy_decision d;
    policy_decide(cfg, host, g, 1, now, &d);
    return d;
}

/* Default tunables, a host with no reading, and one guest of weight 100 whose balloon is
 * known at actual from t=0. */
static void one_guest(struct policy_config *cfg, struct policy_host *host, struct policy_guest *g,
                      uint64_t floor, uint64_t ceiling, uint64_t actual)
{
    policy_config_defaults(cfg);
    policy_host_init(host);
    policy_guest_init(g, floor, ceiling, 100);
    policy_note_actual(cfg, g, actual, 0);
}

/* ---------------- table-driven scenarios ---------------- */

enum op {
    OP_END = 0,
    OP_EVENT,           /* pressure event of .level, no snapshot */
    OP_REPORT,          /* report of .level with a snapshot: the guest uses .bytes */
    OP_ACTUAL,          /* the balloon reports .bytes */
    OP_FORGET,          /* QMP link lost */
    OP_DELIVERED,       /* the backend accepted the last move's command */
    OP_EXPECT,          /* decide: expect .action/.reason (and .bytes as target unless 0); a move
                         * is committed and the balloon arrives at once */
    OP_EXPECT_NOARRIVE, /* same, but the balloon stays where it was */
    OP_PAUSE,           /* paused = .level */
    OP_LIMITS,          /* floor = .bytes, ceiling = .bytes2 */
    OP_HOST,            /* host: psi .level, avail .bytes of 64 GiB */
    OP_SET,             /* policy_config_set(.key, .bytes in decimal) */
};

struct step {
    int64_t t;
    enum op op;
    int level;
    uint64_t bytes;
    enum policy_action action;
    enum policy_reason reason;
    uint64_t bytes2;
    const char *key;
};

struct scenario {
    const char *name;
    uint64_t floor, ceiling, actual; /* actual 0: unknown at start */
    struct step steps[40];
};

/* The steps and scenarios are laid out by hand, one step per macro, a few to a line. */
/* clang-format off */
#define EV(t, lvl) {t, OP_EVENT, BP_LEVEL_##lvl, 0, 0, 0, 0, NULL}
#define REPORT(t, lvl, used) {t, OP_REPORT, BP_LEVEL_##lvl, used, 0, 0, 0, NULL}
#define ACTUAL(t, b) {t, OP_ACTUAL, 0, b, 0, 0, 0, NULL}
#define FORGET(t) {t, OP_FORGET, 0, 0, 0, 0, 0, NULL}
#define DELIVERED(t) {t, OP_DELIVERED, 0, 0, 0, 0, 0, NULL}
#define EXPECT(t, act, why, to) {t, OP_EXPECT, 0, to, POLICY_##act, POLICY_R_##why, 0, NULL}
#define EXPECT_NOARRIVE(t, act, why, to) \
    {t, OP_EXPECT_NOARRIVE, 0, to, POLICY_##act, POLICY_R_##why, 0, NULL}
#define PAUSE(t, on) {t, OP_PAUSE, on, 0, 0, 0, 0, NULL}
#define LIMITS(t, lo, hi) {t, OP_LIMITS, 0, lo, 0, 0, hi, NULL}
#define HOST(t, psi, avail) {t, OP_HOST, psi, avail, 0, 0, 0, NULL}
#define SET(key, value) {0, OP_SET, 0, value, 0, 0, 0, key}

static const struct scenario scenarios[] = {
    {"unknown actual holds, even when critical", 1 * GIB, 4 * GIB, 0, {
        EV(1000, CRITICAL),
        EXPECT(1000, HOLD, UNKNOWN_ACTUAL, 0),
        ACTUAL(1500, 2 * GIB),
        EXPECT(1500, DEFLATE, CRITICAL, 2 * GIB + CRIT_STEP),
        FORGET(1600),
        EV(5000, CRITICAL),
        EXPECT(5000, HOLD, UNKNOWN_ACTUAL, 0),
    }},
    {"paused holds", 1 * GIB, 4 * GIB, 2 * GIB, {
        PAUSE(0, 1),
        EV(1000, CRITICAL),
        EXPECT(1000, HOLD, PAUSED, 0),
        PAUSE(1100, 0),
        EXPECT(1100, DEFLATE, CRITICAL, 3 * GIB),
    }},
    {"critical deflates at once by the large step", 1 * GIB, 4 * GIB, 2 * GIB, {
        EV(1000, CRITICAL),
        EXPECT(1000, DEFLATE, CRITICAL, 3 * GIB),
    }},
    {"critical burst gives one deflate per window", 1 * GIB, 8 * GIB, 2 * GIB, {
        EV(1000, CRITICAL),
        EXPECT(1000, DEFLATE, CRITICAL, 4 * GIB), /* 25 % of 8 GiB */
        EV(1100, CRITICAL), EXPECT(1100, HOLD, CRITICAL_ECHO, 0),
        EV(1500, CRITICAL), EXPECT(1500, HOLD, CRITICAL_ECHO, 0),
        EV(2900, CRITICAL), EXPECT(2900, HOLD, CRITICAL_ECHO, 0),
        EXPECT(3100, HOLD, CRITICAL_ECHO, 0), /* window over, but no new event */
        EV(3200, CRITICAL),
        EXPECT(3200, DEFLATE, CRITICAL, 6 * GIB),
    }},
    {"critical at the ceiling holds", 1 * GIB, 4 * GIB, 4 * GIB, {
        EV(1000, CRITICAL),
        EXPECT(1000, HOLD, AT_CEILING, 0),
    }},
    {"critical near the ceiling stops at it", 1 * GIB, 4 * GIB, 3 * GIB + 512 * MIB, {
        EV(1000, CRITICAL),
        EXPECT(1000, DEFLATE, CRITICAL, 4 * GIB),
    }},
    {"critical below the floor lands at least on the floor", 3 * GIB + 512 * MIB, 4 * GIB,
     2 * GIB, {
        EV(1000, CRITICAL),
        EXPECT(1000, DEFLATE, CRITICAL, 3 * GIB + 512 * MIB),
    }},
    {"critical adds to a deflate still in flight", 1 * GIB, 8 * GIB, 2 * GIB, {
        EV(0, CRITICAL),
        EXPECT_NOARRIVE(0, DEFLATE, CRITICAL, 4 * GIB),
        EV(2500, CRITICAL),
        EXPECT_NOARRIVE(2500, DEFLATE, CRITICAL, 6 * GIB),
    }},
    {"sustained medium deflates after the dwell, then needs a new dwell", 1 * GIB, 4 * GIB,
     2 * GIB, {
        EV(0, MEDIUM), EXPECT(0, HOLD, DWELL, 0),
        EV(1000, MEDIUM), EXPECT(1000, HOLD, DWELL, 0),
        EV(2999, MEDIUM), EXPECT(2999, HOLD, DWELL, 0),
        EV(3000, MEDIUM), EXPECT(3000, DEFLATE, MEDIUM, 2 * GIB + MEDIUM_STEP),
        EV(4000, MEDIUM), EXPECT(4000, HOLD, DWELL, 0),
        EV(6000, MEDIUM), EXPECT(6000, DEFLATE, MEDIUM, 2 * GIB + 2 * MEDIUM_STEP),
    }},
    {"one medium event is not sustained", 1 * GIB, 4 * GIB, 2 * GIB, {
        EV(0, MEDIUM),
        EXPECT(5000, HOLD, DWELL, 0),
        EXPECT(10000, HOLD, NOT_QUIET, 0), /* decayed to low */
        EXPECT(30000, HOLD, NOT_QUIET, 0), /* none, but not quiet for long */
    }},
    {"a medium run broken by decay starts a new dwell", 1 * GIB, 4 * GIB, 2 * GIB, {
        EV(0, MEDIUM),
        EV(25000, MEDIUM), EXPECT(25000, HOLD, DWELL, 0),
        EV(28000, MEDIUM), EXPECT(28000, DEFLATE, MEDIUM, 2 * GIB + MEDIUM_STEP),
    }},
    {"medium reports count as sustained medium", 1 * GIB, 4 * GIB, 2 * GIB, {
        REPORT(0, MEDIUM, 1 * GIB),
        REPORT(5000, MEDIUM, 1 * GIB),
        EXPECT(5000, DEFLATE, MEDIUM, 2 * GIB + MEDIUM_STEP),
    }},
    {"a fresh guest is not inflated before the quiet time", 1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(0, NONE, 1 * GIB),
        EXPECT(1000, HOLD, NOT_QUIET, 0),
        REPORT(59000, NONE, 1 * GIB),
        EXPECT(59999, HOLD, NOT_QUIET, 0),
        EXPECT(60000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"quiet inflate by small steps, each after the interval and a new snapshot",
     1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(120000, NONE, 1 * GIB),
        EXPECT(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        EXPECT(125000, HOLD, INTERVAL, 0),
        EXPECT(130000, HOLD, NO_SNAPSHOT, 0), /* the snapshot predates the move */
        REPORT(131000, NONE, 1 * GIB),
        EXPECT(131000, INFLATE, QUIET, 4 * GIB - 2 * INFLATE_STEP),
    }},
    {"no snapshot, no inflate; a stale one neither", 1 * GIB, 4 * GIB, 4 * GIB, {
        EXPECT(200000, HOLD, NO_SNAPSHOT, 0),
        REPORT(200000, NONE, 1 * GIB),
        EXPECT(230001, HOLD, NO_SNAPSHOT, 0),
        EXPECT(230000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"inflate stops at the buffer over used memory", 1 * GIB, 4 * GIB,
     NEED(2560 * MIB, 20) + 50 * MIB, {
        REPORT(120000, NONE, 2560 * MIB),
        EXPECT(120000, INFLATE, QUIET, NEED(2560 * MIB, 20)),
        REPORT(140000, NONE, 2560 * MIB),
        EXPECT(140000, HOLD, AT_FLOOR, 0),
    }},
    {"inflate within the dead band of the buffer holds", 1 * GIB, 4 * GIB,
     NEED(2560 * MIB, 20) + 10 * MIB, {
        REPORT(120000, NONE, 2560 * MIB),
        EXPECT(120000, HOLD, AT_FLOOR, 0),
    }},
    {"inflate stops at the floor", 3 * GIB, 4 * GIB, 3 * GIB + 50 * MIB, {
        REPORT(120000, NONE, 512 * MIB),
        EXPECT(120000, INFLATE, QUIET, 3 * GIB),
        REPORT(140000, NONE, 512 * MIB),
        EXPECT(140000, HOLD, AT_FLOOR, 0),
    }},
    {"low pressure does not keep a guest from being inflated", 1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(0, NONE, 1 * GIB),
        EV(100000, LOW),
        REPORT(100000, LOW, 1 * GIB),
        EXPECT(100000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"without a PSI measure, medium keeps a guest from being inflated for the quiet time",
     1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(0, NONE, 1 * GIB),
        EV(100000, MEDIUM),
        REPORT(150000, NONE, 1 * GIB),
        EXPECT(150000, HOLD, NOT_QUIET, 0),
        REPORT(160000, NONE, 1 * GIB),
        EXPECT(160000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"cooldown after a deflate before any inflate", 1 * GIB, 4 * GIB, 2 * GIB, {
        EV(0, CRITICAL),
        EXPECT(0, DEFLATE, CRITICAL, 3 * GIB),
        REPORT(150000, NONE, 512 * MIB),
        EXPECT(150000, HOLD, COOLDOWN, 0),
        REPORT(199999, NONE, 512 * MIB),
        EXPECT(199999, HOLD, COOLDOWN, 0),
        EXPECT(200000, INFLATE, QUIET, 3 * GIB - INFLATE_STEP),
    }},
    {"the size a guest hurt at is not taken again for a while", 1 * GIB, 4 * GIB, 2 * GIB, {
        EV(60000, CRITICAL),
        EXPECT(60000, DEFLATE, CRITICAL, 3 * GIB), /* hurt at 2 GiB */
        ACTUAL(260000, 2 * GIB + INFLATE_STEP + 10 * MIB), /* as if many steps went by */
        REPORT(360000, NONE, 512 * MIB),
        EXPECT(360000, HOLD, AT_FLOOR, 0),
        REPORT(659000, NONE, 512 * MIB),
        EXPECT(659999, HOLD, AT_FLOOR, 0),
        EXPECT(660000, INFLATE, QUIET, 2 * GIB + 10 * MIB), /* hurt forgotten after 10 min */
    }},
    {"a size it hurt at while just known (its boot) is not remembered", 1 * GIB, 4 * GIB,
     2 * GIB, {
        REPORT(59998, NONE, 512 * MIB), /* known since 0: just known for quiet_ms */
        EV(59999, CRITICAL),
        EXPECT(59999, DEFLATE, CRITICAL, 3 * GIB), /* 512 MiB in use: the rest was cache */
        ACTUAL(260000, 2 * GIB + INFLATE_STEP + 10 * MIB),
        REPORT(360000, NONE, 512 * MIB),
        EXPECT(360000, INFLATE, QUIET, 2 * GIB + 10 * MIB),
    }},
    {"... unless the guest used that size: an allocation, not boot's cache", 1 * GIB, 4 * GIB,
     2 * GIB, {
        REPORT(59998, NONE, 2 * GIB - OVERHEAD - 100 * MIB), /* 100 MiB available */
        EV(59999, CRITICAL),
        EXPECT(59999, DEFLATE, CRITICAL, 3 * GIB), /* hurt at 2 GiB */
        ACTUAL(260000, 2 * GIB + INFLATE_STEP + 10 * MIB),
        REPORT(360000, NONE, 512 * MIB),
        EXPECT(360000, HOLD, AT_FLOOR, 0),
        REPORT(659000, NONE, 512 * MIB),
        EXPECT(659999, INFLATE, QUIET, 2 * GIB + 10 * MIB), /* forgotten after 10 min */
    }},
    {"a guest that flips direction waits twice as long", 1 * GIB, 4 * GIB, 4 * GIB, {
        SET("hurt_memory_ms", 0), /* only the backoff holds it back here */
        REPORT(120000, NONE, 512 * MIB),
        EXPECT(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        EV(130000, CRITICAL), /* inflate -> deflate: one flip */
        EXPECT(130000, DEFLATE, CRITICAL, 4 * GIB),
        REPORT(330000, NONE, 512 * MIB),
        EXPECT(330000, HOLD, BACKOFF, 0), /* 200 s passed, 400 s needed */
        REPORT(530000, NONE, 512 * MIB),
        EXPECT(530000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP), /* second flip */
        EV(540000, CRITICAL),
        EXPECT(540000, DEFLATE, CRITICAL, 4 * GIB), /* third flip: 8 x 200 s */
        REPORT(540000 + 1599000, NONE, 512 * MIB),
        EXPECT(540000 + 1599000, HOLD, BACKOFF, 0),
        REPORT(540000 + 1600000, NONE, 512 * MIB),
        EXPECT(540000 + 1600000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"a move on its way is waited for while it keeps pace, up to the settle timeout",
     1 * GIB, 4 * GIB, 4 * GIB, {
        SET("stuck_rate_bytes", 1 * MIB), /* 82 MiB: 1 MiB/s keeps pace for 30 s */
        REPORT(120000, NONE, 512 * MIB),
        EXPECT_NOARRIVE(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        ACTUAL(125000, 4 * GIB - 10 * MIB),
        REPORT(135000, NONE, 512 * MIB),
        ACTUAL(135000, 4 * GIB - 20 * MIB),
        EXPECT(135000, HOLD, SETTLING, 0),
        ACTUAL(145000, 4 * GIB - 30 * MIB),
        EXPECT(149999, HOLD, SETTLING, 0),
        /* The balloon never got there; after 30 s it is stuck: skipped for 5 minutes. */
        EXPECT(150000, HOLD, STUCK, 0),
        REPORT(419000, NONE, 512 * MIB),
        EXPECT(419999, HOLD, STUCK, 0),
        EXPECT(420000, INFLATE, QUIET, 4 * GIB - 30 * MIB - INFLATE_STEP),
    }},
    {"a balloon that does not move is stuck after the check time; twice, skipped twice as long",
     1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(120000, NONE, 512 * MIB),
        EXPECT_NOARRIVE(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        REPORT(124000, NONE, 512 * MIB),
        EXPECT(124999, HOLD, SETTLING, 0),
        EXPECT(125000, HOLD, STUCK, 0),   /* no progress at all after 5 s */
        REPORT(420000, NONE, 512 * MIB),
        EXPECT_NOARRIVE(420000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        REPORT(425000, NONE, 512 * MIB),
        EXPECT(425000, HOLD, STUCK, 0),
        REPORT(1019000, NONE, 512 * MIB),
        EXPECT(1019999, HOLD, STUCK, 0), /* 10 minutes the second time */
        EXPECT(1020000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
    }},
    {"a move whose command was held (libvirtd frozen) is judged from its delivery",
     1 * GIB, 4 * GIB, 512 * MIB, {
        EXPECT_NOARRIVE(0, DEFLATE, BELOW_FLOOR, 1 * GIB),
        DELIVERED(10000), /* libvirtd answered 10 s late */
        EXPECT(14999, HOLD, SETTLING, 0), /* on its way: not decided again */
        EXPECT(15000, DEFLATE, BELOW_FLOOR, 1 * GIB), /* 5 s after delivery, no progress */
    }},
    {"a balloon faking slow progress is stuck", 1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(120000, NONE, 512 * MIB),
        EXPECT_NOARRIVE(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP),
        ACTUAL(121000, 4 * GIB - 1 * MIB),
        ACTUAL(124000, 4 * GIB - 2 * MIB),
        EXPECT(124999, HOLD, SETTLING, 0),
        EXPECT(125000, HOLD, STUCK, 0), /* 2 MiB in 5 s: under 15 MB/s */
    }},
    {"a target reached and then moved by someone else is not on its way", 1 * GIB, 4 * GIB,
     4 * GIB, {
        REPORT(120000, NONE, 512 * MIB),
        EXPECT(120000, INFLATE, QUIET, 4 * GIB - INFLATE_STEP), /* arrives */
        ACTUAL(121000, 3 * GIB),                                /* the operator's doing */
        REPORT(131000, NONE, 512 * MIB),
        EXPECT_NOARRIVE(131000, INFLATE, QUIET, 3 * GIB - INFLATE_STEP),
        ACTUAL(132000, 3 * GIB + 256 * MIB), /* moved away from the target: over */
        REPORT(142000, NONE, 512 * MIB),
        EXPECT(142000, INFLATE, QUIET, 3 * GIB + 256 * MIB - INFLATE_STEP),
    }},
    {"medium waits for a move on its way; critical does not", 1 * GIB, 8 * GIB, 2 * GIB, {
        EV(0, MEDIUM), EV(3000, MEDIUM),
        EXPECT_NOARRIVE(3000, DEFLATE, MEDIUM, 2 * GIB + 858993459),
        EV(4000, MEDIUM), EV(7000, MEDIUM),
        EXPECT(7000, HOLD, SETTLING, 0),
        EV(7100, CRITICAL),
        EXPECT(7100, DEFLATE, CRITICAL, 2 * GIB + 858993459 + 2 * GIB),
    }},
    {"below the floor: back to it", 1 * GIB, 4 * GIB, 512 * MIB, {
        EXPECT(0, DEFLATE, BELOW_FLOOR, 1 * GIB),
        EXPECT(1000, HOLD, NOT_QUIET, 0),
    }},
    {"a floor missed by less than a page is not crossed", 1 * GIB, 4 * GIB,
     1 * GIB - 4095, {
        EXPECT(0, HOLD, NOT_QUIET, 0),
    }},
    {"above a lowered ceiling: back to it, even under pressure", 1 * GIB, 4 * GIB, 4 * GIB, {
        LIMITS(0, 1 * GIB, 3 * GIB),
        EV(0, CRITICAL),
        EXPECT(0, INFLATE, ABOVE_CEILING, 3 * GIB),
        EV(100, CRITICAL),
        EXPECT(100, HOLD, AT_CEILING, 0),
    }},
    {"free memory under the low buffer: deflate to the full buffer", 1 * GIB, 4 * GIB,
     2 * GIB, {
        REPORT(0, NONE, 1945 * MIB),
        EXPECT(0, DEFLATE, BUFFER, NEED(1945 * MIB, 20)),
        REPORT(10000, NONE, 1945 * MIB),
        EXPECT(10000, HOLD, NOT_QUIET, 0),
    }},
    {"no buffer deflate while the host is short", 1 * GIB, 4 * GIB, 2 * GIB, {
        HOST(0, 50, 32 * GIB),
        REPORT(0, NONE, 1945 * MIB),
        EXPECT(0, HOLD, NOT_QUIET, 0),
        HOST(1000, 0, 32 * GIB),
        EXPECT(1000, DEFLATE, BUFFER, NEED(1945 * MIB, 20)),
    }},
    {"host pressure reclaims from a quiet guest down to the host buffer", 1 * GIB, 4 * GIB,
     4 * GIB, {
        REPORT(0, NONE, 1 * GIB),
        HOST(1000, 20, 32 * GIB),
        EXPECT(1000, HOLD, NOT_QUIET, 0), /* known for less than quiet_ms: nobody takes */
        REPORT(60000, NONE, 1 * GIB),
        HOST(60000, 20, 32 * GIB), /* PSI only: one host step per round, after its own */
        EXPECT(60000, INFLATE, HOST_PRESSURE, 4 * GIB - INFLATE_STEP - HOST_STEP),
        HOST(61000, 20, 32 * GIB),
        EXPECT(61000, HOLD, INTERVAL, 0), /* the round's interval (and its own) not over */
    }},
    {"host pressure never takes from a guest under pressure", 1 * GIB, 4 * GIB, 4 * GIB, {
        REPORT(0, NONE, 1 * GIB),
        EV(500, MEDIUM),
        HOST(1000, 20, 1 * GIB),
        EXPECT(1000, HOLD, DWELL, 0),
    }},
    {0},
};
/* clang-format on */

static void run_scenario(void **state)
{
    const struct scenario *sc = *state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    assert_int_equal(policy_config_check(&cfg, NULL, 0), 0);
    policy_host_init(&host);
    policy_guest_init(&g, sc->floor, sc->ceiling, 100);
    if (sc->actual)
        policy_note_actual(&cfg, &g, sc->actual, 0);

    for (const struct step *s = sc->steps; s->op != OP_END; s++) {
        switch (s->op) {
        case OP_EVENT:
            policy_note_event(&cfg, &g, (enum bp_level)s->level, NULL, s->t);
            break;
        case OP_REPORT: {
            uint64_t at = g.actual_known ? g.actual_bytes : sc->ceiling;
            struct bp_mem m = snapshot(at, s->bytes);
            policy_note_report(&cfg, &g, (enum bp_level)s->level, &m, s->t);
            break;
        }
        case OP_ACTUAL:
            policy_note_actual(&cfg, &g, s->bytes, s->t);
            break;
        case OP_FORGET:
            policy_forget_actual(&g);
            break;
        case OP_DELIVERED:
            policy_note_delivered(&g, s->t);
            break;
        case OP_PAUSE:
            g.paused = s->level != 0;
            break;
        case OP_LIMITS:
            g.floor_bytes = s->bytes;
            g.ceiling_bytes = s->bytes2;
            break;
        case OP_HOST:
            policy_host_input(&host, s->level, 64 * GIB, s->bytes);
            break;
        case OP_SET: {
            char value[32];
            snprintf(value, sizeof(value), "%llu", (unsigned long long)s->bytes);
            assert_int_equal(policy_config_set(&cfg, s->key, value), 0);
            assert_int_equal(policy_config_check(&cfg, NULL, 0), 0);
            break;
        }
        case OP_EXPECT:
        case OP_EXPECT_NOARRIVE: {
            struct policy_decision d = decide1(&cfg, &host, &g, s->t);
            if (d.action != s->action || d.reason != s->reason ||
                (s->bytes && d.to_bytes != s->bytes))
                fail_msg("%s: at t=%lld expected %s/%s to %llu, got %s/%s %llu -> %llu", sc->name,
                         (long long)s->t, policy_action_name(s->action),
                         policy_reason_name(s->reason), (unsigned long long)s->bytes,
                         policy_action_name(d.action), policy_reason_name(d.reason),
                         (unsigned long long)d.from_bytes, (unsigned long long)d.to_bytes);
            if (d.action == POLICY_HOLD) {
                assert_int_equal(d.to_bytes, d.from_bytes);
                break;
            }
            policy_commit(&cfg, &g, &d, s->t);
            if (d.reason == POLICY_R_HOST_PRESSURE)
                policy_host_commit(&host, s->t);
            if (s->op == OP_EXPECT)
                policy_note_actual(&cfg, &g, d.to_bytes, s->t);
            break;
        }
        case OP_END:
            break;
        }
    }
}

/* ---------------- single rules outside the table ---------------- */

static void test_level_decays_one_step_per_period(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    policy_guest_init(&g, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_guest_level(&cfg, &g, 0), BP_LEVEL_NONE);
    policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, NULL, 1000);
    assert_int_equal(policy_guest_level(&cfg, &g, 1000), BP_LEVEL_CRITICAL);
    assert_int_equal(policy_guest_level(&cfg, &g, 10999), BP_LEVEL_CRITICAL);
    assert_int_equal(policy_guest_level(&cfg, &g, 11000), BP_LEVEL_MEDIUM);
    assert_int_equal(policy_guest_level(&cfg, &g, 21000), BP_LEVEL_LOW);
    assert_int_equal(policy_guest_level(&cfg, &g, 31000), BP_LEVEL_NONE);
    /* A low event later does not lower the level still held from the critical one. */
    policy_note_event(&cfg, &g, BP_LEVEL_LOW, NULL, 12000);
    assert_int_equal(policy_guest_level(&cfg, &g, 12000), BP_LEVEL_MEDIUM);
    assert_int_equal(policy_guest_level(&cfg, &g, 25000), BP_LEVEL_LOW);
    /* Junk levels from a guest are ignored. */
    policy_note_event(&cfg, &g, (enum bp_level)9, NULL, 40000);
    assert_int_equal(policy_guest_level(&cfg, &g, 40000), BP_LEVEL_NONE);
    assert_int_equal(g.last_event_at, 12000);
}

/* Guests 0..n-1 known for quiet_ms (the host may take from them), each with an inflate of
 * its own a second ago, so that none makes another this round (inflate_interval_ms): what
 * they give is what the host round takes. */
static void known_and_just_inflated(const struct policy_config *cfg, struct policy_guest *g,
                                    size_t n, int64_t now)
{
    for (size_t i = 0; i < n; i++) {
        if (g[i].known_since > now - cfg->quiet_ms)
            g[i].known_since = now - cfg->quiet_ms;
        g[i].last_inflate_at = now - 1000;
    }
}

/* Four guests under host pressure. Order: the lowest weight first, then among equal
 * weights the quietest (oldest last event); never the one under medium pressure, though
 * its weight is the lowest. */
static void test_host_reclaim_order(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g[4];
    struct policy_decision d[4];
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    const uint32_t weights[4] = {100, 100, 50, 10};
    for (int i = 0; i < 4; i++) {
        policy_guest_init(&g[i], 256 * MIB, 4 * GIB, weights[i]);
        policy_note_actual(&cfg, &g[i], 4 * GIB, 0);
        struct bp_mem m = snapshot(4 * GIB, 640 * MIB);
        policy_note_event(&cfg, &g[i], BP_LEVEL_NONE, &m, 0);
    }
    policy_note_event(&cfg, &g[0], BP_LEVEL_LOW, NULL, 50000);    /* quiet-ish, weight 100 */
    policy_note_event(&cfg, &g[1], BP_LEVEL_LOW, NULL, 1000);     /* quieter, weight 100 */
    policy_note_event(&cfg, &g[2], BP_LEVEL_LOW, NULL, 45000);    /* weight 50 */
    policy_note_event(&cfg, &g[3], BP_LEVEL_MEDIUM, NULL, 59000); /* lowest weight, hurting */
    int64_t now = 59500;
    for (int i = 0; i < 4; i++) {
        struct bp_mem m = snapshot(4 * GIB, 640 * MIB);
        policy_note_event(&cfg, &g[i], BP_LEVEL_NONE, &m, now);
    }
    known_and_just_inflated(&cfg, g, 4, now);

    /* Host short by 2 host steps: exit threshold 10 % of 64 GiB minus available. */
    uint64_t avail = 64 * GIB / 10 - 2 * HOST_STEP;
    policy_host_input(&host, 20, 64 * GIB, avail); /* PSI puts the host under pressure */
    policy_decide(&cfg, &host, g, 4, now, d);
    assert_true(host.pressure);
    /* g[2]: weight 50; then g[1], quieter (older event) than g[0]. */
    assert_int_equal(d[2].action, POLICY_INFLATE);
    assert_int_equal(d[2].reason, POLICY_R_HOST_PRESSURE);
    assert_int_equal(d[2].to_bytes, 4 * GIB - HOST_STEP);
    assert_int_equal(d[1].action, POLICY_INFLATE);
    assert_int_equal(d[1].reason, POLICY_R_HOST_PRESSURE);
    assert_int_equal(d[1].to_bytes, 4 * GIB - HOST_STEP);
    assert_int_equal(d[0].action, POLICY_HOLD);
    assert_int_equal(d[3].action, POLICY_HOLD); /* under pressure: never reclaimed */

    /* Short by less: only the first in order gives. */
    policy_host_init(&host);
    policy_host_input(&host, 20, 64 * GIB, 64 * GIB / 10 - 100 * MIB);
    policy_decide(&cfg, &host, g, 4, now, d);
    assert_int_equal(d[2].action, POLICY_INFLATE);
    assert_int_equal(d[2].to_bytes, 4 * GIB - 100 * MIB);
    assert_int_equal(d[1].action, POLICY_HOLD);
    assert_int_equal(d[0].action, POLICY_HOLD);
    assert_int_equal(d[3].action, POLICY_HOLD);

    /* Reclaim goes no lower than the host buffer over what the guest uses. */
    policy_host_init(&host);
    policy_host_input(&host, 0, 64 * GIB, 0);
    for (int i = 0; i < 4; i++)
        policy_note_actual(&cfg, &g[i], NEED(640 * MIB, 10) + 100 * MIB, now);
    policy_decide(&cfg, &host, g, 4, now, d);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d[i].action, POLICY_INFLATE);
        assert_int_equal(d[i].to_bytes, NEED(640 * MIB, 10));
    }
    assert_int_equal(d[3].action, POLICY_HOLD);
}

/* Memory still on its way from one host round is not taken again from another guest by
 * the next round; once it has landed and the host is still short, the next guest gives. */
static void test_host_round_counts_memory_in_flight(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g[2];
    struct policy_decision d[2];
    policy_config_defaults(&cfg);
    cfg.stuck_rate_bytes = 1 * MIB; /* a slow balloon still keeping pace */
    policy_host_init(&host);
    for (int i = 0; i < 2; i++) {
        policy_guest_init(&g[i], 256 * MIB, 4 * GIB, i == 0 ? 10 : 100);
        policy_note_actual(&cfg, &g[i], 4 * GIB, 0);
        struct bp_mem m = snapshot(4 * GIB, 640 * MIB);
        policy_note_event(&cfg, &g[i], BP_LEVEL_NONE, &m, 0);
    }
    /* Short by 100 MiB, and it stays so (the host has not seen the memory yet). */
    policy_host_input(&host, 20, 64 * GIB, 64 * GIB / 10 - 100 * MIB);
    known_and_just_inflated(&cfg, g, 2, 1000);
    policy_decide(&cfg, &host, g, 2, 1000, d);
    assert_int_equal(d[0].reason, POLICY_R_HOST_PRESSURE);
    assert_int_equal(d[0].to_bytes, 4 * GIB - 100 * MIB);
    assert_int_equal(d[1].action, POLICY_HOLD);
    policy_commit(&cfg, &g[0], &d[0], 1000);
    policy_host_commit(&host, 1000);

    policy_note_actual(&cfg, &g[0], 4 * GIB - 30 * MIB, 4000); /* on its way */
    policy_host_input(&host, 20, 64 * GIB, 64 * GIB / 10 - 70 * MIB);
    known_and_just_inflated(&cfg, g, 2, 7000);
    policy_decide(&cfg, &host, g, 2, 7000, d); /* next round, guest 0 still moving */
    assert_int_equal(d[0].reason, POLICY_R_SETTLING);
    assert_int_equal(d[1].action, POLICY_HOLD);

    policy_note_actual(&cfg, &g[0], 4 * GIB - 100 * MIB, 8000);        /* landed */
    policy_host_input(&host, 20, 64 * GIB, 64 * GIB / 10 - 100 * MIB); /* others took it */
    known_and_just_inflated(&cfg, g, 2, 8000);
    policy_decide(&cfg, &host, g, 2, 8000, d); /* still short: the lowest weight again */
    assert_int_equal(d[0].reason, POLICY_R_HOST_PRESSURE);
    assert_int_equal(d[0].to_bytes, 4 * GIB - 200 * MIB);
    assert_int_equal(d[1].action, POLICY_HOLD);

    /* A paused guest's move in flight still counts, and the daemon is woken when it stops
     * counting (found by the fuzzer: the deadline skipped paused guests). */
    policy_commit(&cfg, &g[0], &d[0], 8000);
    policy_host_commit(&host, 8000);
    g[0].paused = true;
    known_and_just_inflated(&cfg, g, 2, 12000);
    policy_decide(&cfg, &host, g, 2, 12000, d);
    assert_int_equal(d[0].reason, POLICY_R_PAUSED);
    assert_int_equal(d[1].action, POLICY_HOLD);
    assert_int_equal(policy_next_deadline(&cfg, &host, g, 2, 12000), 8000 + 5000);
    /* It did not move within the check time: not counted as coming any more. */
    policy_decide(&cfg, &host, g, 2, 13000, d);
    assert_int_equal(d[1].reason, POLICY_R_HOST_PRESSURE);
}

/* Host pressure has a real dead band: enter at 10 % PSI or 5 % available, leave only when
 * both are back under 2 % PSI and over 10 % available. */
static void test_host_pressure_dead_band(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_decision d;
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    policy_decide(&cfg, &host, NULL, 0, 0, &d);
    assert_false(host.pressure); /* no reading yet */

    const struct {
        double psi;
        uint64_t avail_pct;
        bool pressure;
    } seq[] = {
        {9.9, 50, false}, {10.0, 50, true}, {5.0, 50, true}, {2.0, 50, true},
        {1.9, 50, false}, {1.9, 6, false},  {1.9, 5, true},  {1.9, 9, true},
        {1.9, 10, true},  {1.9, 11, false}, {9.0, 9, false},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        policy_host_input(&host, seq[i].psi, 100 * GIB, seq[i].avail_pct * GIB);
        policy_decide(&cfg, &host, NULL, 0, (int64_t)i * 1000, &d);
        if (host.pressure != seq[i].pressure)
            fail_msg("step %zu: psi %.1f avail %llu %%: pressure %d, expected %d", i, seq[i].psi,
                     (unsigned long long)seq[i].avail_pct, host.pressure, seq[i].pressure);
    }
}

/* Someone else moves the balloon (an operator's own QMP command): QEMU reports the actual
 * at most once a second while the guest's MemTotal follows the balloon at once. A snapshot
 * from the way down paired with the actual of the start would make the overhead hundreds
 * of MiB, and the buffer rule would give all of it back. The overhead is measured only
 * where the balloon was still: the same MemTotal in two snapshots in a row, and no new
 * actual between them. */
static void test_overhead_measured_while_the_balloon_is_still(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    one_guest(&cfg, &host, &g, 256 * MIB, 1 * GIB, 1 * GIB);
    struct bp_mem m = snapshot(1 * GIB, 300 * MIB);
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 0);
    assert_true(g.overhead_known); /* the first measure: any beats none */
    assert_int_equal(g.overhead_bytes, OVERHEAD);

    /* Ballooned to 384 MiB by someone else: the first event at once, the guest halfway
     * down half a second later, the last event a second after the first. */
    policy_note_actual(&cfg, &g, 1000 * MIB, 10000);
    m = snapshot(500 * MIB, 300 * MIB);
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 10500);
    assert_int_equal(g.overhead_bytes, OVERHEAD);
    policy_note_actual(&cfg, &g, 384 * MIB, 11000);
    struct policy_decision d = decide1(&cfg, &host, &g, 11000);
    assert_int_not_equal(d.action, POLICY_DEFLATE); /* 300 MiB + 5 % + 32 fit in 384 */

    /* A new overhead (a new kernel after a reboot): not from the first snapshot at 384,
     * whose predecessor saw another MemTotal, nor from one after a new actual; from the
     * next with the same MemTotal. */
    m = snapshot(384 * MIB, 300 * MIB);
    m.mem_total_kb -= 8 * 1024;
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 15000);
    assert_int_equal(g.overhead_bytes, OVERHEAD);
    policy_note_actual(&cfg, &g, 384 * MIB + 4096, 17000);
    policy_note_actual(&cfg, &g, 384 * MIB, 18000);
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 20000);
    assert_int_equal(g.overhead_bytes, OVERHEAD);
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 25000);
    assert_int_equal(g.overhead_bytes, OVERHEAD + 8 * MIB);
    assert_false(g.balloon_counted_used); /* its MemTotal was never over the actual when still */
}

/* A snapshot of a guest that counts its balloon as used (deflate-on-oom): its MemTotal
 * stays whole (the ceiling less OVERHEAD), and the balloon's pages are not available. */
static struct bp_mem snapshot_balloon_used(uint64_t ceiling, uint64_t actual, uint64_t used)
{
    struct bp_mem m = {0};
    uint64_t total = ceiling - OVERHEAD;
    uint64_t taken = used + (ceiling - actual);
    m.mem_total_kb = total / 1024;
    m.mem_available_kb = total > taken ? (total - taken) / 1024 : 0;
    m.mem_free_kb = m.mem_available_kb / 2;
    return m;
}

/* An idle guest that counts its balloon as used is walked down to what it uses, its
 * reservations and its buffer, and never given memory back on the way. Read as a guest
 * whose use grows with the balloon, it stopped near 60 % of its ceiling (the walk's limit,
 * used x 1.2 with the balloon in "used", meets the balloon there). */
static void test_balloon_counted_as_used_is_walked_to_its_need(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    one_guest(&cfg, &host, &g, 128 * MIB, 1 * GIB, 1 * GIB);
    uint64_t arriving = 0;
    int deflates = 0, inflates = 0;
    for (int64_t t = 0; t < 30 * MIN; t += SEC) {
        if (arriving) { /* the balloon gets there one tick after the command */
            policy_note_actual(&cfg, &g, arriving, t);
            arriving = 0;
        }
        if (t % (5 * SEC) == 0) {
            struct bp_mem m = snapshot_balloon_used(1 * GIB, g.actual_bytes, 100 * MIB);
            policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, t);
        }
        struct policy_decision d = decide1(&cfg, &host, &g, t);
        if (d.action == POLICY_HOLD)
            continue;
        policy_commit(&cfg, &g, &d, t);
        arriving = d.to_bytes;
        d.action == POLICY_DEFLATE ? deflates++ : inflates++;
    }
    print_message("balloon counted as used: %d inflates, %d deflates, at %llu MiB\n", inflates,
                  deflates, (unsigned long long)(g.actual_bytes / MIB));
    assert_true(g.balloon_counted_used);
    assert_int_equal(deflates, 0);
    /* (100 MiB + its 32 MiB of reservations) x 1.2 = 158.4 MiB, within one step over it. */
    assert_true(g.actual_bytes >= 158 * MIB);
    assert_true(g.actual_bytes <= 158 * MIB + INFLATE_STEP);

    /* A new link (QEMU restarted, its balloon device maybe configured anew): measured
     * again, from the first snapshot. */
    uint64_t at = g.actual_bytes;
    policy_forget_actual(&g);
    policy_note_actual(&cfg, &g, at, 31 * MIN);
    assert_false(g.balloon_counted_used);
    struct bp_mem m = snapshot(at, 100 * MIB); /* this device takes pages off MemTotal */
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, 31 * MIN + 100);
    assert_false(g.balloon_counted_used);
    assert_int_equal(g.overhead_bytes, OVERHEAD);
}

/* A balloon that grew past anything the policy asked for (the guest's driver deflating
 * it at OOM, or an operator) leaves a hurt size at the size it left: the walk stops a
 * step above it until it is forgotten, the working set holds it. Not while the guest is
 * just known (a rise then is boot's), and not for a rise the policy asked for. */
static void test_an_unexplained_deflate_is_remembered_as_hurt(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    struct policy_sizing z;
    one_guest(&cfg, &host, &g, 256 * MIB, 4 * GIB, 2 * GIB);
    /* Just known (quiet_ms from t=0): not counted. */
    policy_note_actual(&cfg, &g, 2 * GIB + 512 * MIB, 30 * SEC);
    policy_guest_sizing(&cfg, &g, 30 * SEC, &z);
    assert_false(z.hurt_live);
    policy_note_actual(&cfg, &g, 2 * GIB, 31 * SEC); /* back, as if by an operator */

    int64_t t0 = 3 * MIN;
    policy_note_actual(&cfg, &g, 2 * GIB + 512 * MIB, t0);
    policy_guest_sizing(&cfg, &g, t0, &z);
    assert_true(z.hurt_live);
    assert_int_equal(z.hurt_bytes, 2 * GIB);
    assert_int_equal(z.working_set_bytes, 2 * GIB);

    /* Quiet, using 1 GiB: walked down to a step over the size it left, not under, while
     * that is remembered; then to its buffer over what it uses. No deflate of ours on the
     * way (the walk's rises are none; a deflate we ask for leaves no hurt by this rule). */
    uint64_t arriving = 0, lowest_held = 4 * GIB;
    for (int64_t t = t0 + SEC; t < t0 + 20 * MIN; t += SEC) {
        if (arriving) {
            policy_note_actual(&cfg, &g, arriving, t);
            arriving = 0;
        }
        if (t % (5 * SEC) == 0) {
            struct bp_mem m = snapshot(g.actual_bytes, 1 * GIB);
            policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, t);
        }
        struct policy_decision d = decide1(&cfg, &host, &g, t);
        if (d.action == POLICY_HOLD)
            continue;
        assert_int_equal(d.action, POLICY_INFLATE);
        policy_commit(&cfg, &g, &d, t);
        arriving = d.to_bytes;
        if (t < t0 + cfg.hurt_memory_ms && d.to_bytes < lowest_held)
            lowest_held = d.to_bytes;
    }
    print_message("unexplained deflate: lowest %llu MiB while remembered, %llu MiB at the end\n",
                  (unsigned long long)(lowest_held / MIB),
                  (unsigned long long)(g.actual_bytes / MIB));
    assert_true(lowest_held >= 2 * GIB + INFLATE_STEP);
    assert_true(g.actual_bytes <= NEED(1 * GIB, 20) + cfg.min_change_bytes);
}

/* What policy_guest_sizing() tells the operator follows the state the rules act on: the
 * need from a snapshot, the hurt size and the direction block a critical deflate leaves
 * (and when each ends), a balloon that did not follow and when it is tried again. */
static void test_sizing_says_what_holds_a_guest(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    struct policy_sizing z;
    one_guest(&cfg, &host, &g, 256 * MIB, 4 * GIB, 2 * GIB);
    policy_guest_sizing(&cfg, &g, 0, &z);
    assert_false(z.need_known);
    assert_false(z.stall_known);
    assert_false(z.hurt_live);
    assert_int_equal(z.working_set_bytes, 256 * MIB); /* the floor: nothing else known */
    assert_int_equal(z.inflate_wait_ms, 0);
    assert_int_equal(z.stuck_left_ms, 0);

    struct bp_mem m = snapshot(2 * GIB, 1 * GIB);
    policy_note_report(&cfg, &g, BP_LEVEL_NONE, &m, SEC);
    policy_guest_sizing(&cfg, &g, SEC, &z);
    assert_true(z.need_known);
    assert_int_equal(z.used_bytes, 1 * GIB);
    assert_int_equal(z.overhead_bytes, OVERHEAD);
    assert_int_equal(z.need_bytes, NEED(1 * GIB, 20));
    assert_int_equal(z.working_set_bytes, NEED(1 * GIB, 10)); /* host_buffer_pct */

    /* A critical deflate once the guest is past its first quiet_ms: a hurt size. Its
     * balloon does not follow. */
    int64_t t = 3 * MIN;
    policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, &m, t);
    struct policy_decision d = decide1(&cfg, &host, &g, t);
    assert_int_equal(d.action, POLICY_DEFLATE);
    policy_commit(&cfg, &g, &d, t);
    policy_guest_sizing(&cfg, &g, t + MIN, &z);
    assert_true(z.hurt_live);
    assert_int_equal(z.hurt_bytes, 2 * GIB);
    assert_int_equal(z.hurt_left_ms, cfg.hurt_memory_ms - MIN);
    assert_int_equal(z.working_set_bytes, 2 * GIB);
    assert_int_equal(z.inflate_wait_ms, cfg.deflate_cooldown_ms - MIN);
    assert_int_equal(z.flips, 0);
    assert_int_equal(z.stuck_left_ms, cfg.stuck_backoff_ms - MIN);

    /* It arrives late: nothing stuck any more. Once the hurt size is forgotten, nothing
     * holds the guest back but its need. */
    policy_note_actual(&cfg, &g, d.to_bytes, t + MIN + SEC);
    policy_guest_sizing(&cfg, &g, t + MIN + SEC, &z);
    assert_int_equal(z.stuck_left_ms, 0);
    policy_guest_sizing(&cfg, &g, t + cfg.hurt_memory_ms, &z);
    assert_false(z.hurt_live);
    assert_int_equal(z.inflate_wait_ms, 0);
    assert_int_equal(z.working_set_bytes, NEED(1 * GIB, 10));
}

/* A critical burst over a guest being inflated quietly: one deflate, and no inflate
 * within the cooldown however the burst's tail and the quiet after it fall. */
static void test_critical_burst_no_reversal_in_cooldown(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    one_guest(&cfg, &host, &g, 1 * GIB, 4 * GIB, 4 * GIB);

    int deflates = 0, inflates_before = 0, inflates_in_cooldown = 0;
    int64_t deflated_at = POLICY_NEVER;
    for (int64_t t = 0; t < 20 * MIN; t += 100) {
        if (t % (5 * SEC) == 0) {
            struct bp_mem m = snapshot(g.actual_bytes, 1 * GIB);
            policy_note_event(&cfg, &g, BP_LEVEL_NONE, &m, t);
        }
        /* 45 critical events over 1.5 s at 5 minutes, three per tick. */
        if (t >= 5 * MIN && t < 5 * MIN + 1500)
            for (int k = 0; k < 3; k++)
                policy_note_event(&cfg, &g, BP_LEVEL_CRITICAL, NULL, t);
        struct policy_decision d = decide1(&cfg, &host, &g, t);
        if (d.action == POLICY_HOLD)
            continue;
        policy_commit(&cfg, &g, &d, t);
        policy_note_actual(&cfg, &g, d.to_bytes, t);
        if (d.action == POLICY_DEFLATE) {
            deflates++;
            deflated_at = t;
        } else if (deflated_at == POLICY_NEVER) {
            inflates_before++;
        } else if (t - deflated_at < cfg.deflate_cooldown_ms) {
            inflates_in_cooldown++;
        }
    }
    assert_true(inflates_before > 0); /* it was being inflated when the burst came */
    assert_int_equal(deflates, 1);
    assert_int_equal(deflated_at, 5 * MIN);
    assert_int_equal(inflates_in_cooldown, 0);
}

/* ---------------- simulated hours ---------------- */

/* A guest whose kernel hurts (medium) when its balloon is below hurt_below and is
 * critical under crit_below; the policy only sees events. One tick per second, reports
 * every 5 s, the balloon arrives one tick after a command. Returns reversals. */
struct sim {
    uint64_t floor, ceiling, start;
    uint64_t used;
    uint64_t hurt_below; /* at tick 0 */
    int64_t wobble;      /* +- this much on hurt_below, period 10 min */
    int hours;
    /* results */
    unsigned reversals;
    unsigned moves;
    unsigned seconds_hurting;
    uint64_t min_actual;
};

static void simulate(struct sim *s)
{
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    one_guest(&cfg, &host, &g, s->floor, s->ceiling, s->start);
    uint64_t pending = 0;
    enum policy_action last = POLICY_HOLD;
    s->min_actual = UINT64_MAX;

    for (int64_t t = 0; t < (int64_t)s->hours * 3600 * SEC; t += SEC) {
        if (pending) {
            policy_note_actual(&cfg, &g, pending, t);
            pending = 0;
        }
        uint64_t actual = g.actual_bytes;
        if (actual < s->min_actual)
            s->min_actual = actual;
        /* A triangle wave on the hurt threshold: the workload's need moves. */
        int64_t phase = (t / SEC) % 600;
        int64_t tri = phase < 300 ? phase : 600 - phase; /* 0..300 */
        uint64_t hurt_below = s->hurt_below + (uint64_t)(s->wobble * (tri - 150) / 150);
        enum bp_level level = BP_LEVEL_NONE;
        if (actual < hurt_below - 256 * MIB)
            level = BP_LEVEL_CRITICAL;
        else if (actual < hurt_below)
            level = BP_LEVEL_MEDIUM;
        if (level != BP_LEVEL_NONE) {
            s->seconds_hurting++;
            policy_note_event(&cfg, &g, level, NULL, t);
        }
        if ((t / SEC) % 5 == 0) {
            struct bp_mem m = snapshot(actual, s->used);
            policy_note_event(&cfg, &g, level, &m, t);
        }
        struct policy_decision d = decide1(&cfg, &host, &g, t);
        assert_true(d.to_bytes >= s->floor || d.action == POLICY_HOLD);
        assert_true(d.to_bytes <= s->ceiling || d.action == POLICY_HOLD);
        if (d.action == POLICY_HOLD)
            continue;
        policy_commit(&cfg, &g, &d, t);
        pending = d.to_bytes;
        s->moves++;
        if (last != POLICY_HOLD && last != d.action)
            s->reversals++;
        last = d.action;
    }
    assert_int_equal(g.reversals, s->reversals);
}

/* The guest hurts below 2.5 GiB though it "uses" only 1 GiB (page cache it needs): the
 * buffer rule would take it down to 1.25 GiB; pressure and the memory of it stop that. */
static void test_threshold_guest_converges(void **state)
{
    (void)state;
    struct sim s = {
        .floor = 512 * MIB,
        .ceiling = 4 * GIB,
        .start = 4 * GIB,
        .used = 1 * GIB,
        .hurt_below = 2 * GIB + 512 * MIB,
        .wobble = 0,
        .hours = 1,
    };
    simulate(&s);
    print_message("threshold guest, 1 h: %u moves, %u reversals, %u s hurting, min %llu MiB\n",
                  s.moves, s.reversals, s.seconds_hurting,
                  (unsigned long long)(s.min_actual / MIB));
    assert_true(s.moves > 5);      /* it did take memory */
    assert_true(s.reversals <= 4); /* ... and stopped going back and forth */
    assert_true(s.seconds_hurting <= 120);
}

/* The same with the threshold wandering +-256 MiB every 10 minutes, over 3 hours. */
static void test_wobbling_guest_converges(void **state)
{
    (void)state;
    struct sim s = {
        .floor = 512 * MIB,
        .ceiling = 4 * GIB,
        .start = 4 * GIB,
        .used = 1 * GIB,
        .hurt_below = 2 * GIB + 512 * MIB,
        .wobble = 256 * MIB,
        .hours = 3,
    };
    simulate(&s);
    print_message("wobbling guest, 3 h: %u moves, %u reversals, %u s hurting, min %llu MiB\n",
                  s.moves, s.reversals, s.seconds_hurting,
                  (unsigned long long)(s.min_actual / MIB));
    assert_true(s.moves > 5);
    assert_true(s.reversals <= 10);        /* at most ~3 an hour, falling with the backoff */
    assert_true(s.seconds_hurting <= 600); /* out of 10800 */
}

/* ---------------- properties over random inputs ---------------- */

/* xorshift64*: a fixed seed, the same run every time. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Dull;
}

static uint64_t prng(void *ctx)
{
    (void)ctx;
    return rnd();
}

/* 200 000 steps over 8 guests: random events, snapshots (junk ones too), balloon moves that
 * arrive or not, host readings, floor/ceiling changes, pauses. After every decision the
 * invariants of drive.h: every move inside [floor, ceiling], the way its action says, with
 * a reason of its kind; a paused or blind guest never moves; nothing holding starts to move
 * before policy_next_deadline(); the pointer-array entry points agree. */
static void test_random_inputs_respect_limits(void **state)
{
    (void)state;
    static struct drive dr;
    drive_init(&dr, prng, NULL);
    for (int i = 0; i < 200000; i++)
        if (!drive_step(&dr))
            fail_msg("%s", dr.msg);
    print_message("random: %u moves, %u deadline checks, %u rounds with a budget and a deflate, "
                  "%u funded, %u deflates cut\n",
                  dr.moves, dr.deadline_checks, dr.budget_rounds, dr.funded, dr.cut);
    assert_true(dr.moves > 1000);
    assert_true(dr.deadline_checks > 1000);
    assert_true(dr.budget_rounds > 100);
    assert_true(dr.funded > 10);
    assert_true(dr.cut > 10);
}

/* ---------------- configuration ---------------- */

static void test_config_set_and_check(void **state)
{
    (void)state;
    struct policy_config cfg, before;
    char err[200];
    policy_config_defaults(&cfg);
    assert_int_equal(policy_config_check(&cfg, err, sizeof(err)), 0);

    assert_int_equal(policy_config_set(&cfg, "quiet_ms", "90s"), 0);
    assert_int_equal(cfg.quiet_ms, 90000);
    assert_int_equal(policy_config_set(&cfg, "deflate_cooldown_ms", "10min"), 0);
    assert_int_equal(cfg.deflate_cooldown_ms, 600000);
    assert_int_equal(policy_config_set(&cfg, "medium_dwell_ms", "1500"), 0);
    assert_int_equal(cfg.medium_dwell_ms, 1500);
    assert_int_equal(policy_config_set(&cfg, "critical_step_bytes", "512M"), 0);
    assert_int_equal(cfg.critical_step_bytes, 512 * MIB);
    assert_int_equal(policy_config_set(&cfg, "min_change_bytes", "1GiB"), 0);
    assert_int_equal(cfg.min_change_bytes, 1 * GIB);
    assert_int_equal(policy_config_set(&cfg, "buffer_pct", "25.5%"), 0);
    assert_true(cfg.buffer_pct == 25.5);
    assert_int_equal(policy_config_set(&cfg, "flip_max_shift", "6"), 0);
    assert_int_equal(cfg.flip_max_shift, 6);

    before = cfg;
    assert_int_equal(policy_config_set(&cfg, "no_such_key", "1"), -ENOENT);
    assert_int_equal(policy_config_set(&cfg, "quiet_ms", "-5"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "quiet_ms", "5 s"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "quiet_ms", "99999999999999h"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "quiet_ms", ""), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "critical_step_bytes", "12X"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "critical_step_bytes", "99999999T"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "buffer_pct", "101"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "buffer_pct", "nan"), -EINVAL);
    assert_int_equal(policy_config_set(&cfg, "flip_max_shift", "21"), -EINVAL);
    assert_memory_equal(&cfg, &before, sizeof(cfg));

    policy_config_defaults(&cfg);
    cfg.host_psi_exit = cfg.host_psi_enter;
    assert_int_equal(policy_config_check(&cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "host_psi_exit"));
    policy_config_defaults(&cfg);
    cfg.host_avail_exit_pct = cfg.host_avail_enter_pct;
    assert_int_equal(policy_config_check(&cfg, err, sizeof(err)), -EINVAL);
    policy_config_defaults(&cfg);
    cfg.buffer_low_pct = 30;
    assert_int_equal(policy_config_check(&cfg, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "buffer_low_pct"));
    policy_config_defaults(&cfg);
    cfg.inflate_step_bytes = 0;
    cfg.inflate_step_pct = 0;
    assert_int_equal(policy_config_check(&cfg, NULL, 0), -EINVAL);
    policy_config_defaults(&cfg);
    cfg.level_decay_ms = 0;
    assert_int_equal(policy_config_check(&cfg, err, sizeof(err)), -EINVAL);

    assert_int_equal(policy_guest_check(1 * GIB, 4 * GIB, 100, err, sizeof(err)), 0);
    assert_int_equal(policy_guest_check(5 * GIB, 4 * GIB, 100, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "floor"));
    assert_int_equal(policy_guest_check(0, 4 * GIB, 100, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_guest_check(1, 0, 100, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_guest_check(1 * GIB, 4 * GIB, 0, err, sizeof(err)), -EINVAL);
    assert_int_equal(policy_guest_check(1 * GIB, 4 * GIB, 10001, err, sizeof(err)), -EINVAL);
}

static void test_next_deadline(void **state)
{
    (void)state;
    struct policy_config cfg;
    struct policy_host host;
    struct policy_guest g;
    policy_config_defaults(&cfg);
    policy_host_init(&host);
    policy_guest_init(&g, 1 * GIB, 4 * GIB, 100);
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 0), POLICY_NO_DEADLINE);
    policy_note_actual(&cfg, &g, 4 * GIB, 0);
    /* Quiet time since the actual became known. */
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 0), 60000);
    policy_note_event(&cfg, &g, BP_LEVEL_MEDIUM, NULL, 130000);
    /* Decay steps at 140 s and 150 s, quiet (after medium, without PSI) at 190 s. */
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 130000), 140000);
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 140000), 150000);
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 150000), 190000);
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 190000), POLICY_NO_DEADLINE);
    g.paused = true;
    assert_int_equal(policy_next_deadline(&cfg, &host, &g, 1, 130000), POLICY_NO_DEADLINE);
}

static void test_names(void **state)
{
    (void)state;
    for (int r = 0; r < POLICY_R_COUNT; r++) {
        assert_non_null(policy_reason_name((enum policy_reason)r));
        assert_string_not_equal(policy_reason_name((enum policy_reason)r), "?");
        for (int s = 0; s < r; s++)
            assert_string_not_equal(policy_reason_name((enum policy_reason)r),
                                    policy_reason_name((enum policy_reason)s));
    }
    assert_string_equal(policy_reason_name(POLICY_R_COUNT), "?");
    assert_string_equal(policy_action_name(POLICY_HOLD), "hold");
    assert_string_equal(policy_action_name(POLICY_DEFLATE), "deflate");
    assert_string_equal(policy_action_name(POLICY_INFLATE), "inflate");
    assert_string_equal(policy_action_name((enum policy_action)7), "?");
}

int main(void)
{
    enum { NS = sizeof(scenarios) / sizeof(scenarios[0]) - 1 };
    struct CMUnitTest tests[NS + 16];
    size_t n = 0;
    for (size_t i = 0; i < NS; i++)
        tests[n++] = (struct CMUnitTest){
            .name = scenarios[i].name,
            .test_func = run_scenario,
            .initial_state = (void *)&scenarios[i],
        };
    const struct CMUnitTest more[] = {
        cmocka_unit_test(test_level_decays_one_step_per_period),
        cmocka_unit_test(test_host_reclaim_order),
        cmocka_unit_test(test_host_pressure_dead_band),
        cmocka_unit_test(test_host_round_counts_memory_in_flight),
        cmocka_unit_test(test_overhead_measured_while_the_balloon_is_still),
        cmocka_unit_test(test_balloon_counted_as_used_is_walked_to_its_need),
        cmocka_unit_test(test_an_unexplained_deflate_is_remembered_as_hurt),
        cmocka_unit_test(test_sizing_says_what_holds_a_guest),
        cmocka_unit_test(test_critical_burst_no_reversal_in_cooldown),
        cmocka_unit_test(test_threshold_guest_converges),
        cmocka_unit_test(test_wobbling_guest_converges),
        cmocka_unit_test(test_random_inputs_respect_limits),
        cmocka_unit_test(test_config_set_and_check),
        cmocka_unit_test(test_next_deadline),
        cmocka_unit_test(test_names),
    };
    for (size_t i = 0; i < sizeof(more) / sizeof(more[0]); i++)
        tests[n++] = more[i];
    return _cmocka_run_group_tests("policy", tests, n, NULL, NULL);
}
