/* Parser for /proc/vmstat text. */
#include "guest-agent/vmstat.h"

#include "guest-agent/procfile.h"

#include <errno.h>
#include <stddef.h>

static const struct {
    const char *name;
    unsigned bit;
    size_t offset;
} vmstat_fields[] = {
    {"pswpin", VMSTAT_PSWPIN, offsetof(struct vmstat, pswpin)},
    {"pswpout", VMSTAT_PSWPOUT, offsetof(struct vmstat, pswpout)},
    {"pgmajfault", VMSTAT_PGMAJFAULT, offsetof(struct vmstat, pgmajfault)},
};

int vmstat_parse(const char *buf, size_t len, struct vmstat *ret)
{
    struct vmstat v = {0};
    struct span rest = {buf, len}, line;

    while (span_next_line(&rest, &line)) {
        struct span name, value, extra;
        if (!span_next_word(&line, &name))
            continue;
        for (size_t i = 0; i < sizeof(vmstat_fields) / sizeof(vmstat_fields[0]); i++) {
            if (!span_eq(name, vmstat_fields[i].name))
                continue;
            if (!span_next_word(&line, &value) || span_next_word(&line, &extra))
                return -EINVAL;
            uint64_t n;
            int r = span_to_u64(value, &n);
            if (r < 0)
                return r;
            *(uint64_t *)((char *)&v + vmstat_fields[i].offset) = n;
            v.found |= vmstat_fields[i].bit;
            break;
        }
    }
    if (v.found == 0)
        return -EINVAL;
    *ret = v;
    return 0;
}
