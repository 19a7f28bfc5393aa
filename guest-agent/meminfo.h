/* The fields of /proc/meminfo that bellows reports. Pure parser over a buffer. */
#ifndef BELLOWS_MEMINFO_H
#define BELLOWS_MEMINFO_H

#include <stddef.h>
#include <stdint.h>

/* Bits of struct meminfo.found, one per field seen in the text. */
enum {
    MEMINFO_MEM_TOTAL = 1u << 0,
    MEMINFO_MEM_FREE = 1u << 1,
    MEMINFO_MEM_AVAILABLE = 1u << 2,
    MEMINFO_COMMITTED_AS = 1u << 3,
    MEMINFO_SWAP_TOTAL = 1u << 4,
    MEMINFO_SWAP_FREE = 1u << 5,
};

/* Sizes in KiB, as the kernel prints them. Fields not in the text stay 0. */
struct meminfo {
    uint64_t mem_total_kb;
    uint64_t mem_free_kb;
    uint64_t mem_available_kb; /* missing before Linux 3.14 */
    uint64_t committed_as_kb;
    uint64_t swap_total_kb;
    uint64_t swap_free_kb;
    unsigned found; /* MEMINFO_* bits */
};

/* Parse the text of /proc/meminfo ("Key:   123 kB" lines; unknown keys are skipped).
 * Returns 0 and fills *ret, or -EINVAL when MemTotal or MemFree is missing or a line we
 * use is malformed, -ERANGE when a number overflows. *ret is untouched on error. */
int meminfo_parse(const char *buf, size_t len, struct meminfo *ret);

#endif
