/* One blocking control request (control_client.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/harness/control_client.h"

json_t *control_call(const char *socket_path, const char *request)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(write(fd, request, strlen(request)), (ssize_t)strlen(request));
    assert_int_equal(write(fd, "\n", 1), 1);
    static char buf[1 << 20]; /* a `list` of many guests */
    size_t used = 0;
    while (!memchr(buf, '\n', used)) {
        ssize_t n = read(fd, buf + used, sizeof(buf) - used - 1);
        assert_true(n > 0);
        used += (size_t)n;
    }
    close(fd);
    json_t *reply = json_loadb(buf, used, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(reply);
    return reply;
}
