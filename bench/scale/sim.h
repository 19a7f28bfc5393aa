/* bellows-scale: many simulated guests played against one real bellowsd.
 *
 * Each simulated guest is two unix socket servers, as QEMU offers them: a scripted QMP
 * monitor (greeting, qmp_capabilities, query-balloon, balloon answered with a reply and a
 * BALLOON_CHANGE event) and the chardev socket of the agent's virtio-serial port, through
 * which the simulator sends protocol frames (hello, then pressure events). bellowsd
 * connects to both, as it does to QEMU. Everything runs on one libuv loop. */
#ifndef BELLOWS_BENCH_SIM_H
#define BELLOWS_BENCH_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "protocol/bellows_protocol.h"

struct sim;

/* Sequence numbers start here after each hello (the protocol only asks that they rise by
 * one), and mono_ns values are SIM_MONO_BASE plus the host's clock modulo it: both keep a
 * fixed number of digits, so a cached frame can be reused by rewriting them in place. */
#define SIM_SEQ_BASE UINT64_C(1000000000000) /* 13 digits up to 9999999999999 */
#define SIM_SEQ_DIGITS 13
#define SIM_MONO_BASE UINT64_C(1000000000000000) /* 16 digits */
#define SIM_MONO_DIGITS 16

struct sim_template {
    char text[1024];
    size_t len; /* 0: none yet */
    size_t seq_off, mono_off;
    enum bp_level level;
    uint64_t actual; /* the snapshot follows the balloon: re-encode when it moves */
};

/* One simulated guest. */
struct sim_guest {
    struct sim *sim;
    unsigned index;
    char name[16];
    char qmp_path[108];
    char chan_path[108];
    bool listening;

    /* scripted QMP monitor */
    uv_pipe_t qmp_server;
    uv_pipe_t qmp_conn;
    bool qmp_connected;
    char *qmp_buf; /* bytes of an incomplete line */
    size_t qmp_len;
    size_t qmp_cap;
    bool qmp_queried;      /* the daemon asked query-balloon: it knows the size */
    uint64_t actual_bytes; /* the balloon size this fake QEMU reports */
    uint64_t balloon_cmds; /* balloon commands received */

    /* chardev of the agent's port */
    uv_pipe_t chan_server;
    uv_pipe_t chan_conn;
    bool chan_connected;
    bool welcomed;   /* the daemon answered hello with welcome */
    bool write_busy; /* a partial frame is still queued in libuv */
    uint64_t seq;
    uint64_t frames_sent; /* complete frames handed to the socket */
    uint64_t bytes_sent;
    struct bp_framer *framer; /* frames the daemon sends back */
    struct sim_template tmpl; /* the last encoded pressure frame */

    /* latency probe: when the pending critical frame was written (0: none) */
    uint64_t probe_sent_ns;
};

struct sim_counters {
    uint64_t qmp_connects;
    uint64_t chan_connects;
    uint64_t disconnects;
    uint64_t welcomes;
    uint64_t balloon_cmds;
    uint64_t write_eagain;    /* a frame not offered because the socket was full */
    uint64_t bad_from_daemon; /* undecodable bytes from the daemon */
};

/* Called when a balloon command reaches a guest's QMP peer. */
typedef void (*sim_balloon_cb)(struct sim_guest *g, uint64_t value, uint64_t now_ns);

struct sim {
    uv_loop_t *loop;
    struct sim_guest *guests;
    unsigned n_guests;
    uint64_t initial_actual; /* the balloon size every fake QEMU starts with */
    struct sim_counters counters;
    sim_balloon_cb on_balloon;
    void *opaque;
};

/* Bind and listen on both sockets of guest g (paths already set). Returns 0 or -errno. */
int sim_guest_listen(struct sim *sim, struct sim_guest *g);

/* Close every handle of g; a no-op when it is not listening. */
void sim_guest_close(struct sim_guest *g);

/* Write g's next pressure frame (sequence number, snapshot) without blocking. Returns 1
 * when written (or the tail queued after a partial write), 0 when the socket is full or a
 * partial frame is still queued (nothing sent, sequence unchanged), a negative errno when
 * not connected or on error. */
int sim_guest_send_pressure(struct sim_guest *g, enum bp_level level, uint64_t mono_ns);

/* Encode the frame sim_guest_send_pressure() would send next, into buf. 0 or -EINVAL. */
int sim_guest_encode_pressure(struct sim_guest *g, enum bp_level level, uint64_t mono_ns, char *buf,
                              size_t cap, size_t *ret_len);

/* Bytes written to g's channel that the daemon has not read yet (SIOCOUTQ). */
int sim_guest_unread(struct sim_guest *g, uint64_t *ret_bytes);

#endif
