/* The pure QMP message part on literal messages. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/qmp/qmp_message.h"

static int parse(const char *text, struct qmp_message *m)
{
    char err[160] = "";
    int r = qmp_message_parse(text, strlen(text), m, err, sizeof(err));
    if (r < 0)
        assert_true(err[0] != '\0'); /* every refusal says why */
    return r;
}

static void test_greeting(void **state)
{
    (void)state;
    struct qmp_message m;
    const char *text = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, "
                       "\"major\": 7}, \"package\": \"Debian 1:7.2+dfsg-7\"}, "
                       "\"capabilities\": [\"oob\"]}}\r\n";
    assert_int_equal(parse(text, &m), 0);
    assert_int_equal(m.kind, QMP_MESSAGE_GREETING);
    assert_false(m.has_id);
    qmp_message_clear(&m);
    /* "QMP" must be an object */
    assert_int_equal(parse("{\"QMP\": 1}", &m), -EBADMSG);
}

static void test_return_with_id(void **state)
{
    (void)state;
    struct qmp_message m;
    assert_int_equal(parse("{\"return\": {\"actual\": 536870912}, \"id\": 42}\r\n", &m), 0);
    assert_int_equal(m.kind, QMP_MESSAGE_RETURN);
    assert_true(m.has_id);
    assert_int_equal(m.id, 42);
    assert_true(json_is_object(m.ret));
    int64_t actual = 0;
    assert_int_equal(qmp_parse_balloon_actual(m.ret, &actual), 0);
    assert_int_equal(actual, 536870912);
    qmp_message_clear(&m);

    /* an empty return, unknown keys ignored, no id */
    assert_int_equal(parse("{\"return\": {}, \"future-key\": [1, 2]}", &m), 0);
    assert_int_equal(m.kind, QMP_MESSAGE_RETURN);
    assert_false(m.has_id);
    qmp_message_clear(&m);

    /* ids that are not ours (strings, negative, real) are not matched */
    assert_int_equal(parse("{\"return\": {}, \"id\": \"abc\"}", &m), 0);
    assert_false(m.has_id);
    qmp_message_clear(&m);
    assert_int_equal(parse("{\"return\": {}, \"id\": -3}", &m), 0);
    assert_false(m.has_id);
    qmp_message_clear(&m);
    assert_int_equal(parse("{\"return\": {}, \"id\": 7.0}", &m), 0);
    assert_false(m.has_id);
    qmp_message_clear(&m);
}

static void test_error(void **state)
{
    (void)state;
    struct qmp_message m;
    assert_int_equal(parse("{\"id\": 3, \"error\": {\"class\": \"DeviceNotActive\", "
                           "\"desc\": \"No balloon device has been activated\"}}\r\n",
                           &m),
                     0);
    assert_int_equal(m.kind, QMP_MESSAGE_ERROR);
    assert_true(m.has_id);
    assert_int_equal(m.id, 3);
    assert_string_equal(m.error_class, "DeviceNotActive");
    assert_string_equal(m.error_desc, "No balloon device has been activated");
    qmp_message_clear(&m);

    /* desc is optional, class is not */
    assert_int_equal(parse("{\"error\": {\"class\": \"GenericError\"}}", &m), 0);
    assert_string_equal(m.error_desc, "");
    qmp_message_clear(&m);
    assert_int_equal(parse("{\"error\": {\"desc\": \"x\"}}", &m), -EBADMSG);
    assert_int_equal(parse("{\"error\": \"GenericError\"}", &m), -EBADMSG);
    assert_int_equal(parse("{\"error\": {\"class\": 5}}", &m), -EBADMSG);
    assert_int_equal(parse("{\"error\": {\"class\": \"X\", \"desc\": []}}", &m), -EBADMSG);
}

static void test_event(void **state)
{
    (void)state;
    struct qmp_message m;
    int64_t actual = 0;
    assert_int_equal(parse("{\"timestamp\": {\"seconds\": 1764067200, \"microseconds\": 123456}, "
                           "\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": 268435456}}\r\n",
                           &m),
                     0);
    assert_int_equal(m.kind, QMP_MESSAGE_EVENT);
    assert_string_equal(m.event, "BALLOON_CHANGE");
    assert_int_equal(m.ts_seconds, 1764067200);
    assert_int_equal(m.ts_microseconds, 123456);
    assert_int_equal(qmp_parse_balloon_actual(m.data, &actual), 0);
    assert_int_equal(actual, 268435456);
    qmp_message_clear(&m);

    /* no data, no timestamp: still an event */
    assert_int_equal(parse("{\"event\": \"STOP\"}", &m), 0);
    assert_int_equal(m.kind, QMP_MESSAGE_EVENT);
    assert_null(m.data);
    assert_int_equal(m.ts_seconds, -1);
    assert_int_equal(qmp_parse_balloon_actual(m.data, &actual), -EBADMSG);
    qmp_message_clear(&m);

    /* a malformed timestamp is not an error, just unknown */
    assert_int_equal(parse("{\"event\": \"X\", \"timestamp\": \"now\"}", &m), 0);
    assert_int_equal(m.ts_seconds, -1);
    qmp_message_clear(&m);

    assert_int_equal(parse("{\"event\": 5}", &m), -EBADMSG);
    assert_int_equal(parse("{\"event\": \"BALLOON_CHANGE\", \"data\": [1]}", &m), -EBADMSG);
}

static void test_garbage(void **state)
{
    (void)state;
    struct qmp_message m;
    const char *bad[] = {
        "",
        "   ",
        "hello",
        "{",
        "{\"return\": }",
        "[1, 2, 3]",
        "42",
        "\"QMP\"",
        "null",
        "{\"return\": {}}{\"return\": {}}",                 /* two objects where one is expected */
        "{\"return\": {}, \"return\": {}}",                 /* duplicate keys */
        "{\"return\": 1, \"id\": 99999999999999999999999}", /* integer overflow */
        "\xff\xfe{}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&m, 0x5a, sizeof(m));
        assert_int_equal(parse(bad[i], &m), -EBADMSG);
        assert_int_equal(m.kind, 0x5a5a5a5a); /* untouched on failure */
    }
    /* an embedded NUL */
    char nul[] = "{\"return\": {}}";
    nul[3] = '\0';
    assert_int_equal(qmp_message_parse(nul, sizeof(nul) - 1, &m, NULL, 0), -EBADMSG);
    /* a well-formed object of no known kind is told apart: callers ignore it */
    assert_int_equal(parse("{\"hello\": \"world\"}", &m), -ENOMSG);
    assert_int_equal(parse("{}", &m), -ENOMSG);
    /* clearing a zeroed message is safe */
    memset(&m, 0, sizeof(m));
    qmp_message_clear(&m);
    qmp_message_clear(NULL);
}

static void test_balloon_actual(void **state)
{
    (void)state;
    struct {
        const char *json;
        int ret;
        int64_t actual;
    } cases[] = {
        {"{\"actual\": 1073741824}", 0, 1073741824},
        {"{\"actual\": 9223372036854775807}", 0, INT64_MAX},
        {"{\"actual\": 0}", -EBADMSG, 0},
        {"{\"actual\": -4096}", -EBADMSG, 0},
        {"{\"actual\": 1.5e9}", -EBADMSG, 0},
        {"{\"actual\": 1e300}", -EBADMSG, 0},
        {"{\"actual\": \"512M\"}", -EBADMSG, 0},
        {"{\"actual\": null}", -EBADMSG, 0},
        {"{\"size\": 1024}", -EBADMSG, 0},
        {"[1024]", -EBADMSG, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_error_t e;
        json_t *o = json_loads(cases[i].json, 0, &e);
        int64_t actual = -77;
        assert_non_null(o);
        assert_int_equal(qmp_parse_balloon_actual(o, &actual), cases[i].ret);
        assert_int_equal(actual, cases[i].ret == 0 ? cases[i].actual : -77);
        json_decref(o);
    }
    int64_t actual = -77;
    assert_int_equal(qmp_parse_balloon_actual(NULL, &actual), -EBADMSG);
}

static void test_next_line(void **state)
{
    (void)state;
    assert_int_equal(qmp_next_line("abc\r\ndef", 8), 4);
    assert_int_equal(qmp_next_line("\n", 1), 0);
    assert_int_equal(qmp_next_line("abc", 3), -1);
    assert_int_equal(qmp_next_line("abc\n", 3), -1); /* only the given length counts */
    assert_int_equal(qmp_next_line("", 0), -1);
}

/* The scan resumes where it stopped: bytes already searched are not searched again. The
 * proof: an LF planted in the searched part afterwards is not seen. */
static void test_scan_line_resumes(void **state)
{
    (void)state;
    struct qmp_line_scan sc = {0};
    char buf[32] = "aaaa";

    assert_int_equal(qmp_scan_line(&sc, buf, 4), -1);
    assert_int_equal(sc.scanned, 4);
    buf[1] = '\n'; /* never happens on the wire; shows the first 4 bytes are not read again */
    memcpy(buf + 4, "bb\ncc", 5);
    assert_int_equal(qmp_scan_line(&sc, buf, 9), 6);
    assert_int_equal(sc.scanned, 0); /* a line was found: the rest is a new search */
    assert_int_equal(qmp_scan_line(&sc, buf + 7, 2), -1);
    assert_int_equal(sc.scanned, 2);
    /* a byte at a time: each call looks at the new byte only */
    struct qmp_line_scan one = {0};
    const char *line = "{\"return\": {}}\r\n";
    size_t n = strlen(line);
    for (size_t i = 1; i < n; i++) {
        assert_int_equal(qmp_scan_line(&one, line, i), -1);
        assert_int_equal(one.scanned, i);
    }
    assert_int_equal(qmp_scan_line(&one, line, n), (long)n - 1);
    /* a scan position past a buffer that shrank (a reset) starts over */
    struct qmp_line_scan stale = {.scanned = 100};
    assert_int_equal(qmp_scan_line(&stale, "x\n", 2), 1);
}

static void test_build_command(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    json_t *args = json_pack("{sI}", "value", (json_int_t)268435456);

    assert_int_equal(qmp_build_command("balloon", args, 17, &buf, &len), 0);
    assert_int_equal(args->refcount, 1); /* not stolen, not shared */
    assert_int_equal(len, strlen(buf));
    assert_true(len > 2 && buf[len - 2] == '\r' && buf[len - 1] == '\n');
    assert_null(memchr(buf, '\n', len - 1)); /* one line */

    json_error_t e;
    json_t *o = json_loadb(buf, len, 0, &e);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "execute")), "balloon");
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 17);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "arguments"), "value")),
                     268435456);
    json_decref(o);
    free(buf);

    assert_int_equal(qmp_build_command("qmp_capabilities", NULL, 1, &buf, &len), 0);
    o = json_loadb(buf, len, 0, &e);
    assert_non_null(o);
    assert_null(json_object_get(o, "arguments"));
    json_decref(o);
    free(buf);

    /* the round trip through the parser: what we build is a message of no server kind */
    buf = (char *)0x1;
    json_t *arr = json_array();
    assert_int_equal(qmp_build_command("balloon", arr, 1, &buf, &len), -EINVAL);
    assert_int_equal(qmp_build_command("", NULL, 1, &buf, &len), -EINVAL);
    assert_int_equal(qmp_build_command(NULL, NULL, 1, &buf, &len), -EINVAL);
    assert_int_equal(qmp_build_command("x", NULL, UINT64_MAX, &buf, &len), -EINVAL);
    assert_ptr_equal(buf, (char *)0x1); /* untouched on failure */
    json_decref(arr);
    json_decref(args);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_greeting),
        cmocka_unit_test(test_return_with_id),
        cmocka_unit_test(test_error),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_balloon_actual),
        cmocka_unit_test(test_next_line),
        cmocka_unit_test(test_build_command),
        cmocka_unit_test(test_scan_line_resumes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
