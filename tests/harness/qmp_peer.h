/* A scripted QMP monitor: a unix socket bellowsd connects to as it would to QEMU's. It
 * greets, answers `query-balloon` with its balloon's size, and `balloon` as its mode says
 * (moved, with a BALLOON_CHANGE event; refused; or acknowledged by a QEMU that then goes
 * away), and every other command with an empty return. */
#ifndef BELLOWS_TEST_QMP_PEER_H
#define BELLOWS_TEST_QMP_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

enum qmp_mode {
    QMP_NORMAL,
    QMP_NO_GREETING,    /* accept, say nothing */
    QMP_REFUSE_BALLOON, /* answer `balloon` with an error */
    QMP_VANISH_ON_MOVE, /* answer `balloon`, then close without moving */
};

struct qmp_peer {
    uv_loop_t *loop;
    uv_pipe_t server, client;
    char path[256];
    enum qmp_mode mode;
    /* A well-behaved daemon's peer: a second connection while one is open, or a reply not
     * written whole, fails the test. Off for peers that hang up on the daemon. */
    bool strict;
    bool connected, client_closing;
    int accepts, queries, balloons;
    uint64_t balloon_ms[64]; /* loop time of the first 64 `balloon` commands */
    int64_t last_balloon;    /* the last `balloon` command's value */
    int64_t actual;          /* the balloon's size: 512 MiB unless the test says */
    char buf[65536];
    size_t len;
};

/* A peer at dir/file in that mode, not listening yet; the rest starts cleared. */
void qmp_peer_init(struct qmp_peer *p, uv_loop_t *loop, const char *dir, const char *file,
                   enum qmp_mode mode);

/* The socket appears: connections are accepted from the next loop turn on. */
void qmp_peer_listen(struct qmp_peer *p);

#endif
