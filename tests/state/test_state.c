/* Operator state: its text form (round trip, keys, refusals), the atomic file and the
 * store that writes it off the loop thread, and the state_dir key. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>
#include <cmocka.h>

#include "host-daemon/config/config.h"
#include "host-daemon/state/state.h"
#include "host-daemon/state/state_store.h"

#define MiB (UINT64_C(1) << 20)
#define UUID_A "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define UUID_B "0b5c7c1e-2f7a-4c61-9d0e-3a2b1c0d9e8f"

static struct state_guest paused(const char *name, const char *uuid)
{
    struct state_guest g = {.paused = true};
    snprintf(g.name, sizeof(g.name), "%s", name);
    snprintf(g.uuid, sizeof(g.uuid), "%s", uuid ? uuid : "");
    return g;
}

/* What is written reads back the same, every field, in order. */
static void round_trip(void **state)
{
    (void)state;
    struct state st, back;
    state_init(&st);
    struct state_guest a = paused("web1", NULL);
    struct state_guest b = {.has_limits = true,
                            .floor_bytes = 256 * MiB,
                            .ceiling_bytes = 1024 * MiB,
                            .weight = 300,
                            .added = true};
    strcpy(b.name, "db-2");
    strcpy(b.qmp_path, "/run/qemu/db-2.qmp");
    strcpy(b.channel_path, "/run/qemu/db-2.chan");
    struct state_guest c = paused("lv", UUID_A);
    c.has_limits = true;
    c.floor_bytes = 128 * MiB;
    c.ceiling_bytes = 512 * MiB;
    c.weight = 1;
    assert_int_equal(state_put(&st, &a), 0);
    assert_int_equal(state_put(&st, &b), 0);
    assert_int_equal(state_put(&st, &c), 0);

    char *text, err[200];
    size_t len;
    assert_int_equal(state_serialize(&st, &text, &len), 0);
    assert_int_equal(len, strlen(text));
    assert_int_equal(text[len - 1], '\n');
    assert_int_equal(state_parse(text, len, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 3);
    for (size_t i = 0; i < 3; i++)
        assert_memory_equal(&back.guests[i], &st.guests[i], sizeof(struct state_guest));
    /* one entry per line, so people can read it */
    size_t lines = 0;
    for (char *p = text; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 5); /* the head, three entries, the tail */
    free(text);
    state_free(&back);

    /* the empty state */
    state_free(&st);
    assert_int_equal(state_serialize(&st, &text, &len), 0);
    assert_string_equal(text, "{\"version\":2,\"guests\":[]}\n");
    assert_int_equal(state_parse(text, len, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 0);
    free(text);
    state_free(&back);
}

/* A libvirt guest is found by UUID whatever its name; a static one by name only. */
static void keys(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    struct state_guest lv = paused("alpha", UUID_A), fixed = paused("alpha", NULL);
    assert_int_equal(state_put(&st, &lv), 0);
    assert_int_equal(state_put(&st, &fixed), 0); /* same name, other key: two entries */
    assert_int_equal(st.n, 2);
    /* the domain's guest got its UUID as name this time: still found */
    assert_non_null(state_find(&st, UUID_A, UUID_A));
    assert_ptr_equal(state_find(&st, "anything", UUID_A), &st.guests[0]);
    assert_ptr_equal(state_find(&st, "alpha", NULL), &st.guests[1]);
    assert_ptr_equal(state_find(&st, "alpha", ""), &st.guests[1]);
    assert_null(state_find(&st, "alpha", UUID_B));
    assert_null(state_find(&st, "beta", NULL));
    /* putting an entry that says nothing removes it */
    lv.paused = false;
    assert_int_equal(state_put(&st, &lv), 0);
    assert_int_equal(st.n, 1);
    assert_null(state_find(&st, "alpha", UUID_A));
    state_remove(&st, "alpha", NULL);
    assert_int_equal(st.n, 0);
    state_remove(&st, "alpha", NULL); /* absent: nothing happens */
    state_free(&st);
}

#define LINE "bellows-policy-state=1 wall=1700000000000 reversals=7 hurt=2147483648@300000"

/* The policy part: written with the entry, read back the same; an entry holding only it
 * is an entry; one holding nothing at all is not. */
static void policy_round_trip(void **state)
{
    (void)state;
    struct state st, back;
    state_init(&st);
    struct state_guest a = paused("web1", NULL), b = {0};
    strcpy(a.policy, LINE);
    strcpy(b.name, "lv");
    strcpy(b.uuid, UUID_A);
    strcpy(b.policy, "bellows-policy-state=1 wall=5 reversals=0");
    assert_int_equal(state_put(&st, &a), 0);
    assert_int_equal(state_put(&st, &b), 0); /* only a policy line: kept */
    assert_int_equal(st.n, 2);

    char *text, err[200];
    size_t len;
    assert_int_equal(state_serialize(&st, &text, &len), 0);
    assert_non_null(strstr(text, "\"policy\":\"" LINE "\""));
    assert_int_equal(state_parse(text, len, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 2);
    for (size_t i = 0; i < 2; i++)
        assert_memory_equal(&back.guests[i], &st.guests[i], sizeof(struct state_guest));
    free(text);
    state_free(&back);

    /* neither operator nor policy state: removed */
    b.policy[0] = '\0';
    assert_int_equal(state_put(&st, &b), 0);
    assert_int_equal(st.n, 1);
    assert_null(state_find(&st, "lv", UUID_A));
    state_free(&st);
}

/* An entry holding nothing but a policy line (written at wall) for name. */
static struct state_guest policy_only(const char *name, const char *uuid, const char *line)
{
    struct state_guest g = {0};
    snprintf(g.name, sizeof(g.name), "%s", name);
    snprintf(g.uuid, sizeof(g.uuid), "%s", uuid ? uuid : "");
    snprintf(g.policy, sizeof(g.policy), "%s", line);
    return g;
}

static bool name_is_here(const struct state_guest *g, void *opaque)
{
    return strcmp(g->name, (const char *)opaque) == 0;
}

/* What guests gone for good left behind goes once old enough; nothing else does. */
static void prune_drops_old_policy_lines_of_absent_guests(void **state)
{
    (void)state;
    struct state st;
    state_init(&st);
    const char *old = "bellows-policy-state=1 wall=1000 reversals=3";
    const char *young = "bellows-policy-state=1 wall=9000 reversals=3";
    struct state_guest gone = policy_only("gone", UUID_A, old);
    struct state_guest here = policy_only("here", NULL, old);
    struct state_guest recent = policy_only("recent", UUID_B, young);
    struct state_guest held = paused("held", NULL);
    snprintf(held.policy, sizeof(held.policy), "%s", old);
    struct state_guest odd = policy_only("odd", NULL, "bellows-policy-state=1 reversals=3");
    struct state_guest gone2 = policy_only("gone2", NULL, old);
    const struct state_guest *all[] = {&gone, &here, &recent, &held, &odd, &gone2};
    for (size_t i = 0; i < 6; i++)
        assert_int_equal(state_put(&st, all[i]), 0);

    assert_int_equal(state_prune_policy(&st, 1000, name_is_here, "here"), 0); /* not before */
    assert_int_equal(st.n, 6);
    assert_int_equal(state_prune_policy(&st, 5000, name_is_here, "here"), 2);
    /* Kept, in their order: the present guest's, the recent line, the operator's pause (its
     * line too), a line without a wall clock (not ours to judge). */
    const char *want[] = {"here", "recent", "held", "odd"};
    assert_int_equal(st.n, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(st.guests[i].name, want[i]);
    assert_string_equal(st.guests[2].policy, old);
    assert_null(state_find(&st, "gone", UUID_A));
    state_free(&st);
}

/* A file of version 1 (before the policy part) reads as it did. */
static void old_file_without_policy(void **state)
{
    (void)state;
    const char *v1 = "{\"version\":1,\"guests\":[\n"
                     "{\"name\":\"web1\",\"paused\":true},\n"
                     "{\"name\":\"lv\",\"uuid\":\"" UUID_A "\",\"limits\":{\"floor\":268435456,"
                     "\"ceiling\":1073741824,\"weight\":300}}\n]}\n";
    struct state st;
    char err[200] = "";
    assert_int_equal(state_parse(v1, strlen(v1), &st, err, sizeof(err)), 0);
    assert_int_equal(st.n, 2);
    assert_true(st.guests[0].paused);
    assert_string_equal(st.guests[0].policy, "");
    assert_false(st.guests[0].policy_bad);
    assert_true(st.guests[1].has_limits);
    assert_int_equal(st.guests[1].weight, 300);
    assert_string_equal(st.guests[1].policy, "");
    /* written again, it is version 2 */
    char *text;
    size_t len;
    assert_int_equal(state_serialize(&st, &text, &len), 0);
    assert_true(strncmp(text, "{\"version\":2,", 13) == 0);
    free(text);
    state_free(&st);
}

/* A policy part the state cannot keep (not a string, a control character, too long) is
 * marked bad for that guest alone: the file, and that guest's operator part, still load. */
static void bad_policy_keeps_the_operator_part(void **state)
{
    (void)state;
    char longline[STATE_POLICY_MAX + 20];
    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    const char *bad[] = {"7", "{\"x\":1}", "\"\"", "\"a\\nb\"", "\"caf\\u00e9\"", NULL};
    char text[1024];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *policy = bad[i];
        char quoted[STATE_POLICY_MAX + 40];
        if (!policy) { /* the long one */
            snprintf(quoted, sizeof(quoted), "\"%s\"", longline);
            policy = quoted;
        }
        snprintf(text, sizeof(text),
                 "{\"version\":2,\"guests\":[{\"name\":\"web1\",\"paused\":true,\"policy\":%s},"
                 "{\"name\":\"ok\",\"policy\":\"" LINE "\"}]}",
                 policy);
        struct state st;
        char err[200] = "";
        if (state_parse(text, strlen(text), &st, err, sizeof(err)) != 0)
            fail_msg("policy %s: refused the file: %s", policy, err);
        assert_int_equal(st.n, 2);
        assert_true(st.guests[0].paused);
        assert_true(st.guests[0].policy_bad);
        assert_string_equal(st.guests[0].policy, "");
        assert_false(st.guests[1].policy_bad);
        assert_string_equal(st.guests[1].policy, LINE);
        /* the bad part is not written back */
        char *out;
        size_t len;
        assert_int_equal(state_serialize(&st, &out, &len), 0);
        assert_non_null(strstr(out, "{\"name\":\"web1\",\"paused\":true}"));
        free(out);
        state_free(&st);
    }
    /* an entry with nothing but a bad policy part is still listed, for the daemon to say
     * so; written back, it holds nothing and goes */
    snprintf(text, sizeof(text), "{\"version\":2,\"guests\":[{\"name\":\"x\",\"policy\":7}]}");
    struct state st, back;
    char err[200] = "";
    assert_int_equal(state_parse(text, strlen(text), &st, err, sizeof(err)), 0);
    assert_int_equal(st.n, 1);
    assert_true(st.guests[0].policy_bad);
    char *out;
    size_t len;
    assert_int_equal(state_serialize(&st, &out, &len), 0);
    assert_int_equal(state_parse(out, len, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 0);
    free(out);
    state_free(&back);
    state_free(&st);
}

/* Anything wrong refuses the whole text, with a reason; nothing half-read. */
static void refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text, *why;
    } cases[] = {
        {"", "not JSON"},
        {"[]", "not a JSON object"},
        {"{\"version\":3,\"guests\":[]}", "\"version\" is not 1 to 2"},
        {"{\"version\":0,\"guests\":[]}", "\"version\" is not 1 to 2"},
        /* version 1 had no policy part */
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"policy\":\"x\"}]}",
         "unknown key \"policy\""},
        {"{\"version\":1}", "\"guests\""},
        {"{\"version\":1,\"guests\":[],\"extra\":1}", "unknown key \"extra\""},
        {"{\"version\":1,\"version\":1,\"guests\":[]}", "not JSON"},
        {"{\"version\":1,\"guests\":[7]}", "guests[0]: not an object"},
        {"{\"version\":1,\"guests\":[{\"name\":\"-x\",\"paused\":true}]}", "no valid \"name\""},
        {"{\"version\":1,\"guests\":[{\"name\":\"a b\",\"paused\":true}]}", "no valid \"name\""},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"paused\":1}]}", "\"paused\""},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"uuid\":\"x\",\"paused\":true}]}",
         "\"uuid\" is not a UUID"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"limits\":{\"floor\":2,\"ceiling\":1,"
         "\"weight\":1}}]}",
         "floor above ceiling"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"limits\":{\"floor\":1,\"ceiling\":2,"
         "\"weight\":10001}}]}",
         "weight over 10000"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"limits\":{\"floor\":-1,\"ceiling\":2,"
         "\"weight\":1}}]}",
         "\"floor\" is not a size"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"limits\":{\"floor\":1,\"ceiling\":2}}]}",
         "\"weight\" is not a size"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"added\":{\"qmp\":\"/q\",\"channel\":"
         "\"/c\"}}]}",
         "needs its limits"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"limits\":{\"floor\":1,\"ceiling\":2,"
         "\"weight\":1},\"added\":{\"qmp\":\"q\",\"channel\":\"/c\"}}]}",
         "\"qmp\" is not an absolute path"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"paused\":true},{\"name\":\"a\","
         "\"paused\":true}]}",
         "listed twice"},
        {"{\"version\":1,\"guests\":[{\"name\":\"a\",\"paused\":true,\"colour\":\"red\"}]}",
         "unknown key \"colour\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct state st = {.n = 12345};
        char err[200] = "";
        int r = state_parse(cases[i].text, strlen(cases[i].text), &st, err, sizeof(err));
        if (r != -EINVAL || !strstr(err, cases[i].why))
            fail_msg("case %zu (%s): %d, \"%s\"; want \"%s\"", i, cases[i].text, r, err,
                     cases[i].why);
        assert_int_equal(st.n, 12345); /* untouched */
    }
}

static char tmpdir[256];

static int make_dir(void **state)
{
    (void)state;
    const char *tmp = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/bellows-state-XXXXXX", tmp && *tmp ? tmp : P_tmpdir);
    assert_non_null(mkdtemp(tmpdir));
    return 0;
}

static int remove_dir(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The file: a missing one is an empty state; written, it reads back; a write replaces it
 * whole and leaves no temporary file; a broken one is refused and can be set aside. */
static void file_load_and_write(void **state)
{
    (void)state;
    char dir[300], path[330], err[300];
    struct state st;
    snprintf(dir, sizeof(dir), "%s/var/lib/bellows", tmpdir);
    snprintf(path, sizeof(path), "%s/state.json", dir);

    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), -ENOENT); /* no parent */
    snprintf(dir, sizeof(dir), "%s/bellows", tmpdir);
    snprintf(path, sizeof(path), "%s/state.json", dir);
    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), 0); /* made, empty */
    assert_int_equal(st.n, 0);
    struct stat sb;
    assert_int_equal(stat(dir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);

    struct state_guest g = paused("web1", NULL);
    assert_int_equal(state_put(&st, &g), 0);
    char *text;
    size_t len;
    assert_int_equal(state_serialize(&st, &text, &len), 0);
    assert_int_equal(state_file_write(dir, text, len), 0);
    char *back = read_all(path);
    assert_string_equal(back, text);
    free(back);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0600);
    char tmp[340];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    assert_int_equal(access(tmp, F_OK), -1);
    state_free(&st);
    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n, 1);
    assert_true(state_find(&st, "web1", NULL)->paused);
    state_free(&st);

    /* a leftover temporary file of a write cut short is not read, and is overwritten */
    FILE *f = fopen(tmp, "w");
    fputs("{\"version\":1,\"gue", f);
    fclose(f);
    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n, 1);
    state_free(&st);
    assert_int_equal(state_file_write(dir, text, len), 0);
    free(text);

    /* broken: refused with the path and the reason; set aside, the next load is empty */
    f = fopen(path, "w");
    fputs("{\"version\":1,\"guests\":[{\"name\":\"x\",\"paused\":\"yes\"}]}", f);
    fclose(f);
    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "state.json"));
    assert_non_null(strstr(err, "\"paused\""));
    assert_int_equal(st.n, 0);
    assert_int_equal(state_file_set_aside(dir), 0);
    assert_int_equal(state_file_load(dir, &st, err, sizeof(err)), 0);
    assert_int_equal(st.n, 0);
    char bad[340];
    snprintf(bad, sizeof(bad), "%s.bad", path);
    assert_int_equal(access(bad, F_OK), 0);
}

struct store_fx {
    int done_calls;
    int last_err;
};

static void on_saved(struct state_store *s, int err, void *opaque)
{
    (void)s;
    struct store_fx *fx = opaque;
    fx->done_calls++;
    fx->last_err = err;
}

/* The store writes off the loop thread; saves made while a write is in flight are
 * coalesced into one more write of the latest state; close writes what is waiting. */
static void store_coalesces(void **state)
{
    (void)state;
    uv_loop_t loop;
    struct state_store *s;
    struct store_fx fx = {0};
    struct state st;
    char path[330], err[300];

    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(state_store_new(&loop, tmpdir, on_saved, &fx, &s), 0);
    state_init(&st);
    for (int i = 0; i < 10; i++) {
        char name[16];
        snprintf(name, sizeof(name), "g%d", i);
        struct state_guest g = paused(name, NULL);
        assert_int_equal(state_put(&st, &g), 0);
        assert_int_equal(state_store_save(s, &st), 0); /* never blocks */
    }
    assert_int_equal(fx.done_calls, 0); /* nothing is done inside save */
    while (fx.done_calls < 2)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(fx.last_err, 0);
    assert_int_equal(state_store_writes(s), 2); /* the first, then the latest of the rest */
    struct state back;
    assert_int_equal(state_file_load(tmpdir, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 10);
    state_free(&back);

    /* a save right before close is written before the store goes */
    state_remove(&st, "g0", NULL);
    assert_int_equal(state_store_save(s, &st), 0);
    state_store_close(s);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(state_file_load(tmpdir, &back, err, sizeof(err)), 0);
    assert_int_equal(back.n, 9);
    assert_null(state_find(&back, "g0", NULL));
    state_free(&back);
    state_free(&st);
    snprintf(path, sizeof(path), "%s/state.json", tmpdir);
    assert_int_equal(access(path, F_OK), 0);
}

/* [daemon] state_dir: /var/lib/bellows unless set; an absolute path. */
static void config_key(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    const char *text = "[daemon]\nstate_dir = /srv/bellows\n";
    config_init(&cfg);
    assert_string_equal(cfg.daemon.state_dir, "/var/lib/bellows");
    assert_int_equal(config_parse_buffer(text, strlen(text), &cfg, &errs), 0);
    assert_string_equal(cfg.daemon.state_dir, "/srv/bellows");
    config_free(&cfg);
    text = "[daemon]\nstate_dir = relative/dir\n";
    assert_int_equal(config_parse_buffer(text, strlen(text), &cfg, &errs), -EINVAL);
    assert_int_equal(errs.items[0].line, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(keys),
        cmocka_unit_test(refusals),
        cmocka_unit_test(policy_round_trip),
        cmocka_unit_test(old_file_without_policy),
        cmocka_unit_test(bad_policy_keeps_the_operator_part),
        cmocka_unit_test(prune_drops_old_policy_lines_of_absent_guests),
        cmocka_unit_test_setup_teardown(file_load_and_write, make_dir, remove_dir),
        cmocka_unit_test_setup_teardown(store_coalesces, make_dir, remove_dir),
        cmocka_unit_test(config_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
