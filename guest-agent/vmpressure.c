/* cgroup v1 vmpressure source: eventfds registered through cgroup.event_control. */
#include "guest-agent/vmpressure.h"

#include "guest-agent/procfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static const char *const mode_names[] = {"default", "hierarchy", "local"};

const char *vmpressure_mode_name(enum vmpressure_mode mode)
{
    if ((unsigned)mode >= sizeof(mode_names) / sizeof(mode_names[0]))
        return NULL;
    return mode_names[mode];
}

int vmpressure_mode_parse(const char *name, enum vmpressure_mode *ret_mode)
{
    for (unsigned i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
        if (strcmp(name, mode_names[i]) == 0) {
            *ret_mode = (enum vmpressure_mode)i;
            return 0;
        }
    }
    return -EINVAL;
}

int vmpressure_control_line(int event_fd, int level_fd, enum bp_level level,
                            enum vmpressure_mode mode, char *buf, size_t cap)
{
    if (level < BP_LEVEL_LOW || level > BP_LEVEL_CRITICAL || !vmpressure_mode_name(mode))
        return -EINVAL;
    int n;
    if (mode == VMPRESSURE_MODE_DEFAULT)
        n = snprintf(buf, cap, "%d %d %s", event_fd, level_fd, bp_level_name(level));
    else
        n = snprintf(buf, cap, "%d %d %s,%s", event_fd, level_fd, bp_level_name(level),
                     vmpressure_mode_name(mode));
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

/* Copy a mountinfo path field, decoding the kernel's \ooo escapes (spaces and the like). */
static int unescape(struct span s, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c == '\\' && i + 3 < s.len && s.p[i + 1] >= '0' && s.p[i + 1] <= '3' &&
            s.p[i + 2] >= '0' && s.p[i + 2] <= '7' && s.p[i + 3] >= '0' && s.p[i + 3] <= '7') {
            c = (char)((s.p[i + 1] - '0') * 64 + (s.p[i + 2] - '0') * 8 + (s.p[i + 3] - '0'));
            i += 3;
        }
        if (o + 1 >= cap)
            return -ENAMETOOLONG;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* True when the comma-separated list contains the word. */
static bool list_has(struct span list, const char *word)
{
    size_t n = strlen(word);
    while (list.len > 0) {
        const char *comma = memchr(list.p, ',', list.len);
        size_t len = comma ? (size_t)(comma - list.p) : list.len;
        if (len == n && memcmp(list.p, word, n) == 0)
            return true;
        if (!comma)
            break;
        list.p += len + 1;
        list.len -= len + 1;
    }
    return false;
}

int vmpressure_find_mount(const char *mountinfo, size_t len, char *ret_path, size_t cap)
{
    struct span rest = {mountinfo, len}, line;

    /* "36 25 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory" */
    while (span_next_line(&rest, &line)) {
        struct span word, mount_point = {0};
        int field = 0;
        bool after_dash = false;
        int dash_field = 0;
        struct span fstype = {0}, super = {0};
        while (span_next_word(&line, &word)) {
            field++;
            if (field == 5)
                mount_point = word;
            if (!after_dash && field > 6 && span_eq(word, "-")) {
                after_dash = true;
                dash_field = 0;
                continue;
            }
            if (after_dash) {
                dash_field++;
                if (dash_field == 1)
                    fstype = word;
                else if (dash_field == 3)
                    super = word;
            }
        }
        if (!after_dash || !span_eq(fstype, "cgroup") || !list_has(super, "memory"))
            continue;
        return unescape(mount_point, ret_path, cap);
    }
    return -ENOENT;
}

static void on_event(uv_poll_t *poll, int status, int events)
{
    struct vmpressure_source *src = poll->data;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    enum bp_level highest = BP_LEVEL_NONE;

    (void)status;
    (void)events;
    /* Drain every level: one measurement signals all levels up to its own. */
    for (int i = 0; i < 3; i++) {
        uint64_t count;
        if (read(src->ev[i].efd, &count, sizeof(count)) == sizeof(count) && count > 0)
            highest = (enum bp_level)(i + 1);
    }
    if (highest != BP_LEVEL_NONE)
        src->cb(src, highest, now_ns, src->opaque);
}

static void close_fds(struct vmpressure_source *src)
{
    for (int i = 0; i < 3; i++) {
        if (src->ev[i].efd >= 0)
            close(src->ev[i].efd);
        src->ev[i].efd = -1;
    }
    if (src->level_fd >= 0)
        close(src->level_fd);
    src->level_fd = -1;
}

int vmpressure_start(struct vmpressure_source *src, uv_loop_t *loop, const char *cgroup_dir,
                     enum vmpressure_mode mode, vmpressure_cb cb, void *opaque)
{
    char path[PATH_MAX + 32];
    int control_fd = -1, r;

    memset(src, 0, sizeof(*src));
    src->loop = loop;
    src->cb = cb;
    src->opaque = opaque;
    src->level_fd = -1;
    for (int i = 0; i < 3; i++)
        src->ev[i].efd = -1;
    if (snprintf(src->cgroup, sizeof(src->cgroup), "%s", cgroup_dir) >= (int)sizeof(src->cgroup))
        return -ENAMETOOLONG;

    snprintf(path, sizeof(path), "%s/memory.pressure_level", cgroup_dir);
    src->level_fd = open(path, O_RDONLY | O_CLOEXEC);
    if (src->level_fd < 0) {
        r = -errno;
        goto fail;
    }
    snprintf(path, sizeof(path), "%s/cgroup.event_control", cgroup_dir);
    control_fd = open(path, O_WRONLY | O_CLOEXEC);
    if (control_fd < 0) {
        r = -errno;
        goto fail;
    }
    /* Registered critical first: the kernel signals the newest registration first, so a
     * wake-up on low finds the higher levels already signalled. */
    for (int i = 2; i >= 0; i--) {
        char line[128];
        src->ev[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (src->ev[i].efd < 0) {
            r = -errno;
            goto fail;
        }
        r = vmpressure_control_line(src->ev[i].efd, src->level_fd, (enum bp_level)(i + 1), mode,
                                    line, sizeof(line));
        if (r < 0)
            goto fail;
        /* The kernel wants the trailing NUL. */
        if (write(control_fd, line, (size_t)r + 1) < 0) {
            r = -errno;
            goto fail;
        }
    }
    close(control_fd);
    control_fd = -1;

    for (int i = 0; i < 3; i++) {
        r = uv_poll_init(loop, &src->ev[i].poll, src->ev[i].efd);
        if (r < 0) {
            /* Handles already initialised must be closed through the loop. */
            for (int k = 0; k < i; k++)
                uv_close((uv_handle_t *)&src->ev[k].poll, NULL);
            goto fail;
        }
        src->ev[i].poll.data = src;
        uv_poll_start(&src->ev[i].poll, UV_READABLE, on_event);
    }
    return 0;

fail:
    if (control_fd >= 0)
        close(control_fd);
    close_fds(src);
    return r;
}

static void on_closed(uv_handle_t *handle)
{
    struct vmpressure_source *src = handle->data;
    if (--src->pending_closes == 0) {
        close_fds(src);
        if (src->close_cb)
            src->close_cb(src);
    }
}

void vmpressure_close(struct vmpressure_source *src,
                      void (*close_cb)(struct vmpressure_source *src))
{
    src->close_cb = close_cb;
    src->pending_closes = 3;
    for (int i = 0; i < 3; i++)
        uv_close((uv_handle_t *)&src->ev[i].poll, on_closed);
}
