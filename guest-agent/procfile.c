/* Line, word and number helpers over /proc text held in a buffer. */
#include "guest-agent/procfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

bool span_next_line(struct span *rest, struct span *ret_line)
{
    if (rest->len == 0)
        return false;
    const char *nl = memchr(rest->p, '\n', rest->len);
    size_t n = nl ? (size_t)(nl - rest->p) : rest->len;
    ret_line->p = rest->p;
    ret_line->len = n;
    size_t skip = nl ? n + 1 : n;
    rest->p += skip;
    rest->len -= skip;
    return true;
}

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

bool span_next_word(struct span *rest, struct span *ret_word)
{
    while (rest->len > 0 && is_blank(rest->p[0])) {
        rest->p++;
        rest->len--;
    }
    if (rest->len == 0)
        return false;
    size_t n = 0;
    while (n < rest->len && !is_blank(rest->p[n]))
        n++;
    ret_word->p = rest->p;
    ret_word->len = n;
    rest->p += n;
    rest->len -= n;
    return true;
}

bool span_eq(struct span s, const char *str)
{
    size_t n = strlen(str);
    return s.len == n && memcmp(s.p, str, n) == 0;
}

int span_to_u64(struct span s, uint64_t *ret_value)
{
    if (s.len == 0)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        char c = s.p[i];
        if (c < '0' || c > '9')
            return -EINVAL;
        uint64_t d = (uint64_t)(c - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *ret_value = v;
    return 0;
}

int span_to_double(struct span s, double *ret_value)
{
    /* strtod needs a NUL-terminated copy; PSI averages are short ("100.00"). */
    char tmp[33];
    if (s.len == 0)
        return -EINVAL;
    if (s.len >= sizeof(tmp))
        return -ERANGE;
    bool dot = false;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] == '.' && !dot && i > 0)
            dot = true;
        else if (s.p[i] < '0' || s.p[i] > '9')
            return -EINVAL;
    }
    memcpy(tmp, s.p, s.len);
    tmp[s.len] = '\0';
    *ret_value = strtod(tmp, NULL);
    return 0;
}
