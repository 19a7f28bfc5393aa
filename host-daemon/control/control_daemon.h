/* The control socket as a module of the daemon: its ops are the daemon's change functions
 * (each logs what it changes) and its replies the views (views/views.h). */
#ifndef BELLOWS_CONTROL_DAEMON_H
#define BELLOWS_CONTROL_DAEMON_H

struct daemon;

/* Attach the control socket to d (before daemon_start): it listens before any guest link
 * opens, on the configured control_socket with control_max_clients. 0 or -ENOMEM/-ENOSPC. */
int control_daemon_attach(struct daemon *d);

#endif
