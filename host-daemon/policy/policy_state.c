/* bellows balloon policy: what a guest's policy state should keep across a daemon restart
 * (hurt size, reversals and their backoff, the last deflate and the need at it, stuck
 * balloons, the stall base and its peak), as one line of `key=value` words, and back. Pure: text
 * in, text out; times are written as ages and read back against the wall clock, so time the daemon
 * was down counts as elapsed. See policy.h and docs/policy.md ("State across a restart"). */
#include "host-daemon/policy/policy_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION "bellows-policy-state=1"
/* The key's head: never read back, so never taken for a state line. */
#define KEY_VERSION "bellows-policy-key=1"
/* Ages beyond this are not kept: nothing the policy remembers lasts 30 days. */
#define MAX_AGE_MS POLICY_STATE_LIFETIME_MS

static const char *const dir_names[] = {"hold", "deflate", "inflate"};

/* Append to buf at *len; false when it does not fit. */
static bool put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap - *len)
        return false;
    *len += (size_t)n;
    return true;
}

/* Age of a time at now, clamped to 0..MAX_AGE_MS. */
static int64_t age(int64_t at, int64_t now)
{
    if (at == POLICY_NEVER || now - at > MAX_AGE_MS)
        return MAX_AGE_MS;
    return now > at ? now - at : 0;
}

/* A time as its age at now (the file's form), or as it is (the key's form). */
static int64_t when(int64_t at, int64_t now, bool absolute)
{
    return absolute ? at : age(at, now);
}

/* The line of policy_state_format(), or with absolute times and no wall clock. */
static int format(const struct policy_guest *g, bool absolute, int64_t now, int64_t wall_ms,
                  char *buf, size_t cap)
{
    size_t len = 0;
    if (cap == 0)
        return -ENOSPC;
    buf[0] = '\0';
    bool ok = absolute ? put(buf, cap, &len, "%s reversals=%" PRIu64, KEY_VERSION, g->reversals)
                       : put(buf, cap, &len, "%s wall=%" PRId64 " reversals=%" PRIu64,
                             STATE_VERSION, wall_ms, g->reversals);
    if (ok && g->hurt_known && g->hurt_at != POLICY_NEVER)
        ok = put(buf, cap, &len, " hurt=%" PRIu64 "@%" PRId64, g->hurt_bytes,
                 when(g->hurt_at, now, absolute));
    if (ok && g->flips > 0)
        ok = put(buf, cap, &len, " flips=%u@%" PRId64, g->flips,
                 when(g->last_flip_at, now, absolute));
    if (ok && g->last_dir != POLICY_HOLD && (unsigned)g->last_dir <= POLICY_INFLATE)
        ok = put(buf, cap, &len, " dir=%s", dir_names[g->last_dir]);
    if (ok && g->last_deflate_at != POLICY_NEVER)
        ok = put(buf, cap, &len, " deflated=%" PRId64, when(g->last_deflate_at, now, absolute));
    /* What it needed at that deflate: the block ends early once it needs under half. */
    if (ok && g->last_deflate_at != POLICY_NEVER && g->last_deflate_need > 0)
        ok = put(buf, cap, &len, " need=%" PRIu64, g->last_deflate_need);
    if (ok && (g->stuck_count > 0 || g->stuck_total > 0))
        ok = put(buf, cap, &len, " stuck=%u/%" PRIu64, g->stuck_count, g->stuck_total);
    if (ok && g->stall.psi_seen)
        ok = put(buf, cap, &len, " base=%.3f", g->stall.base_pct);
    if (ok && g->stall.psi_seen && g->stall.base_peak_pct > 0)
        ok = put(buf, cap, &len, " peak=%.3f", g->stall.base_peak_pct);
    if (!ok) {
        buf[0] = '\0';
        return -ENOSPC;
    }
    return (int)len;
}

int policy_state_format(const struct policy_guest *g, int64_t now, int64_t wall_ms, char *buf,
                        size_t cap)
{
    return format(g, false, now, wall_ms, buf, cap);
}

int policy_state_key(const struct policy_guest *g, char *buf, size_t cap)
{
    return format(g, true, 0, 0, buf, cap);
}

/* Unsigned decimal at *p up to a non-digit; false when there is none or it overflows. */
static bool number(const char **p, uint64_t *ret)
{
    const char *s = *p;
    uint64_t v = 0;
    if (*s < '0' || *s > '9')
        return false;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *ret = v;
    return true;
}

/* A percent (0..100, a decimal fraction allowed) at *p; false when there is none. */
static bool percent(const char **p, double *ret)
{
    char *end;
    double v = strtod(*p, &end);
    if (end == *p || !(v >= 0 && v <= 100))
        return false;
    *p = end;
    *ret = v;
    return true;
}

/* "N@AGE" with AGE in ms. */
static bool number_at(const char **p, uint64_t *ret, int64_t *ret_age)
{
    uint64_t v, a;
    if (!number(p, &v) || **p != '@')
        return false;
    (*p)++;
    if (!number(p, &a) || a > (uint64_t)MAX_AGE_MS)
        return false;
    *ret = v;
    *ret_age = (int64_t)a;
    return true;
}

int policy_state_parse(const struct policy_config *cfg, struct policy_guest *g, const char *text,
                       size_t len, int64_t now, int64_t wall_ms)
{
    char line[POLICY_STATE_MAX];
    if (len >= sizeof(line))
        return -EINVAL;
    memcpy(line, text, len);
    line[len] = '\0';
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == ' '))
        line[--len] = '\0';
    if (memchr(line, '\0', len) != NULL)
        return -EINVAL;
    size_t vlen = strlen(STATE_VERSION);
    if (strncmp(line, STATE_VERSION, vlen) != 0 || (line[vlen] != ' ' && line[vlen] != '\0'))
        return -EINVAL;

    struct policy_guest t = *g;
    bool have_wall = false;
    int64_t saved_wall = 0;
    uint64_t hurt = 0, flips = 0, deflate_need = 0;
    int64_t hurt_age = -1, flip_age = -1, deflate_age = -1;
    const char *p = line + vlen;
    while (*p == ' ') {
        p++;
        const char *eq = strchr(p, '=');
        if (!eq)
            return -EINVAL;
        size_t klen = (size_t)(eq - p);
        const char *v = eq + 1;
        uint64_t n;
        if (klen == 4 && strncmp(p, "wall", 4) == 0) {
            bool neg = *v == '-';
            if (neg)
                v++;
            if (!number(&v, &n) || n > (uint64_t)INT64_MAX / 2)
                return -EINVAL;
            saved_wall = neg ? -(int64_t)n : (int64_t)n;
            have_wall = true;
        } else if (klen == 9 && strncmp(p, "reversals", 9) == 0) {
            if (!number(&v, &n))
                return -EINVAL;
            t.reversals = n;
        } else if (klen == 4 && strncmp(p, "hurt", 4) == 0) {
            if (!number_at(&v, &hurt, &hurt_age))
                return -EINVAL;
        } else if (klen == 5 && strncmp(p, "flips", 5) == 0) {
            if (!number_at(&v, &flips, &flip_age) || flips > 64)
                return -EINVAL;
        } else if (klen == 3 && strncmp(p, "dir", 3) == 0) {
            if (strncmp(v, "deflate", 7) == 0) {
                t.last_dir = POLICY_DEFLATE;
                v += 7;
            } else if (strncmp(v, "inflate", 7) == 0) {
                t.last_dir = POLICY_INFLATE;
                v += 7;
            } else {
                return -EINVAL;
            }
        } else if (klen == 8 && strncmp(p, "deflated", 8) == 0) {
            if (!number(&v, &n) || n > (uint64_t)MAX_AGE_MS)
                return -EINVAL;
            deflate_age = (int64_t)n;
        } else if (klen == 4 && strncmp(p, "need", 4) == 0) {
            if (!number(&v, &n) || n == 0)
                return -EINVAL;
            deflate_need = n;
        } else if (klen == 5 && strncmp(p, "stuck", 5) == 0) {
            uint64_t total;
            if (!number(&v, &n) || n > 64 || *v != '/')
                return -EINVAL;
            v++;
            if (!number(&v, &total))
                return -EINVAL;
            t.stuck_count = (unsigned)n;
            t.stuck_total = total;
        } else if (klen == 4 && strncmp(p, "base", 4) == 0) {
            if (!percent(&v, &t.stall.base_pct))
                return -EINVAL;
            t.stall.psi_seen = true;
        } else if (klen == 4 && strncmp(p, "peak", 4) == 0) {
            if (!percent(&v, &t.stall.base_peak_pct))
                return -EINVAL;
        } else {
            return -EINVAL;
        }
        if (*v != ' ' && *v != '\0')
            return -EINVAL;
        p = v;
    }
    if (*p != '\0' || !have_wall)
        return -EINVAL;

    /* Time the daemon was down counts as elapsed (a clock set back counts as none). */
    int64_t down = wall_ms > saved_wall ? wall_ms - saved_wall : 0;
    if (down > MAX_AGE_MS)
        down = MAX_AGE_MS;
    if (hurt_age >= 0 && hurt_age + down < cfg->hurt_memory_ms && hurt_age + down < MAX_AGE_MS) {
        t.hurt_known = true;
        t.hurt_bytes = hurt;
        t.hurt_at = now - hurt_age - down;
    }
    if (flip_age >= 0 && flips > 0 && flip_age + down < cfg->flip_forget_ms &&
        flip_age + down < MAX_AGE_MS) {
        t.flips = (unsigned)flips;
        t.last_flip_at = now - flip_age - down;
    }
    /* A line written before the peak was kept: the base is the highest measured. */
    if (t.stall.base_peak_pct < t.stall.base_pct)
        t.stall.base_peak_pct = t.stall.base_pct;
    if (deflate_age >= 0 && deflate_age + down < MAX_AGE_MS) {
        t.last_deflate_at = now - deflate_age - down;
        t.last_deflate_need = deflate_need;
    }
    *g = t;
    return 0;
}

int policy_state_wall(const char *text, int64_t *ret_wall_ms)
{
    size_t vlen = strlen(STATE_VERSION);
    if (strncmp(text, STATE_VERSION, vlen) != 0 || text[vlen] != ' ')
        return -EINVAL;
    const char *w = strstr(text + vlen, " wall=");
    if (!w)
        return -EINVAL;
    const char *v = w + strlen(" wall=");
    bool neg = *v == '-';
    if (neg)
        v++;
    uint64_t n;
    if (!number(&v, &n) || n > (uint64_t)INT64_MAX / 2 || (*v != ' ' && *v != '\0'))
        return -EINVAL;
    *ret_wall_ms = neg ? -(int64_t)n : (int64_t)n;
    return 0;
}
