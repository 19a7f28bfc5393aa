/* Policy tunables by name: parse one config value, check the whole set, check a guest's
 * operator limits. Pure: strings in, numbers out. */
#include "host-daemon/policy/policy.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The defaults; docs/policy.md says why each is what it is. */
void policy_config_defaults(struct policy_config *cfg)
{
    *cfg = (struct policy_config){
        .level_decay_ms = 10000,
        .medium_dwell_ms = 3000,
        .critical_window_ms = 2000,
        .quiet_ms = 60000,
        .deflate_cooldown_ms = 200000,
        .inflate_interval_ms = 10000,
        .settle_timeout_ms = 30000,
        .snapshot_max_age_ms = 30000,
        .critical_step_bytes = 128 * POLICY_MIB,
        .critical_step_pct = 25.0,
        .medium_step_bytes = 64 * POLICY_MIB,
        .medium_step_pct = 10.0,
        .inflate_step_bytes = 32 * POLICY_MIB,
        .inflate_step_pct = 2.0,
        .host_step_bytes = 128 * POLICY_MIB,
        .host_step_pct = 5.0,
        .backoff_step_bytes = 64 * POLICY_MIB,
        .backoff_step_pct = 10.0,
        .buffer_pct = 20.0,
        .buffer_low_pct = 5.0,
        .host_buffer_pct = 10.0,
        .min_change_bytes = 16 * POLICY_MIB,
        .flip_forget_ms = 3600000,
        .flip_max_shift = 4,
        .hurt_memory_ms = 600000,
        .stall_target_pct = 0.17,
        .stall_interval_ms = 5000,
        .stall_response_pct = 50.0,
        .stall_fault_us = 1000,
        .probe_coeff = 10.0,
        .backoff_coeff = 20.0,
        .stuck_check_ms = 5000,
        .stuck_rate_bytes = 15000000,
        .stuck_backoff_ms = 300000,
        .stuck_max_shift = 4,
        .host_psi_enter = 10.0,
        .host_psi_exit = 2.0,
        .host_avail_enter_pct = 5.0,
        .host_avail_exit_pct = 10.0,
        .host_reclaim_interval_ms = 5000,
    };
}

enum kind { KIND_MS, KIND_BYTES, KIND_PCT, KIND_SHIFT, KIND_COEFF, KIND_COUNT };

struct key {
    const char *name;
    enum kind kind;
    size_t offset;
};

/* A table row, kept on one line. */
/* clang-format off */
#define KEY(field, kind) {#field, kind, offsetof(struct policy_config, field)}
/* clang-format on */

static const struct key keys[] = {
    KEY(level_decay_ms, KIND_MS),
    KEY(medium_dwell_ms, KIND_MS),
    KEY(critical_window_ms, KIND_MS),
    KEY(quiet_ms, KIND_MS),
    KEY(deflate_cooldown_ms, KIND_MS),
    KEY(inflate_interval_ms, KIND_MS),
    KEY(settle_timeout_ms, KIND_MS),
    KEY(snapshot_max_age_ms, KIND_MS),
    KEY(critical_step_bytes, KIND_BYTES),
    KEY(critical_step_pct, KIND_PCT),
    KEY(medium_step_bytes, KIND_BYTES),
    KEY(medium_step_pct, KIND_PCT),
    KEY(inflate_step_bytes, KIND_BYTES),
    KEY(inflate_step_pct, KIND_PCT),
    KEY(host_step_bytes, KIND_BYTES),
    KEY(host_step_pct, KIND_PCT),
    KEY(backoff_step_bytes, KIND_BYTES),
    KEY(backoff_step_pct, KIND_PCT),
    KEY(buffer_pct, KIND_PCT),
    KEY(buffer_low_pct, KIND_PCT),
    KEY(host_buffer_pct, KIND_PCT),
    KEY(min_change_bytes, KIND_BYTES),
    KEY(flip_forget_ms, KIND_MS),
    KEY(flip_max_shift, KIND_SHIFT),
    KEY(hurt_memory_ms, KIND_MS),
    KEY(stall_target_pct, KIND_PCT),
    KEY(stall_interval_ms, KIND_MS),
    KEY(stall_response_pct, KIND_PCT),
    KEY(stall_fault_us, KIND_COUNT),
    KEY(probe_coeff, KIND_COEFF),
    KEY(backoff_coeff, KIND_COEFF),
    KEY(stuck_check_ms, KIND_MS),
    KEY(stuck_rate_bytes, KIND_BYTES),
    KEY(stuck_backoff_ms, KIND_MS),
    KEY(stuck_max_shift, KIND_SHIFT),
    KEY(host_psi_enter, KIND_PCT),
    KEY(host_psi_exit, KIND_PCT),
    KEY(host_avail_enter_pct, KIND_PCT),
    KEY(host_avail_exit_pct, KIND_PCT),
    KEY(host_reclaim_interval_ms, KIND_MS),
};

/* Longest accepted time: 30 days, far from any overflow when added to a clock. */
#define MAX_MS (INT64_C(30) * 24 * 3600 * 1000)
/* Largest accepted size: 2^50 bytes (1 PiB). */
#define MAX_BYTES (UINT64_C(1) << 50)

/* An unsigned decimal integer followed by an optional unit; returns the unit's start. */
static int parse_number(const char *value, unsigned long long *ret, const char **ret_unit)
{
    char *end;
    if (value[0] < '0' || value[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno)
        return -EINVAL;
    *ret = v;
    *ret_unit = end;
    return 0;
}

static int parse_ms(const char *value, int64_t *ret)
{
    unsigned long long v;
    const char *unit;
    unsigned long long mul;
    if (parse_number(value, &v, &unit) < 0)
        return -EINVAL;
    if (*unit == '\0' || strcmp(unit, "ms") == 0)
        mul = 1;
    else if (strcmp(unit, "s") == 0)
        mul = 1000;
    else if (strcmp(unit, "min") == 0)
        mul = 60000;
    else if (strcmp(unit, "h") == 0)
        mul = 3600000;
    else
        return -EINVAL;
    if (v > (unsigned long long)MAX_MS / mul)
        return -EINVAL;
    *ret = (int64_t)(v * mul);
    return 0;
}

static int parse_bytes(const char *value, uint64_t *ret)
{
    unsigned long long v;
    const char *unit;
    unsigned shift;
    if (parse_number(value, &v, &unit) < 0)
        return -EINVAL;
    if (*unit == '\0')
        shift = 0;
    else if (strcasecmp(unit, "K") == 0 || strcmp(unit, "KiB") == 0)
        shift = 10;
    else if (strcasecmp(unit, "M") == 0 || strcmp(unit, "MiB") == 0)
        shift = 20;
    else if (strcasecmp(unit, "G") == 0 || strcmp(unit, "GiB") == 0)
        shift = 30;
    else if (strcasecmp(unit, "T") == 0 || strcmp(unit, "TiB") == 0)
        shift = 40;
    else
        return -EINVAL;
    if (v > (MAX_BYTES >> shift))
        return -EINVAL;
    *ret = (uint64_t)v << shift;
    return 0;
}

/* A percentage 0..100, decimals allowed, an optional trailing '%'. */
static int parse_pct(const char *value, double *ret)
{
    char *end;
    if ((value[0] < '0' || value[0] > '9') && value[0] != '.')
        return -EINVAL;
    errno = 0;
    double v = strtod(value, &end);
    if (errno || end == value)
        return -EINVAL;
    if (*end == '%')
        end++;
    if (*end != '\0' || !isfinite(v) || v < 0 || v > 100)
        return -EINVAL;
    *ret = v;
    return 0;
}

int policy_config_set(struct policy_config *cfg, const char *key, const char *value)
{
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        if (strcmp(keys[i].name, key) != 0)
            continue;
        char *field = (char *)cfg + keys[i].offset;
        switch (keys[i].kind) {
        case KIND_MS: {
            int64_t v;
            if (parse_ms(value, &v) < 0)
                return -EINVAL;
            memcpy(field, &v, sizeof(v));
            return 0;
        }
        case KIND_BYTES: {
            uint64_t v;
            if (parse_bytes(value, &v) < 0)
                return -EINVAL;
            memcpy(field, &v, sizeof(v));
            return 0;
        }
        case KIND_PCT: {
            double v;
            if (parse_pct(value, &v) < 0)
                return -EINVAL;
            memcpy(field, &v, sizeof(v));
            return 0;
        }
        case KIND_COEFF: {
            char *end;
            if (value[0] < '0' || value[0] > '9')
                return -EINVAL;
            errno = 0;
            double v = strtod(value, &end);
            if (errno || *end != '\0' || !isfinite(v) || v < 1 || v > 1000)
                return -EINVAL;
            memcpy(field, &v, sizeof(v));
            return 0;
        }
        case KIND_COUNT: {
            unsigned long long v;
            const char *unit;
            if (parse_number(value, &v, &unit) < 0 || *unit != '\0' || v > 10000000)
                return -EINVAL;
            uint64_t u = v;
            memcpy(field, &u, sizeof(u));
            return 0;
        }
        case KIND_SHIFT: {
            unsigned long long v;
            const char *unit;
            if (parse_number(value, &v, &unit) < 0 || *unit != '\0' || v > 20)
                return -EINVAL;
            unsigned u = (unsigned)v;
            memcpy(field, &u, sizeof(u));
            return 0;
        }
        }
    }
    return -ENOENT;
}

static int fail(char *err, size_t err_cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t err_cap, const char *fmt, ...)
{
    if (err && err_cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

int policy_config_check(const struct policy_config *cfg, char *err, size_t err_cap)
{
    const int64_t times[] = {cfg->level_decay_ms,    cfg->critical_window_ms,
                             cfg->settle_timeout_ms, cfg->snapshot_max_age_ms,
                             cfg->stall_interval_ms, cfg->stuck_check_ms};
    const char *time_names[] = {"level_decay_ms",      "critical_window_ms", "settle_timeout_ms",
                                "snapshot_max_age_ms", "stall_interval_ms",  "stuck_check_ms"};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++)
        if (times[i] <= 0 || times[i] > MAX_MS)
            return fail(err, err_cap, "%s must be between 1 ms and 30 days", time_names[i]);
    const int64_t any_times[] = {cfg->medium_dwell_ms,          cfg->quiet_ms,
                                 cfg->deflate_cooldown_ms,      cfg->inflate_interval_ms,
                                 cfg->flip_forget_ms,           cfg->hurt_memory_ms,
                                 cfg->host_reclaim_interval_ms, cfg->stuck_backoff_ms};
    for (size_t i = 0; i < sizeof(any_times) / sizeof(any_times[0]); i++)
        if (any_times[i] < 0 || any_times[i] > MAX_MS)
            return fail(err, err_cap, "a time is negative or above 30 days");
    if (cfg->critical_step_bytes == 0 && cfg->critical_step_pct <= 0)
        return fail(err, err_cap, "critical step is zero: set critical_step_bytes or _pct");
    if (cfg->medium_step_bytes == 0 && cfg->medium_step_pct <= 0)
        return fail(err, err_cap, "medium step is zero: set medium_step_bytes or _pct");
    if (cfg->inflate_step_bytes == 0 && cfg->inflate_step_pct <= 0)
        return fail(err, err_cap, "inflate step is zero: set inflate_step_bytes or _pct");
    if (cfg->host_step_bytes == 0 && cfg->host_step_pct <= 0)
        return fail(err, err_cap, "host step is zero: set host_step_bytes or _pct");
    if (cfg->backoff_step_bytes == 0 && cfg->backoff_step_pct <= 0)
        return fail(err, err_cap, "backoff step is zero: set backoff_step_bytes or _pct");
    if (!(cfg->stall_target_pct > 0))
        return fail(err, err_cap, "stall_target_pct must be above 0");
    if (cfg->stuck_check_ms > cfg->settle_timeout_ms)
        return fail(err, err_cap, "stuck_check_ms (%lld) must not exceed settle_timeout_ms (%lld)",
                    (long long)cfg->stuck_check_ms, (long long)cfg->settle_timeout_ms);
    if (cfg->stuck_max_shift > 20)
        return fail(err, err_cap, "stuck_max_shift must be at most 20");
    if (cfg->probe_coeff < 1 || cfg->backoff_coeff < 1)
        return fail(err, err_cap, "probe_coeff and backoff_coeff must be at least 1");
    if (cfg->buffer_low_pct > cfg->host_buffer_pct || cfg->host_buffer_pct > cfg->buffer_pct)
        return fail(err, err_cap,
                    "need buffer_low_pct <= host_buffer_pct <= buffer_pct (got %g, %g, %g)",
                    cfg->buffer_low_pct, cfg->host_buffer_pct, cfg->buffer_pct);
    if (cfg->host_psi_exit >= cfg->host_psi_enter)
        return fail(err, err_cap, "host_psi_exit (%g) must be below host_psi_enter (%g)",
                    cfg->host_psi_exit, cfg->host_psi_enter);
    if (cfg->host_avail_exit_pct <= cfg->host_avail_enter_pct)
        return fail(err, err_cap,
                    "host_avail_exit_pct (%g) must be above host_avail_enter_pct (%g)",
                    cfg->host_avail_exit_pct, cfg->host_avail_enter_pct);
    if (cfg->flip_max_shift > 20)
        return fail(err, err_cap, "flip_max_shift must be at most 20");
    if (cfg->min_change_bytes > MAX_BYTES)
        return fail(err, err_cap, "min_change_bytes is too large");
    return 0;
}

int policy_guest_check(uint64_t floor_bytes, uint64_t ceiling_bytes, uint32_t weight, char *err,
                       size_t err_cap)
{
    if (ceiling_bytes == 0 || ceiling_bytes > MAX_BYTES)
        return fail(err, err_cap, "ceiling must be above 0 and at most 1 PiB");
    if (floor_bytes == 0)
        return fail(err, err_cap, "floor must be above 0");
    if (floor_bytes > ceiling_bytes)
        return fail(err, err_cap, "floor (%llu) is above ceiling (%llu)",
                    (unsigned long long)floor_bytes, (unsigned long long)ceiling_bytes);
    if (weight < 1 || weight > 10000)
        return fail(err, err_cap, "weight must be between 1 and 10000");
    return 0;
}
