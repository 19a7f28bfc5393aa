/* Stream framer: frames out of a byte stream cut anywhere, with junk, resync and limits. */
#include "protocol/bellows_protocol.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Every payload delivered, joined with '|' so a test compares one string. */
struct got {
    char text[1 << 17];
    size_t used;
    unsigned frames;
    size_t longest;
};

static void collect(const char *payload, size_t len, void *opaque)
{
    struct got *g = opaque;
    assert_true(len <= BP_MAX_PAYLOAD);
    assert_true(g->used + len + 1 < sizeof(g->text));
    memcpy(g->text + g->used, payload, len);
    g->used += len;
    g->text[g->used++] = '|';
    g->text[g->used] = '\0';
    g->frames++;
    if (len > g->longest)
        g->longest = len;
}

static struct bp_framer framer;
static struct got got;

static int setup(void **state)
{
    (void)state;
    bp_framer_init(&framer);
    memset(&got, 0, sizeof(got));
    return 0;
}

static void feed(const char *s)
{
    bp_framer_feed(&framer, s, strlen(s), collect, &got);
}

#define RS "\x1e"

static void test_one_frame(void **state)
{
    (void)state;
    feed(RS "{\"a\":1}\n");
    assert_string_equal(got.text, "{\"a\":1}|");
    assert_int_equal(framer.stats.frames, 1);
    assert_int_equal(framer.stats.junk_bytes, 0);
    assert_int_equal(framer.stats.resyncs, 0);
    assert_false(framer.in_frame);
}

static void test_two_frames_one_read(void **state)
{
    (void)state;
    feed(RS "one\n" RS "two\n");
    assert_string_equal(got.text, "one|two|");
    assert_int_equal(framer.stats.frames, 2);
}

static void test_split_byte_by_byte(void **state)
{
    (void)state;
    const char *s = RS "{\"a\":1}\n" RS "x\n";
    for (size_t i = 0; s[i]; i++) {
        bp_framer_feed(&framer, s + i, 1, collect, &got);
        /* nothing is delivered before its LF */
        assert_int_equal(got.frames, i < 8 ? 0u : i < 11 ? 1u : 2u);
    }
    assert_string_equal(got.text, "{\"a\":1}|x|");
}

static void test_empty_feed(void **state)
{
    (void)state;
    bp_framer_feed(&framer, "", 0, collect, &got);
    feed(RS "ab");
    bp_framer_feed(&framer, NULL, 0, collect, &got);
    feed("c\n");
    assert_string_equal(got.text, "abc|");
}

/* Junk is counted byte by byte, each run once as a resync, and never delivered. */
static void test_junk_counted(void **state)
{
    (void)state;
    feed("xyz\n" RS "a\n"
         "junk" RS "b\n");
    assert_string_equal(got.text, "a|b|");
    assert_int_equal(framer.stats.junk_bytes, 8);
    assert_int_equal(framer.stats.resyncs, 2);
}

/* A stream that starts mid-frame: the tail, its LF included, is junk. */
static void test_starts_mid_frame(void **state)
{
    (void)state;
    feed("\":1}\n" RS "{}\n");
    assert_string_equal(got.text, "{}|");
    assert_int_equal(framer.stats.junk_bytes, 5);
    assert_int_equal(framer.stats.resyncs, 1);
}

/* A new RS abandons a partial frame, so the frame after it is never lost. */
static void test_rs_abandons_partial(void **state)
{
    (void)state;
    feed(RS "{\"half\":" RS "hello\n");
    assert_string_equal(got.text, "hello|");
    assert_int_equal(framer.stats.truncated, 1);
    assert_int_equal(framer.stats.junk_bytes, 0);
}

/* RFC 7464: consecutive RS do not make empty elements. */
static void test_consecutive_rs(void **state)
{
    (void)state;
    feed(RS RS RS "a\n");
    assert_string_equal(got.text, "a|");
    assert_int_equal(framer.stats.truncated, 0);
}

/* RS LF is an empty payload: delivered, the decoder refuses it (counted there). */
static void test_empty_frame(void **state)
{
    (void)state;
    feed(RS "\n");
    assert_int_equal(got.frames, 1);
    assert_string_equal(got.text, "|");
}

/* Fill a frame of n payload bytes between RS and LF into buf; returns its length. */
static size_t make_frame(char *buf, size_t n)
{
    buf[0] = BP_RS;
    memset(buf + 1, 'p', n);
    buf[n + 1] = BP_LF;
    return n + 2;
}

static void test_largest_frame(void **state)
{
    (void)state;
    static char buf[BP_MAX_FRAME + 16];
    size_t len = make_frame(buf, BP_MAX_PAYLOAD);
    assert_int_equal(len, BP_MAX_FRAME);
    bp_framer_feed(&framer, buf, len, collect, &got);
    assert_int_equal(got.frames, 1);
    assert_int_equal(got.longest, BP_MAX_PAYLOAD);
    assert_int_equal(framer.stats.oversized, 0);
}

/* One byte over the limit: dropped up to its LF, counted once, the next frame is fine. */
static void test_oversized_dropped(void **state)
{
    (void)state;
    static char buf[2 * BP_MAX_FRAME];
    size_t len = make_frame(buf, BP_MAX_PAYLOAD + 1);
    bp_framer_feed(&framer, buf, len, collect, &got);
    assert_int_equal(got.frames, 0);
    assert_int_equal(framer.stats.oversized, 1);
    feed(RS "ok\n");
    assert_string_equal(got.text, "ok|");

    /* far over, fed in pieces, then cut by an RS rather than ended by an LF */
    bp_framer_feed(&framer, buf, len - 1, collect, &got);
    bp_framer_feed(&framer, buf + 1, len - 2, collect, &got);
    feed(RS "next\n");
    assert_string_equal(got.text, "ok|next|");
    assert_int_equal(framer.stats.oversized, 2);
    assert_int_equal(framer.stats.truncated, 0);
    assert_int_equal(framer.stats.junk_bytes, 0);
}

/* reset forgets a partial frame (counted as truncated); bytes before the next RS are junk. */
static void test_reset(void **state)
{
    (void)state;
    feed(RS "par");
    bp_framer_reset(&framer);
    feed("tial\n" RS "b\n");
    assert_string_equal(got.text, "b|");
    assert_int_equal(framer.stats.truncated, 1);
    assert_int_equal(framer.stats.junk_bytes, 5);
    assert_int_equal(framer.stats.frames, 1);

    /* a reset between frames loses and counts nothing */
    bp_framer_reset(&framer);
    feed(RS "c\n");
    assert_string_equal(got.text, "b|c|");
    assert_int_equal(framer.stats.truncated, 1);
}

/* NUL and other bytes inside a frame are passed through to the decoder untouched. */
static void test_binary_payload(void **state)
{
    (void)state;
    const char s[] = RS "a\0b\r\xff\n";
    bp_framer_feed(&framer, s, sizeof(s) - 1, collect, &got);
    assert_int_equal(got.frames, 1);
    assert_memory_equal(got.text, "a\0b\r\xff|", 6);
}

/* A long random stream of frames and junk gives the same frames however it is cut. */
static void test_random_cuts_agree(void **state)
{
    (void)state;
    static char stream[1 << 16];
    size_t len = 0;
    unsigned seed = 12345;
    while (len < sizeof(stream) - 2 * BP_MAX_FRAME) {
        seed = seed * 1103515245u + 12345u;
        unsigned kind = (seed >> 16) % 16;
        size_t n = (seed >> 4) % 200;
        if (kind <= 1) { /* junk */
            for (size_t i = 0; i < n; i++)
                stream[len++] = (char)('a' + i % 26);
        } else if (kind == 2) { /* oversized */
            len += make_frame(stream + len, BP_MAX_PAYLOAD + 1 + n);
        } else if (kind == 3) { /* cut short */
            stream[len++] = BP_RS;
            for (size_t i = 0; i <= n; i++)
                stream[len++] = 'c';
        } else {
            len += make_frame(stream + len, n);
        }
    }
    static struct got whole;
    struct bp_framer a;
    bp_framer_init(&a);
    bp_framer_feed(&a, stream, len, collect, &whole);
    assert_true(whole.frames > 100);
    assert_true(a.stats.oversized > 0 && a.stats.truncated > 0 && a.stats.junk_bytes > 0);

    for (size_t round = 0; round < 20; round++) {
        struct bp_framer b;
        static struct got cut;
        memset(&cut, 0, sizeof(cut));
        bp_framer_init(&b);
        for (size_t off = 0; off < len;) {
            seed = seed * 1103515245u + 12345u;
            size_t n = 1 + (seed >> 8) % (round < 10 ? 16 : 5000);
            if (n > len - off)
                n = len - off;
            bp_framer_feed(&b, stream + off, n, collect, &cut);
            off += n;
        }
        assert_int_equal(cut.frames, whole.frames);
        assert_memory_equal(cut.text, whole.text, whole.used);
        assert_memory_equal(&b.stats, &a.stats, sizeof(a.stats));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_one_frame, setup),
        cmocka_unit_test_setup(test_two_frames_one_read, setup),
        cmocka_unit_test_setup(test_split_byte_by_byte, setup),
        cmocka_unit_test_setup(test_empty_feed, setup),
        cmocka_unit_test_setup(test_junk_counted, setup),
        cmocka_unit_test_setup(test_starts_mid_frame, setup),
        cmocka_unit_test_setup(test_rs_abandons_partial, setup),
        cmocka_unit_test_setup(test_consecutive_rs, setup),
        cmocka_unit_test_setup(test_empty_frame, setup),
        cmocka_unit_test_setup(test_largest_frame, setup),
        cmocka_unit_test_setup(test_oversized_dropped, setup),
        cmocka_unit_test_setup(test_reset, setup),
        cmocka_unit_test_setup(test_binary_payload, setup),
        cmocka_unit_test_setup(test_random_cuts_agree, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
