/* Walking the text of /proc files held in a buffer: lines, words, numbers.
 * Pure helpers shared by the meminfo, vmstat and PSI parsers; no I/O. */
#ifndef BELLOWS_PROCFILE_H
#define BELLOWS_PROCFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A piece of a buffer, not NUL-terminated. */
struct span {
    const char *p;
    size_t len;
};

/* Take the next line (without its '\n') from *rest and advance *rest past it.
 * Returns false when *rest is empty. */
bool span_next_line(struct span *rest, struct span *ret_line);

/* Take the next word separated by spaces or tabs from *rest, advancing it.
 * Returns false when only blanks remain. */
bool span_next_word(struct span *rest, struct span *ret_word);

/* True when the span equals the NUL-terminated string s. */
bool span_eq(struct span s, const char *str);

/* Parse the whole span as an unsigned decimal integer.
 * Returns 0, -EINVAL (empty or not all digits) or -ERANGE (over UINT64_MAX). */
int span_to_u64(struct span s, uint64_t *ret_value);

/* Parse the whole span as a non-negative decimal fraction such as "12.34".
 * Returns 0, -EINVAL or -ERANGE (more than 32 characters). */
int span_to_double(struct span s, double *ret_value);

#endif
