/* What the dashboard shows of the past: per guest, one compact sample a second (balloon
 * size and target, used memory, PSI, the highest pressure level of that second) and its
 * recent decisions; for the host, one sample a second (MemAvailable, MemTotal, budget, held,
 * PSI, pressure state). Each lives in a ring of fixed size allocated once, so memory is
 * known in advance: history_sample is 20 bytes, an hour at 1 s about 70 KiB per guest
 * (docs/operations.md gives the measured figure).
 *
 * Pure: times are passed in (wall-clock seconds for samples, ms for decisions), nothing
 * here reads a clock or does I/O. JSON views (jansson) are columnar, one array per
 * series, so a plot library takes them as they are. */
#ifndef BELLOWS_HISTORY_H
#define BELLOWS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host-daemon/history/ring.h"

/* A size in KiB that is not known. */
#define HISTORY_UNKNOWN UINT32_MAX

/* One second of one guest. */
struct history_sample {
    uint32_t t;          /* wall-clock seconds (Unix time) */
    uint32_t actual_kib; /* the balloon's actual size, HISTORY_UNKNOWN when not known */
    uint32_t target_kib; /* the last target sent, HISTORY_UNKNOWN before the first */
    uint32_t used_kib;   /* the guest's MemTotal - MemAvailable, HISTORY_UNKNOWN without one */
    uint16_t psi_some;   /* PSI some avg10 in hundredths of a percent; UINT16_MAX: unknown */
    uint8_t level;       /* highest pressure level of the second, 0..3 */
    uint8_t pad;
};

/* One move of one guest. The strings are static names (policy_action_name() ...). */
struct history_decision {
    uint64_t seq; /* the guest's move number (its decision ring's seq) */
    int64_t t_ms; /* wall-clock ms */
    const char *action;
    const char *reason;
    const char *result;
    uint32_t from_kib;
    uint32_t to_kib;
};

/* One second of the host: 24 bytes (86,400 for an hour). */
struct history_host_sample {
    uint32_t t;
    uint32_t available_kib;
    uint32_t total_kib;
    uint32_t budget_kib; /* HISTORY_UNKNOWN without a budget */
    uint32_t held_kib;   /* the guests' balloon sizes summed: what they hold against it */
    uint16_t psi_some;   /* hundredths of a percent */
    uint8_t pressure;    /* 1 while the policy holds the host under pressure */
    uint8_t pad;
};

struct history_guest {
    struct ring samples;
    struct ring decisions;
    uint8_t pending_level; /* highest level noted since the last sample */
};

struct history_host {
    struct ring samples;
};

/* Sizes in KiB for a sample: HISTORY_UNKNOWN when !known, clamped below it otherwise. */
uint32_t history_kib(bool known, uint64_t bytes);
/* A PSI percentage (0..100) in hundredths, rounded; UINT16_MAX when !known. */
uint16_t history_psi(bool known, double percent);

/* Room for n_samples seconds and n_decisions moves. Returns 0 or -ENOMEM/-EINVAL. */
int history_guest_init(struct history_guest *h, size_t n_samples, size_t n_decisions);
void history_guest_free(struct history_guest *h);

/* A pressure level seen now (an event between two samples): the next sample's level is at
 * least this, so a short spike is not lost between two seconds. */
void history_guest_note_level(struct history_guest *h, unsigned level);

/* Append the sample of a second; its level is raised to the highest noted since the last. */
void history_guest_sample(struct history_guest *h, const struct history_sample *s);

void history_guest_decision(struct history_guest *h, const struct history_decision *d);

/* The move numbered seq got its result (done, failed): update it if still held. */
void history_guest_decision_result(struct history_guest *h, uint64_t seq, const char *result);

/* Bytes held by one guest's rings. */
size_t history_guest_bytes(const struct history_guest *h);

/* Samples with t >= since and decisions at or after since (seconds), as
 * {"t":[..],"actual":[..],"target":[..],"used":[..],"psi_some":[..],"level":[..],
 *  "decisions":[{"seq":..,"t":ms,"action":..,"reason":..,"result":..,"from":..,"to":..}]}
 * sizes in bytes, PSI in percent, unknown values null. NULL when out of memory. */
json_t *history_guest_json(const struct history_guest *h, uint32_t since);

int history_host_init(struct history_host *h, size_t n_samples);
void history_host_free(struct history_host *h);
void history_host_sample(struct history_host *h, const struct history_host_sample *s);
size_t history_host_bytes(const struct history_host *h);

/* {"t":[..],"available":[..],"total":[..],"budget":[..],"held":[..],"psi_some":[..],
 *  "pressure":[..]} */
json_t *history_host_json(const struct history_host *h, uint32_t since);

#endif
