/* bellowsd's libvirt side: with a [libvirt] section, the domains libvirt_backend discovers
 * (those declaring the bellows channel) become guests of the daemon, their balloons move
 * through libvirt (virDomainSetMemoryFlags) and their limits follow the domain's metadata.
 * docs/libvirt.md describes the behaviour; this file only ties the backend's callbacks to
 * the registry and the policy.
 *
 * Built from daemon_libvirt.c when libvirt is found, else from daemon_libvirt_none.c, whose
 * functions refuse with -ENOTSUP: a [libvirt] section is then a start-up error. */
#ifndef BELLOWS_DAEMON_LIBVIRT_H
#define BELLOWS_DAEMON_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct daemon;
struct guest;

/* Whether this bellowsd was built with the libvirt backend. */
bool daemon_libvirt_available(void);

/* Start the backend on d's loop and connect (or retry with backoff).
 * Returns 0, -ENOTSUP (built without libvirt) or another negative errno (logged). */
int daemon_libvirt_start(struct daemon *d);

/* Disconnect; the libvirt guests are left to daemon_stop (their balloons stay). */
void daemon_libvirt_stop(struct daemon *d);

/* Move a libvirt guest's balloon to bytes, on a worker thread: 0 when the move was sent
 * to the worker (g->move_in_flight until it answers; a failure is logged then), else a
 * negative errno with the reason in err (-EBUSY: a move is in flight). */
int daemon_libvirt_set_balloon(struct daemon *d, struct guest *g, uint64_t bytes, char *err,
                               size_t err_cap);

/* The balloon size libvirt last reported for g: 0, or -EAGAIN when unknown. */
int daemon_libvirt_actual(struct daemon *d, const struct guest *g, uint64_t *ret_bytes);

/* The libvirt hook said `event` for a domain: rescan on the next loop turn (never inside
 * the control request: libvirtd waits for its hook while it runs). No-op without libvirt. */
void daemon_libvirt_rescan_soon(struct daemon *d, const char *event, const char *uuid,
                                const char *domain);

#endif
