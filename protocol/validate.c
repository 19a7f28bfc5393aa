/* Field ranges of protocol v1, one place for the encoder and the decoder. */
#include "protocol/protocol_internal.h"

#include <math.h>
#include <string.h>

const char *const bp__cap_names[BP_CAP_COUNT] = {"report", "settings"};

bool bp__valid_text(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

bool bp__valid_avg(double avg)
{
    return isfinite(avg) && avg >= 0.0 && avg <= 100.0;
}

/* A NUL-terminated string held in a char array of max + 1 bytes. */
static bool valid_array_text(const char *s, size_t max)
{
    return bp__valid_text(s, strnlen(s, max + 1), max);
}

static const char *invalid_mem(const struct bp_mem *m)
{
    const struct {
        const char *name;
        uint64_t value;
    } ints[] = {
        {"mem_total_kb", m->mem_total_kb},
        {"mem_free_kb", m->mem_free_kb},
        {"mem_available_kb", m->mem_available_kb},
        {"committed_as_kb", m->committed_as_kb},
        {"swap_total_kb", m->swap_total_kb},
        {"swap_free_kb", m->swap_free_kb},
        {"pswpin", m->pswpin},
        {"pswpout", m->pswpout},
        {"pgmajfault", m->pgmajfault},
        {"psi_some_total_us", m->psi_some_total_us},
        {"psi_full_total_us", m->psi_full_total_us},
    };
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        if (ints[i].value > BP_MAX_INT)
            return ints[i].name;
    if (!bp__valid_avg(m->psi_some_avg10))
        return "psi_some_avg10";
    if (!bp__valid_avg(m->psi_full_avg10))
        return "psi_full_avg10";
    return NULL;
}

const char *bp__invalid_field(const struct bp_msg *msg)
{
    switch (msg->type) {
    case BP_MSG_HELLO: {
        const struct bp_hello *h = &msg->u.hello;
        if (!valid_array_text(h->agent, BP_MAX_AGENT_LEN))
            return "agent";
        if (!valid_array_text(h->boot_id, BP_MAX_BOOT_ID_LEN))
            return "boot_id";
        if (h->sources >> BP_SOURCE_COUNT)
            return "sources";
        if (h->caps >> BP_CAP_COUNT)
            return "caps";
        return NULL;
    }
    case BP_MSG_WELCOME: {
        const struct bp_welcome *w = &msg->u.welcome;
        if (w->report_interval_ms != 0 && (w->report_interval_ms < BP_MIN_REPORT_INTERVAL_MS ||
                                           w->report_interval_ms > BP_MAX_REPORT_INTERVAL_MS))
            return "report_interval_ms";
        if (w->levels & ~BP_PRESSURE_LEVELS)
            return "levels";
        return NULL;
    }
    case BP_MSG_PRESSURE: {
        const struct bp_pressure *p = &msg->u.pressure;
        if (p->seq > BP_MAX_INT)
            return "seq";
        if (p->mono_ns > BP_MAX_MONO_NS)
            return "mono_ns";
        if ((unsigned)p->level > BP_LEVEL_CRITICAL || !(BP_PRESSURE_LEVELS & (1u << p->level)))
            return "level";
        if ((unsigned)p->source >= BP_SOURCE_COUNT)
            return "source";
        return invalid_mem(&p->mem);
    }
    case BP_MSG_REPORT: {
        const struct bp_report *r = &msg->u.report;
        if (r->seq > BP_MAX_INT)
            return "seq";
        if (r->mono_ns > BP_MAX_MONO_NS)
            return "mono_ns";
        if ((unsigned)r->level > BP_LEVEL_CRITICAL)
            return "level";
        return invalid_mem(&r->mem);
    }
    }
    return "type";
}
