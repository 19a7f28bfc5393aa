/* QMP message classification, parsing and building (see qmp_message.h). */
#include "host-daemon/qmp/qmp_message.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(char *err, size_t err_len, int code, const char *fmt, ...)
{
    if (err && err_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, err_len, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* The optional event timestamp; malformed or absent gives -1, never an error,
 * because nothing we do depends on it. */
static void parse_timestamp(const json_t *root, int64_t *sec, int64_t *usec)
{
    const json_t *ts = json_object_get(root, "timestamp");
    const json_t *s = json_object_get(ts, "seconds");
    const json_t *us = json_object_get(ts, "microseconds");
    *sec = -1;
    *usec = -1;
    if (json_is_integer(s) && json_is_integer(us)) {
        *sec = json_integer_value(s);
        *usec = json_integer_value(us);
    }
}

int qmp_message_parse(const char *buf, size_t len, struct qmp_message *ret_msg, char *err,
                      size_t err_len)
{
    json_error_t jerr;
    struct qmp_message m = {0};
    const json_t *v;
    int r;

    if (!buf)
        return fail(err, err_len, -EBADMSG, "no message");
    /* Reject embedded NULs: jansson would do it too, but say why. */
    if (memchr(buf, '\0', len))
        return fail(err, err_len, -EBADMSG, "NUL byte in message");
    m.root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!m.root)
        return fail(err, err_len, -EBADMSG, "bad JSON at offset %d: %s", jerr.position, jerr.text);
    if (!json_is_object(m.root)) {
        r = fail(err, err_len, -EBADMSG, "message is not a JSON object");
        goto out_free;
    }

    v = json_object_get(m.root, "id");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        m.has_id = true;
        m.id = (uint64_t)json_integer_value(v);
    }

    if ((v = json_object_get(m.root, "QMP"))) {
        if (!json_is_object(v)) {
            r = fail(err, err_len, -EBADMSG, "greeting: \"QMP\" is not an object");
            goto out_free;
        }
        m.kind = QMP_MESSAGE_GREETING;
    } else if ((v = json_object_get(m.root, "return"))) {
        m.kind = QMP_MESSAGE_RETURN;
        m.ret = v;
    } else if ((v = json_object_get(m.root, "error"))) {
        const json_t *cls = json_object_get(v, "class");
        const json_t *desc = json_object_get(v, "desc");
        if (!json_is_object(v) || !json_is_string(cls)) {
            r = fail(err, err_len, -EBADMSG, "error reply without a string \"class\"");
            goto out_free;
        }
        if (desc && !json_is_string(desc)) {
            r = fail(err, err_len, -EBADMSG, "error reply: \"desc\" is not a string");
            goto out_free;
        }
        m.kind = QMP_MESSAGE_ERROR;
        m.error_class = json_string_value(cls);
        m.error_desc = desc ? json_string_value(desc) : "";
    } else if ((v = json_object_get(m.root, "event"))) {
        const json_t *data = json_object_get(m.root, "data");
        if (!json_is_string(v)) {
            r = fail(err, err_len, -EBADMSG, "event name is not a string");
            goto out_free;
        }
        if (data && !json_is_object(data)) {
            r = fail(err, err_len, -EBADMSG, "event \"data\" is not an object");
            goto out_free;
        }
        m.kind = QMP_MESSAGE_EVENT;
        m.event = json_string_value(v);
        m.data = data;
        parse_timestamp(m.root, &m.ts_seconds, &m.ts_microseconds);
    } else {
        r = fail(err, err_len, -ENOMSG, "message of unknown kind");
        goto out_free;
    }
    *ret_msg = m;
    return 0;

out_free:
    json_decref(m.root);
    return r;
}

void qmp_message_clear(struct qmp_message *msg)
{
    if (!msg)
        return;
    json_decref(msg->root);
    memset(msg, 0, sizeof(*msg));
}

int qmp_parse_balloon_actual(const json_t *obj, int64_t *ret_actual)
{
    const json_t *a = json_object_get(obj, "actual");
    if (!json_is_integer(a) || json_integer_value(a) <= 0)
        return -EBADMSG;
    *ret_actual = json_integer_value(a);
    return 0;
}

long qmp_next_line(const char *buf, size_t len)
{
    const char *nl = memchr(buf, '\n', len);
    return nl ? (long)(nl - buf) : -1;
}

/* See qmp_message.h. */
long qmp_scan_line(struct qmp_line_scan *s, const char *buf, size_t len)
{
    size_t from = s->scanned <= len ? s->scanned : 0;
    const char *nl = memchr(buf + from, '\n', len - from);
    if (!nl) {
        s->scanned = len;
        return -1;
    }
    s->scanned = 0;
    return (long)(nl - buf);
}

int qmp_build_command(const char *command, const json_t *args, uint64_t id, char **ret_buf,
                      size_t *ret_len)
{
    json_t *o;
    char *text, *out;
    size_t n;
    int r = -ENOMEM;

    if (!command || !*command || (args && !json_is_object(args)) || id > INT64_MAX)
        return -EINVAL;
    o = json_object();
    if (!o)
        return -ENOMEM;
    if (json_object_set_new(o, "execute", json_string(command)) < 0)
        goto out;
    /* json_deep_copy keeps the caller's args untouched and unshared. */
    if (args && json_object_set_new(o, "arguments", json_deep_copy(args)) < 0)
        goto out;
    if (json_object_set_new(o, "id", json_integer((json_int_t)id)) < 0)
        goto out;
    text = json_dumps(o, JSON_COMPACT);
    if (!text)
        goto out;
    n = strlen(text);
    out = realloc(text, n + 3);
    if (!out) {
        free(text);
        goto out;
    }
    memcpy(out + n, "\r\n", 3);
    *ret_buf = out;
    *ret_len = n + 2;
    r = 0;
out:
    json_decref(o);
    return r;
}
