/* The host's own memory pressure: PSI (/proc/pressure/memory) and MemAvailable
 * (/proc/meminfo). Pure parsers over buffers, and a thin reader taking the proc directory
 * as an argument so tests can point it at fixtures. */
#ifndef BELLOWS_HOSTMEM_H
#define BELLOWS_HOSTMEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One PSI line ("some" or "full"): averages in percent, total stall time in us. */
struct hostmem_psi_line {
    double avg10;
    double avg60;
    double avg300;
    uint64_t total_us;
};

struct hostmem_psi {
    struct hostmem_psi_line some;
    struct hostmem_psi_line full;
    bool has_full; /* kernels before 5.13 print no "full" line for the system-wide file */
};

struct hostmem_meminfo {
    uint64_t mem_total_kb;
    uint64_t mem_free_kb;
    uint64_t mem_available_kb;
    uint64_t swap_total_kb;
    uint64_t swap_free_kb;
};

/* One sample of both. */
struct hostmem_sample {
    struct hostmem_psi psi;
    struct hostmem_meminfo meminfo;
};

/* Parse the text of a PSI pressure file. Requires a well-formed "some" line; "full" is
 * optional. Returns 0, or -EINVAL (*ret untouched) on malformed text. */
int hostmem_parse_psi(const char *text, size_t len, struct hostmem_psi *ret_psi);

/* Parse /proc/meminfo text. Requires MemTotal and MemAvailable; other fields default to 0.
 * Returns 0, or -EINVAL (*ret untouched) on malformed text or missing fields. */
int hostmem_parse_meminfo(const char *text, size_t len, struct hostmem_meminfo *ret_meminfo);

/* Read and parse PROC_DIR/pressure/memory and PROC_DIR/meminfo (proc_dir is normally
 * "/proc"). Both are kernel-generated files read in one call each; they never block on
 * storage. Returns 0, or a negative errno (-ENOENT when PSI is missing, -EINVAL when a
 * file does not parse); *ret untouched on failure. */
int hostmem_read(const char *proc_dir, struct hostmem_sample *ret_sample);

#endif
