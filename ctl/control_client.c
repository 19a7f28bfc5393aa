/* One request to bellowsd's control socket and its reply: a blocking exchange. */
#include "ctl/control_client.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_REPLY (64u << 20) /* a list of many thousand guests fits */

/* See control_client.h. */
char *control_exchange(const char *path, const char *request)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(addr.sun_path)) {
        errno = ENAMETOOLONG;
        return NULL;
    }
    strcpy(addr.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
        goto fail;
    size_t len = strlen(request);
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, request + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            goto fail;
        off += (size_t)n;
    }
    size_t cap = 65536, used = 0;
    char *buf = malloc(cap);
    if (!buf)
        goto fail;
    for (;;) {
        if (used + 1 >= cap) {
            if (cap >= MAX_REPLY) {
                free(buf);
                errno = EMSGSIZE;
                goto fail;
            }
            char *grown = realloc(buf, cap * 2);
            if (!grown) {
                free(buf);
                goto fail;
            }
            buf = grown;
            cap *= 2;
        }
        ssize_t n = read(fd, buf + used, cap - used - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            if (n == 0)
                errno = ECONNRESET;
            goto fail;
        }
        used += (size_t)n;
        char *nl = memchr(buf, '\n', used);
        if (nl) {
            *nl = '\0';
            close(fd);
            return buf;
        }
    }
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return NULL;
}
