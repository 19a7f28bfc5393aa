/* Benchmark: the agent at rest. Runs bellows-agent with default options against a unix
 * socket peer that reads, for SECONDS, then again with the peer gone, and reports its RSS
 * (VmRSS, VmHWM, VmLck) and wake-ups per second (voluntary context switches from
 * /proc/PID/status) and CPU time.
 * usage: agent-idle AGENT [SECONDS] [extra agent options...] (root for mlockall) */
#include "tests/agent/real_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64], sock_path[128], log_path[128];
static pid_t agent_pid;

static void cleanup(void)
{
    if (agent_pid > 0)
        real_stop(agent_pid);
    agent_pid = 0;
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
}

struct sample {
    long sw, cpu;
};

static struct sample sample(void)
{
    return (struct sample){real_status_field(agent_pid, "voluntary_ctxt_switches"),
                           real_cpu_ticks(agent_pid)};
}

static void report(const char *what, struct sample a, struct sample b, int seconds)
{
    long hz = sysconf(_SC_CLK_TCK);
    printf("%-28s %6.2f wake-ups/s  CPU %ld ms in %d s  VmRSS %ld kB  VmHWM %ld kB  VmLck %ld kB\n",
           what, (double)(b.sw - a.sw) / seconds, (b.cpu - a.cpu) * 1000 / hz, seconds,
           real_status_field(agent_pid, "VmRSS"), real_status_field(agent_pid, "VmHWM"),
           real_status_field(agent_pid, "VmLck"));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s AGENT [SECONDS] [agent options...]\n", argv[0]);
        return 2;
    }
    int seconds = argc > 2 ? atoi(argv[2]) : 60;
    real_cleanup = cleanup;
    snprintf(dir, sizeof(dir), "/tmp/bellows-idle-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(sock_path, sizeof(sock_path), "%s/port.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);

    const char *args[32] = {"--device", sock_path};
    int n = 2;
    for (int i = 3; i < argc && n < 30; i++)
        args[n++] = argv[i];
    args[n] = NULL;
    int lfd = real_listen(sock_path);
    agent_pid = real_spawn_agent(argv[1], args, log_path, NULL);
    int fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "no connection");
    struct real_peer *peer = malloc(sizeof(*peer));
    real_peer_init(peer, fd);
    struct bp_msg m;
    CHECK(real_peer_next(peer, &m, 5000) == 1 && m.type == BP_MSG_HELLO, "no hello");

    /* Connected and quiet: the peer keeps reading the heartbeats. */
    struct sample a = sample();
    uint64_t end = real_now_ns() + (uint64_t)seconds * 1000000000u;
    int reports = 0;
    while (real_now_ns() < end)
        if (real_peer_next(peer, &m, 500) == 1 && m.type == BP_MSG_REPORT)
            reports++;
    struct sample b = sample();
    printf("agent %s, options:", argv[1]);
    for (int i = 2; i < n; i++)
        printf(" %s", args[i]);
    printf("\n");
    report("connected, quiet:", a, b, seconds);
    printf("  (%d heartbeat reports received)\n", reports);

    /* The host gone: no listener, no socket file; the agent retries on its timer. */
    close(fd);
    close(lfd);
    unlink(sock_path);
    usleep(300000);
    a = sample();
    sleep((unsigned)seconds); /* measuring an interval */
    b = sample();
    report("host gone:", a, b, seconds);
    free(peer);
    cleanup();
    return 0;
}
