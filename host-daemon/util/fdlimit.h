/* Open file descriptors: every QMP guest holds two (its QMP monitor and its agent's
 * channel), every libvirt guest one (its channel), and the daemon needs a few of its own
 * (control connections, host sampling, libvirt). Past RLIMIT_NOFILE, connects fail with
 * EMFILE and host sampling and the control socket stop (docs/benchmarks.md, "Scale"), so
 * bellowsd raises its soft limit to the hard one at start and warns before it runs out. */
#ifndef BELLOWS_FDLIMIT_H
#define BELLOWS_FDLIMIT_H

#include <stdint.h>

/* Descriptors kept for the daemon's own use: control clients, /proc reads, libvirt. */
#define FDLIMIT_RESERVE 64

/* Descriptors n_qmp QMP guests and n_libvirt libvirt guests need, reserve included. */
uint64_t fdlimit_needed(uint64_t n_qmp, uint64_t n_libvirt);

/* Raise the soft RLIMIT_NOFILE to the hard one. Returns the soft limit in force
 * afterwards (the old one if raising failed), or 0 if it cannot be read. */
uint64_t fdlimit_raise(void);

#endif
