/* A fake QEMU chardev: the guest's end of an agent channel. bellowsd connects to a unix
 * socket as it would to the socket QEMU serves for the guest's virtio-serial port; the
 * test accepts, reads and drops what the daemon sends, and writes encoded frames as the
 * guest's agent would. */
#ifndef BELLOWS_TEST_FAKE_CHARDEV_H
#define BELLOWS_TEST_FAKE_CHARDEV_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "protocol/bellows_protocol.h"

struct fake_chardev {
    uv_pipe_t server, client;
    char path[256];
    bool close_at_once; /* accept each connection and close it at once (a broken port) */
    bool connected;
    int accepts;
    uint64_t seq; /* the next pressure frame's seq, for tests that number their frames */
};

/* Listen at dir/file with that backlog; everything else in c starts cleared, so set
 * close_at_once after this call (connections are accepted on a later loop turn). */
void fake_chardev_listen(struct fake_chardev *c, uv_loop_t *loop, const char *dir, const char *file,
                         int backlog);

/* Close the connection, if any, and the listening socket. */
void fake_chardev_close(struct fake_chardev *c);

/* Write msg as one frame on the connection; the whole frame or the test fails. */
void fake_chardev_send(struct fake_chardev *c, const struct bp_msg *msg);

#endif
