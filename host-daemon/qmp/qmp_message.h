/* QMP messages as data: classify and parse what QEMU sends, build what we send.
 * Pure: buffers in, structs out, no I/O. Used by the libuv client in qmp.c and by tests
 * and fuzzers directly. */
#ifndef BELLOWS_QMP_MESSAGE_H
#define BELLOWS_QMP_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum qmp_message_kind {
    QMP_MESSAGE_GREETING, /* {"QMP": {"version": ..., "capabilities": [...]}} */
    QMP_MESSAGE_RETURN,   /* {"return": ..., "id": ...} */
    QMP_MESSAGE_ERROR,    /* {"error": {"class": ..., "desc": ...}, "id": ...} */
    QMP_MESSAGE_EVENT,    /* {"event": ..., "data": {...}, "timestamp": {...}} */
};

/* One parsed server message. Pointers borrow from `root`, which the message owns. */
struct qmp_message {
    enum qmp_message_kind kind;
    json_t *root;
    bool has_id; /* RETURN/ERROR: "id" is a non-negative integer (ours) */
    uint64_t id;
    const json_t *ret;       /* RETURN */
    const char *error_class; /* ERROR */
    const char *error_desc;  /* ERROR: "" if QEMU sent none */
    const char *event;       /* EVENT: its name */
    const json_t *data;      /* EVENT: the "data" object, or NULL */
    int64_t ts_seconds;      /* EVENT: timestamp, -1 if absent or malformed */
    int64_t ts_microseconds;
};

/* Parse one QMP message from `buf` (exactly one JSON object; surrounding whitespace and
 * a trailing CR/LF are fine). On success fills *ret_msg (free with qmp_message_clear).
 * Returns -EBADMSG for anything that is not one well-formed JSON object or whose known
 * keys have the wrong types, -ENOMSG for a well-formed object of no known kind (callers
 * ignore those), -ENOMEM. On error *ret_msg is untouched and, if `err` is not NULL, a
 * short reason is written there. Unknown keys are ignored. */
int qmp_message_parse(const char *buf, size_t len, struct qmp_message *ret_msg, char *err,
                      size_t err_len);

/* Release what qmp_message_parse() filled in; safe on a zeroed message. */
void qmp_message_clear(struct qmp_message *msg);

/* Read a balloon size from a query-balloon "return" or a BALLOON_CHANGE "data" object:
 * {"actual": <integer bytes > 0>}. Returns 0 or -EBADMSG. */
int qmp_parse_balloon_actual(const json_t *obj, int64_t *ret_actual);

/* Find the end of the next message in a receive buffer: QMP messages end with LF
 * (QEMU sends CRLF). Returns the length of the line without its LF (a trailing CR is
 * left for the JSON parser to skip as whitespace), or -1 if no LF is in `len` bytes. */
long qmp_next_line(const char *buf, size_t len);

/* Incremental search for line ends in a receive buffer that grows at its end: the bytes
 * already searched are not searched again, so a line dribbled in byte by byte costs time
 * in proportion to its length, not its length squared. */
struct qmp_line_scan {
    size_t scanned; /* bytes at the start of the buffer known to hold no LF */
};

/* Like qmp_next_line, but starts after s->scanned. When no LF is found, s->scanned
 * becomes `len`; when one is, s->scanned becomes 0 (the caller consumes the line and
 * passes the rest, which starts a new search). A buffer moved to a new address keeps its
 * scan as long as its bytes are the same. */
long qmp_scan_line(struct qmp_line_scan *s, const char *buf, size_t len);

/* Build `{"execute": command, "arguments": args, "id": id}` followed by CRLF, as a
 * malloc'd buffer. `args` may be NULL (no "arguments") and is not stolen.
 * Returns 0, -EINVAL or -ENOMEM. */
int qmp_build_command(const char *command, const json_t *args, uint64_t id, char **ret_buf,
                      size_t *ret_len);

#endif
