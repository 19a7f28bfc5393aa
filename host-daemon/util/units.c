/* Byte sizes with binary suffixes, parsed and printed. */
#include "host-daemon/util/units.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int suffix_shift(char c)
{
    switch (toupper((unsigned char)c)) {
    case 'K':
        return 10;
    case 'M':
        return 20;
    case 'G':
        return 30;
    case 'T':
        return 40;
    default:
        return -1;
    }
}

/* The number that starts *p, after blanks: *p is left past its digits. Returns 0,
 * -EINVAL (no digit) or -ERANGE (over UINT64_MAX). */
static int leading_number(const char **p, uint64_t *ret_value)
{
    const char *q = *p;
    uint64_t value = 0;
    while (*q == ' ' || *q == '\t')
        q++;
    if (!isdigit((unsigned char)*q))
        return -EINVAL;
    for (; isdigit((unsigned char)*q); q++) {
        unsigned digit = (unsigned)(*q - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -ERANGE;
        value = value * 10 + digit;
    }
    *p = q;
    *ret_value = value;
    return 0;
}

/* Parse "digits[K|M|G|T][i][B]"; see units.h. */
int units_parse_size(const char *text, uint64_t *ret_bytes)
{
    const char *p = text;
    uint64_t value = 0;
    int shift = 0;

    int err = leading_number(&p, &value);
    if (err < 0)
        return err;
    if (*p && suffix_shift(*p) >= 0) {
        shift = suffix_shift(*p++);
        if (*p == 'i' || *p == 'I')
            p++;
    }
    if (*p == 'b' || *p == 'B')
        p++;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p)
        return -EINVAL;
    if (shift && value > (UINT64_MAX >> shift))
        return -ERANGE;
    *ret_bytes = value << shift;
    return 0;
}

/* Largest exact binary suffix; see units.h. */
char *units_format_size(uint64_t bytes, char *buf, size_t cap)
{
    static const char suffixes[] = "TGMK";
    for (int i = 0; i < 4; i++) {
        int shift = 40 - 10 * i;
        uint64_t unit = UINT64_C(1) << shift;
        if (bytes >= unit && bytes % unit == 0) {
            snprintf(buf, cap, "%" PRIu64 "%c", bytes >> shift, suffixes[i]);
            return buf;
        }
    }
    snprintf(buf, cap, "%" PRIu64, bytes);
    return buf;
}

/* "<digits><ms|s|min>"; see units.h. */
int units_parse_duration_ms(const char *text, uint64_t *ret_ms)
{
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"min", 60000}};
    const char *p = text;
    uint64_t value = 0;

    int err = leading_number(&p, &value);
    if (err < 0)
        return err;
    size_t ulen = strspn(p, "abcdefghijklmnopqrstuvwxyz");
    const char *rest = p + ulen;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (*rest)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strlen(units[i].unit) == ulen && strncmp(p, units[i].unit, ulen) == 0) {
            if (value > UINT64_MAX / units[i].ms)
                return -ERANGE;
            *ret_ms = value * units[i].ms;
            return 0;
        }
    }
    return -EINVAL;
}
