/* The guest end of the virtio-serial transport: find the port, hold it open, write frames
 * without ever blocking, and survive host hang-ups.
 *
 * The port is found by name through the /dev/virtio-ports/NAME link that udev makes, or by
 * scanning /sys/class/virtio-ports/<port>/name (initramfs guests have no udev). Instead of a
 * name, a path may be given: a character device, a FIFO (written only) or a unix stream
 * socket (tests and debugging).
 *
 * A virtio port whose host side is closed keeps POLLHUP set, so a hang-up closes the port
 * and retries on a timer with a doubling backoff (link_backoff.h) instead of polling again.
 * The owner must ignore SIGPIPE (a FIFO whose reader left raises it on write). */
#ifndef BELLOWS_GUEST_PORT_H
#define BELLOWS_GUEST_PORT_H

#include "virtio/link_backoff.h"

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* Largest frame guest_port_send accepts; matches BP_MAX_FRAME of the protocol. */
#define GUEST_PORT_MAX_FRAME 4096

/* Find a virtio-serial port by name: returns 0 and writes the device path to ret_path
 * (dev_root/virtio-ports/NAME when that link exists, else dev_root/vportNpM whose
 * sys_root/class/virtio-ports/vportNpM/name holds NAME), -ENOENT when no port has that
 * name, -EINVAL for a name with '/' or an empty one, -ENAMETOOLONG when cap is too small. */
int guest_port_find(const char *sys_root, const char *dev_root, const char *name, char *ret_path,
                    size_t cap);

struct guest_port;

struct guest_port_ops {
    /* The port is open: send the handshake first. */
    void (*on_up)(struct guest_port *port, void *opaque);
    /* The frame in flight is written: the next one may be sent. */
    void (*on_writable)(struct guest_port *port, void *opaque);
    /* Bytes from the host, in any chunking. */
    void (*on_data)(struct guest_port *port, const char *data, size_t len, void *opaque);
    /* The port went down or an attempt failed (err: negative errno, 0 for a hang-up);
     * the next attempt is in delay_ms. A frame in flight is dropped. */
    void (*on_down)(struct guest_port *port, int err, uint64_t delay_ms, void *opaque);
};

struct guest_port_config {
    const char *device;   /* a path to use as is, or NULL to find the port by name */
    const char *name;     /* port name when device is NULL */
    const char *sys_root; /* "/sys" unless testing */
    const char *dev_root; /* "/dev" unless testing */
    uint64_t backoff_min_ms, backoff_max_ms;
};

enum guest_port_kind { GUEST_PORT_NONE, GUEST_PORT_CHAR, GUEST_PORT_FIFO, GUEST_PORT_SOCKET };

struct guest_port_stats {
    uint64_t ups;    /* times the port came up */
    uint64_t downs;  /* hang-ups and failed attempts */
    uint64_t frames; /* frames fully written */
    uint64_t bytes;  /* bytes written */
    uint64_t eagain; /* writes that had to wait for POLLOUT */
};

struct guest_port {
    uv_loop_t *loop;
    struct guest_port_config cfg;
    const struct guest_port_ops *ops;
    void *opaque;

    uv_poll_t poll;
    uv_timer_t retry;
    int fd;
    enum guest_port_kind kind;
    bool polling; /* poll handle initialised and not yet closed */
    bool up;
    bool closing;
    int pending_closes;
    void (*close_cb)(struct guest_port *port);
    int last_err; /* why the latest attempt failed, 0 for a hang-up */
    char path[PATH_MAX];
    struct link_backoff backoff;
    struct guest_port_stats stats;

    size_t out_len, out_off; /* the frame in flight */
    char out[GUEST_PORT_MAX_FRAME];
};

/* Prepare the port; nothing is opened until guest_port_start. Strings in cfg must outlive
 * the port. Returns 0 or a negative errno from libuv. */
int guest_port_init(uv_loop_t *loop, struct guest_port *port, const struct guest_port_config *cfg,
                    const struct guest_port_ops *ops, void *opaque);

/* Make the first attempt now; later ones follow by themselves. */
void guest_port_start(struct guest_port *port);

/* True when the port is up and no frame is in flight. */
bool guest_port_ready(const struct guest_port *port);

/* Write one whole frame (copied). Returns 0 when written or in flight (on_writable follows
 * when it is done), -ENOTCONN when down, -EBUSY when a frame is in flight, -EMSGSIZE when
 * too long. A write error takes the port down (on_down) and returns 0. */
int guest_port_send(struct guest_port *port, const char *frame, size_t len);

/* Close everything; close_cb runs once every handle is closed and port may be freed. */
void guest_port_close(struct guest_port *port, void (*close_cb)(struct guest_port *port));

#endif
