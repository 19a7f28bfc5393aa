/* Names of protocol enums: the strings that go on the wire and into logs and metrics. */
#include "protocol/bellows_protocol.h"

#include <string.h>

static const char *const level_names[] = {
    [BP_LEVEL_NONE] = "none",
    [BP_LEVEL_LOW] = "low",
    [BP_LEVEL_MEDIUM] = "medium",
    [BP_LEVEL_CRITICAL] = "critical",
};

static const char *const source_names[] = {
    [BP_SOURCE_VMPRESSURE] = "vmpressure",
    [BP_SOURCE_PSI] = "psi",
};

static const char *const type_names[] = {
    [BP_MSG_HELLO] = "hello",
    [BP_MSG_WELCOME] = "welcome",
    [BP_MSG_PRESSURE] = "pressure",
    [BP_MSG_REPORT] = "report",
};

static const char *const error_names[] = {
    [BP_OK] = "ok",
    [BP_ERR_JSON] = "json",
    [BP_ERR_VERSION] = "version",
    [BP_ERR_TYPE] = "type",
    [BP_ERR_UNKNOWN_TYPE] = "unknown_type",
    [BP_ERR_FIELD] = "field",
    [BP_ERR_RANGE] = "range",
    [BP_ERR_NOMEM] = "nomem",
    [BP_ERR_SPACE] = "space",
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Index into a table of names; NULL when out of range or a hole. */
static const char *lookup(const char *const *names, size_t count, unsigned value)
{
    return value < count ? names[value] : NULL;
}

/* Reverse lookup; -1 when the name is not in the table. */
static int find(const char *const *names, size_t count, const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < count; i++)
        if (names[i] && strcmp(names[i], name) == 0)
            return (int)i;
    return -1;
}

const char *bp_error_name(enum bp_error err)
{
    const char *name = lookup(error_names, COUNT(error_names), (unsigned)err);
    return name ? name : "unknown";
}

const char *bp_level_name(enum bp_level level)
{
    return lookup(level_names, COUNT(level_names), (unsigned)level);
}

bool bp_level_parse(const char *name, enum bp_level *ret_level)
{
    int i = find(level_names, COUNT(level_names), name);
    if (i < 0)
        return false;
    *ret_level = (enum bp_level)i;
    return true;
}

const char *bp_source_name(enum bp_source source)
{
    return lookup(source_names, COUNT(source_names), (unsigned)source);
}

bool bp_source_parse(const char *name, enum bp_source *ret_source)
{
    int i = find(source_names, COUNT(source_names), name);
    if (i < 0)
        return false;
    *ret_source = (enum bp_source)i;
    return true;
}

const char *bp_msg_type_name(enum bp_msg_type type)
{
    return lookup(type_names, COUNT(type_names), (unsigned)type);
}

/* Parse an error name as bp_error_name() writes it; for tests and tools. */
bool bp_error_parse(const char *name, enum bp_error *ret_err)
{
    int i = find(error_names, COUNT(error_names), name);
    if (i < 0)
        return false;
    *ret_err = (enum bp_error)i;
    return true;
}

/* Parse a message type name. */
bool bp_msg_type_parse(const char *name, enum bp_msg_type *ret_type)
{
    int i = find(type_names, COUNT(type_names), name);
    if (i < 0)
        return false;
    *ret_type = (enum bp_msg_type)i;
    return true;
}
