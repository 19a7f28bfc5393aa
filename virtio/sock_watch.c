/* A socket path's folder watched with uv_fs_event, falling back to its ancestors. */
#include "virtio/sock_watch.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The deepest existing folder on the way to w->dir, into out. */
static void deepest_existing(const struct sock_watch *w, char *out, size_t cap)
{
    snprintf(out, cap, "%s", w->dir);
    while (!is_dir(out)) {
        char *slash = strrchr(out, '/');
        if (!slash || slash == out) {
            snprintf(out, cap, "%s", slash == out ? "/" : ".");
            return;
        }
        *slash = '\0';
    }
}

static void on_event(uv_fs_event_t *handle, const char *filename, int events, int status);

/* Watch the deepest existing folder; true when it changed since the last call. */
static bool rearm(struct sock_watch *w)
{
    char target[SOCK_WATCH_PATH_MAX];
    deepest_existing(w, target, sizeof(target));
    if (w->active && strcmp(target, w->watching) == 0)
        return false;
    if (w->active)
        uv_fs_event_stop(&w->event);
    w->active = uv_fs_event_start(&w->event, on_event, target, 0) == 0;
    snprintf(w->watching, sizeof(w->watching), "%s", w->active ? target : "");
    return true;
}

static void fire(struct sock_watch *w)
{
    w->fired++;
    if (w->cb)
        w->cb(w, w->opaque);
}

static void on_event(uv_fs_event_t *handle, const char *filename, int events, int status)
{
    struct sock_watch *w = handle->data;
    (void)events;
    if (!w->active)
        return;
    if (status < 0) {
        /* The watch broke (its folder went, say): find another one, and try the socket. */
        uv_fs_event_stop(&w->event);
        w->active = false;
        rearm(w);
        fire(w);
        return;
    }
    if (strcmp(w->watching, w->dir) == 0) {
        if (!filename || strcmp(filename, w->name) == 0)
            fire(w);
        if (!is_dir(w->dir)) /* our folder was removed: climb */
            rearm(w);
        return;
    }
    /* Watching an ancestor: go deeper when a folder on the way appeared. */
    if (rearm(w))
        fire(w);
}

/* See sock_watch.h. */
int sock_watch_init(uv_loop_t *loop, struct sock_watch *w, const char *path, sock_watch_cb cb,
                    void *opaque)
{
    memset(w, 0, sizeof(*w));
    const char *slash = strrchr(path, '/');
    const char *name = slash ? slash + 1 : path;
    size_t dir_len = slash ? (size_t)(slash - path) : 0;
    if (strlen(name) >= sizeof(w->name) || dir_len >= sizeof(w->dir))
        return -ENAMETOOLONG;
    strcpy(w->name, name);
    if (!slash)
        strcpy(w->dir, ".");
    else if (dir_len == 0)
        strcpy(w->dir, "/");
    else
        snprintf(w->dir, sizeof(w->dir), "%.*s", (int)dir_len, path);
    w->cb = cb;
    w->opaque = opaque;
    int r = uv_fs_event_init(loop, &w->event);
    if (r < 0)
        return r;
    w->event.data = w;
    return 0;
}

/* See sock_watch.h. */
bool sock_watch_start(struct sock_watch *w)
{
    if (!w->active)
        rearm(w);
    return w->active;
}

/* See sock_watch.h. */
void sock_watch_stop(struct sock_watch *w)
{
    if (w->active)
        uv_fs_event_stop(&w->event);
    w->active = false;
    w->watching[0] = '\0';
}

/* See sock_watch.h. */
void sock_watch_close(struct sock_watch *w, uv_close_cb closed)
{
    sock_watch_stop(w);
    uv_close((uv_handle_t *)&w->event, closed);
}
