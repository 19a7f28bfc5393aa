/* The libvirt balloon backend: a libvirt domain's balloon moved through libvirt_client.h
 * (virDomainSetMemoryFlags), behind the core's balloon interface
 * (core/balloon_backend.h). The libvirt guests module (libvirt_guests.c) makes one per
 * managed domain and feeds it what libvirt reports. Completions always come from a later
 * loop turn, so the client may run its calls off the loop thread without the core seeing
 * a difference. */
#ifndef BELLOWS_LIBVIRT_BALLOON_H
#define BELLOWS_LIBVIRT_BALLOON_H

#include <stdbool.h>
#include <stdint.h>

#include <uv.h>

#include "host-daemon/core/balloon_backend.h"
#include "host-daemon/libvirt/libvirt_client.h"

struct libvirt_balloon;

/* The balloons of one libvirt guests module, by domain UUID. */
struct libvirt_balloons {
    struct libvirt_balloon *head;
};

/* A balloon for the managed domain `uuid` (named `domain`, guest `guest`) whose size is
 * `actual_bytes` now; in `set` until it is closed. Not started. NULL when out of memory. */
struct balloon *libvirt_balloon_new(struct libvirt_balloons *set, struct libvirt_backend *client,
                                    uv_loop_t *loop, const char *guest, const char *uuid,
                                    const char *domain, uint64_t actual_bytes);

/* The balloon of that domain in set, NULL if none. */
struct balloon *libvirt_balloons_find(const struct libvirt_balloons *set, const char *uuid);

/* The name of the guest the balloon was made for. */
const char *libvirt_balloon_guest(const struct balloon *b);

/* libvirt reported the domain's size (its balloon event or a fresh read): `ready` when the
 * size was unknown, else `actual`. */
void libvirt_balloon_note_actual(struct balloon *b, uint64_t actual_bytes);

/* The connection to libvirtd came back (sizes follow with the rescan) or was lost (every
 * size unknown: `lost`). */
void libvirt_balloons_set_connected(struct libvirt_balloons *set, bool connected, const char *why);

/* The client is closing: every balloon of set forgets it (moves are refused) and leaves set. */
void libvirt_balloons_detach(struct libvirt_balloons *set);

#endif
