/* The control protocol: one JSON object per line each way (docs/control.md).
 *
 * Requests:  {"cmd":"list"}  {"cmd":"show","name":N}  {"cmd":"pause","name":N}
 *            {"cmd":"resume","name":N}  {"cmd":"set","name":N,"floor":..,"ceiling":..,"weight":..}
 *            {"cmd":"add","name":N,"qmp":P,"channel":P,"floor":..,"ceiling":..,"weight":..}
 *            {"cmd":"remove","name":N}
 *            {"cmd":"libvirt-event","event":"started|stopped|reconnect","uuid":U,"domain":D}
 * Replies:   {"ok":true,...} or {"ok":false,"error":"why"}
 *
 * The parser and the handler are pure over the registry and the policy state: the
 * effects that need I/O (starting or closing a guest's links) go through control_ops, so
 * tests drive the handler with a registry built from literals and fake ops.
 */
#ifndef BELLOWS_CONTROL_PROTO_H
#define BELLOWS_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host-daemon/config/config.h"
#include "host-daemon/core/registry.h"
#include "host-daemon/host/hostmem.h"
#include "host-daemon/policy/policy.h"

/* Longest request line accepted, newline included; a longer one closes the connection. */
#define CONTROL_MAX_REQUEST 4096

enum control_cmd {
    CONTROL_LIST,
    CONTROL_SHOW,
    CONTROL_PAUSE,
    CONTROL_RESUME,
    CONTROL_SET,
    CONTROL_ADD,
    CONTROL_REMOVE,
    CONTROL_LIBVIRT_EVENT,
};

/* Guest settings a request may carry, as text in config-file syntax. */
#define CONTROL_MAX_SETTINGS 5
struct control_request {
    enum control_cmd cmd;
    char name[CONFIG_NAME_MAX + 1];
    size_t n_settings;
    struct {
        char key[16];
        char value[CONFIG_PATH_MAX];
    } settings[CONTROL_MAX_SETTINGS];
    /* libvirt-event: what the libvirt hook saw (packaging/libvirt-hook-qemu) */
    char event[16];                    /* started, stopped or reconnect */
    char uuid[GUEST_UUID_LEN + 1];     /* the domain's UUID */
    char domain[GUEST_DOMAIN_MAX + 1]; /* its name, for logs only; may be "" */
};

/* Parse one request (len bytes, no newline needed). Returns 0, or -EINVAL with a reason. */
int control_parse_request(const char *text, size_t len, struct control_request *ret_req, char *err,
                          size_t err_cap);

/* Effects with I/O, supplied by the daemon (or a test). */
struct control_ops {
    /* Add a guest and start its links; 0 or negative errno with a reason in err. */
    int (*add)(void *ctx, const struct config_guest *cfg, char *err, size_t err_cap);
    /* Remove a guest: close its links; its balloon stays. */
    void (*remove)(void *ctx, struct guest *g);
    /* Something changed: run a decision round soon. May be NULL. */
    void (*kick)(void *ctx);
    /* The libvirt hook reported an event: rescan libvirt's domains after the reply. May be
     * NULL (then the event is acknowledged and ignored). */
    void (*libvirt_event)(void *ctx, const char *event, const char *uuid, const char *domain);
};

/* What the handler reads and changes. */
struct control_context {
    struct registry *reg;
    const struct policy_config *policy;
    const struct policy_host *host;
    const struct hostmem_sample *host_sample; /* NULL when not read yet */
    bool dry_run;
    int64_t now; /* loop ms, the policy's clock */
    const struct control_ops *ops;
    void *ops_ctx;
};

/* Carry out a request; returns the reply (new reference, never NULL unless out of memory). */
json_t *control_handle(const struct control_context *ctx, const struct control_request *req);

/* Parse and handle one line; malformed input gets {"ok":false,"error":...}. */
json_t *control_handle_line(const struct control_context *ctx, const char *text, size_t len);

/* One guest as JSON (what list shows per guest; show adds "decisions"). */
json_t *control_guest_json(const struct control_context *ctx, const struct guest *g,
                           bool with_decisions);

#endif
