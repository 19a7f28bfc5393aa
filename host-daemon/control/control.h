/* The control socket: a unix socket (mode 0600, owner only, peers checked with
 * SO_PEERCRED) speaking the JSON-lines protocol of control_proto.h, one request at a time
 * per connection, at most max_clients connections, for bellowsctl and scripts. It knows
 * nothing of the daemon: requests are answered through control_ops. docs/control.md. */
#ifndef BELLOWS_CONTROL_H
#define BELLOWS_CONTROL_H

#include <uv.h>

#include "host-daemon/control/control_proto.h"

struct control_server;

/* Listen on path (a stale socket left by a dead daemon is replaced; a live one is an
 * error, -EADDRINUSE). At most max_clients connections at once; requests go to ops with
 * ops_ctx. Returns 0 or -errno. */
int control_server_start(uv_loop_t *loop, const char *path, unsigned max_clients,
                         const struct control_ops *ops, void *ops_ctx,
                         struct control_server **ret_server);

/* Close the listener and every connection, and unlink the socket. */
void control_server_close(struct control_server *s);

#endif
