/* Helpers for the agent's real tests and benchmarks. */
#include "tests/agent/real_util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void (*real_cleanup)(void);

uint64_t real_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int real_listen(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    CHECK(strlen(path) < sizeof(sa.sun_path), "socket path too long: %s", path);
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket: %s", strerror(errno));
    unlink(path);
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind %s: %s", path, strerror(errno));
    CHECK(listen(fd, 4) == 0, "listen: %s", strerror(errno));
    return fd;
}

int real_accept(int listen_fd, int timeout_ms)
{
    struct pollfd p = {.fd = listen_fd, .events = POLLIN};
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
}

pid_t real_spawn_agent(const char *agent, const char *const *args, const char *log_path,
                       int *ret_stdout)
{
    int out[2] = {-1, -1};
    const char *argv[64] = {agent};
    int n = 1;
    for (; args[n - 1] && n < 63; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    if (ret_stdout)
        CHECK(pipe2(out, O_CLOEXEC) == 0, "pipe: %s", strerror(errno));
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int null = open("/dev/null", O_RDWR);
        dup2(log >= 0 ? log : null, 2);
        dup2(ret_stdout ? out[1] : null, 1);
        dup2(null, 0);
        execv(agent, (char *const *)argv);
        _exit(127);
    }
    if (ret_stdout) {
        close(out[1]);
        *ret_stdout = out[0];
    }
    return pid;
}

int real_stop(pid_t pid)
{
    int status = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        if (waitpid(pid, &status, WNOHANG) == pid)
            return status;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return status;
}

static void on_frame(const char *payload, size_t len, void *opaque)
{
    struct real_peer *p = opaque;
    struct bp_msg m;
    char detail[128];
    p->frames++;
    if (bp_decode(payload, len, &m, detail, sizeof(detail)) != BP_OK) {
        fprintf(stderr, "bad frame from agent: %s: %.*s\n", detail, (int)len, payload);
        p->bad++;
        return;
    }
    if (p->count == (int)(sizeof(p->msgs) / sizeof(p->msgs[0])))
        return; /* the test reads far more often than that */
    p->msgs[(p->head + p->count) % 64] = m;
    p->count++;
}

void real_peer_init(struct real_peer *p, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    bp_framer_init(&p->framer);
}

int real_peer_next(struct real_peer *p, struct bp_msg *ret, int timeout_ms)
{
    uint64_t deadline = real_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (p->count == 0) {
        if (p->eof)
            return -1;
        uint64_t now = real_now_ns();
        if (now >= deadline)
            return 0;
        struct pollfd pf = {.fd = p->fd, .events = POLLIN};
        int r = poll(&pf, 1, (int)((deadline - now) / 1000000u) + 1);
        if (r <= 0)
            continue;
        char buf[8192];
        ssize_t n = read(p->fd, buf, sizeof(buf));
        if (n <= 0) {
            p->eof = true;
            continue;
        }
        bp_framer_feed(&p->framer, buf, (size_t)n, on_frame, p);
    }
    *ret = p->msgs[p->head];
    p->head = (p->head + 1) % 64;
    p->count--;
    return 1;
}

void real_peer_welcome(struct real_peer *p, uint32_t report_interval_ms, uint32_t levels)
{
    struct bp_msg m = {.type = BP_MSG_WELCOME};
    char frame[BP_MAX_FRAME];
    size_t len;
    m.u.welcome.protocol_version = BP_PROTOCOL_VERSION;
    m.u.welcome.report_interval_ms = report_interval_ms;
    m.u.welcome.levels = levels;
    CHECK(bp_encode(&m, frame, sizeof(frame), &len) == BP_OK, "encode welcome");
    CHECK(write(p->fd, frame, len) == (ssize_t)len, "write welcome: %s", strerror(errno));
}

char *real_read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
    }
    fclose(f);
    buf[len] = '\0';
    return buf;
}

long real_cpu_ticks(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = real_read_file(path);
    if (!s)
        return -1;
    /* Fields after the command name, which may hold spaces: utime is field 14. */
    char *p = strrchr(s, ')');
    long utime = -1, stime = -1;
    if (p &&
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %ld %ld", &utime, &stime) == 2) {
        free(s);
        return utime + stime;
    }
    free(s);
    return -1;
}

long real_status_field(pid_t pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    char *s = real_read_file(path);
    if (!s)
        return -1;
    long v = -1;
    size_t n = strlen(name);
    for (char *line = s; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (strncmp(line, name, n) == 0 && line[n] == ':') {
            v = strtol(line + n + 1, NULL, 10);
            break;
        }
    }
    free(s);
    return v;
}
