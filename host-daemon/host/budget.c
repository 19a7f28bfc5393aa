/* The host budget: cgroup number parsers, a cgroup reader, and the budget arithmetic. */
#include "host-daemon/host/budget.h"

#include "host-daemon/util/small_file.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* See budget.h. */
int budget_parse_number(const char *text, size_t len, uint64_t *ret)
{
    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == ' '))
        len--;
    if (len == 3 && memcmp(text, "max", 3) == 0) {
        *ret = UINT64_MAX;
        return 0;
    }
    if (len == 0 || len > 20)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(text[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *ret = v;
    return 0;
}

/* Read a small cgroup file into buf (NUL not added). Returns its length or -errno. */
static ssize_t read_file(const char *dir, const char *name, char *buf, size_t cap)
{
    char path[4096];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return -ENAMETOOLONG;
    return small_file_read(path, buf, cap);
}

static int read_number(const char *dir, const char *name, uint64_t *ret)
{
    char buf[64];
    ssize_t len = read_file(dir, name, buf, sizeof(buf));
    if (len < 0)
        return (int)len;
    return budget_parse_number(buf, (size_t)len, ret) < 0 ? -EINVAL : 0;
}

/* See budget.h. */
int budget_read_cgroup(const char *dir, struct budget_cgroup *ret)
{
    struct budget_cgroup out = {0};
    int r = read_number(dir, "memory.max", &out.limit_bytes);
    if (r == 0) {
        out.v2 = true;
        if ((r = read_number(dir, "memory.current", &out.usage_bytes)) < 0)
            return r;
        char buf[1024];
        ssize_t len = read_file(dir, "memory.pressure", buf, sizeof(buf));
        if (len >= 0 && hostmem_parse_psi(buf, (size_t)len, &out.psi) == 0)
            out.has_psi = true;
    } else if (r == -ENOENT) {
        if ((r = read_number(dir, "memory.limit_in_bytes", &out.limit_bytes)) < 0)
            return r;
        if ((r = read_number(dir, "memory.usage_in_bytes", &out.usage_bytes)) < 0)
            return r;
    } else {
        return r;
    }
    *ret = out;
    return 0;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* See budget.h. */
uint64_t budget_reserve(const struct budget_settings *s, uint64_t total_bytes)
{
    double pct = (double)total_bytes * s->reserve_pct / 100.0;
    uint64_t by_pct = pct >= (double)UINT64_MAX ? UINT64_MAX : pct > 0 ? (uint64_t)pct : 0;
    return by_pct > s->reserve_bytes ? by_pct : s->reserve_bytes;
}

/* See budget.h. */
uint64_t budget_compute(const struct budget_settings *s, struct budget_state *st,
                        const struct budget_inputs *in, int64_t now)
{
    /* What is used and not held by the guests: the host's own, QEMU's, page cache... A
     * guest given memory it has not touched yet makes this look smaller than it is, so the
     * largest figure of the last window counts. */
    uint64_t nonguest = sub_sat(in->used_bytes, in->guest_bytes);
    if (!st->known || nonguest >= st->nonguest_bytes ||
        now - st->nonguest_at >= BUDGET_NONGUEST_WINDOW_MS) {
        st->known = true;
        st->nonguest_bytes = nonguest;
        st->nonguest_at = now;
    }
    /* A guest that has not touched all its memory hides its hypervisor's overhead from
     * that figure: at least guest_overhead per guest. */
    uint64_t overheads = s->guest_overhead && in->guests > UINT64_MAX / s->guest_overhead
                             ? UINT64_MAX
                             : in->guests * s->guest_overhead;
    uint64_t others = st->nonguest_bytes > overheads ? st->nonguest_bytes : overheads;
    uint64_t reserve = budget_reserve(s, in->total_bytes);
    uint64_t kept = reserve + others < reserve ? UINT64_MAX : reserve + others;
    return sub_sat(in->total_bytes, kept);
}
