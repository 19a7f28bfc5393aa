/* A child process with its stderr captured (daemon_proc.h). */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tests/harness/daemon_proc.h"

/* The child of the running test, until the next one starts or the leftover is killed. */
static struct daemon_proc *spawned;

static void on_child_exit(uv_process_t *p, int64_t status, int sig)
{
    struct daemon_proc *d = p->data;
    d->exited = true;
    d->exit_status = status;
    d->term_signal = sig;
    uv_close((uv_handle_t *)p, NULL);
}

static void log_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct daemon_proc *d = h->data;
    size_t room = sizeof(d->log) - 1 - d->log_len;
    *buf = uv_buf_init(d->log + d->log_len, (unsigned)(room > 4096 ? 4096 : room));
}

static void log_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct daemon_proc *d = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, NULL);
        return;
    }
    fwrite(buf->base, 1, (size_t)nread, stderr); /* the daemon's log, for the test log */
    d->log_len += (size_t)nread;
    d->log[d->log_len] = '\0';
}

const char *bellowsd_path(void)
{
    const char *daemon = getenv("BELLOWSD");
    if (!daemon)
        fail_msg("BELLOWSD is not set (run through meson test)");
    return daemon;
}

void daemon_proc_spawn(struct daemon_proc *d, uv_loop_t *loop, char **args, enum proc_stdout out)
{
    memset(d, 0, sizeof(*d));
    uv_pipe_init(loop, &d->err, 0);
    d->err.data = d;
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = out == PROC_STDOUT_TO_STDERR ? UV_INHERIT_FD : UV_IGNORE, .data.fd = 2},
        {.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&d->err},
    };
    uv_process_options_t opts = {
        .file = args[0], .args = args, .exit_cb = on_child_exit, .stdio = stdio, .stdio_count = 3};
    d->proc.data = d;
    assert_int_equal(uv_spawn(loop, &d->proc, &opts), 0);
    spawned = d;
    uv_read_start((uv_stream_t *)&d->err, log_alloc, log_read);
}

void daemon_proc_kill_leftover(void)
{
    if (spawned && !spawned->exited)
        uv_process_kill(&spawned->proc, SIGKILL);
    spawned = NULL;
}
