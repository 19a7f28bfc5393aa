/* Pressure source: cgroup v1 memory.pressure_level (the kernel's vmpressure).
 *
 * One eventfd per level (low, medium, critical), registered by writing
 * "<eventfd> <fd of memory.pressure_level> <level>[,<mode>]" to cgroup.event_control. The
 * kernel signals every eventfd whose level is at or below the pressure it measured, so a
 * wake-up reads all three and reports only the highest. */
#ifndef BELLOWS_VMPRESSURE_H
#define BELLOWS_VMPRESSURE_H

#include "protocol/bellows_protocol.h"

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum vmpressure_mode {
    VMPRESSURE_MODE_DEFAULT,   /* propagate up until some listener handles it */
    VMPRESSURE_MODE_HIERARCHY, /* every ancestor hears it too */
    VMPRESSURE_MODE_LOCAL,     /* only pressure inside this very cgroup */
};

/* "default", "hierarchy", "local"; NULL for an invalid value. */
const char *vmpressure_mode_name(enum vmpressure_mode mode);
/* Parse a mode name; returns 0 or -EINVAL. */
int vmpressure_mode_parse(const char *name, enum vmpressure_mode *ret_mode);

/* The cgroup.event_control line for one level (without its NUL). The default mode is
 * written with no suffix, which kernels before 4.5 require.
 * Returns the length, -EINVAL for a bad level, -ENOSPC when cap is too small. */
int vmpressure_control_line(int event_fd, int level_fd, enum bp_level level,
                            enum vmpressure_mode mode, char *buf, size_t cap);

/* Find where the cgroup v1 memory controller is mounted, from the text of
 * /proc/self/mountinfo. Returns 0 and the mount point (octal escapes decoded),
 * -ENOENT when it is not mounted, -ENAMETOOLONG when cap is too small. */
int vmpressure_find_mount(const char *mountinfo, size_t len, char *ret_path, size_t cap);

struct vmpressure_source;
/* The kernel notified: level is the highest one signalled, now_ns its CLOCK_MONOTONIC time. */
typedef void (*vmpressure_cb)(struct vmpressure_source *src, enum bp_level level, uint64_t now_ns,
                              void *opaque);

struct vmpressure_source {
    uv_loop_t *loop;
    vmpressure_cb cb;
    void *opaque;
    int level_fd; /* memory.pressure_level, held open while registered */
    int pending_closes;
    void (*close_cb)(struct vmpressure_source *src);
    char cgroup[PATH_MAX];
    struct {
        int efd;
        uv_poll_t poll;
    } ev[3]; /* index level - 1 */
};

/* Register the three levels on the cgroup directory and start watching them.
 * Returns 0, or a negative errno (the cgroup directory or its files missing: -ENOENT;
 * a kernel without vmpressure: -EINVAL), leaving nothing open. */
int vmpressure_start(struct vmpressure_source *src, uv_loop_t *loop, const char *cgroup_dir,
                     enum vmpressure_mode mode, vmpressure_cb cb, void *opaque);

/* Stop and close; close_cb runs when the handles are closed. */
void vmpressure_close(struct vmpressure_source *src,
                      void (*close_cb)(struct vmpressure_source *src));

#endif
