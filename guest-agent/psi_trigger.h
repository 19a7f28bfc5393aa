/* Pressure source: PSI triggers on /proc/pressure/memory or a cgroup v2 memory.pressure.
 *
 * One trigger per level, each on its own fd ("some|full <stall us> <window us>" written with
 * its NUL), watched for POLLPRI. The kernel fires a trigger at most once per window.
 * Without CAP_SYS_RESOURCE the kernel refuses windows that are not multiples of 2 s with
 * EINVAL; the trigger is then registered again with its window rounded up to the next
 * multiple of 2 s and its stall scaled by the same factor. */
#ifndef BELLOWS_PSI_TRIGGER_H
#define BELLOWS_PSI_TRIGGER_H

#include "protocol/bellows_protocol.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Unprivileged windows must be multiples of this. */
#define PSI_UNPRIV_WINDOW_US 2000000u
#define PSI_MAX_WINDOW_US 10000000u

/* One trigger: stall_us of stall ("some": any task, "full": all tasks) within window_us. */
struct psi_spec {
    bool enabled;
    bool full;
    uint32_t stall_us;
    uint32_t window_us;
};

/* Parse "some:STALL_MS:WINDOW_MS", "full:STALL_MS:WINDOW_MS" or "off".
 * Returns 0, or -EINVAL (syntax, stall 0 or above the window, window above 10 s). */
int psi_spec_parse(const char *text, struct psi_spec *ret_spec);

/* The same notation back ("some:70:1000", "off"). Returns the length or -ENOSPC. */
int psi_spec_name(const struct psi_spec *spec, char *buf, size_t cap);

/* The text written to the PSI file, "some 70000 1000000", without its NUL.
 * Returns the length or -ENOSPC. */
int psi_spec_trigger(const struct psi_spec *spec, char *buf, size_t cap);

/* The trigger an unprivileged caller may register instead: window rounded up to a multiple
 * of 2 s (at most 10 s), stall scaled in proportion. Returns false when the spec already
 * has such a window (there is nothing to fall back to). */
bool psi_spec_fallback(const struct psi_spec *spec, struct psi_spec *ret_spec);

/* Defaults for level LOW..CRITICAL (see docs/agent.md). */
struct psi_spec psi_spec_default(enum bp_level level);

struct psi_source;
/* A trigger fired: level is the highest that fired, now_ns its CLOCK_MONOTONIC time. */
typedef void (*psi_cb)(struct psi_source *src, enum bp_level level, uint64_t now_ns, void *opaque);
/* A trigger's file went away (POLLERR: its cgroup was removed); the trigger is stopped. */
typedef void (*psi_gone_cb)(struct psi_source *src, enum bp_level level, void *opaque);

struct psi_source {
    psi_cb cb;
    psi_gone_cb gone_cb;
    void *opaque;
    int pending_closes;
    void (*close_cb)(struct psi_source *src);
    char path[PATH_MAX];
    struct {
        int fd; /* -1 when the level is off */
        bool fell_back;
        struct psi_spec asked;      /* what the options asked for */
        struct psi_spec registered; /* what the kernel accepted */
        uv_poll_t poll;
    } lv[3]; /* index level - 1 */
};

/* Register the enabled specs (index level - 1) on path and watch them. Returns 0, or a
 * negative errno from the first trigger the kernel refused even after the fallback
 * (-ENOENT: no such file, PSI missing), leaving nothing open; -EINVAL when no level is on. */
int psi_start(struct psi_source *src, uv_loop_t *loop, const char *path,
              const struct psi_spec specs[3], psi_cb cb, psi_gone_cb gone_cb, void *opaque);

/* Stop and close; close_cb runs when the handles are closed. */
void psi_close(struct psi_source *src, void (*close_cb)(struct psi_source *src));

#endif
