/* Notice at once when a unix socket (re)appears at a path: QEMU creating its chardev or
 * monitor socket again after a restart, however long it was down.
 *
 * The folder of the path is watched with uv_fs_event (inotify); when that folder does not
 * exist yet, its deepest existing ancestor is watched instead and the watch moves down as
 * folders appear. The callback runs when an entry with the socket's name changes in its
 * folder, or when the folder itself appeared: the owner then tries to connect at once
 * instead of waiting out its backoff timer. When nothing can be watched (no inotify
 * watches left, say) the owner's timer is all there is: the watch only ever adds speed.
 * Watch only while the link is down: a connected link needs no watch.
 */
#ifndef BELLOWS_SOCK_WATCH_H
#define BELLOWS_SOCK_WATCH_H

#include <limits.h>
#include <stdbool.h>

#include <uv.h>

struct sock_watch;
typedef void (*sock_watch_cb)(struct sock_watch *w, void *opaque);

/* A unix socket's whole path fits sun_path: so do its folder and its name. */
#define SOCK_WATCH_PATH_MAX 108

/* Embedded in its owner (one per link: kept small); fields are private. */
struct sock_watch {
    uv_fs_event_t event;
    sock_watch_cb cb;
    void *opaque;
    bool active;                        /* the event handle watches `watching` */
    uint64_t fired;                     /* callbacks made, for tests and statistics */
    char dir[SOCK_WATCH_PATH_MAX];      /* the socket's folder */
    char name[SOCK_WATCH_PATH_MAX];     /* the socket's file name in dir */
    char watching[SOCK_WATCH_PATH_MAX]; /* dir, or its deepest existing ancestor */
};

/* Prepare a watch of `path` on loop. Returns 0, -ENAMETOOLONG (longer than a unix socket
 * path may be) or a libuv error. */
int sock_watch_init(uv_loop_t *loop, struct sock_watch *w, const char *path, sock_watch_cb cb,
                    void *opaque);

/* Watch from now on (idempotent). Returns true when a folder is watched. */
bool sock_watch_start(struct sock_watch *w);

/* Stop watching (the link is up); start again later at will. */
void sock_watch_stop(struct sock_watch *w);

/* Close the handle; closed(handle) runs once libuv has released it. */
void sock_watch_close(struct sock_watch *w, uv_close_cb closed);

#endif
