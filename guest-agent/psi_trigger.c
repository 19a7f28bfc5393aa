/* PSI trigger source: one trigger fd per level, POLLPRI, fallback to 2 s windows. */
#include "guest-agent/psi_trigger.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define US_PER_MS 1000u

static int parse_ms(const char *s, const char **end, uint32_t *ret_ms)
{
    char *e;
    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(s, &e, 10);
    if (errno || v > PSI_MAX_WINDOW_US / US_PER_MS)
        return -EINVAL;
    *end = e;
    *ret_ms = (uint32_t)v;
    return 0;
}

int psi_spec_parse(const char *text, struct psi_spec *ret_spec)
{
    struct psi_spec s = {.enabled = true};
    const char *p;
    uint32_t stall_ms, window_ms;

    if (strcmp(text, "off") == 0) {
        *ret_spec = (struct psi_spec){0};
        return 0;
    }
    if (strncmp(text, "some:", 5) == 0)
        s.full = false;
    else if (strncmp(text, "full:", 5) == 0)
        s.full = true;
    else
        return -EINVAL;
    p = text + 5;
    if (parse_ms(p, &p, &stall_ms) < 0 || *p != ':')
        return -EINVAL;
    if (parse_ms(p + 1, &p, &window_ms) < 0 || *p != '\0')
        return -EINVAL;
    if (stall_ms == 0 || window_ms == 0 || stall_ms > window_ms)
        return -EINVAL;
    s.stall_us = stall_ms * US_PER_MS;
    s.window_us = window_ms * US_PER_MS;
    *ret_spec = s;
    return 0;
}

int psi_spec_name(const struct psi_spec *spec, char *buf, size_t cap)
{
    int n;
    if (!spec->enabled)
        n = snprintf(buf, cap, "off");
    else
        n = snprintf(buf, cap, "%s:%u:%u", spec->full ? "full" : "some", spec->stall_us / US_PER_MS,
                     spec->window_us / US_PER_MS);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

int psi_spec_trigger(const struct psi_spec *spec, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s %u %u", spec->full ? "full" : "some", spec->stall_us,
                     spec->window_us);
    if (n < 0 || (size_t)n >= cap)
        return -ENOSPC;
    return n;
}

bool psi_spec_fallback(const struct psi_spec *spec, struct psi_spec *ret_spec)
{
    if (spec->window_us % PSI_UNPRIV_WINDOW_US == 0)
        return false;
    uint64_t window = ((uint64_t)spec->window_us / PSI_UNPRIV_WINDOW_US + 1) * PSI_UNPRIV_WINDOW_US;
    if (window > PSI_MAX_WINDOW_US)
        window = PSI_MAX_WINDOW_US;
    uint64_t stall = (uint64_t)spec->stall_us * window / spec->window_us;
    if (stall > window)
        stall = window;
    *ret_spec = *spec;
    ret_spec->window_us = (uint32_t)window;
    ret_spec->stall_us = (uint32_t)stall;
    return true;
}

struct psi_spec psi_spec_default(enum bp_level level)
{
    /* Android lmkd: medium = some 70 ms / 1 s, critical = full 700 ms / 1 s; low is ours. */
    switch (level) {
    case BP_LEVEL_LOW:
        return (struct psi_spec){
            .enabled = true, .full = false, .stall_us = 20000, .window_us = 1000000};
    case BP_LEVEL_MEDIUM:
        return (struct psi_spec){
            .enabled = true, .full = false, .stall_us = 70000, .window_us = 1000000};
    case BP_LEVEL_CRITICAL:
        return (struct psi_spec){
            .enabled = true, .full = true, .stall_us = 700000, .window_us = 1000000};
    default:
        return (struct psi_spec){0};
    }
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_trigger(uv_poll_t *handle, int status, int events)
{
    struct psi_source *src = handle->data;
    uint64_t now_ns = mono_ns();
    int idx = (int)(((char *)handle - (char *)src->lv) / (ptrdiff_t)sizeof(src->lv[0]));
    enum bp_level level = (enum bp_level)(idx + 1);

    (void)events;
    /* A trigger whose cgroup is gone reports POLLERR together with POLLPRI, which libuv
     * hands over as a plain POLLPRI: ask the fd itself, or it would fire forever. */
    struct pollfd p = {.fd = src->lv[idx].fd, .events = POLLPRI};
    if (status < 0 || (poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLNVAL)))) {
        uv_poll_stop(handle);
        if (src->gone_cb)
            src->gone_cb(src, level, src->opaque);
        return;
    }
    src->cb(src, level, now_ns, src->opaque);
}

/* Open the file and register one trigger, falling back to a 2 s multiple on EINVAL.
 * Returns the fd or a negative errno. */
static int register_trigger(struct psi_source *src, int idx)
{
    char text[64];
    struct psi_spec spec = src->lv[idx].asked;
    int fd = open(src->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    for (;;) {
        int n = psi_spec_trigger(&spec, text, sizeof(text));
        if (n < 0) {
            close(fd);
            return n;
        }
        /* With its NUL: the kernel overwrites the last byte written. */
        if (write(fd, text, (size_t)n + 1) >= 0)
            break;
        int err = -errno;
        struct psi_spec wider;
        if (err != -EINVAL || !psi_spec_fallback(&spec, &wider)) {
            close(fd);
            return err;
        }
        spec = wider;
        src->lv[idx].fell_back = true;
    }
    src->lv[idx].registered = spec;
    return fd;
}

int psi_start(struct psi_source *src, uv_loop_t *loop, const char *path,
              const struct psi_spec specs[3], psi_cb cb, psi_gone_cb gone_cb, void *opaque)
{
    int r = -EINVAL, started = 0;

    memset(src, 0, sizeof(*src));
    src->cb = cb;
    src->gone_cb = gone_cb;
    src->opaque = opaque;
    if (snprintf(src->path, sizeof(src->path), "%s", path) >= (int)sizeof(src->path))
        return -ENAMETOOLONG;
    for (int i = 0; i < 3; i++) {
        src->lv[i].fd = -1;
        src->lv[i].asked = specs[i];
    }
    for (int i = 0; i < 3; i++) {
        if (!specs[i].enabled)
            continue;
        int fd = register_trigger(src, i);
        if (fd < 0) {
            r = fd;
            goto fail;
        }
        src->lv[i].fd = fd;
        r = uv_poll_init(loop, &src->lv[i].poll, fd);
        if (r < 0) {
            close(fd);
            src->lv[i].fd = -1;
            goto fail;
        }
        src->lv[i].poll.data = src;
        uv_poll_start(&src->lv[i].poll, UV_PRIORITIZED, on_trigger);
        started++;
    }
    if (started == 0)
        return -EINVAL;
    return 0;

fail:
    for (int i = 0; i < 3; i++) {
        if (src->lv[i].fd < 0)
            continue;
        /* uv_close stops the watcher at once; the fd is no longer polled. */
        uv_close((uv_handle_t *)&src->lv[i].poll, NULL);
        close(src->lv[i].fd);
        src->lv[i].fd = -1;
    }
    return r;
}

static void on_closed(uv_handle_t *handle)
{
    struct psi_source *src = handle->data;
    if (--src->pending_closes > 0)
        return;
    for (int i = 0; i < 3; i++) {
        if (src->lv[i].fd >= 0)
            close(src->lv[i].fd);
        src->lv[i].fd = -1;
    }
    if (src->close_cb)
        src->close_cb(src);
}

void psi_close(struct psi_source *src, void (*close_cb)(struct psi_source *src))
{
    src->close_cb = close_cb;
    src->pending_closes = 1;
    for (int i = 0; i < 3; i++) {
        if (src->lv[i].fd < 0)
            continue;
        src->pending_closes++;
        uv_close((uv_handle_t *)&src->lv[i].poll, on_closed);
    }
    /* The extra count keeps close_cb from running before every handle is closed. */
    if (--src->pending_closes == 0) {
        if (src->close_cb)
            src->close_cb(src);
    }
}
