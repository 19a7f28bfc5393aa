/* /proc readers for the benchmark: one process's CPU, memory and context switches. */
#include "bench/scale/procstat.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int procstat_parse_stat(const char *text, uint64_t *ret_ticks)
{
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    const char *p = strrchr(text, ')');
    if (!p)
        return -EINVAL;
    unsigned long long utime, stime;
    /* After ") ": state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime(15). */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) !=
        2)
        return -EINVAL;
    *ret_ticks = utime + stime;
    return 0;
}

static int field(const char *text, const char *key, uint64_t *ret)
{
    const char *p = strstr(text, key);
    if (!p)
        return -ENOENT;
    unsigned long long v;
    if (sscanf(p + strlen(key), " %llu", &v) != 1)
        return -EINVAL;
    *ret = v;
    return 0;
}

int procstat_parse_status(const char *text, struct procstat *st)
{
    uint64_t vol, invol, v;
    if (field(text, "\nvoluntary_ctxt_switches:", &vol) < 0 ||
        field(text, "\nnonvoluntary_ctxt_switches:", &invol) < 0)
        return -EINVAL;
    st->ctxsw_vol += vol;
    st->ctxsw_invol += invol;
    if (field(text, "\nVmRSS:", &v) == 0)
        st->rss_kb = v;
    if (field(text, "\nVmHWM:", &v) == 0)
        st->hwm_kb = v;
    return 0;
}

static int read_text(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, cap - 1);
    int err = errno;
    close(fd);
    if (n < 0)
        return -err;
    buf[n] = '\0';
    return 0;
}

static unsigned count_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

int procstat_read(pid_t pid, struct procstat *ret)
{
    char path[64], text[4096];
    struct procstat st = {0};
    uint64_t ticks;
    int r;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((r = read_text(path, text, sizeof(text))) < 0)
        return r == -ENOENT ? -ESRCH : r;
    if ((r = procstat_parse_stat(text, &ticks)) < 0)
        return r;
    st.cpu_seconds = (double)ticks / (double)sysconf(_SC_CLK_TCK);

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    struct procstat whole = {0};
    if ((r = read_text(path, text, sizeof(text))) < 0 ||
        (r = procstat_parse_status(text, &whole)) < 0)
        return r;
    st.rss_kb = whole.rss_kb;
    st.hwm_kb = whole.hwm_kb;

    /* The process's own status counts only its main thread's switches: sum the tasks. */
    snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -errno;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char tpath[300];
        snprintf(tpath, sizeof(tpath), "/proc/%d/task/%s/status", (int)pid, e->d_name);
        struct procstat t = {0};
        char spath[300];
        unsigned long long run_ns, wait_ns;
        snprintf(spath, sizeof(spath), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
        if (read_text(spath, text, sizeof(text)) == 0 &&
            sscanf(text, "%llu %llu", &run_ns, &wait_ns) == 2)
            st.runq_wait_seconds += (double)wait_ns / 1e9;
        if (read_text(tpath, text, sizeof(text)) == 0 && procstat_parse_status(text, &t) == 0) {
            st.ctxsw_vol += t.ctxsw_vol;
            st.ctxsw_invol += t.ctxsw_invol;
            st.threads++;
        }
    }
    closedir(d);
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    st.fds = count_entries(path);
    *ret = st;
    return 0;
}
