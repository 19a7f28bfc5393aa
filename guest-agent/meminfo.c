/* Parser for /proc/meminfo text. */
#include "guest-agent/meminfo.h"

#include "guest-agent/procfile.h"

#include <errno.h>
#include <stddef.h>

static const struct {
    const char *key; /* with its colon, as printed */
    unsigned bit;
    size_t offset;
} meminfo_fields[] = {
    {"MemTotal:", MEMINFO_MEM_TOTAL, offsetof(struct meminfo, mem_total_kb)},
    {"MemFree:", MEMINFO_MEM_FREE, offsetof(struct meminfo, mem_free_kb)},
    {"MemAvailable:", MEMINFO_MEM_AVAILABLE, offsetof(struct meminfo, mem_available_kb)},
    {"Committed_AS:", MEMINFO_COMMITTED_AS, offsetof(struct meminfo, committed_as_kb)},
    {"SwapTotal:", MEMINFO_SWAP_TOTAL, offsetof(struct meminfo, swap_total_kb)},
    {"SwapFree:", MEMINFO_SWAP_FREE, offsetof(struct meminfo, swap_free_kb)},
};

int meminfo_parse(const char *buf, size_t len, struct meminfo *ret)
{
    struct meminfo m = {0};
    struct span rest = {buf, len}, line;

    while (span_next_line(&rest, &line)) {
        struct span key, value, unit;
        if (!span_next_word(&line, &key))
            continue;
        for (size_t i = 0; i < sizeof(meminfo_fields) / sizeof(meminfo_fields[0]); i++) {
            if (!span_eq(key, meminfo_fields[i].key))
                continue;
            if (!span_next_word(&line, &value))
                return -EINVAL;
            /* Sizes carry " kB"; anything else means we misread the file. */
            if (!span_next_word(&line, &unit) || !span_eq(unit, "kB"))
                return -EINVAL;
            uint64_t v;
            int r = span_to_u64(value, &v);
            if (r < 0)
                return r;
            *(uint64_t *)((char *)&m + meminfo_fields[i].offset) = v;
            m.found |= meminfo_fields[i].bit;
            break;
        }
    }
    if (!(m.found & MEMINFO_MEM_TOTAL) || !(m.found & MEMINFO_MEM_FREE))
        return -EINVAL;
    *ret = m;
    return 0;
}
