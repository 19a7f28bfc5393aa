/* Encoder and decoder: round trips, field checks, and every allocation failing in turn. */
#include "protocol/bellows_protocol.h"
#include "tests/protocol/samples.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* Encode msg, check the frame's shape, decode its payload, and return the decoded copy. */
static struct bp_msg round_trip(const struct bp_msg *msg)
{
    char buf[BP_MAX_FRAME];
    size_t len = 0;
    assert_int_equal(bp_encode(msg, buf, sizeof(buf), &len), BP_OK);
    assert_true(len >= 2 && len <= BP_MAX_FRAME);
    assert_int_equal(buf[0], BP_RS);
    assert_int_equal(buf[len - 1], BP_LF);
    assert_null(memchr(buf + 1, BP_LF, len - 2)); /* the only LF ends the frame */

    struct bp_msg out;
    memset(&out, 0xa5, sizeof(out));
    char detail[128];
    enum bp_error err = bp_decode(buf + 1, len - 2, &out, detail, sizeof(detail));
    if (err != BP_OK)
        fail_msg("decode: %s (%s) of %.*s", bp_error_name(err), detail, (int)len - 2, buf + 1);
    assert_int_equal(out.type, msg->type);
    return out;
}

static void assert_mem_equal(const struct bp_mem *a, const struct bp_mem *b)
{
    assert_int_equal(a->mem_total_kb, b->mem_total_kb);
    assert_int_equal(a->mem_free_kb, b->mem_free_kb);
    assert_int_equal(a->mem_available_kb, b->mem_available_kb);
    assert_int_equal(a->committed_as_kb, b->committed_as_kb);
    assert_int_equal(a->swap_total_kb, b->swap_total_kb);
    assert_int_equal(a->swap_free_kb, b->swap_free_kb);
    assert_int_equal(a->pswpin, b->pswpin);
    assert_int_equal(a->pswpout, b->pswpout);
    assert_int_equal(a->pgmajfault, b->pgmajfault);
    assert_true(a->psi_some_avg10 == b->psi_some_avg10);
    assert_true(a->psi_full_avg10 == b->psi_full_avg10);
    assert_int_equal(a->psi_some_total_us, b->psi_some_total_us);
    assert_int_equal(a->psi_full_total_us, b->psi_full_total_us);
}

static void test_hello_round_trip(void **state)
{
    (void)state;
    struct bp_msg in = sample_hello();
    struct bp_msg out = round_trip(&in);
    assert_int_equal(out.u.hello.protocol_version, BP_PROTOCOL_VERSION);
    assert_string_equal(out.u.hello.agent, in.u.hello.agent);
    assert_string_equal(out.u.hello.boot_id, in.u.hello.boot_id);
    assert_int_equal(out.u.hello.sources, in.u.hello.sources);
    assert_int_equal(out.u.hello.caps, in.u.hello.caps);

    /* no sources, no caps, one-character strings, longest strings */
    in.u.hello.sources = 1u << BP_SOURCE_PSI;
    in.u.hello.caps = 0;
    memset(in.u.hello.agent, '~', BP_MAX_AGENT_LEN);
    in.u.hello.agent[BP_MAX_AGENT_LEN] = '\0';
    strcpy(in.u.hello.boot_id, " ");
    out = round_trip(&in);
    assert_string_equal(out.u.hello.agent, in.u.hello.agent);
    assert_string_equal(out.u.hello.boot_id, " ");
    assert_int_equal(out.u.hello.sources, 1u << BP_SOURCE_PSI);
    assert_int_equal(out.u.hello.caps, 0);
}

static void test_welcome_round_trip(void **state)
{
    (void)state;
    struct bp_msg in = sample_welcome();
    struct bp_msg out = round_trip(&in);
    assert_int_equal(out.u.welcome.protocol_version, BP_PROTOCOL_VERSION);
    assert_int_equal(out.u.welcome.report_interval_ms, 5000);
    assert_int_equal(out.u.welcome.levels, in.u.welcome.levels);

    in.u.welcome.report_interval_ms = 0;
    in.u.welcome.levels = 0;
    out = round_trip(&in);
    assert_int_equal(out.u.welcome.report_interval_ms, 0);
    assert_int_equal(out.u.welcome.levels, 0);

    in.u.welcome.report_interval_ms = BP_MAX_REPORT_INTERVAL_MS;
    in.u.welcome.levels =
        (1u << BP_LEVEL_LOW) | (1u << BP_LEVEL_MEDIUM) | (1u << BP_LEVEL_CRITICAL);
    out = round_trip(&in);
    assert_int_equal(out.u.welcome.report_interval_ms, BP_MAX_REPORT_INTERVAL_MS);
    assert_int_equal(out.u.welcome.levels, in.u.welcome.levels);
}

static void test_pressure_round_trip(void **state)
{
    (void)state;
    struct bp_msg in = sample_pressure();
    struct bp_msg out = round_trip(&in);
    assert_int_equal(out.u.pressure.seq, 7);
    assert_int_equal(out.u.pressure.mono_ns, 3500000000ull);
    assert_int_equal(out.u.pressure.level, BP_LEVEL_CRITICAL);
    assert_int_equal(out.u.pressure.source, BP_SOURCE_PSI);
    assert_mem_equal(&out.u.pressure.mem, &in.u.pressure.mem);

    /* extremes of every range */
    in.u.pressure.seq = BP_MAX_INT;
    in.u.pressure.mono_ns = BP_MAX_MONO_NS;
    in.u.pressure.level = BP_LEVEL_LOW;
    in.u.pressure.source = BP_SOURCE_VMPRESSURE;
    in.u.pressure.mem.mem_total_kb = BP_MAX_INT;
    in.u.pressure.mem.psi_some_avg10 = 100.0;
    in.u.pressure.mem.psi_full_avg10 = 0.0;
    in.u.pressure.mem.pswpin = 0;
    out = round_trip(&in);
    assert_int_equal(out.u.pressure.seq, BP_MAX_INT);
    assert_int_equal(out.u.pressure.mono_ns, BP_MAX_MONO_NS);
    assert_int_equal(out.u.pressure.level, BP_LEVEL_LOW);
    assert_int_equal(out.u.pressure.source, BP_SOURCE_VMPRESSURE);
    assert_mem_equal(&out.u.pressure.mem, &in.u.pressure.mem);
}

static void test_report_round_trip(void **state)
{
    (void)state;
    for (int level = BP_LEVEL_NONE; level <= BP_LEVEL_CRITICAL; level++) {
        struct bp_msg in = sample_report();
        in.u.report.level = (enum bp_level)level;
        struct bp_msg out = round_trip(&in);
        assert_int_equal(out.u.report.seq, 8);
        assert_int_equal(out.u.report.mono_ns, 4500000001ull);
        assert_int_equal(out.u.report.level, level);
        assert_mem_equal(&out.u.report.mem, &in.u.report.mem);
    }
}

/* Every PSI average with two decimals, as the kernel prints them, survives exactly. */
static void test_psi_averages_exact(void **state)
{
    (void)state;
    struct bp_msg in = sample_report();
    for (int hundredths = 0; hundredths <= 10000; hundredths++) {
        in.u.report.mem.psi_some_avg10 = hundredths / 100.0;
        struct bp_msg out = round_trip(&in);
        assert_true(out.u.report.mem.psi_some_avg10 == in.u.report.mem.psi_some_avg10);
    }
}

static enum bp_error decode_str(const char *json, struct bp_msg *out)
{
    return bp_decode(json, strlen(json), out, NULL, 0);
}

#define MEM_OK                                                                                     \
    "\"mem\":{\"mem_total_kb\":1,\"mem_free_kb\":1,\"mem_available_kb\":1,"                        \
    "\"committed_as_kb\":1,\"swap_total_kb\":0,\"swap_free_kb\":0,\"pswpin\":0,\"pswpout\":0,"     \
    "\"pgmajfault\":0,\"psi_some_avg10\":0,\"psi_full_avg10\":0.0,\"psi_some_total_us\":0,"        \
    "\"psi_full_total_us\":0}"

/* Decoder checks in the order it makes them; the golden data cases cover the rest. */
static void test_decode_checks(void **state)
{
    (void)state;
    static const struct {
        const char *json;
        enum bp_error err;
    } cases[] = {
        {"{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\"," MEM_OK "}",
         BP_OK},
        {"{\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\"," MEM_OK "}",
         BP_ERR_VERSION},
        {"{\"v\":\"1\",\"type\":\"report\"}", BP_ERR_VERSION},
        {"{\"v\":1.0,\"type\":\"report\"}", BP_ERR_VERSION},
        {"{\"v\":2,\"type\":\"report\"}", BP_ERR_VERSION},
        {"{\"v\":1}", BP_ERR_TYPE},
        {"{\"v\":1,\"type\":3}", BP_ERR_TYPE},
        {"{\"v\":1,\"type\":\"goodbye\"}", BP_ERR_UNKNOWN_TYPE},
        {"{\"v\":1,\"type\":\"Hello\"}", BP_ERR_UNKNOWN_TYPE},
        {"{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\"}", BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\",\"mem\":[]}",
         BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"report\",\"seq\":true,\"mono_ns\":2,\"level\":\"none\"," MEM_OK "}",
         BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":-1,\"level\":\"none\"," MEM_OK "}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"report\",\"seq\":9007199254740993,\"mono_ns\":2,\"level\":"
         "\"none\"," MEM_OK "}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"report\",\"seq\":9007199254740992,\"mono_ns\":9223372036854775807,"
         "\"level\":\"none\"," MEM_OK "}",
         BP_OK},
        {"{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"severe\"," MEM_OK "}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"pressure\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\",\"source\":"
         "\"psi\"," MEM_OK "}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"pressure\",\"seq\":1,\"mono_ns\":2,\"level\":\"low\",\"source\":"
         "\"psi\"," MEM_OK "}",
         BP_OK},
        {"{\"v\":1,\"type\":\"pressure\",\"seq\":1,\"mono_ns\":2,\"level\":\"low\",\"source\":"
         "\"oomd\"," MEM_OK "}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"pressure\",\"seq\":1,\"mono_ns\":2,\"level\":\"low\"," MEM_OK "}",
         BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":0,\"levels\":[\"none\",\"extreme\"]"
         "}",
         BP_OK},
        {"{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":0,\"levels\":[1]}", BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":3600001,\"levels\":[]}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":0,\"levels\":\"low\"}",
         BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"boot_id\":\"b\",\"sources\":[],\"caps\":[]"
         "}",
         BP_OK},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"\",\"boot_id\":\"b\",\"sources\":[],\"caps\":[]}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"boot_id\":\"b\\u00e9\",\"sources\":[],"
         "\"caps\":[]}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"a\\t\",\"boot_id\":\"b\",\"sources\":[],\"caps\":"
         "[]}",
         BP_ERR_RANGE},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"boot_id\":\"b\",\"sources\":[],\"caps\":{}"
         "}",
         BP_ERR_FIELD},
        {"{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"agent\":\"b\"}", BP_ERR_JSON},
        {"[1]", BP_ERR_JSON},
        {"1", BP_ERR_JSON},
        {"", BP_ERR_JSON},
        {"{} {}", BP_ERR_JSON},
        {"{}", BP_ERR_VERSION},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bp_msg out;
        enum bp_error err = decode_str(cases[i].json, &out);
        if (err != cases[i].err)
            fail_msg("%s: got %s, want %s", cases[i].json, bp_error_name(err),
                     bp_error_name(cases[i].err));
    }
}

/* A payload longer than a frame can hold is refused before parsing, even when valid JSON. */
static void test_decode_oversized_payload(void **state)
{
    (void)state;
    static char payload[BP_MAX_PAYLOAD + 2];
    const char *head =
        "{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":0,\"levels\":[],\"pad\":\"";
    size_t n = strlen(head);
    memcpy(payload, head, n);
    memset(payload + n, 'p', sizeof(payload) - n - 2);
    memcpy(payload + sizeof(payload) - 2, "\"}", 2);
    struct bp_msg out;
    assert_int_equal(bp_decode(payload, BP_MAX_PAYLOAD + 2, &out, NULL, 0), BP_ERR_RANGE);
    /* one byte over the limit is refused too, exactly the limit is accepted */
    memmove(payload + sizeof(payload) - 3, "\"}", 2);
    assert_int_equal(bp_decode(payload, BP_MAX_PAYLOAD + 1, &out, NULL, 0), BP_ERR_RANGE);
    memmove(payload + sizeof(payload) - 4, "\"}", 2);
    assert_int_equal(bp_decode(payload, BP_MAX_PAYLOAD, &out, NULL, 0), BP_OK);
    assert_int_equal(out.type, BP_MSG_WELCOME);
}

/* The decoder leaves its output untouched on failure and fills the detail. */
static void test_decode_failure_leaves_output(void **state)
{
    (void)state;
    struct bp_msg out, before;
    memset(&out, 0x5a, sizeof(out));
    before = out;
    char detail[64];
    const char *json = "{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":999,\"levels\":[]}";
    assert_int_equal(bp_decode(json, strlen(json), &out, detail, sizeof(detail)), BP_ERR_RANGE);
    assert_memory_equal(&out, &before, sizeof(out));
    assert_non_null(strstr(detail, "report_interval_ms"));

    /* a tiny detail buffer is truncated, not overrun */
    char tiny[4] = "xyz";
    assert_int_equal(bp_decode(json, strlen(json), &out, tiny, 1), BP_ERR_RANGE);
    assert_int_equal(tiny[0], '\0');
    assert_int_equal(tiny[1], 'y');
}

static void test_encode_rejects_out_of_range(void **state)
{
    (void)state;
    char buf[BP_MAX_FRAME];
    size_t len = 0;
    struct bp_msg m;

    m = sample_hello();
    m.u.hello.agent[0] = '\0';
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_hello();
    m.u.hello.boot_id[3] = '\n';
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_hello();
    memset(m.u.hello.boot_id, 'a', sizeof(m.u.hello.boot_id)); /* no NUL within the limit */
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_hello();
    m.u.hello.sources = 1u << BP_SOURCE_COUNT;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_hello();
    m.u.hello.caps = 1u << 2;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);

    m = sample_welcome();
    m.u.welcome.report_interval_ms = BP_MIN_REPORT_INTERVAL_MS - 1;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_welcome();
    m.u.welcome.report_interval_ms = BP_MAX_REPORT_INTERVAL_MS + 1;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_welcome();
    m.u.welcome.levels = 1u << BP_LEVEL_NONE;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);

    m = sample_pressure();
    m.u.pressure.level = BP_LEVEL_NONE;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_pressure();
    m.u.pressure.source = (enum bp_source)BP_SOURCE_COUNT;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_pressure();
    m.u.pressure.seq = BP_MAX_INT + 1;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_pressure();
    m.u.pressure.mono_ns = BP_MAX_MONO_NS + 1;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_pressure();
    m.u.pressure.mem.swap_free_kb = BP_MAX_INT + 1;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.u.report.mem.psi_full_avg10 = 100.01;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.u.report.mem.psi_some_avg10 = -0.01;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.u.report.mem.psi_some_avg10 = __builtin_nan("");
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.u.report.mem.psi_some_avg10 = __builtin_inf();
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.u.report.level = (enum bp_level)4;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
    m = sample_report();
    m.type = (enum bp_msg_type)0;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_ERR_RANGE);
}

/* A buffer one byte short gives BP_ERR_SPACE; the exact size works. */
static void test_encode_space(void **state)
{
    (void)state;
    struct bp_msg m = sample_pressure();
    char buf[BP_MAX_FRAME];
    size_t len = 0;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_OK);
    size_t need = len;
    char *exact = malloc(need); /* on the heap so ASan sees any overrun */
    assert_non_null(exact);
    assert_int_equal(bp_encode(&m, exact, need, &len), BP_OK);
    assert_int_equal(len, need);
    assert_memory_equal(exact, buf, need);
    free(exact);
    for (size_t cap = 0; cap < need; cap++) {
        char *small = malloc(cap ? cap : 1);
        assert_non_null(small);
        assert_int_equal(bp_encode(&m, small, cap, &len), BP_ERR_SPACE);
        free(small);
    }
}

/* The canonical wire form: field names and order are part of the contract (docs/protocol.md). */
static void test_encode_exact_bytes(void **state)
{
    (void)state;
    char buf[BP_MAX_FRAME];
    size_t len = 0;
    struct bp_msg m = sample_welcome();
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_OK);
    const char *want = "\x1e{\"v\":1,\"type\":\"welcome\",\"report_interval_ms\":5000,"
                       "\"levels\":[\"medium\",\"critical\"]}\n";
    assert_int_equal(len, strlen(want));
    assert_memory_equal(buf, want, len);
}

/* The longest message of each type, every field at its widest, fits a frame with room
 * to spare: BP_ERR_SPACE from BP_MAX_FRAME is impossible for valid messages. */
static void test_largest_messages_fit(void **state)
{
    (void)state;
    char buf[BP_MAX_FRAME];
    size_t len = 0;
    struct bp_msg m = sample_hello();
    memset(m.u.hello.agent, 'a', BP_MAX_AGENT_LEN);
    m.u.hello.agent[BP_MAX_AGENT_LEN] = '\0';
    memset(m.u.hello.boot_id, '"', BP_MAX_BOOT_ID_LEN); /* escaped: two bytes each */
    m.u.hello.boot_id[BP_MAX_BOOT_ID_LEN] = '\0';
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_OK);
    assert_true(len < 512);

    m = sample_pressure();
    m.u.pressure.seq = BP_MAX_INT;
    m.u.pressure.mono_ns = BP_MAX_MONO_NS;
    m.u.pressure.level = BP_LEVEL_CRITICAL;
    m.u.pressure.source = BP_SOURCE_VMPRESSURE;
    uint64_t *ints[] = {&m.u.pressure.mem.mem_total_kb,     &m.u.pressure.mem.mem_free_kb,
                        &m.u.pressure.mem.mem_available_kb, &m.u.pressure.mem.committed_as_kb,
                        &m.u.pressure.mem.swap_total_kb,    &m.u.pressure.mem.swap_free_kb,
                        &m.u.pressure.mem.pswpin,           &m.u.pressure.mem.pswpout,
                        &m.u.pressure.mem.pgmajfault,       &m.u.pressure.mem.psi_some_total_us,
                        &m.u.pressure.mem.psi_full_total_us};
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        *ints[i] = BP_MAX_INT;
    m.u.pressure.mem.psi_some_avg10 = 0.000123456789; /* the longest %.6g form */
    m.u.pressure.mem.psi_full_avg10 = 99.9999999;
    assert_int_equal(bp_encode(&m, buf, sizeof(buf), &len), BP_OK);
    assert_true(len < 1024);
    print_message("largest pressure frame: %zu bytes\n", len);
}

/* Allocation failure injection: fail the Nth allocation, count the rest. */
static size_t alloc_count, alloc_fail_at;

static void *counting_malloc(size_t size)
{
    if (++alloc_count == alloc_fail_at)
        return NULL;
    return malloc(size);
}

static void fail_nth_allocation(size_t n)
{
    alloc_count = 0;
    alloc_fail_at = n;
}

static int install_alloc_funcs(void **state)
{
    (void)state;
    json_set_alloc_funcs(counting_malloc, free);
    fail_nth_allocation(0);
    return 0;
}

static int restore_alloc_funcs(void **state)
{
    (void)state;
    json_set_alloc_funcs(malloc, free);
    return 0;
}

/* For every message type, fail allocation 1, 2, ... until a run allocates without failing:
 * each failing run returns an error (never a partial success), and the leak checker of the
 * sanitizer build sees that nothing is left allocated. */
static void test_encode_decode_allocation_failures(void **state)
{
    (void)state;
    struct bp_msg msgs[] = {sample_hello(), sample_welcome(), sample_pressure(), sample_report()};
    for (size_t k = 0; k < sizeof(msgs) / sizeof(msgs[0]); k++) {
        char buf[BP_MAX_FRAME];
        size_t len = 0;
        size_t failures = 0;
        for (size_t n = 1;; n++) {
            fail_nth_allocation(n);
            enum bp_error err = bp_encode(&msgs[k], buf, sizeof(buf), &len);
            if (alloc_count < n) { /* the Nth allocation never happened: a clean run */
                assert_int_equal(err, BP_OK);
                break;
            }
            assert_int_equal(err, BP_ERR_NOMEM);
            failures++;
            assert_true(n < 10000);
        }
        assert_true(failures > 0);

        fail_nth_allocation(0);
        assert_int_equal(bp_encode(&msgs[k], buf, sizeof(buf), &len), BP_OK);
        failures = 0;
        for (size_t n = 1;; n++) {
            struct bp_msg out;
            memset(&out, 0x33, sizeof(out));
            struct bp_msg before = out;
            fail_nth_allocation(n);
            enum bp_error err = bp_decode(buf + 1, len - 2, &out, NULL, 0);
            if (alloc_count < n) {
                assert_int_equal(err, BP_OK);
                assert_int_equal(out.type, msgs[k].type);
                break;
            }
            /* jansson 2.14's lexer ignores a failed growth of its token buffer and drops a
             * byte, so a run can succeed with one allocation failed (a key then goes missing
             * or a value is one byte short); jansson also reports most allocation failures
             * as syntax errors. What must hold: no crash, no leak, and on error the output
             * untouched. */
            if (err == BP_OK) {
                assert_int_equal(out.type, msgs[k].type);
                continue;
            }
            assert_memory_equal(&out, &before, sizeof(out));
            failures++;
            assert_true(n < 10000);
        }
        assert_true(failures > 0);
    }
    fail_nth_allocation(0);
}

/* The same for refused frames: the error paths free what the parse built, allocation
 * failures or not, and a refused frame stays refused. */
static void test_refused_frames_allocation_failures(void **state)
{
    (void)state;
    static const char *const payloads[] = {
        "{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":2,\"level\":\"none\"," MEM_OK
        ",\"x\":[1,{\"y\":2}] x}",
        "{\"v\":1,\"type\":\"report\",\"seq\":1,\"mono_ns\":-2,\"level\":\"none\"," MEM_OK "}",
        "{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"boot_id\":\"b\",\"sources\":[\"psi\",7],"
        "\"caps\":[]}",
        "{\"v\":2,\"type\":\"hello\",\"extra\":{\"deep\":[[[\"long string value here\"]]]}}",
        "{\"v\":1,\"type\":\"hello\",\"agent\":\"a\",\"agent\":\"a\"}",
    };
    for (size_t k = 0; k < sizeof(payloads) / sizeof(payloads[0]); k++) {
        for (size_t n = 1;; n++) {
            struct bp_msg out;
            memset(&out, 0x77, sizeof(out));
            struct bp_msg before = out;
            char detail[64];
            fail_nth_allocation(n);
            enum bp_error err =
                bp_decode(payloads[k], strlen(payloads[k]), &out, detail, sizeof(detail));
            assert_int_not_equal(err, BP_OK);
            assert_memory_equal(&out, &before, sizeof(out));
            if (alloc_count < n)
                break;
            assert_true(n < 10000);
        }
    }
    fail_nth_allocation(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_welcome_round_trip),
        cmocka_unit_test(test_pressure_round_trip),
        cmocka_unit_test(test_report_round_trip),
        cmocka_unit_test(test_psi_averages_exact),
        cmocka_unit_test(test_decode_checks),
        cmocka_unit_test(test_decode_failure_leaves_output),
        cmocka_unit_test(test_decode_oversized_payload),
        cmocka_unit_test(test_encode_rejects_out_of_range),
        cmocka_unit_test(test_encode_space),
        cmocka_unit_test(test_encode_exact_bytes),
        cmocka_unit_test(test_largest_messages_fit),
        cmocka_unit_test_setup_teardown(test_encode_decode_allocation_failures, install_alloc_funcs,
                                        restore_alloc_funcs),
        cmocka_unit_test_setup_teardown(test_refused_frames_allocation_failures,
                                        install_alloc_funcs, restore_alloc_funcs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
