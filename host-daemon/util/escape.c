/* Log-safe escaping of outside text (see escape.h). */
#include "host-daemon/util/escape.h"

#include <string.h>

/* See escape.h. */
size_t text_escape(const char *in, size_t len, char *out, size_t cap)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    if (cap == 0)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        char piece[4];
        size_t n;
        if (c == '\\') {
            piece[0] = piece[1] = '\\';
            n = 2;
        } else if (c >= 0x20 && c < 0x7f) {
            piece[0] = (char)c;
            n = 1;
        } else {
            piece[0] = '\\';
            piece[1] = 'x';
            piece[2] = hex[c >> 4];
            piece[3] = hex[c & 15];
            n = 4;
        }
        if (o + n >= cap)
            break;
        memcpy(out + o, piece, n);
        o += n;
    }
    out[o] = '\0';
    return o;
}

/* See escape.h. */
size_t text_escape_str(const char *in, char *out, size_t cap)
{
    return text_escape(in, strlen(in), out, cap);
}
