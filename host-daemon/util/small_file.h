/* Reading a small file whole (a /proc or cgroup file) into a caller's buffer. */
#ifndef BELLOWS_SMALL_FILE_H
#define BELLOWS_SMALL_FILE_H

#include <stddef.h>
#include <sys/types.h>

/* Read the file at path into buf (not NUL-terminated). Returns its length, -EFBIG when
 * it fills all cap bytes (it may be cut: the caller's buffer is too small for it), or
 * another negative errno. */
ssize_t small_file_read(const char *path, char *buf, size_t cap);

#endif
