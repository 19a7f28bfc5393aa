/* bellowsd's configuration: an INI file (libinih) with [daemon], [policy] and one
 * [guest NAME] section per statically configured guest. Documented key by key in
 * docs/configuration.md. The parser is a pure function over a buffer; config_load_file() is
 * its thin file wrapper. Every error carries the line it was found on. */
#ifndef BELLOWS_CONFIG_H
#define BELLOWS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-daemon/policy/policy.h"
#include "host-daemon/util/log.h"
#include "host-daemon/util/netaddr.h"

#define CONFIG_NAME_MAX 63  /* guest name length, without NUL */
#define CONFIG_PATH_MAX 108 /* sizeof(sun_path): every path here is a unix socket or dir */
#define CONFIG_MAX_GUESTS 100000
#define CONFIG_MAX_FILE (1u << 20) /* a config file larger than this is refused */
#define CONFIG_MAX_ERRORS 32

/* Defaults, also documented in docs/configuration.md. */
#define CONFIG_DEFAULT_CONTROL_SOCKET "/run/bellowsd/control.sock"
#define CONFIG_DEFAULT_STATE_DIR "/var/lib/bellows"
/* Loopback, and a port outside the range Prometheus' exporters take (docs/operations.md). */
#define CONFIG_DEFAULT_HTTP_LISTEN "127.0.0.1:8466"
#define CONFIG_DEFAULT_WEIGHT 100
#define CONFIG_MAX_WEIGHT 10000 /* policy_guest_check()'s limit */

/* One statically configured guest. */
struct config_guest {
    char name[CONFIG_NAME_MAX + 1];
    char qmp_path[CONFIG_PATH_MAX];     /* QEMU's QMP socket (-qmp unix:PATH,server=on) */
    char channel_path[CONFIG_PATH_MAX]; /* QEMU's chardev socket of the virtio-serial port */
    uint64_t floor_bytes;               /* never balloon the guest below this size */
    uint64_t ceiling_bytes;             /* never give it more than this */
    uint32_t weight; /* 1..10000: higher keeps memory longer under host pressure */
    int line;        /* line of its [guest NAME] header; 0 if not from a file */
};

/* The [daemon] section. */
struct config_daemon {
    char control_socket[CONFIG_PATH_MAX];
    enum log_level log_level;
    bool dry_run;
    char proc_dir[CONFIG_PATH_MAX];  /* where pressure/memory and meminfo are read */
    char state_dir[CONFIG_PATH_MAX]; /* operator state (pause, set, add) kept across restarts */
    uint64_t host_sample_ms;         /* host PSI and MemAvailable sampling period */
    uint32_t guest_frame_rate;       /* frames per second a guest may send on average */
    uint32_t guest_frame_burst;      /* ... and at once */
    uint64_t guest_byte_rate;        /* bytes per second read from one guest's channel */
    uint64_t guest_byte_burst;
    uint64_t reconnect_min_ms;    /* first backoff after a channel or QMP socket fails */
    uint64_t reconnect_max_ms;    /* backoff doubles up to this */
    uint32_t control_max_clients; /* concurrent control socket connections */
    /* The host budget: all balloons together never hold more (docs/policy.md). */
    bool budget;                         /* on unless set false */
    char budget_cgroup[CONFIG_PATH_MAX]; /* a memory cgroup whose limit it is; "": host */
    uint64_t budget_reserve_bytes;       /* never handed to guests ... */
    uint32_t budget_reserve_pct;         /* ... nor this % of the total, if larger */
    uint64_t budget_guest_overhead;      /* the hypervisor's own memory per guest */
    struct netaddr http_listen;          /* metrics, API and dashboard; disabled: "off" */
    uint32_t http_max_clients;           /* concurrent HTTP connections */
    uint64_t http_timeout_ms; /* an HTTP client's time to send a request and read the reply */
    uint64_t history_ms;      /* how far back the dashboard's history goes */
};

/* The [libvirt] section: discover guests through libvirtd and balloon them through it
 * (docs/libvirt.md). Off unless the section is present. */
#define CONFIG_URI_MAX 256
#define CONFIG_DEFAULT_LIBVIRT_URI "qemu:///system"
struct config_libvirt {
    bool enabled;                   /* the section is present and enabled is not false */
    char uri[CONFIG_URI_MAX];       /* libvirt connection URI */
    uint64_t default_floor_bytes;   /* floor of a domain whose XML gives none */
    uint32_t default_weight;        /* weight of a domain whose XML gives none */
    uint64_t keepalive_interval_ms; /* libvirt keepalive: a ping after this much silence */
    uint32_t keepalive_count;       /* ... dead after this many unanswered pings */
    int line;                       /* line of the [libvirt] header; 0 if absent */
};

struct config {
    struct config_daemon daemon;
    struct config_libvirt libvirt;
    struct policy_config policy; /* [policy]: policy_config_defaults() plus the file's keys */
    struct config_guest *guests; /* n_guests entries, in file order */
    size_t n_guests;
};

struct config_error {
    int line; /* 0: not tied to a line (e.g. the file could not be read) */
    char message[240];
};

struct config_errors {
    size_t count;   /* entries used in items */
    size_t dropped; /* errors beyond CONFIG_MAX_ERRORS, counted only */
    struct config_error items[CONFIG_MAX_ERRORS];
};

/* Fill *cfg with every default and no guests. */
void config_init(struct config *cfg);

/* Parse len bytes of INI text. On success returns 0 and *ret_cfg owns its guest array
 * (release with config_free). On failure returns -EINVAL, fills *errs (every error found,
 * not only the first) and leaves *ret_cfg untouched. */
int config_parse_buffer(const char *text, size_t len, struct config *ret_cfg,
                        struct config_errors *errs);

/* Read a file (at most CONFIG_MAX_FILE bytes) and parse it as above. A file that cannot be
 * read gives one error at line 0 with the errno text; returns its negative errno. */
int config_load_file(const char *path, struct config *ret_cfg, struct config_errors *errs);

/* Release what config_parse_buffer allocated; safe on a config_init'ed struct. */
void config_free(struct config *cfg);

/* Set one guest key ("qmp", "channel", "floor", "ceiling", "weight") from its text, as the
 * config file and the control socket's add/set do. Returns 0, or -EINVAL with a reason. */
int config_guest_set(struct config_guest *guest, const char *key, const char *value, char *err,
                     size_t err_cap);

/* Whether a guest is complete and consistent (paths set, floor <= ceiling ...).
 * Returns 0, or -EINVAL with a reason. */
int config_guest_check(const struct config_guest *guest, char *err, size_t err_cap);

/* The part of config_guest_check about floor, ceiling and weight only (a libvirt guest has
 * no QMP path). Returns 0, or -EINVAL with a reason. */
int config_guest_check_limits(const struct config_guest *guest, char *err, size_t err_cap);

/* Whether a name is a valid guest name: 1..63 of [A-Za-z0-9._-], not starting with '-'. */
bool config_guest_name_valid(const char *name);

/* Find a guest by name; NULL if absent. */
const struct config_guest *config_find_guest(const struct config *cfg, const char *name);

#endif
