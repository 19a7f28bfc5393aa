/* Encoder: a message struct to one complete frame (RS, compact JSON, LF). */
#include "protocol/protocol_internal.h"

#include <jansson.h>
#include <string.h>

/* Compact, fields in the order written, PSI averages with 6 significant digits (the kernel
 * prints two decimals, so 0.00..100.00 survive exactly). */
#define DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6))

/* An array of the names whose bit is set in bits; NULL on allocation failure. */
static json_t *names_array(uint32_t bits, const char *(*name_of)(unsigned), unsigned count)
{
    json_t *array = json_array();
    if (!array)
        return NULL;
    for (unsigned i = 0; i < count; i++) {
        if (!(bits & (1u << i)))
            continue;
        if (json_array_append_new(array, json_string(name_of(i))) < 0) {
            json_decref(array);
            return NULL;
        }
    }
    return array;
}

static const char *source_of(unsigned i)
{
    return bp_source_name((enum bp_source)i);
}

static const char *cap_of(unsigned i)
{
    return bp__cap_names[i];
}

static const char *level_of(unsigned i)
{
    return bp_level_name((enum bp_level)i);
}

static json_t *mem_object(const struct bp_mem *m)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I}",
                     "mem_total_kb", (json_int_t)m->mem_total_kb, "mem_free_kb",
                     (json_int_t)m->mem_free_kb, "mem_available_kb",
                     (json_int_t)m->mem_available_kb, "committed_as_kb",
                     (json_int_t)m->committed_as_kb, "swap_total_kb", (json_int_t)m->swap_total_kb,
                     "swap_free_kb", (json_int_t)m->swap_free_kb, "pswpin", (json_int_t)m->pswpin,
                     "pswpout", (json_int_t)m->pswpout, "pgmajfault", (json_int_t)m->pgmajfault,
                     /* -0.0 would print as "-0.0", which reads as a negative */
                     "psi_some_avg10", m->psi_some_avg10 + 0.0, "psi_full_avg10",
                     m->psi_full_avg10 + 0.0, "psi_some_total_us", (json_int_t)m->psi_some_total_us,
                     "psi_full_total_us", (json_int_t)m->psi_full_total_us);
}

/* The JSON object of a valid message; NULL on allocation failure. json_pack() releases
 * the "o" arguments even when it fails, so nothing leaks on any path. */
static json_t *msg_object(const struct bp_msg *msg)
{
    const char *type = bp_msg_type_name(msg->type);

    switch (msg->type) {
    case BP_MSG_HELLO: {
        const struct bp_hello *h = &msg->u.hello;
        return json_pack("{s:i, s:s, s:s, s:s, s:o, s:o}", "v", BP_PROTOCOL_VERSION, "type", type,
                         "agent", h->agent, "boot_id", h->boot_id, "sources",
                         names_array(h->sources, source_of, BP_SOURCE_COUNT), "caps",
                         names_array(h->caps, cap_of, BP_CAP_COUNT));
    }
    case BP_MSG_WELCOME: {
        const struct bp_welcome *w = &msg->u.welcome;
        return json_pack("{s:i, s:s, s:I, s:o}", "v", BP_PROTOCOL_VERSION, "type", type,
                         "report_interval_ms", (json_int_t)w->report_interval_ms, "levels",
                         names_array(w->levels, level_of, BP_LEVEL_CRITICAL + 1));
    }
    case BP_MSG_PRESSURE: {
        const struct bp_pressure *p = &msg->u.pressure;
        return json_pack("{s:i, s:s, s:I, s:I, s:s, s:s, s:o}", "v", BP_PROTOCOL_VERSION, "type",
                         type, "seq", (json_int_t)p->seq, "mono_ns", (json_int_t)p->mono_ns,
                         "level", bp_level_name(p->level), "source", bp_source_name(p->source),
                         "mem", mem_object(&p->mem));
    }
    case BP_MSG_REPORT: {
        const struct bp_report *r = &msg->u.report;
        return json_pack("{s:i, s:s, s:I, s:I, s:s, s:o}", "v", BP_PROTOCOL_VERSION, "type", type,
                         "seq", (json_int_t)r->seq, "mono_ns", (json_int_t)r->mono_ns, "level",
                         bp_level_name(r->level), "mem", mem_object(&r->mem));
    }
    }
    return NULL;
}

enum bp_error bp_encode(const struct bp_msg *msg, char *buf, size_t cap, size_t *ret_len)
{
    if (bp__invalid_field(msg))
        return BP_ERR_RANGE;

    json_t *obj = msg_object(msg);
    if (!obj)
        return BP_ERR_NOMEM;

    /* json_dumpb() writes at most its size argument and returns the full length. */
    size_t room = cap >= 2 ? cap - 2 : 0;
    size_t n = json_dumpb(obj, room ? buf + 1 : NULL, room, DUMP_FLAGS);
    json_decref(obj);
    if (n == 0)
        return BP_ERR_NOMEM;
    if (n > BP_MAX_PAYLOAD)
        return BP_ERR_RANGE; /* cannot happen within the field limits; kept as a guard */
    if (n > room)
        return BP_ERR_SPACE;

    buf[0] = BP_RS;
    buf[n + 1] = BP_LF;
    *ret_len = n + 2;
    return BP_OK;
}
