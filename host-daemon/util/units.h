/* Byte sizes as operators write them: "512M", "2G", "1048576". */
#ifndef BELLOWS_UNITS_H
#define BELLOWS_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parse a size: decimal digits with an optional binary suffix K, M, G or T (case-insensitive,
 * an optional trailing "B" or "iB" allowed: "64K", "64KiB", "64kb"). Surrounding blanks are
 * allowed. Returns 0 and sets *ret_bytes, -EINVAL on bad syntax, -ERANGE on overflow. */
int units_parse_size(const char *text, uint64_t *ret_bytes);

/* Format bytes with the largest binary suffix that divides them exactly ("512M", "1536K",
 * "7"). Always NUL-terminates; returns buf. */
char *units_format_size(uint64_t bytes, char *buf, size_t cap);

/* Parse a duration with a unit: "250ms", "2s", "5min" (a bare number is refused: units
 * keep configs unambiguous). Returns 0 and sets *ret_ms, -EINVAL or -ERANGE. */
int units_parse_duration_ms(const char *text, uint64_t *ret_ms);

#endif
