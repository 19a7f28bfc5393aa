/* Golden data cases: every folder under tests/data/protocol/{valid,invalid} is one case
 * (layout and rules in tests/data/protocol/README.md). Each input goes through the framer
 * and the decoder, whole and in several chunkings, which must all agree. */
#include "protocol/bellows_protocol.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define DATA_DIR "tests/data/protocol"

/* Read a whole file; NULL when it does not exist. */
static char *read_file(const char *dir, const char *name, size_t *ret_len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (!f) {
        assert_int_equal(errno, ENOENT);
        return NULL;
    }
    size_t cap = 1024, len = 0;
    char *buf = malloc(cap + 1);
    assert_non_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
    }
    assert_false(ferror(f));
    fclose(f);
    buf[len] = '\0';
    *ret_len = len;
    return buf;
}

/* What came out of one input: a text summary plus the counts the invalid cases check. */
struct outcome {
    char text[16384];
    size_t used;
    unsigned decoded;          /* frames decoded without error */
    unsigned rejected;         /* frames the decoder refused */
    enum bp_error first_error; /* the first refusal */
    char first_detail[128];    /* ... and the decoder's reason for it */
    struct bp_framer framer;
};

static void append(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void append(struct outcome *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->text + o->used, sizeof(o->text) - o->used, fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(o->text) - o->used);
    o->used += (size_t)n;
}

/* One line per frame: the canonical encoding of what was decoded, or "error NAME". */
static void on_frame(const char *payload, size_t len, void *opaque)
{
    struct outcome *o = opaque;
    struct bp_msg msg;
    char detail[sizeof(o->first_detail)] = "";
    enum bp_error err = bp_decode(payload, len, &msg, detail, sizeof(detail));
    if (err != BP_OK) {
        if (o->rejected++ == 0) {
            o->first_error = err;
            memcpy(o->first_detail, detail, sizeof(detail));
        }
        append(o, "error %s\n", bp_error_name(err));
        return;
    }
    o->decoded++;
    char buf[BP_MAX_FRAME];
    size_t n = 0;
    assert_int_equal(bp_encode(&msg, buf, sizeof(buf), &n), BP_OK);
    append(o, "%.*s\n", (int)(n - 2), buf + 1);
}

static void run(const char *input, size_t len, size_t chunk, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    bp_framer_init(&o->framer);
    for (size_t off = 0; off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        bp_framer_feed(&o->framer, input + off, n, on_frame, o);
    }
    const struct bp_framer_stats *s = &o->framer.stats;
    append(o, "stats frames=%llu junk_bytes=%llu oversized=%llu truncated=%llu resyncs=%llu\n",
           (unsigned long long)s->frames, (unsigned long long)s->junk_bytes,
           (unsigned long long)s->oversized, (unsigned long long)s->truncated,
           (unsigned long long)s->resyncs);
}

/* A frame still open at the end of the input, with something in it. */
static bool incomplete(const struct bp_framer *f)
{
    return f->in_frame && !f->overflow && f->len > 0;
}

/* Run a case whole and in every chunking; all must give the same summary. */
static void run_all(const char *dir, const char *input, size_t len, struct outcome *o)
{
    static const size_t chunks[] = {1, 2, 7, 64, BP_MAX_FRAME - 1, BP_MAX_FRAME + 1};
    static struct outcome other;
    run(input, len, len ? len : 1, o);
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        run(input, len, chunks[i], &other);
        if (strcmp(o->text, other.text) != 0)
            fail_msg("%s: fed in chunks of %zu:\n%s\nwhole:\n%s", dir, chunks[i], other.text,
                     o->text);
    }
}

/* Case folder names under one kind, sorted; at least one. */
static size_t list_cases(const char *kind, char ***ret_names)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", DATA_DIR, kind);
    DIR *d = opendir(path);
    if (!d)
        fail_msg("cannot open %s (tests run from the source root)", path);
    char **names = NULL;
    size_t count = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        names = realloc(names, (count + 1) * sizeof(*names));
        assert_non_null(names);
        names[count] = strdup(e->d_name);
        assert_non_null(names[count]);
        count++;
    }
    closedir(d);
    assert_true(count > 0);
    for (size_t i = 1; i < count; i++) /* insertion sort: a few dozen names */
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    *ret_names = names;
    return count;
}

static void free_names(char **names, size_t count)
{
    for (size_t i = 0; i < count; i++)
        free(names[i]);
    free(names);
}

/* valid/<case>/input decodes to exactly valid/<case>/expected. */
static void test_valid_cases(void **state)
{
    (void)state;
    char **names;
    size_t count = list_cases("valid", &names);
    static struct outcome o;
    for (size_t i = 0; i < count; i++) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/valid/%s", DATA_DIR, names[i]);
        size_t len, expected_len;
        char *input = read_file(dir, "input", &len);
        char *expected = read_file(dir, "expected", &expected_len);
        if (!input || !expected)
            fail_msg("%s: needs input and expected", dir);
        run_all(dir, input, len, &o);
        if (strcmp(o.text, expected) != 0)
            fail_msg("%s: got\n%s\nwant\n%s", dir, o.text, expected);
        assert_true(o.decoded > 0);
        assert_int_equal(o.rejected, 0);
        free(input);
        free(expected);
    }
    print_message("%zu valid cases\n", count);
    free_names(names, count);
}

/* invalid/<case>/input is refused exactly once, for the reason named in error: a
 * bp_error_name(), or a framer outcome: oversized, truncated (cut by a new RS) or
 * incomplete (the input ends inside a frame). Nothing in it decodes. A refusal by the
 * decoder gives exactly the text of detail, so a case cannot pass for another reason of
 * the same class (a negative seq refused as "over the maximum", say). */
static void test_invalid_cases(void **state)
{
    (void)state;
    char **names;
    size_t count = list_cases("invalid", &names);
    static struct outcome o;
    for (size_t i = 0; i < count; i++) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/invalid/%s", DATA_DIR, names[i]);
        size_t len, error_len;
        char *input = read_file(dir, "input", &len);
        char *want = read_file(dir, "error", &error_len);
        if (!input || !want)
            fail_msg("%s: needs input and error", dir);
        want[strcspn(want, "\n")] = '\0';
        run_all(dir, input, len, &o);

        const struct bp_framer_stats *s = &o.framer.stats;
        unsigned long long rejections =
            o.rejected + s->oversized + s->truncated + (incomplete(&o.framer) ? 1 : 0);
        const char *got = o.rejected              ? bp_error_name(o.first_error)
                          : s->oversized          ? "oversized"
                          : s->truncated          ? "truncated"
                          : incomplete(&o.framer) ? "incomplete"
                                                  : "nothing";
        if (o.decoded != 0 || rejections != 1 || strcmp(got, want) != 0)
            fail_msg("%s: want one rejection, %s; got %s, %llu rejections, %u decoded:\n%s", dir,
                     want, got, rejections, o.decoded, o.text);
        size_t detail_len;
        char *detail = read_file(dir, "detail", &detail_len);
        if (o.rejected && !detail)
            fail_msg("%s: refused by the decoder (%s): needs a detail file with its reason, "
                     "here '%s'",
                     dir, got, o.first_detail);
        if (!o.rejected && detail)
            fail_msg("%s: the framer refuses it: a detail file has nothing to pin", dir);
        if (detail) {
            detail[strcspn(detail, "\n")] = '\0';
            if (strcmp(detail, o.first_detail) != 0)
                fail_msg("%s: detail '%s', want '%s'", dir, o.first_detail, detail);
        }
        free(detail);
        free(input);
        free(want);
    }
    print_message("%zu invalid cases\n", count);
    free_names(names, count);
}

/* Every name an error file may hold is known, so a typo cannot make a case pass. */
static void test_error_names_known(void **state)
{
    (void)state;
    char **names;
    size_t count = list_cases("invalid", &names);
    for (size_t i = 0; i < count; i++) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/invalid/%s", DATA_DIR, names[i]);
        size_t len;
        char *want = read_file(dir, "error", &len);
        assert_non_null(want);
        want[strcspn(want, "\n")] = '\0';
        enum bp_error err;
        bool known = (bp_error_parse(want, &err) && err != BP_OK) ||
                     strcmp(want, "oversized") == 0 || strcmp(want, "truncated") == 0 ||
                     strcmp(want, "incomplete") == 0;
        if (!known)
            fail_msg("%s: unknown error name '%s'", dir, want);
        free(want);
    }
    free_names(names, count);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_names_known),
        cmocka_unit_test(test_valid_cases),
        cmocka_unit_test(test_invalid_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
