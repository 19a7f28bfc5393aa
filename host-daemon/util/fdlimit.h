/* Open file descriptors: every guest holds one for its agent's channel and those of its
 * balloon backend (a QMP guest one more, its monitor; a libvirt guest none, libvirt's one
 * connection is shared), and the daemon needs a few of its own
 * (control connections, host sampling, libvirt). Past RLIMIT_NOFILE, connects fail with
 * EMFILE and host sampling and the control socket stop (docs/benchmarks.md, "Scale"), so
 * bellowsd raises its soft limit to the hard one at start and warns before it runs out. */
#ifndef BELLOWS_FDLIMIT_H
#define BELLOWS_FDLIMIT_H

#include <stdint.h>

/* Descriptors kept for the daemon's own use: control clients, /proc reads, libvirt. */
#define FDLIMIT_RESERVE 64

/* Descriptors needed when the guests' links hold guest_fds, reserve included. */
uint64_t fdlimit_needed(uint64_t guest_fds);

/* Raise the soft RLIMIT_NOFILE to the hard one. Returns the soft limit in force
 * afterwards (the old one if raising failed), or 0 if it cannot be read. */
uint64_t fdlimit_raise(void);

#endif
