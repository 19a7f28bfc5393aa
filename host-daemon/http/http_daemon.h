/* bellowsd's HTTP surface as a module of the daemon (docs/operations.md): /metrics for
 * Prometheus, the JSON API (/api/v1/...) with the control socket's views, the event stream
 * of pressure events, moves and one-second samples, and the dashboard at /, on
 * [daemon] http_listen (loopback by default; off disables it). Read-only. */
#ifndef BELLOWS_HTTP_DAEMON_H
#define BELLOWS_HTTP_DAEMON_H

struct daemon;

/* Attach the HTTP surface to d (before daemon_start). If it cannot listen, it says so and
 * the daemon goes on without it. 0 or -ENOMEM/-ENOSPC. */
int http_daemon_attach(struct daemon *d);

#endif
