/* The client side of bellowsd's control socket (docs/control.md): connect, send one JSON
 * line, read one back. Blocking: bellowsctl is a short-lived client with no event loop. */
#ifndef BELLOWS_CONTROL_CLIENT_H
#define BELLOWS_CONTROL_CLIENT_H

/* Send request (one line, newline included) to the socket at path and read one line back.
 * Returns the reply without its newline (malloc'ed), or NULL with errno set. */
char *control_exchange(const char *path, const char *request);

#endif
