/* Parser for PSI text ("some avg10=... total=..." and "full ..." lines). */
#include "guest-agent/psi_stats.h"

#include "guest-agent/procfile.h"

#include <errno.h>
#include <string.h>

/* Split "key=value" into key and value. */
static bool split_pair(struct span word, struct span *ret_key, struct span *ret_value)
{
    const char *eq = memchr(word.p, '=', word.len);
    if (!eq)
        return false;
    ret_key->p = word.p;
    ret_key->len = (size_t)(eq - word.p);
    ret_value->p = eq + 1;
    ret_value->len = word.len - ret_key->len - 1;
    return true;
}

static int parse_line(struct span rest, struct psi_line *ret)
{
    struct psi_line l = {0};
    unsigned seen = 0;
    struct span word;

    while (span_next_word(&rest, &word)) {
        struct span key, value;
        int r = 0;
        if (!split_pair(word, &key, &value))
            return -EINVAL;
        if (span_eq(key, "avg10")) {
            r = span_to_double(value, &l.avg10);
            seen |= 1;
        } else if (span_eq(key, "avg60")) {
            r = span_to_double(value, &l.avg60);
            seen |= 2;
        } else if (span_eq(key, "avg300")) {
            r = span_to_double(value, &l.avg300);
            seen |= 4;
        } else if (span_eq(key, "total")) {
            r = span_to_u64(value, &l.total_us);
            seen |= 8;
        }
        /* Keys a future kernel may add are skipped. */
        if (r < 0)
            return r;
    }
    if (seen != 15 || l.avg10 > 100.0 || l.avg60 > 100.0 || l.avg300 > 100.0)
        return -EINVAL;
    *ret = l;
    return 0;
}

int psi_stats_parse(const char *buf, size_t len, struct psi_stats *ret)
{
    struct psi_stats s = {0};
    struct span rest = {buf, len}, line;

    while (span_next_line(&rest, &line)) {
        struct span kind;
        int r;
        if (!span_next_word(&line, &kind))
            continue;
        if (span_eq(kind, "some")) {
            r = parse_line(line, &s.some);
            s.has_some = true;
        } else if (span_eq(kind, "full")) {
            r = parse_line(line, &s.full);
            s.has_full = true;
        } else {
            return -EINVAL;
        }
        if (r < 0)
            return r;
    }
    if (!s.has_some)
        return -EINVAL;
    *ret = s;
    return 0;
}
