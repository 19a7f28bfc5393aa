/* Decoder: one frame's JSON payload to a validated message struct. The input is untrusted
 * (it comes from a guest): every field is checked for presence, JSON type and range. */
#include "protocol/protocol_internal.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Where a failure's reason goes; detail may be NULL. */
struct why {
    char *detail;
    size_t cap;
};

static enum bp_error fail(struct why *why, enum bp_error err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum bp_error fail(struct why *why, enum bp_error err, const char *fmt, ...)
{
    if (why->detail && why->cap > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->detail, why->cap, fmt, ap);
        va_end(ap);
    }
    return err;
}

/* A required non-negative integer no larger than max. Reals are refused even when whole
 * ("1.0"): integers are written without a fraction by every encoder of this protocol. */
static enum bp_error get_uint(json_t *obj, const char *key, uint64_t max, uint64_t *ret,
                              struct why *why)
{
    json_t *value = json_object_get(obj, key);
    if (!value)
        return fail(why, BP_ERR_FIELD, "%s: missing", key);
    if (!json_is_integer(value))
        return fail(why, BP_ERR_FIELD, "%s: not an integer", key);
    json_int_t i = json_integer_value(value);
    if (i < 0)
        return fail(why, BP_ERR_RANGE, "%s: negative", key);
    if ((uint64_t)i > max)
        return fail(why, BP_ERR_RANGE, "%s: over %llu", key, (unsigned long long)max);
    *ret = (uint64_t)i;
    return BP_OK;
}

/* A required PSI average: any JSON number, 0..100. */
static enum bp_error get_avg(json_t *obj, const char *key, double *ret, struct why *why)
{
    json_t *value = json_object_get(obj, key);
    if (!value)
        return fail(why, BP_ERR_FIELD, "%s: missing", key);
    if (!json_is_number(value))
        return fail(why, BP_ERR_FIELD, "%s: not a number", key);
    double d = json_number_value(value);
    if (!bp__valid_avg(d))
        return fail(why, BP_ERR_RANGE, "%s: not within 0..100", key);
    *ret = d + 0.0; /* -0.0 becomes 0.0 */
    return BP_OK;
}

/* A required string; its value stays owned by obj. */
static enum bp_error get_string(json_t *obj, const char *key, json_t **ret, struct why *why)
{
    json_t *value = json_object_get(obj, key);
    if (!value)
        return fail(why, BP_ERR_FIELD, "%s: missing", key);
    if (!json_is_string(value))
        return fail(why, BP_ERR_FIELD, "%s: not a string", key);
    *ret = value;
    return BP_OK;
}

/* A required bounded printable-ASCII string copied into a char array of max + 1 bytes. */
static enum bp_error get_text(json_t *obj, const char *key, char *out, size_t max, struct why *why)
{
    json_t *value;
    enum bp_error err = get_string(obj, key, &value, why);
    if (err)
        return err;
    size_t len = json_string_length(value);
    if (!bp__valid_text(json_string_value(value), len, max))
        return fail(why, BP_ERR_RANGE, "%s: not 1..%zu printable ASCII characters", key, max);
    memcpy(out, json_string_value(value), len);
    out[len] = '\0';
    return BP_OK;
}

/* A required array of names: each known name sets its bit, unknown names are ignored
 * (a newer peer may know more), anything but a string is an error. */
static enum bp_error get_names(json_t *obj, const char *key, int (*index_of)(const char *),
                               uint32_t *ret, struct why *why)
{
    json_t *array = json_object_get(obj, key);
    if (!array)
        return fail(why, BP_ERR_FIELD, "%s: missing", key);
    if (!json_is_array(array))
        return fail(why, BP_ERR_FIELD, "%s: not an array", key);
    uint32_t bits = 0;
    size_t i;
    json_t *item;
    json_array_foreach (array, i, item) {
        if (!json_is_string(item))
            return fail(why, BP_ERR_FIELD, "%s[%zu]: not a string", key, i);
        int bit = index_of(json_string_value(item));
        if (bit >= 0)
            bits |= 1u << bit;
    }
    *ret = bits;
    return BP_OK;
}

static int source_index(const char *name)
{
    enum bp_source source;
    return bp_source_parse(name, &source) ? (int)source : -1;
}

static int cap_index(const char *name)
{
    for (int i = 0; i < BP_CAP_COUNT; i++)
        if (strcmp(bp__cap_names[i], name) == 0)
            return i;
    return -1;
}

/* Only the levels a pressure frame can carry; "none" and unknown names are ignored. */
static int wanted_level_index(const char *name)
{
    enum bp_level level;
    if (!bp_level_parse(name, &level) || !(BP_PRESSURE_LEVELS & (1u << level)))
        return -1;
    return (int)level;
}

static enum bp_error get_level(json_t *obj, bool allow_none, enum bp_level *ret, struct why *why)
{
    json_t *value;
    enum bp_error err = get_string(obj, "level", &value, why);
    if (err)
        return err;
    enum bp_level level;
    if (!bp_level_parse(json_string_value(value), &level) ||
        (level == BP_LEVEL_NONE && !allow_none))
        return fail(why, BP_ERR_RANGE, "level: not %s",
                    allow_none ? "none, low, medium or critical" : "low, medium or critical");
    *ret = level;
    return BP_OK;
}

static enum bp_error get_mem(json_t *obj, struct bp_mem *m, struct why *why)
{
    json_t *mem = json_object_get(obj, "mem");
    if (!mem)
        return fail(why, BP_ERR_FIELD, "mem: missing");
    if (!json_is_object(mem))
        return fail(why, BP_ERR_FIELD, "mem: not an object");

    const struct {
        const char *key;
        uint64_t *out;
    } ints[] = {
        {"mem_total_kb", &m->mem_total_kb},
        {"mem_free_kb", &m->mem_free_kb},
        {"mem_available_kb", &m->mem_available_kb},
        {"committed_as_kb", &m->committed_as_kb},
        {"swap_total_kb", &m->swap_total_kb},
        {"swap_free_kb", &m->swap_free_kb},
        {"pswpin", &m->pswpin},
        {"pswpout", &m->pswpout},
        {"pgmajfault", &m->pgmajfault},
        {"psi_some_total_us", &m->psi_some_total_us},
        {"psi_full_total_us", &m->psi_full_total_us},
    };
    enum bp_error err;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if ((err = get_uint(mem, ints[i].key, BP_MAX_INT, ints[i].out, why)))
            return err;
    if ((err = get_avg(mem, "psi_some_avg10", &m->psi_some_avg10, why)))
        return err;
    return get_avg(mem, "psi_full_avg10", &m->psi_full_avg10, why);
}

static enum bp_error decode_hello(json_t *obj, struct bp_hello *h, struct why *why)
{
    enum bp_error err;
    h->protocol_version = BP_PROTOCOL_VERSION;
    if ((err = get_text(obj, "agent", h->agent, BP_MAX_AGENT_LEN, why)) ||
        (err = get_text(obj, "boot_id", h->boot_id, BP_MAX_BOOT_ID_LEN, why)) ||
        (err = get_names(obj, "sources", source_index, &h->sources, why)))
        return err;
    return get_names(obj, "caps", cap_index, &h->caps, why);
}

static enum bp_error decode_welcome(json_t *obj, struct bp_welcome *w, struct why *why)
{
    uint64_t interval;
    enum bp_error err =
        get_uint(obj, "report_interval_ms", BP_MAX_REPORT_INTERVAL_MS, &interval, why);
    if (err)
        return err;
    if (interval != 0 && interval < BP_MIN_REPORT_INTERVAL_MS)
        return fail(why, BP_ERR_RANGE, "report_interval_ms: not 0 or %d..%d",
                    BP_MIN_REPORT_INTERVAL_MS, BP_MAX_REPORT_INTERVAL_MS);
    w->protocol_version = BP_PROTOCOL_VERSION;
    w->report_interval_ms = (uint32_t)interval;
    return get_names(obj, "levels", wanted_level_index, &w->levels, why);
}

static enum bp_error decode_pressure(json_t *obj, struct bp_pressure *p, struct why *why)
{
    enum bp_error err;
    if ((err = get_uint(obj, "seq", BP_MAX_INT, &p->seq, why)) ||
        (err = get_uint(obj, "mono_ns", BP_MAX_MONO_NS, &p->mono_ns, why)) ||
        (err = get_level(obj, false, &p->level, why)))
        return err;
    json_t *source;
    if ((err = get_string(obj, "source", &source, why)))
        return err;
    if (!bp_source_parse(json_string_value(source), &p->source))
        return fail(why, BP_ERR_RANGE, "source: not vmpressure or psi");
    return get_mem(obj, &p->mem, why);
}

static enum bp_error decode_report(json_t *obj, struct bp_report *r, struct why *why)
{
    enum bp_error err;
    if ((err = get_uint(obj, "seq", BP_MAX_INT, &r->seq, why)) ||
        (err = get_uint(obj, "mono_ns", BP_MAX_MONO_NS, &r->mono_ns, why)) ||
        (err = get_level(obj, true, &r->level, why)))
        return err;
    return get_mem(obj, &r->mem, why);
}

/* Version and type first: a frame of another major version is refused whatever it holds. */
static enum bp_error decode_object(json_t *obj, struct bp_msg *msg, struct why *why)
{
    json_t *v = json_object_get(obj, "v");
    if (!v)
        return fail(why, BP_ERR_VERSION, "v: missing");
    if (!json_is_integer(v) || json_integer_value(v) != BP_PROTOCOL_VERSION)
        return fail(why, BP_ERR_VERSION, "v: not %d", BP_PROTOCOL_VERSION);

    json_t *type = json_object_get(obj, "type");
    if (!type)
        return fail(why, BP_ERR_TYPE, "type: missing");
    if (!json_is_string(type))
        return fail(why, BP_ERR_TYPE, "type: not a string");
    if (!bp_msg_type_parse(json_string_value(type), &msg->type))
        return fail(why, BP_ERR_UNKNOWN_TYPE, "type: unknown to version %d", BP_PROTOCOL_VERSION);

    switch (msg->type) {
    case BP_MSG_HELLO:
        return decode_hello(obj, &msg->u.hello, why);
    case BP_MSG_WELCOME:
        return decode_welcome(obj, &msg->u.welcome, why);
    case BP_MSG_PRESSURE:
        return decode_pressure(obj, &msg->u.pressure, why);
    case BP_MSG_REPORT:
        return decode_report(obj, &msg->u.report, why);
    }
    return fail(why, BP_ERR_UNKNOWN_TYPE, "type: unknown");
}

enum bp_error bp_decode(const char *payload, size_t len, struct bp_msg *ret_msg, char *detail,
                        size_t detail_cap)
{
    struct why why = {detail, detail_cap};
    if (detail && detail_cap > 0)
        detail[0] = '\0';
    if (len > BP_MAX_PAYLOAD)
        return fail(&why, BP_ERR_RANGE, "payload of %zu bytes, over %d", len, BP_MAX_PAYLOAD);

    /* No JSON_ALLOW_NUL: "\u0000" is refused, and so is a raw NUL byte. No
     * JSON_DISABLE_EOF_CHECK: anything but whitespace after the object is refused. */
    json_error_t jerr;
    json_t *root = json_loadb(payload, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        if (json_error_code(&jerr) == json_error_out_of_memory)
            return fail(&why, BP_ERR_NOMEM, "out of memory");
        return fail(&why, BP_ERR_JSON, "%s (byte %d)", jerr.text, jerr.position);
    }

    enum bp_error err;
    struct bp_msg msg;
    memset(&msg, 0, sizeof(msg));
    if (!json_is_object(root))
        err = fail(&why, BP_ERR_JSON, "json: not an object");
    else
        err = decode_object(root, &msg, &why);
    json_decref(root);
    if (err == BP_OK)
        *ret_msg = msg;
    return err;
}
