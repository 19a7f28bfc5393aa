/* Parsers for /proc/pressure/memory and /proc/meminfo, and their file reader. */
#include "host-daemon/host/hostmem.h"

#include "host-daemon/util/small_file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Parse "avg10=X avg60=Y avg300=Z total=T" (the part after "some "/"full "). */
static int parse_psi_fields(const char *p, const char *end, struct hostmem_psi_line *ret)
{
    char line[256];
    size_t n = (size_t)(end - p);
    if (n >= sizeof(line))
        return -EINVAL;
    memcpy(line, p, n);
    line[n] = '\0';
    /* scanf's %llu and %lf take a sign; PSI never prints one. */
    if (strpbrk(line, "-+"))
        return -EINVAL;

    struct hostmem_psi_line out;
    unsigned long long total;
    int used = 0;
    if (sscanf(line, " avg10=%lf avg60=%lf avg300=%lf total=%llu %n", &out.avg10, &out.avg60,
               &out.avg300, &total, &used) != 4)
        return -EINVAL;
    if (line[used] != '\0')
        return -EINVAL;
    if (!(out.avg10 >= 0 && out.avg10 <= 100 && out.avg60 >= 0 && out.avg60 <= 100 &&
          out.avg300 >= 0 && out.avg300 <= 100))
        return -EINVAL;
    out.total_us = total;
    *ret = out;
    return 0;
}

/* PSI text: "some ...\nfull ...\n"; see hostmem.h. */
int hostmem_parse_psi(const char *text, size_t len, struct hostmem_psi *ret_psi)
{
    struct hostmem_psi out = {0};
    bool has_some = false;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if (eol - p >= 5 && memcmp(p, "some ", 5) == 0) {
            if (has_some || parse_psi_fields(p + 5, eol, &out.some) < 0)
                return -EINVAL;
            has_some = true;
        } else if (eol - p >= 5 && memcmp(p, "full ", 5) == 0) {
            if (out.has_full || parse_psi_fields(p + 5, eol, &out.full) < 0)
                return -EINVAL;
            out.has_full = true;
        } else if (eol != p) {
            return -EINVAL;
        }
        p = eol + 1;
    }
    if (!has_some)
        return -EINVAL;
    *ret_psi = out;
    return 0;
}

/* Parse one "Name:   123 kB" line's value; returns -EINVAL on anything else. */
static int parse_kb(const char *p, const char *eol, uint64_t *ret)
{
    char buf[64];
    size_t n = (size_t)(eol - p);
    if (n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, p, n);
    buf[n] = '\0';
    if (strpbrk(buf, "-+"))
        return -EINVAL;
    unsigned long long value;
    int used = 0;
    if (sscanf(buf, " %llu kB %n", &value, &used) != 1 || buf[used] != '\0')
        return -EINVAL;
    *ret = value;
    return 0;
}

/* /proc/meminfo text; see hostmem.h. */
int hostmem_parse_meminfo(const char *text, size_t len, struct hostmem_meminfo *ret_meminfo)
{
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"MemTotal:", offsetof(struct hostmem_meminfo, mem_total_kb)},
        {"MemFree:", offsetof(struct hostmem_meminfo, mem_free_kb)},
        {"MemAvailable:", offsetof(struct hostmem_meminfo, mem_available_kb)},
        {"SwapTotal:", offsetof(struct hostmem_meminfo, swap_total_kb)},
        {"SwapFree:", offsetof(struct hostmem_meminfo, swap_free_kb)},
    };
    struct hostmem_meminfo out = {0};
    unsigned seen = 0;
    const char *p = text, *end = text + len;

    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
            size_t nlen = strlen(fields[i].name);
            if ((size_t)(eol - p) > nlen && memcmp(p, fields[i].name, nlen) == 0) {
                if (parse_kb(p + nlen, eol, (uint64_t *)((char *)&out + fields[i].offset)) < 0)
                    return -EINVAL;
                seen |= 1u << i;
                break;
            }
        }
        p = eol + 1;
    }
    /* MemTotal and MemAvailable are required. */
    if ((seen & 0x5u) != 0x5u)
        return -EINVAL;
    *ret_meminfo = out;
    return 0;
}

/* Read both files under proc_dir; see hostmem.h. */
int hostmem_read(const char *proc_dir, struct hostmem_sample *ret_sample)
{
    char path[4096];
    char buf[8192];
    struct hostmem_sample out;
    ssize_t len;

    snprintf(path, sizeof(path), "%s/pressure/memory", proc_dir);
    len = small_file_read(path, buf, sizeof(buf));
    if (len < 0)
        return (int)len;
    if (hostmem_parse_psi(buf, (size_t)len, &out.psi) < 0)
        return -EINVAL;

    snprintf(path, sizeof(path), "%s/meminfo", proc_dir);
    len = small_file_read(path, buf, sizeof(buf));
    if (len < 0)
        return (int)len;
    if (hostmem_parse_meminfo(buf, (size_t)len, &out.meminfo) < 0)
        return -EINVAL;
    *ret_sample = out;
    return 0;
}
