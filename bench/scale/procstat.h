/* What the benchmark reads about another process from /proc: CPU time, RSS, and context
 * switches summed over all its threads. A pure parser per file, and a reader. */
#ifndef BELLOWS_BENCH_PROCSTAT_H
#define BELLOWS_BENCH_PROCSTAT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct procstat {
    double cpu_seconds;   /* utime + stime */
    uint64_t rss_kb;      /* VmRSS */
    uint64_t hwm_kb;      /* VmHWM: peak RSS */
    uint64_t ctxsw_vol;   /* voluntary context switches, all threads */
    uint64_t ctxsw_invol; /* involuntary, all threads */
    unsigned threads;
    unsigned fds;             /* open file descriptors */
    double runq_wait_seconds; /* time runnable but waiting for a CPU, all threads (schedstat) */
};

/* Parse the text of /proc/PID/stat: utime + stime in clock ticks. 0 or -EINVAL. */
int procstat_parse_stat(const char *text, uint64_t *ret_ticks);

/* Parse a /proc/PID[/task/TID]/status text; adds its context switches to *st and sets
 * rss_kb/hwm_kb when present. 0 or -EINVAL. */
int procstat_parse_status(const char *text, struct procstat *st);

/* Read everything above for pid. 0 or a negative errno (-ESRCH when it is gone). */
int procstat_read(pid_t pid, struct procstat *ret);

#endif
