/* One guest bellowsd manages: its settings, its two links (the agent's channel and the
 * balloon backend), what its agent said last, and the ring of its recent moves. Its
 * policy state is not here: the registry keeps every guest's in one array for the policy
 * (registry.h). The core writes a guest; everything else reads it through const pointers. */
#ifndef BELLOWS_GUEST_H
#define BELLOWS_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/config/config.h"
#include "host-daemon/policy/policy.h"
#include "host-daemon/util/deadline_heap.h"
#include "host-daemon/util/faillog.h"
#include "protocol/bellows_protocol.h"

#define GUEST_DECISION_RING 32

/* Outcome of a move in the decision ring. */
enum move_result {
    MOVE_PENDING = 0, /* balloon command sent, no reply yet */
    MOVE_DONE,        /* the backend accepted the target */
    MOVE_FAILED,      /* refused, timed out or the link dropped; see error */
    MOVE_ADVISORY,    /* dry run: decided and logged, nothing sent */
};

/* One move: what was decided, and what became of it. */
struct decision_entry {
    uint64_t seq;    /* per guest, counts every move decided */
    int64_t wall_ms; /* CLOCK_REALTIME at the decision, for people */
    enum policy_action action;
    enum policy_reason reason;
    uint64_t from_bytes;
    uint64_t to_bytes;
    enum move_result result;
    char error[64]; /* MOVE_FAILED: why */
};

struct balloon;
struct daemon;

struct guest {
    char name[CONFIG_NAME_MAX + 1];
    struct config_guest cfg;      /* settings in force */
    struct config_guest file_cfg; /* as last read from the config file, if from_file */
    bool from_file;               /* static (config file) or added at run time */
    const char *source; /* NULL, or the module that added it (e.g. "libvirt"): only it removes */
    char vm_id[37];     /* the VM's stable id: a libvirt domain's UUID; "" when none */
    size_t index;       /* in the registry's arrays */
    bool removing;

    struct daemon *daemon;
    struct guest_channel *channel;
    struct balloon *balloon; /* its backend (balloon_backend.h) */
    bool balloon_ready;      /* between the backend's ready and lost events */
    bool move_in_flight;     /* one move at a time: set when sent, cleared by its completion */
    unsigned fds;            /* descriptors its links hold, in the daemon's budget */

    /* Failures, logged on a change and summarised a minute (util/faillog.h), and backed off */
    struct faillog channel_log;
    bool channel_told;        /* this failure episode's reconnect was logged */
    int64_t channel_up_at;    /* loop ms of the channel's last connect, -1 while down */
    struct faillog move_log;  /* moves refused or failed */
    uint64_t move_backoff_ms; /* the last delay after a failed move; 0 after a success */
    int64_t move_retry_at;    /* after a failed move: no move before this (loop ms) */
    bool operator_limits;     /* the limits in force were set with `set` (kept in the state) */
    uint64_t policy_kept; /* hash of policy_state_key() when its line was last kept (opstate.c) */

    /* The decision scheduler (rounds.c): decided again only when something changed */
    bool dirty;                     /* an input changed since its last decision */
    struct deadline_entry deadline; /* when its decision may change by itself */
    uint64_t budget_held;           /* its part of the daemon's budget_use */

    /* last message from the agent */
    bool mem_known;
    struct bp_mem mem;
    enum bp_level last_msg_level;
    char agent[BP_MAX_AGENT_LEN + 1];
    char boot_id[BP_MAX_BOOT_ID_LEN + 1]; /* the last hello's: a new one is logged */

    /* decisions */
    struct policy_decision last_decision; /* the latest round's, HOLD included */
    int64_t last_decision_at;             /* loop ms; POLICY_NEVER before the first */
    uint64_t moves;                       /* non-HOLD decisions acted on (or advised) */
    uint64_t move_errors;
    uint64_t balloon_connects; /* ready events: QMP connects, libvirt (re)connections */
    uint64_t balloon_losses;   /* lost events after ready */
    uint64_t balloon_changes;
    struct guest_channel_stats reject_summary; /* counters at the last minute summary */
    struct decision_entry ring[GUEST_DECISION_RING];
    size_t ring_count; /* entries used, up to GUEST_DECISION_RING */
    size_t ring_next;  /* slot of the next entry */
    uint64_t ring_seq;
};

/* Make a guest from settings (not yet in the registry, no links). NULL on ENOMEM. */
struct guest *guest_new(const struct config_guest *cfg, bool from_file);
void guest_free(struct guest *g);

/* Where the guest comes from, for views: "file", "runtime" or its source's name. */
const char *guest_origin(const struct guest *g);

/* Append a move to g's ring; returns the entry (valid until GUEST_DECISION_RING more). */
struct decision_entry *guest_record_move(struct guest *g, const struct policy_decision *d,
                                         int64_t wall_ms, enum move_result result);
/* The i-th most recent ring entry (0 = newest), NULL past the end. */
const struct decision_entry *guest_ring_entry(const struct guest *g, size_t i);
/* Find a ring entry by its seq; NULL if it has been overwritten. */
struct decision_entry *guest_ring_find(struct guest *g, uint64_t seq);

const char *move_result_name(enum move_result r);

#endif
