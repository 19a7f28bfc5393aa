/* The counters of /proc/vmstat that bellows reports. Pure parser over a buffer. */
#ifndef BELLOWS_VMSTAT_H
#define BELLOWS_VMSTAT_H

#include <stddef.h>
#include <stdint.h>

enum {
    VMSTAT_PSWPIN = 1u << 0,
    VMSTAT_PSWPOUT = 1u << 1,
    VMSTAT_PGMAJFAULT = 1u << 2,
};

/* Event counters since boot. Fields not in the text stay 0. */
struct vmstat {
    uint64_t pswpin;     /* pages swapped in */
    uint64_t pswpout;    /* pages swapped out */
    uint64_t pgmajfault; /* major page faults */
    unsigned found;      /* VMSTAT_* bits */
};

/* Parse the text of /proc/vmstat ("name value" lines; unknown names are skipped).
 * Returns 0 and fills *ret, -EINVAL when none of the counters is present or a line we use
 * is malformed, -ERANGE when a number overflows. *ret is untouched on error. */
int vmstat_parse(const char *buf, size_t len, struct vmstat *ret);

#endif
