/* Text from outside (a guest's bytes, a decoder's detail that quotes them) made safe for a
 * log line: printable ASCII stays, a backslash doubles, every other byte becomes \xHH.
 * A log line can then never carry a terminal escape, a newline that forges another line,
 * or bytes that are not UTF-8. Pure. */
#ifndef BELLOWS_ESCAPE_H
#define BELLOWS_ESCAPE_H

#include <stddef.h>

/* Escape `len` bytes of `in` into `out` (cap > 0), always NUL-terminated; an escape is
 * never cut in half: what does not fit is left out. Returns the length written. */
size_t text_escape(const char *in, size_t len, char *out, size_t cap);

/* The same for a NUL-terminated string (out must not overlap in). */
size_t text_escape_str(const char *in, char *out, size_t cap);

#endif
