/* What operators said at run time, as data: which guests are paused, which limits were
 * set with `set`, which guests were added with `add`; and what each guest's policy learnt
 * that a restart should not forget (policy_state_format's line). bellowsd keeps it in a file under
 * its state directory (state_store.h) so that a restart, a crash or a domain's restart
 * does not forget it. Pure: text in, structs out and back; no I/O.
 *
 * Entries are keyed by guest name, and for guests of libvirt domains by UUID: a domain's
 * guest is found by its UUID first, whatever name it had (the name can fall back to the
 * UUID when another guest has the domain's name). The text is JSON (docs/control.md):
 *   {"version":1,"guests":[{"name":"web1","paused":true,
 *     "limits":{"floor":268435456,"ceiling":1073741824,"weight":100},
 *     "added":{"qmp":"/run/q.sock","channel":"/run/c.sock"},
 *     "policy":"bellows-policy-state=1 wall=.. reversals=.."}, {"name":..,"uuid":..}]}
 * Version 2 added "policy"; a version 1 file (without it) is read as before.
 */
#ifndef BELLOWS_STATE_H
#define BELLOWS_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/config/config.h"
#include "host-daemon/policy/policy.h"

#define STATE_VERSION 2 /* written; 1 (no "policy") is still read */
#define STATE_VERSION_MIN 1
#define STATE_UUID_LEN 36
#define STATE_MAX_GUESTS CONFIG_MAX_GUESTS
#define STATE_MAX_TEXT (64u << 20) /* a longer state text is refused */
#define STATE_POLICY_MAX POLICY_STATE_MAX

/* One guest's operator and policy state. A guest with nothing to remember has no entry. */
struct state_guest {
    char name[CONFIG_NAME_MAX + 1];
    char uuid[STATE_UUID_LEN + 1]; /* libvirt guests: the domain's UUID; else "" */
    bool paused;                   /* `pause`: the policy holds its balloon */
    bool has_limits;               /* `set` (or `add`): floor, ceiling and weight below */
    uint64_t floor_bytes, ceiling_bytes;
    uint32_t weight;
    bool added; /* `add`: a run-time guest with these sockets (and the limits above) */
    char qmp_path[CONFIG_PATH_MAX];
    char channel_path[CONFIG_PATH_MAX];
    /* The policy's line (policy_state_format), "" when none. Kept as text: the policy
     * reads it (policy_state_parse) when the guest comes back, and refuses what it does
     * not know. A "policy" in the file that is not a string of printable characters
     * shorter than STATE_POLICY_MAX does not refuse the file (the operator's part matters
     * more): policy_bad is set instead, for the daemon to say so, and it is not written
     * again. */
    char policy[STATE_POLICY_MAX];
    bool policy_bad;
};

struct state {
    struct state_guest *guests;
    size_t n, cap;
};

/* An empty state. */
void state_init(struct state *st);

/* Free what the state holds; it is empty afterwards. */
void state_free(struct state *st);

/* The entry of a guest: by uuid when it is not "" or NULL, else by name. NULL if none. */
struct state_guest *state_find(struct state *st, const char *name, const char *uuid);

/* Insert or replace the entry with g's key (uuid, or name). An entry that holds nothing
 * (not paused, no limits, not added, no policy line, no bad one) is removed instead. Returns 0 or
 * -ENOMEM; -E2BIG past STATE_MAX_GUESTS. */
int state_put(struct state *st, const struct state_guest *g);

/* Remove the entry of a guest (same key rule as state_find). */
void state_remove(struct state *st, const char *name, const char *uuid);

/* Drop the entries that hold nothing but a policy line written before before_wall_ms
 * (policy_state_wall), except those present(entry, opaque) says belong to a guest the
 * daemon has now: what a guest that went away (a deleted domain) left behind, once it tells
 * nothing. The operator's entries (pause, set, add) are never dropped. Returns how many
 * were dropped; the others keep their order. */
size_t state_prune_policy(struct state *st, int64_t before_wall_ms,
                          bool (*present)(const struct state_guest *g, void *opaque), void *opaque);

/* The state as JSON text with a trailing newline (malloc'd, *ret_len without NUL), entries
 * in the state's order. Returns 0 or -ENOMEM. */
int state_serialize(const struct state *st, char **ret_text, size_t *ret_len);

/* Parse state text. Every entry is checked as the control socket checks it (a valid
 * name, a UUID of 36 hex digits and dashes, floor <= ceiling, weight 1..10000, absolute
 * socket paths for an added guest); one bad entry, an unknown version or key, or
 * duplicate keys make the whole text refused (a bad "policy" only sets policy_bad): -EINVAL with a
 * reason in err, *ret untouched (-ENOMEM when memory ran out). On 0 *ret holds the entries (free
 * with state_free). */
int state_parse(const char *text, size_t len, struct state *ret, char *err, size_t err_cap);

#endif
