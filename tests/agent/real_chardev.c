/* bellows-agent on a real character device: a pseudo-terminal's slave stands in for the
 * virtio port and this test holds the master as the host. When the master closes, the slave
 * hangs up for good (POLLHUP and POLLERR stay set, reads return 0), as a virtio port does
 * while the host side is closed: the agent must close it and retry on a timer, not spin.
 * usage: real_chardev AGENT */
#include "tests/agent/real_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

static char dir[64], log_path[128];
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
    unlink(log_path);
    rmdir(dir);
}

/* A new pty in raw mode (no echo, no newline translation); returns the master. The test
 * keeps one slave fd open in *ret_slave, or the master reads EIO until the agent opens it. */
static int open_pty(char *slave_path, size_t cap, int *ret_slave)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(master >= 0, "posix_openpt: %s", strerror(errno));
    CHECK(grantpt(master) == 0 && unlockpt(master) == 0, "grantpt/unlockpt");
    CHECK(ptsname_r(master, slave_path, cap) == 0, "ptsname");
    /* The line discipline's settings live with the pair; set them raw through the slave. */
    int slave = open(slave_path, O_RDWR | O_NOCTTY | O_CLOEXEC);
    CHECK(slave >= 0, "open %s: %s", slave_path, strerror(errno));
    struct termios t;
    CHECK(tcgetattr(slave, &t) == 0, "tcgetattr");
    cfmakeraw(&t);
    CHECK(tcsetattr(slave, TCSANOW, &t) == 0, "tcsetattr");
    *ret_slave = slave;
    return master;
}

static void expect_hello(struct real_peer *p)
{
    struct bp_msg m;
    CHECK(real_peer_next(p, &m, 5000) == 1, "no hello within 5 s");
    CHECK(m.type == BP_MSG_HELLO, "first message is %s", bp_msg_type_name(m.type));
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s AGENT\n", argv[0]);
        return 2;
    }
    real_cleanup = cleanup;
    snprintf(dir, sizeof(dir), "/tmp/bellows-chardev-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);

    char slave[64];
    int held;
    int master = open_pty(slave, sizeof(slave), &held);
    const char *args[] = {"--device", slave, "--no-mlock", "--reconnect-max", "1000", NULL};
    agent_pid = real_spawn_agent(argv[1], args, log_path, NULL);
    struct real_peer *peer = malloc(sizeof(*peer));
    real_peer_init(peer, master);

    /* 1. Frames arrive whole through the character device; the welcome goes back. */
    expect_hello(peer);
    real_peer_welcome(peer, 1000, 0);
    struct bp_msg m;
    int reports = 0;
    uint64_t first = 0, last = 0;
    while (reports < 3) {
        CHECK(real_peer_next(peer, &m, 3000) == 1, "reports stopped after %d", reports);
        if (m.type != BP_MSG_REPORT)
            continue;
        if (reports++ == 0)
            first = m.u.report.mono_ns;
        last = m.u.report.mono_ns;
    }
    /* The fresh report after the hello, then two heartbeats 1 s apart (welcome applied). */
    printf("3 reports in %llu ms over %s\n", (unsigned long long)((last - first) / 1000000u),
           slave);
    CHECK(last - first <= 2500000000u, "heartbeat not 1 s: welcome not applied");
    CHECK(peer->bad == 0, "%llu bad frames", (unsigned long long)peer->bad);

    /* 2. The host side closes: the slave is hung up for good and its path goes away. The
     * agent must back off, not spin on POLLHUP. */
    close(held);
    close(master);
    struct timespec settle = {0, 300 * 1000 * 1000};
    nanosleep(&settle, NULL);
    long cpu0 = real_cpu_ticks(agent_pid);
    long sw0 = real_status_field(agent_pid, "voluntary_ctxt_switches");
    struct timespec idle = {3, 0};
    nanosleep(&idle, NULL); /* measuring an interval */
    long cpu1 = real_cpu_ticks(agent_pid);
    long sw1 = real_status_field(agent_pid, "voluntary_ctxt_switches");
    long hz = sysconf(_SC_CLK_TCK);
    printf("host side closed for 3 s: CPU %ld ms, %ld wake-ups\n", (cpu1 - cpu0) * 1000 / hz,
           sw1 - sw0);
    CHECK((cpu1 - cpu0) * 1000 / hz <= 50, "agent used %ld ms of CPU on a hung-up device",
          (cpu1 - cpu0) * 1000 / hz);
    CHECK(sw1 - sw0 <= 30, "%ld wake-ups in 3 s on a hung-up device", sw1 - sw0);
    char *log = real_read_file(log_path);
    CHECK(log && strstr(log, "retrying"), "the hang-up was not logged");
    free(log);

    /* 3. A new pty usually gets the same number back: then the agent reopens it and says
     * hello again. (The kernel may pick another number; nothing to check then.) */
    char again[64];
    master = open_pty(again, sizeof(again), &held);
    if (strcmp(again, slave) == 0) {
        real_peer_init(peer, master);
        expect_hello(peer);
        printf("reopened %s and said hello again\n", slave);
    } else {
        printf("the new pty is %s, not %s: reopen not checked\n", again, slave);
    }
    int status = real_stop(agent_pid);
    agent_pid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent exit status 0x%x", status);
    close(held);
    close(master);
    free(peer);
    log = real_read_file(log_path);
    printf("agent log:\n%s", log ? log : "");
    free(log);
    unlink(log_path);
    rmdir(dir);
    printf("PASS\n");
    return 0;
}
