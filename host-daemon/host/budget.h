/* The host budget: how much memory all balloons together may hold. Either the host's own
 * memory (MemTotal, less what is not the guests', less a reserve) or a memory cgroup's
 * limit (cgroup v1 memory.limit_in_bytes / usage_in_bytes, v2 memory.max / current and
 * its memory.pressure), such as libvirt's machine.slice holding the QEMU processes.
 * Pure parsers and arithmetic over buffers and numbers, and one thin reader of a cgroup
 * directory. docs/configuration.md ([daemon] budget*) and docs/policy.md ("The host
 * budget") say how it is used. */
#ifndef BELLOWS_BUDGET_H
#define BELLOWS_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/host/hostmem.h"

/* A limit at or above this is "no limit" (cgroup v1 writes 2^63 - 4096 for none). */
#define BUDGET_UNLIMITED (UINT64_C(1) << 62)

/* How long the largest non-guest use seen is kept: memory handed to a guest shows in the
 * host's numbers only once the guest touches it, so the current figure can be too low. */
#define BUDGET_NONGUEST_WINDOW_MS (10 * 60 * 1000)

/* One reading of a memory cgroup. */
struct budget_cgroup {
    bool v2;
    uint64_t limit_bytes; /* BUDGET_UNLIMITED or more: none */
    uint64_t usage_bytes;
    bool has_psi; /* v2 only: memory.pressure */
    struct hostmem_psi psi;
};

/* Operator settings: [daemon] budget, budget_reserve, budget_reserve_pct,
 * budget_guest_overhead. */
struct budget_settings {
    uint64_t reserve_bytes;  /* never handed to guests ... */
    double reserve_pct;      /* ... nor this % of the total, whichever is larger */
    uint64_t guest_overhead; /* the hypervisor's own memory per guest, at least */
};

/* The part of the budget the daemon keeps between readings. */
struct budget_state {
    bool known;
    uint64_t nonguest_bytes; /* largest use not held by guests within the window */
    int64_t nonguest_at;
};

/* What a budget is computed from. */
struct budget_inputs {
    uint64_t total_bytes; /* MemTotal, or the cgroup's limit */
    uint64_t used_bytes;  /* MemTotal - MemAvailable, or the cgroup's usage */
    uint64_t guest_bytes; /* what the guests' balloons hold now (their actual sizes) */
    uint64_t guests;      /* how many guests that is */
};

/* Parse a cgroup number file: digits and a newline, or "max" (v2) for no limit.
 * Returns 0, or -EINVAL (*ret untouched). */
int budget_parse_number(const char *text, size_t len, uint64_t *ret);

/* Read the memory cgroup at dir: v2 when memory.max is there, else v1. Returns 0, or a
 * negative errno (-ENOENT when neither is there, -EINVAL for unreadable numbers; *ret
 * untouched on failure). */
int budget_read_cgroup(const char *dir, struct budget_cgroup *ret);

/* The budget at now: total, less the reserve, less the non-guest use: the largest of
 * used minus what the guests hold seen within BUDGET_NONGUEST_WINDOW_MS, and guests x
 * guest_overhead (a guest that has not touched all its memory hides its hypervisor's
 * overhead from the first figure). Updates st. */
uint64_t budget_compute(const struct budget_settings *s, struct budget_state *st,
                        const struct budget_inputs *in, int64_t now);

/* The reserve for this total: max(reserve_bytes, reserve_pct of total). */
uint64_t budget_reserve(const struct budget_settings *s, uint64_t total_bytes);

#endif
