/* bellows-agent's vmpressure source for real: a child memory cgroup (cgroup v1) with a
 * 64 MiB limit, a process in it that writes and reads a 400 MiB file and allocates 50 MiB,
 * and the agent registered on that cgroup sending to a unix socket standing in for the port.
 * The agent must report low, then medium or critical, in valid frames with increasing seq.
 * usage: real_vmpressure AGENT SCRATCH_DIR (on a disk, not tmpfs: the page cache must be
 * reclaimable) */
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
#include <time.h>
#include <unistd.h>

#define LIMIT (64u << 20)
#define FILE_SIZE (400u << 20)
#define ALLOC (50u << 20)

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
    /* The cgroup is empty once the filler is reaped; give the kernel a moment if not. */
    for (int i = 0; cgroup[0] && i < 50 && rmdir(cgroup) < 0 && errno == EBUSY; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char *log = real_read_file(log_path);
    if (log) {
        fprintf(stderr, "--- agent log ---\n%s--- end ---\n", log);
        free(log);
    }
    unlink(sock_path);
    unlink(log_path);
    rmdir(dir);
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text), "write %s: %s", path,
          strerror(errno));
    close(fd);
}

/* The process in the cgroup: page cache well over the limit, then anonymous memory. */
static void fill(void)
{
    static char chunk[1 << 20];
    memset(chunk, 0x5a, sizeof(chunk));
    int fd = open(data_path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        _exit(3);
    for (unsigned i = 0; i < FILE_SIZE / sizeof(chunk); i++)
        if (write(fd, chunk, sizeof(chunk)) != (ssize_t)sizeof(chunk))
            _exit(4);
    char *anon = malloc(ALLOC);
    if (anon)
        memset(anon, 1, ALLOC);
    for (;;) {
        lseek(fd, 0, SEEK_SET);
        while (read(fd, chunk, sizeof(chunk)) > 0)
            ;
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s AGENT SCRATCH_DIR\n", argv[0]);
        return 2;
    }
    char *mountinfo = real_read_file("/proc/self/mountinfo");
    char mount[4096];
    if (!mountinfo ||
        vmpressure_find_mount(mountinfo, strlen(mountinfo), mount, sizeof(mount)) < 0) {
        printf("SKIP: no cgroup v1 memory controller mounted (vmpressure needs it)\n");
        free(mountinfo);
        return 77;
    }
    free(mountinfo);
    real_cleanup = cleanup;

    snprintf(dir, sizeof(dir), "/tmp/bellows-vmpressure-XXXXXX");
    CHECK(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(sock_path, sizeof(sock_path), "%s/port.sock", dir);
    snprintf(log_path, sizeof(log_path), "%s/agent.log", dir);
    snprintf(data_path, sizeof(data_path), "%s/bellows-vmpressure-%d.data", argv[2], (int)getpid());
    snprintf(cgroup, sizeof(cgroup), "%s/bellows-test-%d", mount, (int)getpid());
    CHECK(mkdir(cgroup, 0755) == 0, "mkdir %s: %s", cgroup, strerror(errno));
    char path[4300], text[64];
    snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", cgroup);
    snprintf(text, sizeof(text), "%u", LIMIT);
    write_file(path, text);

    int lfd = real_listen(sock_path);
    const char *args[] = {"--device", sock_path, "--sources",  "vmpressure",
                          "--cgroup", cgroup,    "--no-mlock", NULL};
    agent_pid = real_spawn_agent(argv[1], args, log_path, NULL);
    int fd = real_accept(lfd, 5000);
    CHECK(fd >= 0, "the agent did not connect within 5 s");
    struct real_peer *peer = malloc(sizeof(*peer));
    real_peer_init(peer, fd);
    struct bp_msg m;
    CHECK(real_peer_next(peer, &m, 5000) == 1 && m.type == BP_MSG_HELLO, "no hello");
    CHECK(m.u.hello.sources == 1u << BP_SOURCE_VMPRESSURE, "hello sources 0x%x", m.u.hello.sources);

    /* The filler joins the cgroup before it touches any memory. */
    filler_pid = fork();
    CHECK(filler_pid >= 0, "fork");
    if (filler_pid == 0) {
        char procs[4300], pid[32];
        snprintf(procs, sizeof(procs), "%s/cgroup.procs", cgroup);
        snprintf(pid, sizeof(pid), "%d", (int)getpid());
        int pfd = open(procs, O_WRONLY);
        if (pfd < 0 || write(pfd, pid, strlen(pid)) < 0)
            _exit(2);
        close(pfd);
        fill();
    }

    /* Read what the agent sends for up to 20 s, until low and then medium or critical. */
    uint64_t start = real_now_ns(), deadline = start + 20ull * 1000000000u;
    uint64_t last_seq = 0, first_low_ns = 0, first_high_ns = 0;
    int counts[4] = {0};
    enum bp_level first_high = BP_LEVEL_NONE;
    while (real_now_ns() < deadline && !(first_low_ns && first_high_ns)) {
        int r = real_peer_next(peer, &m, 1000);
        CHECK(r >= 0, "the agent closed the connection");
        if (r == 0)
            continue;
        uint64_t seq = m.type == BP_MSG_PRESSURE ? m.u.pressure.seq : m.u.report.seq;
        CHECK(m.type == BP_MSG_PRESSURE || m.type == BP_MSG_REPORT, "unexpected %s",
              bp_msg_type_name(m.type));
        CHECK(seq == last_seq + 1, "seq %llu after %llu", (unsigned long long)seq,
              (unsigned long long)last_seq);
        last_seq = seq;
        if (m.type != BP_MSG_PRESSURE)
            continue;
        struct bp_pressure *p = &m.u.pressure;
        CHECK(p->source == BP_SOURCE_VMPRESSURE, "source %d", p->source);
        CHECK(p->mem.mem_total_kb > 0 && p->mem.mem_free_kb > 0, "empty snapshot");
        counts[p->level]++;
        uint64_t at = real_now_ns();
        printf("+%5llu ms  pressure %-8s seq %llu  MemAvailable %llu kB\n",
               (unsigned long long)((at - start) / 1000000u), bp_level_name(p->level),
               (unsigned long long)seq, (unsigned long long)p->mem.mem_available_kb);
        if (p->level == BP_LEVEL_LOW && !first_low_ns)
            first_low_ns = at;
        if (p->level >= BP_LEVEL_MEDIUM && first_low_ns && !first_high_ns) {
            first_high_ns = at;
            first_high = p->level;
        }
    }
    printf("in %llu ms: low %d, medium %d, critical %d messages\n",
           (unsigned long long)((real_now_ns() - start) / 1000000u), counts[1], counts[2],
           counts[3]);
    CHECK(first_low_ns, "no low pressure reported within 20 s");
    CHECK(first_high_ns, "no medium or critical after low within 20 s");
    printf("low after %llu ms, then %s after %llu ms\n",
           (unsigned long long)((first_low_ns - start) / 1000000u), bp_level_name(first_high),
           (unsigned long long)((first_high_ns - start) / 1000000u));
    CHECK(peer->bad == 0, "%llu bad frames", (unsigned long long)peer->bad);

    kill(filler_pid, SIGKILL);
    waitpid(filler_pid, NULL, 0);
    filler_pid = 0;
    int status = real_stop(agent_pid);
    agent_pid = 0;
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "agent exit status 0x%x", status);
    close(fd);
    close(lfd);
    free(peer);
    cleanup();
    CHECK(access(cgroup, F_OK) != 0, "cgroup %s left behind", cgroup);
    printf("PASS\n");
    return 0;
}
