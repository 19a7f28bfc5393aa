/* Memory snapshot from /proc text files. */
#include "guest-agent/snapshot.h"

#include "guest-agent/meminfo.h"
#include "guest-agent/psi_stats.h"
#include "guest-agent/vmstat.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int open_under(const char *root, const char *name)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", root, name) >= (int)sizeof(path))
        return -ENAMETOOLONG;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int snapshot_open(struct snapshot_reader *r, const char *proc_root)
{
    r->meminfo_fd = open_under(proc_root, "meminfo");
    if (r->meminfo_fd < 0)
        return r->meminfo_fd;
    r->vmstat_fd = open_under(proc_root, "vmstat");
    r->psi_fd = open_under(proc_root, "pressure/memory");
    if (r->vmstat_fd < 0)
        r->vmstat_fd = -1;
    if (r->psi_fd < 0)
        r->psi_fd = -1;
    return 0;
}

/* Read a whole proc file from its start into r->buf; returns the length or -errno. */
static ssize_t read_whole(struct snapshot_reader *r, int fd)
{
    size_t len = 0;
    for (;;) {
        ssize_t n = pread(fd, r->buf + len, sizeof(r->buf) - len, (off_t)len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0 || len + (size_t)n == sizeof(r->buf))
            return (ssize_t)(len + (size_t)n);
        len += (size_t)n;
    }
}

int snapshot_read(struct snapshot_reader *r, struct bp_mem *ret_mem)
{
    struct bp_mem m = {0};
    struct meminfo mi;
    ssize_t n = read_whole(r, r->meminfo_fd);
    if (n < 0)
        return (int)n;
    int err = meminfo_parse(r->buf, (size_t)n, &mi);
    if (err < 0)
        return err;
    m.mem_total_kb = mi.mem_total_kb;
    m.mem_free_kb = mi.mem_free_kb;
    m.mem_available_kb = mi.mem_available_kb;
    m.committed_as_kb = mi.committed_as_kb;
    m.swap_total_kb = mi.swap_total_kb;
    m.swap_free_kb = mi.swap_free_kb;

    struct vmstat vs;
    if (r->vmstat_fd >= 0 && (n = read_whole(r, r->vmstat_fd)) >= 0 &&
        vmstat_parse(r->buf, (size_t)n, &vs) == 0) {
        m.pswpin = vs.pswpin;
        m.pswpout = vs.pswpout;
        m.pgmajfault = vs.pgmajfault;
    }

    struct psi_stats ps;
    if (r->psi_fd >= 0 && (n = read_whole(r, r->psi_fd)) >= 0 &&
        psi_stats_parse(r->buf, (size_t)n, &ps) == 0) {
        m.psi_some_avg10 = ps.some.avg10;
        m.psi_some_total_us = ps.some.total_us;
        if (ps.has_full) {
            m.psi_full_avg10 = ps.full.avg10;
            m.psi_full_total_us = ps.full.total_us;
        }
    }
    *ret_mem = m;
    return 0;
}

void snapshot_close(struct snapshot_reader *r)
{
    if (r->meminfo_fd >= 0)
        close(r->meminfo_fd);
    if (r->vmstat_fd >= 0)
        close(r->vmstat_fd);
    if (r->psi_fd >= 0)
        close(r->psi_fd);
    r->meminfo_fd = r->vmstat_fd = r->psi_fd = -1;
}
