/* Outside text made safe for a log line: printable ASCII only, escapes never cut. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/util/escape.h"

static void assert_printable(const char *s)
{
    for (; *s; s++)
        assert_true(*s >= 0x20 && *s < 0x7f);
}

static void escapes_what_is_not_printable(void **state)
{
    (void)state;
    char out[128];
    /* a terminal escape, a forged second line, a backslash, a NUL, a UTF-8 byte pair */
    const char in[] = "ok \x1b[31mred\nbellowsd: error: forged \\ \0 \xc3\xa9";
    size_t n = text_escape(in, sizeof(in) - 1, out, sizeof(out));
    assert_string_equal(out, "ok \\x1b[31mred\\x0abellowsd: error: forged \\\\ \\x00 \\xc3\\xa9");
    assert_int_equal(n, strlen(out));
    assert_printable(out);
    assert_int_equal(text_escape_str("plain text", out, sizeof(out)), 10);
    assert_string_equal(out, "plain text");
}

/* Truncation drops whole escapes: never a dangling backslash or half of \xHH. */
static void truncation_keeps_escapes_whole(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(text_escape("ab\x01"
                                 "cd",
                                 5, out, 6),
                     2); /* "ab" + "\x01" needs 7 */
    assert_string_equal(out, "ab");
    assert_int_equal(text_escape("a\\b", 3, out, 3), 1);
    assert_string_equal(out, "a");
    assert_int_equal(text_escape("abc", 3, out, 1), 0);
    assert_string_equal(out, "");
    memset(out, 'x', sizeof(out));
    assert_int_equal(text_escape("abc", 3, out, 0), 0); /* nothing written at all */
    assert_int_equal(out[0], 'x');
}

/* Every byte value comes out printable. */
static void every_byte(void **state)
{
    (void)state;
    char in[256], out[256 * 4 + 1];
    for (int i = 0; i < 256; i++)
        in[i] = (char)i;
    size_t n = text_escape(in, sizeof(in), out, sizeof(out));
    assert_int_equal(n, 94 + 2 + 161 * 4); /* 94 kept, the backslash doubled, 161 as \xHH */
    assert_printable(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(escapes_what_is_not_printable),
        cmocka_unit_test(truncation_keeps_escapes_whole),
        cmocka_unit_test(every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
