/* A small file read whole: see small_file.h. */
#include "host-daemon/util/small_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

/* See small_file.h. */
ssize_t small_file_read(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len < cap) {
        ssize_t n = read(fd, buf + len, cap - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int err = -errno;
            close(fd);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    return len == cap ? -EFBIG : (ssize_t)len;
}
