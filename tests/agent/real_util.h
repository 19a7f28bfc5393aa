/* Helpers for the agent's real tests and benchmarks: run bellows-agent, stand in for the
 * host on a unix socket, read and check its frames, read its CPU time and wake-ups.
 * Plain C with exit codes: 0 pass, 1 fail, 77 skip. */
#ifndef BELLOWS_TEST_AGENT_REAL_UTIL_H
#define BELLOWS_TEST_AGENT_REAL_UTIL_H

#include "protocol/bellows_protocol.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* Called by FAIL before exiting, to remove cgroups, files and processes. */
extern void (*real_cleanup)(void);

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        if (real_cleanup)                                                                          \
            real_cleanup();                                                                        \
        exit(1);                                                                                   \
    } while (0)
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "check failed: %s\n", #cond);                                          \
            FAIL(__VA_ARGS__);                                                                     \
        }                                                                                          \
    } while (0)

uint64_t real_now_ns(void);

/* A listening unix socket at path (replacing any old one). */
int real_listen(const char *path);
/* accept() with a timeout; -1 on timeout. */
int real_accept(int listen_fd, int timeout_ms);

/* Start the agent with args (NULL-terminated, without argv[0]); its stderr goes to
 * log_path, its stdout to *ret_stdout (a pipe) when not NULL, else to /dev/null. */
pid_t real_spawn_agent(const char *agent, const char *const *args, const char *log_path,
                       int *ret_stdout);
/* Stop a child with SIGTERM (SIGKILL after 5 s); returns its wait status. */
int real_stop(pid_t pid);

/* The host's end: reassembles frames and decodes them. */
struct real_peer {
    int fd;
    struct bp_framer framer;
    struct bp_msg msgs[64];
    int head, count;
    uint64_t bad; /* frames that did not decode */
    uint64_t frames;
    bool eof;
};

void real_peer_init(struct real_peer *p, int fd);
/* The next message within timeout_ms: 1, 0 on timeout, -1 when the agent closed. */
int real_peer_next(struct real_peer *p, struct bp_msg *ret, int timeout_ms);
/* Encode and send a welcome. */
void real_peer_welcome(struct real_peer *p, uint32_t report_interval_ms, uint32_t levels);

/* utime + stime of a process in clock ticks, from /proc/PID/stat. */
long real_cpu_ticks(pid_t pid);
/* A "Name:   value" field of /proc/PID/status, e.g. "VmRSS" (kB) or
 * "voluntary_ctxt_switches"; -1 when missing. */
long real_status_field(pid_t pid, const char *name);
/* Whole file into a malloc'd NUL-terminated string, NULL on error. */
char *real_read_file(const char *path);

#endif
