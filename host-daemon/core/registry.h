/* The guest registry: every guest bellowsd manages, its links, its policy state and its
 * recent decisions. The policy wants all guests' state in one array (policy_decide takes
 * `struct policy_guest *guests, size_t n`), so the registry keeps that array and each guest
 * knows its index; removal moves the last guest into the hole. Pointers into the policy
 * array are only valid until the next add or remove. */
#ifndef BELLOWS_REGISTRY_H
#define BELLOWS_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/channel/guest_channel.h"
#include "host-daemon/config/config.h"
#include "host-daemon/policy/policy.h"

#define GUEST_DECISION_RING 32

/* Outcome of a move in the decision ring. */
enum move_result {
    MOVE_PENDING = 0, /* balloon command sent, no reply yet */
    MOVE_DONE,        /* QEMU accepted the target */
    MOVE_FAILED,      /* QEMU refused, timed out or the link dropped; see error */
    MOVE_ADVISORY,    /* dry run: decided and logged, nothing sent */
};

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

struct guest_channel;
struct qmp_client;
struct daemon;

/* How a guest's balloon is reached. */
enum guest_backend {
    GUEST_BACKEND_QMP = 0, /* QEMU's QMP socket (cfg.qmp_path): static or run-time guests */
    GUEST_BACKEND_LIBVIRT, /* through libvirtd: a domain discovered by the [libvirt] backend */
};

#define GUEST_UUID_LEN 36
#define GUEST_DOMAIN_MAX 255

struct guest {
    char name[CONFIG_NAME_MAX + 1];
    struct config_guest cfg;      /* settings in force */
    struct config_guest file_cfg; /* as last read from the config file, if from_file */
    bool from_file;               /* static (config file) or added at run time */
    enum guest_backend backend;
    char uuid[GUEST_UUID_LEN + 1];     /* libvirt: the domain's UUID, how it is known */
    char domain[GUEST_DOMAIN_MAX + 1]; /* libvirt: the domain's name, for people */
    bool libvirt_connected;            /* libvirt: the backend is connected to libvirtd */
    size_t index;                      /* in the registry's arrays */
    bool removing;

    struct daemon *daemon;
    struct guest_channel *channel;
    struct qmp_client *qmp;
    bool qmp_ready;
    bool move_in_flight;
    bool channel_warned; /* a link failure was logged; quieter until it recovers */
    bool qmp_warned;

    /* last message from the agent */
    bool mem_known;
    struct bp_mem mem;
    enum bp_level last_msg_level;
    char agent[BP_MAX_AGENT_LEN + 1];

    /* decisions */
    struct policy_decision last_decision; /* the latest round's, HOLD included */
    int64_t last_decision_at;             /* loop ms; POLICY_NEVER before the first */
    uint64_t moves;                       /* non-HOLD decisions acted on (or advised) */
    uint64_t move_errors;
    uint64_t qmp_connects;
    uint64_t qmp_disconnects;
    uint64_t balloon_changes;
    struct guest_channel_stats reject_summary; /* counters at the last minute summary */
    struct decision_entry ring[GUEST_DECISION_RING];
    size_t ring_count; /* entries used, up to GUEST_DECISION_RING */
    size_t ring_next;  /* slot of the next entry */
    uint64_t ring_seq;
};

struct registry {
    struct guest **guests;             /* n entries */
    struct policy_guest *policy;       /* n entries, policy[g->index] belongs to g */
    struct policy_decision *decisions; /* n entries, scratch for policy_decide */
    size_t n;
    size_t cap;
};

void registry_init(struct registry *reg);
/* Frees the arrays, not the guests. */
void registry_free(struct registry *reg);

/* Make a guest from settings (not yet in the registry, no links). NULL on ENOMEM. */
struct guest *guest_new(const struct config_guest *cfg, bool from_file);
void guest_free(struct guest *g);

/* Add g: its policy state starts fresh (policy_guest_init). Returns 0 or -ENOMEM.
 * -EEXIST if a guest of that name is present. */
int registry_add(struct registry *reg, struct guest *g);
/* Take g out (its slot is filled by the last guest). */
void registry_remove(struct registry *reg, struct guest *g);
struct guest *registry_find(const struct registry *reg, const char *name);
struct policy_guest *registry_policy(struct registry *reg, const struct guest *g);

/* Apply new floor/ceiling/weight to g and its policy state (policy state kept). */
void registry_update_limits(struct registry *reg, struct guest *g, const struct config_guest *cfg);

/* Append a move to g's ring; returns the entry (valid until GUEST_DECISION_RING more). */
struct decision_entry *guest_record_move(struct guest *g, const struct policy_decision *d,
                                         int64_t wall_ms, enum move_result result);
/* The i-th most recent ring entry (0 = newest), NULL past the end. */
const struct decision_entry *guest_ring_entry(const struct guest *g, size_t i);
/* Find a ring entry by its seq; NULL if it has been overwritten. */
struct decision_entry *guest_ring_find(struct guest *g, uint64_t seq);

const char *move_result_name(enum move_result r);

/* The libvirt guest of that domain UUID; NULL if none. */
struct guest *registry_find_uuid(const struct registry *reg, const char *uuid);

#endif
