/* The state file: atomic writes, off the loop thread (see state_store.h). */
#include "host-daemon/state/state_store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int path_in(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* See state_store.h. */
int state_file_load(const char *dir, struct state *ret, char *err, size_t err_cap)
{
    char path[PATH_MAX];
    struct stat st;

    state_init(ret);
    if (path_in(path, sizeof(path), dir, STATE_FILE_NAME) < 0) {
        snprintf(err, err_cap, "state folder path too long");
        return -ENAMETOOLONG;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        int e = errno;
        snprintf(err, err_cap, "cannot make %s: %s", dir, strerror(e));
        return -e;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return 0;
        snprintf(err, err_cap, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)STATE_MAX_TEXT) {
        close(fd);
        snprintf(err, err_cap, "%s: unreadable or over %u bytes", path, STATE_MAX_TEXT);
        return -EFBIG;
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *text = malloc(len + 1);
    if (!text) {
        close(fd);
        snprintf(err, err_cap, "out of memory");
        return -ENOMEM;
    }
    while (got < len) {
        ssize_t n = read(fd, text + got, len - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    char why[200];
    int r = state_parse(text, got, ret, why, sizeof(why));
    free(text);
    if (r < 0)
        snprintf(err, err_cap, "%s: %s", path, why);
    return r;
}

/* See state_store.h. */
int state_file_set_aside(const char *dir)
{
    char from[PATH_MAX], to[PATH_MAX];
    if (path_in(from, sizeof(from), dir, STATE_FILE_NAME) < 0 ||
        path_in(to, sizeof(to), dir, STATE_FILE_NAME ".bad") < 0)
        return -ENAMETOOLONG;
    return rename(from, to) < 0 ? -errno : 0;
}

/* See state_store.h. */
int state_file_write(const char *dir, const char *text, size_t len)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    int r = 0;

    if (path_in(tmp, sizeof(tmp), dir, STATE_FILE_NAME ".tmp") < 0 ||
        path_in(path, sizeof(path), dir, STATE_FILE_NAME) < 0)
        return -ENAMETOOLONG;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        off += (size_t)n;
    }
    /* The data reaches the disk before the name points at it. */
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return r;
    }
    /* ... and the rename itself reaches it too. */
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        if (fsync(dfd) < 0)
            r = -errno;
        close(dfd);
    }
    return r;
}

struct state_store {
    uv_loop_t *loop;
    char dir[PATH_MAX];
    state_store_done_cb done;
    void *opaque;
    uv_work_t work;
    bool busy;     /* a write is in the thread pool */
    char *writing; /* its text */
    size_t writing_len;
    int result; /* its outcome, set by the thread */
    char *next; /* the latest text waiting for the write in flight */
    size_t next_len;
    bool closing;
    unsigned long writes;
};

static void write_in_pool(uv_work_t *w)
{
    struct state_store *s = w->data;
    s->result = state_file_write(s->dir, s->writing, s->writing_len);
}

static void start_write(struct state_store *s);

static void after_write(uv_work_t *w, int status)
{
    struct state_store *s = w->data;
    s->busy = false;
    free(s->writing);
    s->writing = NULL;
    s->writes++;
    if (!s->closing && s->done)
        s->done(s, status < 0 ? status : s->result, s->opaque);
    if (s->next) {
        start_write(s);
        return;
    }
    if (s->closing)
        free(s);
}

static void start_write(struct state_store *s)
{
    s->writing = s->next;
    s->writing_len = s->next_len;
    s->next = NULL;
    s->busy = true;
    s->work.data = s;
    int r = uv_queue_work(s->loop, &s->work, write_in_pool, after_write);
    if (r < 0) {
        /* Cannot happen on a live loop; write here rather than lose the state. */
        s->result = state_file_write(s->dir, s->writing, s->writing_len);
        after_write(&s->work, 0);
    }
}

/* See state_store.h. */
int state_store_new(uv_loop_t *loop, const char *dir, state_store_done_cb done, void *opaque,
                    struct state_store **ret)
{
    struct state_store *s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    if (strlen(dir) >= sizeof(s->dir) - sizeof(STATE_FILE_NAME ".tmp")) {
        free(s);
        return -ENAMETOOLONG;
    }
    strcpy(s->dir, dir);
    s->loop = loop;
    s->done = done;
    s->opaque = opaque;
    *ret = s;
    return 0;
}

/* See state_store.h. */
int state_store_save(struct state_store *s, const struct state *st)
{
    char *text;
    size_t len;
    int r = state_serialize(st, &text, &len);
    if (r < 0)
        return r;
    free(s->next); /* an older waiting text is superseded */
    s->next = text;
    s->next_len = len;
    if (!s->busy)
        start_write(s);
    return 0;
}

/* See state_store.h. */
unsigned long state_store_writes(const struct state_store *s)
{
    return s->writes;
}

/* See state_store.h. */
void state_store_close(struct state_store *s)
{
    if (!s)
        return;
    s->closing = true;
    if (!s->busy)
        free(s);
}
