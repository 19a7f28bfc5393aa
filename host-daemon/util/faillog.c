/* Failure log limits: a line per change of state, a summary a minute (see faillog.h). */
#include "host-daemon/util/faillog.h"

#include <stdio.h>
#include <string.h>

/* See faillog.h. */
enum faillog_say faillog_fail(struct faillog *f, int err, const char *kind, int64_t now_ms)
{
    if (!kind)
        kind = "";
    if (!f->failing || f->err != err || strncmp(f->kind, kind, sizeof(f->kind) - 1) != 0) {
        f->failing = true;
        f->err = err;
        snprintf(f->kind, sizeof(f->kind), "%s", kind);
        f->since_ms = now_ms;
        f->last_line_ms = now_ms;
        f->repeats = 0;
        f->summarised = 0;
        f->total = 1;
        return FAILLOG_NEW;
    }
    f->total++;
    f->repeats++;
    if (now_ms - f->last_line_ms >= FAILLOG_SUMMARY_MS) {
        f->last_line_ms = now_ms;
        f->summarised = f->repeats;
        f->repeats = 0;
        return FAILLOG_SUMMARY;
    }
    return FAILLOG_QUIET;
}

/* See faillog.h. */
bool faillog_ok(struct faillog *f, int64_t now_ms)
{
    (void)now_ms;
    if (!f->failing)
        return false;
    f->failing = false;
    f->repeats = 0;
    return true;
}
