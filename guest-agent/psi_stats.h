/* The text of a PSI file (/proc/pressure/memory, cgroup v2 memory.pressure).
 * Pure parser over a buffer. */
#ifndef BELLOWS_PSI_STATS_H
#define BELLOWS_PSI_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One line: "some avg10=0.12 avg60=0.05 avg300=0.01 total=12345". */
struct psi_line {
    double avg10, avg60, avg300; /* percent of time stalled, 0..100 */
    uint64_t total_us;           /* stall time since boot */
};

struct psi_stats {
    bool has_some, has_full; /* cpu.pressure had no "full" line before Linux 5.13 */
    struct psi_line some, full;
};

/* Parse PSI text. Returns 0 and fills *ret, -EINVAL when there is no "some" line, a line is
 * malformed or an average is outside 0..100, -ERANGE when a number overflows.
 * *ret is untouched on error. */
int psi_stats_parse(const char *buf, size_t len, struct psi_stats *ret);

#endif
