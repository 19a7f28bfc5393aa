/* Host end of a guest's virtio-serial port: a client of the unix socket QEMU listens on for
 * the port's chardev (`-chardev socket,id=..,path=PATH,server=on,wait=off`).
 *
 * The channel connects, hands every byte it reads to on_data (the caller frames and
 * decodes), and when the socket fails or QEMU goes away it reconnects on a timer with
 * exponential backoff: it never spins. A connection counts as healthy, and the backoff
 * starts over, only once it has stayed up for stable_ms: a chardev that accepts and closes
 * at once is redialled ever more slowly, up to backoff_max_ms. While down, the socket's
 * folder is watched (sock_watch.h): when QEMU makes the socket again the channel connects
 * at once, whatever the backoff had reached. Every attempt goes through the process's
 * link gate (link_gate.h): connects in flight and open links are bounded there. Reading can be
 * paused and resumed, which is how the caller applies backpressure to a guest that sends too much.
 * Memory is bounded: one fixed read buffer and a capped write queue. All callbacks run on the libuv
 * loop; nothing blocks. Library code: it does not log.
 */
#ifndef BELLOWS_HOST_CHANNEL_H
#define BELLOWS_HOST_CHANNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#define HOST_CHANNEL_READ_BUF 4096
#define HOST_CHANNEL_DEFAULT_BACKOFF_MIN_MS 100u
#define HOST_CHANNEL_DEFAULT_BACKOFF_MAX_MS 5000u
#define HOST_CHANNEL_DEFAULT_MAX_WRITE_QUEUE 16384u

struct host_channel;

/* Zero fields take the defaults above. */
struct host_channel_config {
    uint64_t backoff_min_ms; /* first retry delay after a failure */
    uint64_t backoff_max_ms; /* the delay doubles up to this */
    uint64_t stable_ms;      /* up this long: healthy (default max(backoff_max_ms, 1 s)) */
    size_t max_write_queue;  /* bytes queued for a guest that does not read */
};

/* Counters since the channel was made. */
struct host_channel_stats {
    uint64_t connects;      /* connections made */
    uint64_t watch_retries; /* attempts made at once because the socket appeared */
    uint64_t gate_waits;    /* attempts that waited for the process's link gate */
};

struct host_channel_callbacks {
    /* Connected to QEMU's socket (the guest's agent may not be running yet). */
    void (*on_connect)(struct host_channel *ch, void *opaque);
    /* Bytes from the guest, valid only during the call. */
    void (*on_data)(struct host_channel *ch, const char *data, size_t len, void *opaque);
    /* A connection attempt failed or the connection ended (err: negative errno, -EPIPE
     * for an orderly close by QEMU). `was_connected` tells which. A retry is scheduled. */
    void (*on_disconnect)(struct host_channel *ch, int err, bool was_connected, void *opaque);
};

/* Called once after host_channel_close() when every handle is released; the channel is
 * freed right after it returns. */
typedef void (*host_channel_closed_cb)(struct host_channel *ch, void *opaque);

/* Make a channel for the socket at path (copied; must fit sun_path). cfg may be NULL.
 * Nothing happens until host_channel_start(). Returns 0, -ENAMETOOLONG, -EINVAL, -ENOMEM. */
int host_channel_new(uv_loop_t *loop, const char *path, const struct host_channel_config *cfg,
                     const struct host_channel_callbacks *cbs, void *opaque,
                     struct host_channel **ret_channel);

/* Start connecting now; from then on the channel keeps itself connected. */
int host_channel_start(struct host_channel *ch);

/* Stop / restart reading (backpressure). Pausing survives reconnects: a paused channel
 * does not read from a new connection until resumed. */
void host_channel_pause(struct host_channel *ch);
void host_channel_resume(struct host_channel *ch);
bool host_channel_paused(const struct host_channel *ch);

/* Queue bytes (copied) to the guest. Returns 0, -ENOTCONN when not connected, -ENOBUFS
 * when the write queue would pass its cap (the guest is not reading), -ENOMEM. */
int host_channel_write(struct host_channel *ch, const char *data, size_t len);

bool host_channel_connected(const struct host_channel *ch);
const char *host_channel_path(const struct host_channel *ch);

/* Counters (see struct host_channel_stats). */
const struct host_channel_stats *host_channel_stats(const struct host_channel *ch);

/* While waiting to retry: the delay that was scheduled, in ms; 0 while an attempt is in
 * flight or the link is up. */
uint64_t host_channel_retry_ms(const struct host_channel *ch);

/* Close everything; no callback of cbs runs after this returns. Safe from inside any of
 * this channel's callbacks. closed may be NULL. Calling it twice is a no-op. */
void host_channel_close(struct host_channel *ch, host_channel_closed_cb closed);

#endif
