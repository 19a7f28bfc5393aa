/* The control protocol: one JSON object per line each way (docs/control.md).
 *
 * Requests:  {"cmd":"list"}  {"cmd":"show","name":N}  {"cmd":"pause","name":N}
 *            {"cmd":"resume","name":N}  {"cmd":"set","name":N,"floor":..,"ceiling":..,"weight":..}
 *            {"cmd":"add","name":N,"qmp":P,"channel":P,"floor":..,"ceiling":..,"weight":..}
 *            {"cmd":"remove","name":N}
 *            {"cmd":"libvirt-event","event":"started|stopped|reconnect","uuid":U,"domain":D}
 * Replies:   {"ok":true,...} or {"ok":false,"error":"why"}
 *
 * The parser is pure; the handler reads and changes the daemon only through control_ops
 * (control_daemon.c gives the daemon's functions and views; tests give fakes), so nothing
 * here knows the daemon's structures.
 */
#ifndef BELLOWS_CONTROL_PROTO_H
#define BELLOWS_CONTROL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "host-daemon/config/config.h"

/* Longest request line accepted, newline included; a longer one closes the connection. */
#define CONTROL_MAX_REQUEST 4096

#define CONTROL_UUID_LEN 36    /* a libvirt domain UUID as text */
#define CONTROL_DOMAIN_MAX 255 /* a libvirt domain name */

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
    char event[16];                      /* started, stopped or reconnect */
    char uuid[CONTROL_UUID_LEN + 1];     /* the domain's UUID */
    char domain[CONTROL_DOMAIN_MAX + 1]; /* its name, for logs only; may be "" */
};

/* Parse one request (len bytes, no newline needed). Returns 0, or -EINVAL with a reason. */
int control_parse_request(const char *text, size_t len, struct control_request *ret_req, char *err,
                          size_t err_cap);

/* Whether a request changes something (every command but list and show). */
bool control_is_change(enum control_cmd cmd);

/* What the handler reads and changes, supplied by the daemon (control_daemon.c) or a test.
 * `name` is always a valid guest name. Each change is one call, which logs it. */
struct control_ops {
    /* The settings in force of guest `name`: 0, or -ENOENT when there is none. */
    int (*find)(void *ctx, const char *name, struct config_guest *ret_cfg);
    /* The reply members of `list` besides "ok": {"dry_run", "host", "guests"}. */
    json_t *(*list)(void *ctx);
    /* One guest's view, with its decisions or not. NULL when out of memory. */
    json_t *(*show)(void *ctx, const char *name, bool with_decisions);
    /* Pause or resume the management of a guest. */
    void (*pause)(void *ctx, const char *name, bool paused);
    /* New floor, ceiling and weight (cfg is the guest's settings with them, checked). */
    void (*set_limits)(void *ctx, const char *name, const struct config_guest *cfg);
    /* Add a guest (cfg checked) and start its links; 0 or a negative errno with err. */
    int (*add)(void *ctx, const struct config_guest *cfg, char *err, size_t err_cap);
    /* Remove a guest; 0 or a negative errno with err (e.g. a libvirt domain's guest). */
    int (*remove)(void *ctx, const char *name, char *err, size_t err_cap);
    /* The libvirt hook reported an event: rescan after the reply, never inside. */
    void (*vm_event)(void *ctx, const char *event, const char *uuid, const char *domain);
};

/* Carry out a request; returns the reply (new reference, never NULL unless out of memory). */
json_t *control_handle(const struct control_ops *ops, void *ctx, const struct control_request *req);

/* Parse and handle one line; malformed input gets {"ok":false,"error":...}. */
json_t *control_handle_line(const struct control_ops *ops, void *ctx, const char *text, size_t len);

#endif
