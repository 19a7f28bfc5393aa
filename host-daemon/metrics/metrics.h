/* bellowsd's metrics for Prometheus (/metrics): every family, its name, type and help,
 * written from a plain snapshot of the daemon (struct metrics_view) so that this file
 * knows nothing of the registry, the channels or the backends. docs/operations.md lists
 * every family with its meaning.
 *
 * Naming follows Prometheus' conventions: one prefix (bellows_), base units in the name
 * (_bytes, _seconds), _total on counters, ratios 0..1, identifying strings only on the
 * *_info families (value 1), a guest label on every per-guest series. PSI stall totals are
 * counters named like node_exporter's (node_pressure_memory_waiting_seconds_total for
 * "some", ..._stalled_seconds_total for "full"). */
#ifndef BELLOWS_METRICS_H
#define BELLOWS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/metrics/prom.h"

/* Moves of one guest counted by what was done and why (policy action and reason names). */
struct metrics_move_count {
    const char *action; /* "deflate", "inflate" */
    const char *reason; /* "critical", "quiet", ... */
    uint64_t count;
};

/* Frames from one guest's agent counted by what became of them. */
struct metrics_frame_count {
    const char *outcome; /* "accepted", "invalid_json", "rate_limited", ... */
    uint64_t count;
};

/* One guest, as the metrics see it. Strings are never NULL ("" when unknown). */
struct metrics_guest {
    const char *name;
    const char *backend; /* "qmp", "libvirt" */
    const char *source;  /* "file", "runtime", "libvirt" */
    const char *domain;  /* libvirt domain name, "" for a QMP guest */
    const char *uuid;    /* libvirt domain UUID, "" for a QMP guest */
    const char *agent;   /* the agent's hello ("bellows-agent 0.1.0"), "" before it */

    bool paused;
    unsigned level; /* the policy's level after decay: 0 none, 1 low, 2 medium, 3 critical */
    uint64_t floor_bytes;
    uint64_t ceiling_bytes;
    uint32_t weight;
    bool actual_known;
    uint64_t actual_bytes;
    bool target_known;
    uint64_t target_bytes;

    /* the agent's latest snapshot */
    bool mem_known;
    uint64_t mem_total_bytes;
    uint64_t mem_available_bytes;
    double psi_some_avg10; /* percent, as the kernel prints it */
    double psi_full_avg10;
    uint64_t psi_some_total_us;
    uint64_t psi_full_total_us;

    /* the policy's sizing of it (policy_guest_sizing()) */
    bool need_known;            /* a snapshot and a measured overhead */
    uint64_t need_bytes;        /* what it uses plus its buffer and the overhead */
    uint64_t working_set_bytes; /* the least host rounds leave it */
    bool stall_known;           /* a clean stall interval was measured */
    double stall_pct;           /* the last interval's stall, percent */
    double stall_base_pct;      /* the part that does not respond to size, percent */

    /* links */
    bool channel_connected;
    bool backend_connected; /* QMP ready, or libvirt connected */
    uint64_t channel_connects;
    uint64_t channel_read_bytes;
    uint64_t channel_junk_bytes;

    const struct metrics_frame_count *frames;
    size_t n_frames;
    const struct metrics_move_count *moves;
    size_t n_moves;
    uint64_t move_failures;
    uint64_t reversals;
};

/* The host, as the metrics see it. */
struct metrics_host {
    bool known; /* false until the first sample: no host series at all */
    double psi_some_avg10;
    double psi_full_avg10;
    bool has_full;
    uint64_t psi_some_total_us;
    uint64_t psi_full_total_us;
    uint64_t mem_total_bytes;
    uint64_t mem_available_bytes;
    bool pressure;              /* the policy's host pressure state */
    bool budget_known;          /* false: budget off, or not computed yet: no budget series */
    uint64_t budget_bytes;      /* memory the guests may have in all */
    const char *budget_cgroup;  /* the memory cgroup whose limit it is; NULL or "": MemTotal */
    uint64_t guests_held_bytes; /* the guests' balloon sizes summed (the known ones) */
};

/* The HTTP surface's own counters. */
struct metrics_http {
    uint64_t requests;
    uint64_t responses[6]; /* by class: [2] 2xx, [3] 3xx, [4] 4xx, [5] 5xx */
    uint64_t streams_open;
    uint64_t streams_dropped; /* event-stream clients cut off for not reading */
    uint64_t connections_open;
    uint64_t connections_cut; /* closed for taking longer than the request deadline */
    uint64_t history_bytes;   /* memory held by the history rings */
};

struct metrics_view {
    const char *version;
    bool dry_run;
    uint64_t decision_rounds;
    struct metrics_host host;
    const struct metrics_guest *guests;
    size_t n_guests;
    const struct metrics_http *http; /* NULL: no http_* families */
};

/* Write every family of view into b (see prom.h for errors). */
void metrics_write(struct prom_buf *b, const struct metrics_view *view);

/* The text of a scrape, malloc'ed, NUL-terminated, with its length; NULL when out of
 * memory. */
char *metrics_render(const struct metrics_view *view, size_t *ret_len);

#endif
