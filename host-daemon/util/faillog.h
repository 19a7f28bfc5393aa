/* How often a path that keeps failing may log: once when it starts failing or fails in a
 * new way, then at most one summary a minute while it lasts, and once when it recovers.
 * A QEMU that is gone for a week, a chardev that accepts and closes at once, a libvirt move
 * refused every round: each costs a handful of lines, not one per attempt, so one bad guest
 * can never push journald into dropping everyone's lines. Pure: time is passed in.
 *
 *   switch (faillog_fail(&g->qmp_log, err, "connect", now)) {
 *   case FAILLOG_NEW:     log the failure
 *   case FAILLOG_SUMMARY: log "still failing: N times in the last M s"
 *   case FAILLOG_QUIET:   nothing (debug at most)
 *   }
 *   if (faillog_ok(&g->qmp_log, now)) log the recovery
 */
#ifndef BELLOWS_FAILLOG_H
#define BELLOWS_FAILLOG_H

#include <stdbool.h>
#include <stdint.h>

#define FAILLOG_SUMMARY_MS 60000

enum faillog_say {
    FAILLOG_QUIET,   /* the same failure again, within the minute: count it only */
    FAILLOG_NEW,     /* it started failing, or fails in another way: log it */
    FAILLOG_SUMMARY, /* the same failure, a minute since the last line: log a summary */
};

struct faillog {
    bool failing;
    int err;              /* the failure's errno, with kind its state */
    char kind[48];        /* a stable name of the failure (not its varying detail) */
    int64_t since_ms;     /* when this state began */
    int64_t last_line_ms; /* when a line was last allowed (NEW or SUMMARY) */
    uint64_t repeats;     /* failures since that line, not yet told */
    uint64_t summarised;  /* at FAILLOG_SUMMARY: the failures it sums up (this one too) */
    uint64_t total;       /* failures in this state */
};

/* A failure at now_ms: errno-like `err` and a short stable `kind` ("connect", "handshake",
 * "move"...). Says whether to log; the counters above tell the summary what to say. */
enum faillog_say faillog_fail(struct faillog *f, int err, const char *kind, int64_t now_ms);

/* The path works again at now_ms. True when it was failing (log the recovery; total and
 * since_ms still describe the failure until the next faillog_fail). */
bool faillog_ok(struct faillog *f, int64_t now_ms);

#endif
