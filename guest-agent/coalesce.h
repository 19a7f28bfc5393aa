/* When the agent sends what: the coalescing rules between the kernel's notifications and
 * the outgoing queue. Pure: every function takes the current time; no I/O, no clock.
 *
 *  - A rise of a source's level is queued at once.
 *  - Criticals, from all sources together, are rate-limited to one per critical_repeat_ns
 *    (vmpressure and PSI can each signal critical hundreds of times a second under a hard
 *    squeeze); the agent's first critical in that time is never held back.
 *  - The same level again or a fall is rate-limited to one per repeat_ns after the source's
 *    last message other than a critical. A held message waits, the newest of a source
 *    replacing an older one, and is queued when its interval has passed, unless a rise makes
 *    it stale first.
 *  - A source's level falls back to none after quiet_ns without notifications; when the
 *    agent's level (the highest over all sources) becomes none, a report is due at once.
 *  - A heartbeat report is due every report_ns (0: no heartbeat).
 *  - Levels the host did not ask for (welcome "levels") are not sent, but still count for
 *    the level in reports. */
#ifndef BELLOWS_COALESCE_H
#define BELLOWS_COALESCE_H

#include "guest-agent/outqueue.h"
#include "protocol/bellows_protocol.h"

#include <stdbool.h>
#include <stdint.h>

#define CO_NEVER UINT64_MAX

struct co_config {
    uint64_t repeat_ns; /* smallest gap between two messages of the same level from a source */
    uint64_t critical_repeat_ns; /* the same for repeats of critical */
    uint64_t report_ns;          /* heartbeat interval, 0 for none */
    uint64_t quiet_ns; /* a source without notifications this long is back to level none */
    uint32_t levels;   /* bit (1 << level) per level to send, 0 for all */
    size_t queue_cap;  /* outgoing queue size, OUTQ_MIN..OUTQ_MAX */
};

/* What co_event did with a notification. */
enum co_verdict {
    CO_QUEUED,   /* queued now */
    CO_DEFERRED, /* a repeat inside the rate limit: kept, queued later by co_tick */
    CO_FILTERED, /* a level the host does not want */
};

struct co_source {
    enum bp_level level;      /* latest notified level, NONE once quiet */
    uint64_t last_event_ns;   /* time of the latest notification */
    enum bp_level sent_level; /* level of the latest queued pressure, NONE once quiet */
    bool other_sent;          /* a pressure other than critical was queued */
    uint64_t other_sent_ns;   /* when the last one was */
    bool has_deferred;
    struct bp_pressure deferred; /* the newest repeat waiting for the rate limit */
};

struct co_stats {
    uint64_t events;   /* notifications seen */
    uint64_t queued;   /* pressure messages queued */
    uint64_t merged;   /* repeats folded into a newer one inside the rate limit */
    uint64_t filtered; /* notifications at levels the host does not want */
    uint64_t reports;  /* reports queued */
};

struct coalescer {
    struct co_config cfg;
    struct outqueue queue;
    struct co_source src[BP_SOURCE_COUNT];
    bool critical_sent;        /* a critical was queued (from any source) */
    uint64_t critical_sent_ns; /* when the last one was */
    uint64_t next_report_ns;   /* CO_NEVER when there is no heartbeat */
    bool report_now;           /* the agent just became quiet */
    struct co_stats stats;
};

/* Start with nothing queued and the first heartbeat due report_ns after now.
 * Returns 0 or -EINVAL for a bad queue size. */
int co_init(struct coalescer *c, const struct co_config *cfg, uint64_t now_ns);

/* A kernel notification from source at level (LOW..CRITICAL), seen at now_ns, with the
 * memory snapshot taken for it. Returns a co_verdict, or -EINVAL for a bad source/level. */
int co_event(struct coalescer *c, enum bp_source source, enum bp_level level, uint64_t now_ns,
             const struct bp_mem *mem);

/* Let time pass: queue deferred repeats whose interval is over and let quiet sources fall
 * back to none. Returns true when a report is due; the caller then takes a fresh snapshot
 * and calls co_report. */
bool co_tick(struct coalescer *c, uint64_t now_ns);

/* Queue a report of the current level with this snapshot; the next heartbeat is due
 * report_ns later. */
void co_report(struct coalescer *c, uint64_t now_ns, const struct bp_mem *mem);

/* The agent's level: the highest over all sources. */
enum bp_level co_level(const struct coalescer *c);

/* The earliest time co_tick has something to do, CO_NEVER if none. */
uint64_t co_next_deadline(const struct coalescer *c);

/* Apply the host's settings from a welcome: a heartbeat interval (0 keeps ours) and the
 * levels it wants (0: all). The next heartbeat is rescheduled from now. */
void co_apply_welcome(struct coalescer *c, uint32_t report_interval_ms, uint32_t levels,
                      uint64_t now_ns);

/* Take the oldest queued message; false when nothing waits. Its seq is left 0. */
bool co_pop(struct coalescer *c, struct bp_msg *ret_msg);

#endif
