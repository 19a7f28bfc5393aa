/* bellows-agent's transport for real: a unix socket stands in for the virtio port.
 * Frames arrive framed and valid, the hello first; the host's welcome is applied; the peer
 * closes and comes back and the agent reconnects and says hello again (same boot id, seq
 * going on); while the peer is gone entirely the agent stays idle (CPU time and wake-ups
 * bounded) instead of spinning.
 * usage: real_transport AGENT */
#include "tests/agent/real_util.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char dir[64], sock_path[128], log_path[128];
static pid_t agent_pid;

static void cleanup(void)
{
    if (agent_pid > 0)
        real_stop(agent_pid);
    agent_pid = 0;
    char *log = real_read_file(log_path);
    if (log) {
        fprintf(stderr, "--- agent log ---\n%s--- end ---\n", log);
        free(log);
    }
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
}

/* The first message of a connection must be a valid hello; returns it. */
static struct bp_hello expect_hello(struct real_peer *p)
{
    struct bp_msg m;
    CHECK(real_peer_next(p, &m, 5000) == 1, "no hello within 5 s");
    CHECK(m.type == BP_MSG_HELLO, "first message is %s, not hello", bp_msg_type_name(m.type));
    CHECK(m.u.hello.protocol_version == BP_PROTOCOL_VERSION, "version");
    CHECK(strncmp(m.u.hello.agent, "bellows-agent ", 14) == 0, "agent \"%s\"", m.u.hello.agent);
    CHECK(m.u.hello.sources != 0, "hello names no source");
    CHECK(m.u.hello.caps & BP_CAP_SETTINGS, "caps lack settings");
    return m.u.hello;
}

/* The next report (skipping pressure, which a busy machine may cause); returns its seq. */
static struct bp_report expect_report(struct real_peer *p, int timeout_ms)
{
    struct bp_msg m;
    uint64_t deadline = real_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        uint64_t now = real_now_ns();
        CHECK(now < deadline, "no report within %d ms", timeout_ms);
        int r = real_peer_next(p, &m, (int)((deadline - now) / 1000000u) + 1);
        CHECK(r == 1, "no report within %d ms (r=%d)", timeout_ms, r);
        CHECK(m.type == BP_MSG_REPORT || m.type == BP_MSG_PRESSURE, "unexpected %s",
              bp_msg_type_name(m.type));
        if (m.type == BP_MSG_REPORT) {
            CHECK(m.u.report.mem.mem_total_kb > 0, "report without MemTotal");
            return m.u.report;
        }
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s AGENT\n", argv[0]);
        return 2;
    }
    real_cleanup = cleanup;
    snprintf(dir, sizeof(dir), "/tmp/bellows-transport-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(sock_path, sizeof(sock_path), "%s/port.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);

    int lfd = real_listen(sock_path);
    const char *args[] = {"--device", sock_path,           "--no-mlock", "--reconnect-max",
                          "1000",     "--report-interval", "10000",      NULL};
    agent_pid = real_spawn_agent(argv[1], args, log_path, NULL);

    /* 1. Connect, hello first, then the current state at once. */
    int fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "the agent did not connect within 5 s");
    struct real_peer *peer = malloc(sizeof(*peer));
    real_peer_init(peer, fd);
    struct bp_hello hello = expect_hello(peer);
    struct bp_report rep = expect_report(peer, 2000);
    printf("hello: agent \"%s\" boot_id %s sources 0x%x; first report seq %llu\n", hello.agent,
           hello.boot_id, hello.sources, (unsigned long long)rep.seq);

    /* 2. The welcome's interval (1 s instead of 10 s) is applied: two reports in < 3 s. */
    real_peer_welcome(peer, 1000, 0);
    struct bp_report r1 = expect_report(peer, 2500);
    struct bp_report r2 = expect_report(peer, 2500);
    uint64_t gap_ms = (r2.mono_ns - r1.mono_ns) / 1000000u;
    printf("reports after the welcome: seq %llu, %llu, %llu ms apart\n", (unsigned long long)r1.seq,
           (unsigned long long)r2.seq, (unsigned long long)gap_ms);
    CHECK(gap_ms >= 900 && gap_ms <= 1500, "reports %llu ms apart, want about 1000",
          (unsigned long long)gap_ms);
    CHECK(r2.seq > r1.seq && r1.seq > rep.seq, "seq must increase");
    uint64_t last_seq = r2.seq;

    /* 3. The peer closes; the listener stays: the agent is back quickly with a hello. */
    close(fd);
    uint64_t t0 = real_now_ns();
    fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "no reconnect within 5 s after the peer closed");
    printf("reconnected %llu ms after the peer closed\n",
           (unsigned long long)((real_now_ns() - t0) / 1000000u));
    real_peer_init(peer, fd);
    struct bp_hello again = expect_hello(peer);
    CHECK(strcmp(again.boot_id, hello.boot_id) == 0, "boot_id changed on reconnect");
    rep = expect_report(peer, 2000);
    CHECK(rep.seq > last_seq, "seq went back from %llu to %llu", (unsigned long long)last_seq,
          (unsigned long long)rep.seq);
    last_seq = rep.seq;

    /* 4. The peer goes away entirely (no listener, no socket file): the agent retries on a
     * timer. Over 5 s it must stay near idle: a spinning agent burns a whole core. */
    close(fd);
    close(lfd);
    unlink(sock_path);
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL); /* let it notice the hang-up before measuring */
    long cpu0 = real_cpu_ticks(agent_pid);
    long sw0 = real_status_field(agent_pid, "voluntary_ctxt_switches");
    long nsw0 = real_status_field(agent_pid, "nonvoluntary_ctxt_switches");
    struct timespec idle = {5, 0};
    nanosleep(&idle, NULL); /* measuring an interval, not waiting for an event */
    long cpu1 = real_cpu_ticks(agent_pid);
    long sw1 = real_status_field(agent_pid, "voluntary_ctxt_switches");
    long nsw1 = real_status_field(agent_pid, "nonvoluntary_ctxt_switches");
    long ticks_per_s = sysconf(_SC_CLK_TCK);
    printf("peer gone for 5 s: agent CPU %ld ticks (%ld ms), %ld voluntary + %ld involuntary "
           "context switches\n",
           cpu1 - cpu0, (cpu1 - cpu0) * 1000 / ticks_per_s, sw1 - sw0, nsw1 - nsw0);
    CHECK(cpu0 >= 0 && cpu1 >= 0, "cannot read /proc/%d/stat", (int)agent_pid);
    /* Retries every 1 s at most and a heartbeat every 1 s: ~10 wake-ups. */
    CHECK((cpu1 - cpu0) * 1000 / ticks_per_s <= 50, "agent used %ld ms of CPU while idle",
          (cpu1 - cpu0) * 1000 / ticks_per_s);
    CHECK(sw1 - sw0 <= 40, "%ld wake-ups in 5 s while the peer was gone", sw1 - sw0);

    /* 5. The peer comes back: the agent finds it within its longest retry delay. */
    lfd = real_listen(sock_path);
    t0 = real_now_ns();
    fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "no reconnect within 5 s after the peer came back");
    printf("reconnected %llu ms after the peer came back\n",
           (unsigned long long)((real_now_ns() - t0) / 1000000u));
    real_peer_init(peer, fd);
    again = expect_hello(peer);
    CHECK(strcmp(again.boot_id, hello.boot_id) == 0, "boot_id changed on reconnect");
    rep = expect_report(peer, 2000);
    CHECK(rep.seq > last_seq, "seq went back");

    /* 6. Every frame of every connection decoded. */
    CHECK(peer->bad == 0, "%llu bad frames", (unsigned long long)peer->bad);

    /* 7. SIGTERM ends it cleanly. */
    int status = real_stop(agent_pid);
    agent_pid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent exit status 0x%x", status);
    close(fd);
    close(lfd);
    free(peer);
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
    printf("PASS\n");
    return 0;
}
