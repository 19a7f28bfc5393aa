/* JSON views of the daemon's state: a guest, the host, a guest's decision ring, the list
 * of every guest. What the control socket answers with, and what an HTTP API can serve
 * as is. Pure: they read through the core's read-only view (daemon_view) and const guests,
 * change nothing, log nothing. The fields are documented in docs/control.md. */
#ifndef BELLOWS_VIEWS_H
#define BELLOWS_VIEWS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "host-daemon/core/daemon.h"

/* One guest (what `list` shows per guest); with_decisions adds "decisions", its ring,
 * newest first, and "sizing", the policy's reading of it (what `show` adds). New
 * reference; NULL only when out of memory. */
json_t *view_guest(const struct daemon_view *v, const struct guest *g, bool with_decisions);

/* One move of a ring: seq, time (ISO 8601 UTC), action, reason, from, to, result, error. */
json_t *view_decision(const struct decision_entry *e);

/* A guest's ring, newest first. */
json_t *view_decisions(const struct guest *g);

/* What the guests hold against the host budget: the sum of their balloons' sizes (the
 * memory each balloon leaves its guest), over the guests whose size is known. */
uint64_t view_held_bytes(const struct daemon_view *v);

/* The host's last reading and pressure state; JSON null before the first reading. */
json_t *view_host(const struct daemon_view *v);

/* {"dry_run": .., "host": .., "guests": [...]}: the whole daemon. */
json_t *view_list(const struct daemon_view *v);

#endif
