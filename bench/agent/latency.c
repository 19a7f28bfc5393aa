/* Benchmark: time from the agent's wake-up on a kernel pressure notification (eventfd for
 * vmpressure, POLLPRI for PSI) to the frame's bytes written to the port, and on to the host
 * end reading them.
 *
 * Runs bellows-agent-bench (the agent built with -DBELLOWS_AGENT_BENCH, which logs
 * "bench: ... wake_ns=... written_ns=..." for every pressure frame it writes) on a 64 MiB
 * cgroup v1 memory cgroup filled by a child, sending to a unix socket this program reads.
 * Both clocks are CLOCK_MONOTONIC of the same machine.
 * usage: agent-latency AGENT_BENCH SCRATCH_DIR [SECONDS] [SOURCES] [REPEAT_MS] (root)
 * REPEAT_MS (default 0: every notification at once) is passed as --repeat-interval and
 * --critical-repeat-interval; "default" keeps the agent's own (1000 and 100 ms), to see how
 * many messages a guest under pressure sends. */
#include "guest-agent/vmpressure.h"
#include "tests/agent/real_util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char cgroup[4200], dir[64], sock_path[128], log_path[128], data_path[4200];
static pid_t agent_pid, filler_pid;

static void cleanup(void)
{
    if (filler_pid > 0) {
        kill(filler_pid, SIGKILL);
        waitpid(filler_pid, NULL, 0);
    }
    filler_pid = 0;
    if (agent_pid > 0)
        real_stop(agent_pid);
    agent_pid = 0;
    if (data_path[0])
        unlink(data_path);
    for (int i = 0; cgroup[0] && i < 50 && rmdir(cgroup) < 0 && errno == EBUSY; i++)
        usleep(100000);
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
}

static void fill(void)
{
    static char chunk[1 << 20];
    memset(chunk, 0x5a, sizeof(chunk));
    int fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        _exit(3);
    for (int i = 0; i < 400; i++)
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            _exit(4);
    char *anon = malloc(50u << 20);
    if (anon)
        memset(anon, 1, 50u << 20);
    for (;;) {
        lseek(fd, 0, SEEK_SET);
        while (read(fd, chunk, sizeof(chunk)) > 0)
            ;
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void summary(const char *what, uint64_t *v, size_t n)
{
    if (n == 0) {
        printf("%-34s no samples\n", what);
        return;
    }
    qsort(v, n, sizeof(v[0]), cmp_u64);
    printf("%-34s n=%-5zu min %7.1f us  median %7.1f us  p90 %7.1f us  max %8.1f us\n", what, n,
           v[0] / 1e3, v[n / 2] / 1e3, v[n * 9 / 10] / 1e3, v[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s AGENT_BENCH SCRATCH_DIR [SECONDS] [SOURCES] [REPEAT_MS]\n",
                argv[0]);
        return 2;
    }
    int seconds = argc > 3 ? atoi(argv[3]) : 20;
    const char *sources = argc > 4 ? argv[4] : "vmpressure,psi";
    const char *repeat = argc > 5 ? argv[5] : "0";
    char *mountinfo = real_read_file("/proc/self/mountinfo");
    char mount[4096];
    if (!mountinfo ||
        vmpressure_find_mount(mountinfo, strlen(mountinfo), mount, sizeof(mount)) < 0) {
        printf("SKIP: no cgroup v1 memory controller\n");
        return 77;
    }
    free(mountinfo);
    real_cleanup = cleanup;
    snprintf(dir, sizeof(dir), "/tmp/bellows-latency-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp");
    snprintf(sock_path, sizeof(sock_path), "%s/port.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);
    snprintf(data_path, sizeof(data_path), "%s/bellows-latency-%d.data", argv[2], (int)getpid());
    snprintf(cgroup, sizeof(cgroup), "%s/bellows-bench-%d", mount, (int)getpid());
    CHECK(mkdir(cgroup, 0755) == 0, "mkdir %s: %s", cgroup, strerror(errno));
    char path[4300];
    snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", cgroup);
    int lim = open(path, O_WRONLY);
    CHECK(lim >= 0 && write(lim, "67108864", 8) == 8, "limit");
    close(lim);

    int lfd = real_listen(sock_path);
    /* By default every notification goes out at once: repeats are not held back. */
    const char *args[] = {"--device",
                          sock_path,
                          "--sources",
                          sources,
                          "--cgroup",
                          cgroup,
                          "--repeat-interval",
                          repeat,
                          "--critical-repeat-interval",
                          repeat,
                          NULL};
    if (strcmp(repeat, "default") == 0)
        args[6] = NULL;
    agent_pid = real_spawn_agent(argv[1], args, log_path, NULL);
    int fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "no connection");
    struct real_peer *peer = malloc(sizeof(*peer));
    real_peer_init(peer, fd);

    filler_pid = fork();
    if (filler_pid == 0) {
        char procs[4300], pid[32];
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        int pfd = open(procs, O_WRONLY);
        if (pfd < 0 || write(pfd, pid, strlen(pid)) < 0)
            _exit(2);
        fill();
    }

    static uint64_t recv_vmp[100000], recv_psi[100000];
    static uint64_t host_by_seq[1 << 20]; /* host latency per seq, to cross-check the log */
    size_t n_recv_vmp = 0, n_recv_psi = 0;
    unsigned per_level[2][4] = {{0}};
    uint64_t end = real_now_ns() + (uint64_t)seconds * 1000000000u;
    struct bp_msg m;
    while (real_now_ns() < end) {
        if (real_peer_next(peer, &m, 200) != 1 || m.type != BP_MSG_PRESSURE)
            continue;
        uint64_t d = real_now_ns() - m.u.pressure.mono_ns;
        per_level[m.u.pressure.source & 1][m.u.pressure.level & 3]++;
        if (m.u.pressure.seq < (1 << 20))
            host_by_seq[m.u.pressure.seq] = d;
        if (m.u.pressure.source == BP_SOURCE_PSI && n_recv_psi < 100000)
            recv_psi[n_recv_psi++] = d;
        else if (m.u.pressure.source == BP_SOURCE_VMPRESSURE && n_recv_vmp < 100000)
            recv_vmp[n_recv_vmp++] = d;
    }
    kill(filler_pid, SIGKILL);
    waitpid(filler_pid, NULL, 0);
    filler_pid = 0;
    long rss = real_status_field(agent_pid, "VmRSS");
    real_stop(agent_pid);
    agent_pid = 0;

    /* The agent's own measurement: wake-up to write() returned. */
    static uint64_t wr_vmp[100000], wr_psi[100000];
    size_t n_wr_vmp = 0, n_wr_psi = 0, matched = 0, inverted = 0;
    char *log = real_read_file(log_path);
    for (char *line = log; line && *line;) {
        char *nl = strchr(line, '\n');
        unsigned long long seq, wake, written;
        char source[16];
        if (sscanf(line,
                   "bellows-agent: bench: seq=%llu level=%*s source=%15s wake_ns=%llu "
                   "written_ns=%llu",
                   &seq, source, &wake, &written) == 4) {
            /* Only frames the host read in the measured time count. */
            if (seq >= (1 << 20) || host_by_seq[seq] == 0) {
                line = nl ? nl + 1 : NULL;
                continue;
            }
            matched++;
            if (host_by_seq[seq] < written - wake)
                inverted++;
            if (strcmp(source, "psi") == 0 && n_wr_psi < 100000)
                wr_psi[n_wr_psi++] = written - wake;
            else if (n_wr_vmp < 100000)
                wr_vmp[n_wr_vmp++] = written - wake;
        }
        line = nl ? nl + 1 : NULL;
    }
    free(log);
    printf("agent-latency: %d s of a 64 MiB cgroup under a 400 MiB file + 50 MiB, sources %s, "
           "repeat intervals %s\n",
           seconds, sources, repeat);
    printf("messages received: vmpressure low %u, medium %u, critical %u; "
           "psi low %u, medium %u, critical %u\n",
           per_level[0][1], per_level[0][2], per_level[0][3], per_level[1][1], per_level[1][2],
           per_level[1][3]);
    summary("vmpressure wake-up -> write() done", wr_vmp, n_wr_vmp);
    summary("vmpressure wake-up -> host read", recv_vmp, n_recv_vmp);
    summary("PSI wake-up -> write() done", wr_psi, n_wr_psi);
    summary("PSI wake-up -> host read", recv_psi, n_recv_psi);
    printf("agent VmRSS under load: %ld kB; bad frames: %llu; frames the host read before the "
           "agent's write() returned: "
           "%zu of %zu\n",
           rss, (unsigned long long)peer->bad, inverted, matched);
    close(fd);
    close(lfd);
    free(peer);
    cleanup();
    return 0;
}
