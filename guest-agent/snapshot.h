/* The guest's memory at one moment, read from /proc/meminfo, /proc/vmstat and
 * /proc/pressure/memory. A thin I/O wrapper around the pure parsers; the files are opened
 * once and re-read with pread, so a snapshot under pressure allocates nothing. */
#ifndef BELLOWS_SNAPSHOT_H
#define BELLOWS_SNAPSHOT_H

#include "protocol/bellows_protocol.h"

#include <stddef.h>

struct snapshot_reader {
    int meminfo_fd, vmstat_fd, psi_fd; /* -1 when missing */
    char buf[32768];
};

/* Open the files under proc_root ("/proc" unless testing). Returns 0, or a negative errno
 * when meminfo cannot be opened; vmstat and the PSI file are optional. */
int snapshot_open(struct snapshot_reader *r, const char *proc_root);

/* Fill *ret_mem. Returns 0, or a negative errno when meminfo cannot be read or parsed
 * (*ret_mem untouched); fields of a missing or unreadable optional file are 0. */
int snapshot_read(struct snapshot_reader *r, struct bp_mem *ret_mem);

void snapshot_close(struct snapshot_reader *r);

#endif
