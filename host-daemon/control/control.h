/* The control socket: a unix socket (mode 0600, owner only) speaking the JSON-lines
 * protocol of control_proto.h, one request at a time per connection, for bellowsctl and
 * scripts. Documented in docs/control.md. */
#ifndef BELLOWS_CONTROL_H
#define BELLOWS_CONTROL_H

struct daemon;
struct control_server;

/* Listen on path (a stale socket left by a dead daemon is replaced; a live one is an
 * error, -EADDRINUSE). At most max_clients connections at once. Returns 0 or -errno. */
int control_server_start(struct daemon *d, const char *path, unsigned max_clients,
                         struct control_server **ret_server);

/* Close the listener and every connection, and unlink the socket. */
void control_server_close(struct control_server *s);

#endif
