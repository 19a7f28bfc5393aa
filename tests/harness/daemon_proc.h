/* bellowsd (or any program) run as a child of the test on its loop: its stderr is kept as
 * the log the test reads (and copied to the test's own stderr, for the test log), its exit
 * status and signal are recorded when it ends. */
#ifndef BELLOWS_TEST_DAEMON_PROC_H
#define BELLOWS_TEST_DAEMON_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

struct daemon_proc {
    uv_process_t proc;
    uv_pipe_t err;
    bool exited;
    int64_t exit_status;
    int term_signal;
    char log[1 << 20]; /* its stderr so far, NUL-terminated */
    size_t log_len;
};

/* Where the child's stdout goes. */
enum proc_stdout {
    PROC_STDOUT_TO_STDERR, /* into the test's stderr (not the log) */
    PROC_STDOUT_IGNORED,
};

/* $BELLOWSD, the daemon of this build (meson sets it); fails the test when unset. */
const char *bellowsd_path(void);

/* Start args[0] with args (NULL-terminated) on loop; d starts cleared. */
void daemon_proc_spawn(struct daemon_proc *d, uv_loop_t *loop, char **args, enum proc_stdout out);

/* SIGKILL the last child started if it is still running: what a failed test left
 * behind, so the run ends with the failure instead of waiting on it. */
void daemon_proc_kill_leftover(void);

#endif
