/* libFuzzer target: arbitrary bytes as a QMP stream, split into lines and parsed the way
 * the client does it. Nothing may crash, leak or read out of bounds, and what parses must
 * be self-consistent. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/qmp/qmp_message.h"

static void check_message(const char *line, size_t len)
{
    struct qmp_message m;
    char err[160];
    int64_t actual;

    if (qmp_message_parse(line, len, &m, err, sizeof(err)) < 0)
        return;
    switch (m.kind) {
    case QMP_MESSAGE_GREETING:
        break;
    case QMP_MESSAGE_RETURN:
        if (!m.ret)
            abort();
        if (qmp_parse_balloon_actual(m.ret, &actual) == 0 && actual <= 0)
            abort();
        break;
    case QMP_MESSAGE_ERROR:
        if (!m.error_class || !m.error_desc)
            abort();
        (void)strlen(m.error_class);
        (void)strlen(m.error_desc);
        break;
    case QMP_MESSAGE_EVENT:
        if (!m.event)
            abort();
        if (qmp_parse_balloon_actual(m.data, &actual) == 0 && actual <= 0)
            abort();
        break;
    default:
        abort();
    }
    qmp_message_clear(&m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    struct qmp_line_scan scan = {0};
    long n;

    /* Half of the input first, then all of it: the scan resumes as the client's does when
     * a line arrives in two reads, and must find the same line end qmp_next_line finds. */
    if (qmp_scan_line(&scan, p, size / 2) >= 0)
        scan.scanned = 0;
    while ((n = qmp_scan_line(&scan, p, size)) >= 0) {
        if ((size_t)n >= size || n != qmp_next_line(p, size))
            abort();
        check_message(p, (size_t)n);
        p += n + 1;
        size -= (size_t)n + 1;
    }
    check_message(p, size); /* the unterminated rest, as if it were a whole message */
    return 0;
}
