/* bellowsd's libvirt guests module: with a [libvirt] section, the domains libvirt_client
 * discovers (those declaring the bellows channel) become guests of the daemon, each with
 * a libvirt balloon (libvirt_balloon.h), and their limits follow the domain's metadata.
 * docs/libvirt.md describes the behaviour; this file only ties the client's callbacks to
 * the daemon's functions (core/daemon.h).
 *
 * Built from libvirt_guests.c when libvirt is found, else from libvirt_guests_none.c,
 * which refuses: a [libvirt] section is then a start-up error. */
#ifndef BELLOWS_LIBVIRT_GUESTS_H
#define BELLOWS_LIBVIRT_GUESTS_H

#include <stdbool.h>

struct daemon;

/* Whether this bellowsd was built with the libvirt backend. */
bool libvirt_guests_available(void);

/* Attach the module to d (before daemon_start): at start it connects to libvirtd (or
 * retries with backoff) and adds the domains' guests; the control socket's libvirt-event
 * makes it rescan. Returns 0, -ENOTSUP (built without libvirt; logged) or -ENOMEM. */
int libvirt_guests_attach(struct daemon *d);

#endif
