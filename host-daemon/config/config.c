/* INI configuration: libinih does the syntax, this file the meaning of every key. */
#include "host-daemon/config/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "host-daemon/util/units.h"

/* How a key's text becomes a value. */
enum key_kind {
    KEY_PATH,     /* char[CONFIG_PATH_MAX], absolute */
    KEY_LOGLEVEL, /* enum log_level */
    KEY_BOOL,     /* bool: true/false, yes/no, on/off, 1/0 */
    KEY_MS,       /* uint64_t milliseconds, written with a unit */
    KEY_SIZE,     /* uint64_t bytes, with an optional K/M/G/T suffix */
    KEY_U32,      /* uint32_t plain integer */
    KEY_URI,      /* char[CONFIG_URI_MAX], no spaces */
    KEY_LISTEN,   /* struct netaddr: IPV4:PORT, [IPV6]:PORT or off */
};

struct key_spec {
    const char *name;
    enum key_kind kind;
    size_t offset;
    uint64_t min, max; /* inclusive range for numbers */
};

/* A table row, kept on one line. */
/* clang-format off */
#define DKEY(n, k, field, lo, hi) {n, k, offsetof(struct config_daemon, field), lo, hi}
/* clang-format on */

static const struct key_spec daemon_keys[] = {
    DKEY("control_socket", KEY_PATH, control_socket, 0, 0),
    DKEY("log_level", KEY_LOGLEVEL, log_level, 0, 0),
    DKEY("dry_run", KEY_BOOL, dry_run, 0, 0),
    DKEY("proc_dir", KEY_PATH, proc_dir, 0, 0),
    DKEY("state_dir", KEY_PATH, state_dir, 0, 0),
    DKEY("host_sample_interval", KEY_MS, host_sample_ms, 100, 60000),
    DKEY("guest_frame_rate", KEY_U32, guest_frame_rate, 1, 10000),
    DKEY("guest_frame_burst", KEY_U32, guest_frame_burst, 1, 100000),
    DKEY("guest_byte_rate", KEY_SIZE, guest_byte_rate, 4096, UINT64_C(1) << 30),
    DKEY("guest_byte_burst", KEY_SIZE, guest_byte_burst, 4096, UINT64_C(1) << 30),
    DKEY("reconnect_min", KEY_MS, reconnect_min_ms, 10, 600000),
    DKEY("reconnect_max", KEY_MS, reconnect_max_ms, 10, 3600000),
    DKEY("control_max_clients", KEY_U32, control_max_clients, 1, 1024),
    DKEY("budget", KEY_BOOL, budget, 0, 0),
    DKEY("budget_cgroup", KEY_PATH, budget_cgroup, 0, 0),
    DKEY("budget_reserve", KEY_SIZE, budget_reserve_bytes, 0, UINT64_C(1) << 50),
    DKEY("budget_reserve_pct", KEY_U32, budget_reserve_pct, 0, 90),
    DKEY("budget_guest_overhead", KEY_SIZE, budget_guest_overhead, 0, UINT64_C(1) << 40),
    DKEY("http_listen", KEY_LISTEN, http_listen, 0, 0),
    DKEY("http_max_clients", KEY_U32, http_max_clients, 1, 1024),
    DKEY("http_timeout", KEY_MS, http_timeout_ms, 1000, 300000),
    DKEY("history", KEY_MS, history_ms, 60000, 86400000),
};
#define N_DAEMON_KEYS (sizeof(daemon_keys) / sizeof(daemon_keys[0]))

/* A table row, kept on one line. */
/* clang-format off */
#define LKEY(n, k, field, lo, hi) {n, k, offsetof(struct config_libvirt, field), lo, hi}
/* clang-format on */

static const struct key_spec libvirt_keys[] = {
    LKEY("enabled", KEY_BOOL, enabled, 0, 0),
    LKEY("uri", KEY_URI, uri, 0, 0),
    LKEY("default_floor", KEY_SIZE, default_floor_bytes, UINT64_C(1) << 20, UINT64_MAX),
    LKEY("default_weight", KEY_U32, default_weight, 1, CONFIG_MAX_WEIGHT),
    LKEY("keepalive_interval", KEY_MS, keepalive_interval_ms, 1000, 600000),
    LKEY("keepalive_count", KEY_U32, keepalive_count, 1, 100),
};
#define N_LIBVIRT_KEYS (sizeof(libvirt_keys) / sizeof(libvirt_keys[0]))

static const char *const guest_keys[] = {"qmp", "channel", "floor", "ceiling", "weight"};
#define N_GUEST_KEYS (sizeof(guest_keys) / sizeof(guest_keys[0]))
enum { GUEST_KEY_FLOOR = 2, GUEST_KEY_CEILING = 3 }; /* indices in guest_keys */

static size_t daemon_key_index(const char *name)
{
    for (size_t i = 0; i < N_DAEMON_KEYS; i++)
        if (strcmp(daemon_keys[i].name, name) == 0)
            return i;
    abort(); /* a name below is misspelt */
}

/* See config.h. */
void config_init(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    policy_config_defaults(&cfg->policy);
    struct config_daemon *d = &cfg->daemon;
    snprintf(d->control_socket, sizeof(d->control_socket), "%s", CONFIG_DEFAULT_CONTROL_SOCKET);
    d->log_level = LOG_LEVEL_INFO;
    d->dry_run = false;
    snprintf(d->proc_dir, sizeof(d->proc_dir), "/proc");
    snprintf(d->state_dir, sizeof(d->state_dir), "%s", CONFIG_DEFAULT_STATE_DIR);
    d->host_sample_ms = 1000;
    /* docs/protocol.md: an agent sends at most 20 frames/s on average, 40 at once. */
    d->guest_frame_rate = 20;
    d->guest_frame_burst = 40;
    d->guest_byte_rate = 64 * 1024;
    d->guest_byte_burst = 64 * 1024;
    d->reconnect_min_ms = 100;
    d->reconnect_max_ms = 5000;
    d->control_max_clients = 8;
    d->budget = true;
    d->budget_cgroup[0] = '\0';
    /* Guests fill the host up to the policy's host_avail_exit_pct (10 %) and no further, so
     * the budget never hands out what a host round would then take back. */
    d->budget_reserve_bytes = 256 * (UINT64_C(1) << 20);
    d->budget_reserve_pct = 10;
    /* QEMU's own memory beyond guest RAM (devices, buffers; under KVM tens of MiB). */
    d->budget_guest_overhead = 64 * (UINT64_C(1) << 20);
    char err[200];
    if (netaddr_parse(CONFIG_DEFAULT_HTTP_LISTEN, &d->http_listen, err, sizeof(err)) < 0)
        abort(); /* the default is spelt wrong */
    d->http_max_clients = 64;
    d->http_timeout_ms = 10000;
    d->history_ms = 3600000;
    struct config_libvirt *l = &cfg->libvirt;
    l->enabled = false;
    snprintf(l->uri, sizeof(l->uri), "%s", CONFIG_DEFAULT_LIBVIRT_URI);
    l->default_floor_bytes = UINT64_C(256) << 20;
    l->default_weight = CONFIG_DEFAULT_WEIGHT;
    l->keepalive_interval_ms = 5000;
    l->keepalive_count = 3;
}

/* See config.h. */
void config_free(struct config *cfg)
{
    free(cfg->guests);
    cfg->guests = NULL;
    cfg->n_guests = 0;
}

static void set_err(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
}

static int parse_bool(const char *text, bool *ret)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *ret = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *ret = false;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_path(const char *text, char *out, char *err, size_t cap)
{
    if (text[0] != '/') {
        set_err(err, cap, "'%s' is not an absolute path", text);
        return -EINVAL;
    }
    if (strlen(text) >= CONFIG_PATH_MAX) {
        set_err(err, cap, "path is %zu bytes long, the limit is %d", strlen(text),
                CONFIG_PATH_MAX - 1);
        return -EINVAL;
    }
    strcpy(out, text);
    return 0;
}

static int parse_u64_plain(const char *text, uint64_t *ret)
{
    char *end;
    if (!isdigit((unsigned char)text[0]))
        return -EINVAL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno || *end)
        return -EINVAL;
    *ret = v;
    return 0;
}

/* Apply one key of a table to the struct at base. */
static int set_key(const struct key_spec *spec, void *base, const char *value, char *err,
                   size_t cap)
{
    void *field = (char *)base + spec->offset;
    uint64_t number = 0;

    switch (spec->kind) {
    case KEY_PATH:
        return parse_path(value, field, err, cap);
    case KEY_URI:
        if (!value[0] || strlen(value) >= CONFIG_URI_MAX || strpbrk(value, " \t")) {
            set_err(err, cap, "'%s' is not a libvirt URI (e.g. qemu:///system, at most %d bytes)",
                    value, CONFIG_URI_MAX - 1);
            return -EINVAL;
        }
        strcpy(field, value);
        return 0;
    case KEY_LISTEN:
        return netaddr_parse(value, field, err, cap);
    case KEY_LOGLEVEL:
        if (!log_level_parse(value, field)) {
            set_err(err, cap, "'%s' is not a log level (error, warning, info, debug)", value);
            return -EINVAL;
        }
        return 0;
    case KEY_BOOL:
        if (parse_bool(value, field) < 0) {
            set_err(err, cap, "'%s' is not a boolean (true/false, yes/no, on/off, 1/0)", value);
            return -EINVAL;
        }
        return 0;
    case KEY_MS:
        if (units_parse_duration_ms(value, &number) < 0) {
            set_err(err, cap, "'%s' is not a duration (a number with ms, s or min: 500ms, 2s)",
                    value);
            return -EINVAL;
        }
        break;
    case KEY_SIZE:
        if (units_parse_size(value, &number) < 0) {
            set_err(err, cap, "'%s' is not a size (bytes, or a number with K, M, G or T)", value);
            return -EINVAL;
        }
        break;
    case KEY_U32:
        if (parse_u64_plain(value, &number) < 0) {
            set_err(err, cap, "'%s' is not a whole number", value);
            return -EINVAL;
        }
        break;
    }
    if (number < spec->min || number > spec->max) {
        set_err(err, cap, "%s = %s is out of range (%llu..%llu%s)", spec->name, value,
                (unsigned long long)spec->min, (unsigned long long)spec->max,
                spec->kind == KEY_MS     ? " ms"
                : spec->kind == KEY_SIZE ? " bytes"
                                         : "");
        return -ERANGE;
    }
    if (spec->kind == KEY_U32)
        *(uint32_t *)field = (uint32_t)number;
    else
        *(uint64_t *)field = number;
    return 0;
}

/* See config.h. */
bool config_guest_name_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > CONFIG_NAME_MAX || name[0] == '-')
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return false;
    }
    return true;
}

/* See config.h. */
int config_guest_set(struct config_guest *guest, const char *key, const char *value, char *err,
                     size_t err_cap)
{
    uint64_t number;

    if (strcmp(key, "qmp") == 0)
        return parse_path(value, guest->qmp_path, err, err_cap);
    if (strcmp(key, "channel") == 0)
        return parse_path(value, guest->channel_path, err, err_cap);
    if (strcmp(key, "floor") == 0 || strcmp(key, "ceiling") == 0) {
        int r = units_parse_size(value, &number);
        if (r < 0) {
            set_err(err, err_cap, "%s = '%s' is not a size (bytes, or a number with K, M, G or T)",
                    key, value);
            return -EINVAL;
        }
        if (number < (UINT64_C(1) << 20)) {
            set_err(err, err_cap, "%s = %s is below 1M", key, value);
            return -EINVAL;
        }
        if (key[0] == 'f')
            guest->floor_bytes = number;
        else
            guest->ceiling_bytes = number;
        return 0;
    }
    if (strcmp(key, "weight") == 0) {
        if (parse_u64_plain(value, &number) < 0 || number < 1 || number > CONFIG_MAX_WEIGHT) {
            set_err(err, err_cap, "weight = '%s' is not a whole number in 1..%d", value,
                    CONFIG_MAX_WEIGHT);
            return -EINVAL;
        }
        guest->weight = (uint32_t)number;
        return 0;
    }
    set_err(err, err_cap, "unknown guest key '%s' (known: qmp, channel, floor, ceiling, weight)",
            key);
    return -EINVAL;
}

/* See config.h. */
int config_guest_check(const struct config_guest *guest, char *err, size_t err_cap)
{
    if (!guest->qmp_path[0]) {
        set_err(err, err_cap, "guest '%s' has no qmp socket path (qmp = PATH)", guest->name);
        return -EINVAL;
    }
    if (!guest->channel_path[0]) {
        set_err(err, err_cap, "guest '%s' has no channel socket path (channel = PATH)",
                guest->name);
        return -EINVAL;
    }
    if (config_guest_check_limits(guest, err, err_cap) < 0)
        return -EINVAL;
    if (strcmp(guest->qmp_path, guest->channel_path) == 0) {
        set_err(err, err_cap, "guest '%s': qmp and channel are the same path", guest->name);
        return -EINVAL;
    }
    return 0;
}

/* See config.h. */
int config_guest_check_limits(const struct config_guest *guest, char *err, size_t err_cap)
{
    if (!guest->floor_bytes || !guest->ceiling_bytes) {
        set_err(err, err_cap, "guest '%s' needs both floor and ceiling", guest->name);
        return -EINVAL;
    }
    if (guest->floor_bytes > guest->ceiling_bytes) {
        char f[32], c[32];
        set_err(err, err_cap, "guest '%s': floor %s is above ceiling %s", guest->name,
                units_format_size(guest->floor_bytes, f, sizeof(f)),
                units_format_size(guest->ceiling_bytes, c, sizeof(c)));
        return -EINVAL;
    }
    if (policy_guest_check(guest->floor_bytes, guest->ceiling_bytes, guest->weight, err, err_cap) <
        0)
        return -EINVAL;
    return 0;
}

/* See config.h. */
const struct config_guest *config_find_guest(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_guests; i++)
        if (strcmp(cfg->guests[i].name, name) == 0)
            return &cfg->guests[i];
    return NULL;
}

/* ---- the parse itself ---- */

/* State shared by the line reader and the key handler. */
struct parse_state {
    const char *p, *end; /* unread text */
    int line;            /* line number of the line last handed to inih */
    int section_seq;     /* count of [section] headers seen so far */
    int section_line;    /* line of the latest header */
    int max_line;        /* longest line inih accepts, with newline and NUL */

    struct config cfg;
    size_t guests_cap;
    int guest_section_seq; /* section_seq of the guest being filled, or 0 */
    int daemon_key_line[N_DAEMON_KEYS];
    int guest_key_line[N_GUEST_KEYS]; /* for the guest being filled */
    int libvirt_key_line[N_LIBVIRT_KEYS];
    struct {
        char key[48];
        int line;
    } policy_keys[64]; /* [policy] keys already set, to refuse a second setting */
    size_t n_policy_keys;
    int policy_line;      /* line of the first [policy] header */
    int bad_section_seq;  /* unknown section already reported */
    bool skip_section;    /* the current section is broken: ignore its keys */
    int pairs_in_section; /* name = value pairs since the latest header */

    struct config_errors *errs;
};

static void add_error(struct parse_state *st, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_error(struct parse_state *st, int line, const char *fmt, ...)
{
    struct config_errors *errs = st->errs;
    if (errs->count >= CONFIG_MAX_ERRORS) {
        errs->dropped++;
        return;
    }
    struct config_error *e = &errs->items[errs->count++];
    e->line = line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
}

/* fgets-style reader for inih over the buffer: one line per call, so it can number lines
 * (the handler gets no line number in Debian's build) and note where sections start. */
static char *read_line(char *str, int num, void *stream)
{
    struct parse_state *st = stream;
    if (st->p >= st->end)
        return NULL;
    const char *eol = memchr(st->p, '\n', (size_t)(st->end - st->p));
    const char *next = eol ? eol + 1 : st->end;
    size_t len = (size_t)(next - st->p);
    st->line++;
    st->max_line = num;

    if (memchr(st->p, '\0', len)) {
        add_error(st, st->line, "line contains a NUL byte");
        str[0] = '\0';
    } else if (len + 1 > (size_t)num) {
        add_error(st, st->line, "line is %zu bytes long, the limit is %d", len, num - 2);
        str[0] = '\0';
    } else {
        memcpy(str, st->p, len);
        str[len] = '\0';
        const char *q = str;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q == '[') {
            if (st->section_seq && st->pairs_in_section == 0)
                add_error(st, st->section_line, "section has no keys");
            st->pairs_in_section = 0;
            st->section_seq++;
            st->section_line = st->line;
            st->skip_section = false;
        }
    }
    st->p = next;
    return str;
}

/* Close the guest being filled (if any): check it is complete. */
static void finish_guest(struct parse_state *st)
{
    if (!st->guest_section_seq)
        return;
    struct config_guest *g = &st->cfg.guests[st->cfg.n_guests - 1];
    char err[200];
    if (config_guest_check(g, err, sizeof(err)) < 0) {
        /* Point at the floor/ceiling line when those disagree, else at the header. */
        int line = g->line;
        if (g->floor_bytes > g->ceiling_bytes && g->ceiling_bytes && g->floor_bytes)
            line = st->guest_key_line[GUEST_KEY_FLOOR] > st->guest_key_line[GUEST_KEY_CEILING]
                       ? st->guest_key_line[GUEST_KEY_FLOOR]
                       : st->guest_key_line[GUEST_KEY_CEILING];
        add_error(st, line, "%s", err);
    }
    st->guest_section_seq = 0;
}

/* A new [guest NAME] section: add the guest. */
static struct config_guest *begin_guest(struct parse_state *st, const char *name)
{
    finish_guest(st);
    if (!config_guest_name_valid(name)) {
        add_error(st, st->section_line,
                  "'%s' is not a valid guest name (1-%d of A-Z a-z 0-9 . _ -, not starting with "
                  "-)",
                  name, CONFIG_NAME_MAX);
        return NULL;
    }
    const struct config_guest *dup = config_find_guest(&st->cfg, name);
    if (dup) {
        add_error(st, st->section_line, "guest '%s' is defined twice (first at line %d)", name,
                  dup->line);
        return NULL;
    }
    if (st->cfg.n_guests >= CONFIG_MAX_GUESTS) {
        add_error(st, st->section_line, "more than %d guests", CONFIG_MAX_GUESTS);
        return NULL;
    }
    if (st->cfg.n_guests == st->guests_cap) {
        size_t cap = st->guests_cap ? st->guests_cap * 2 : 8;
        struct config_guest *grown = realloc(st->cfg.guests, cap * sizeof(*grown));
        if (!grown) {
            add_error(st, st->section_line, "out of memory");
            return NULL;
        }
        st->cfg.guests = grown;
        st->guests_cap = cap;
    }
    struct config_guest *g = &st->cfg.guests[st->cfg.n_guests++];
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    g->weight = CONFIG_DEFAULT_WEIGHT;
    g->line = st->section_line;
    st->guest_section_seq = st->section_seq;
    memset(st->guest_key_line, 0, sizeof(st->guest_key_line));
    return g;
}

static void guest_key(struct parse_state *st, const char *name, const char *key, const char *value)
{
    if (st->guest_section_seq != st->section_seq) {
        if (!begin_guest(st, name)) {
            st->skip_section = true;
            return;
        }
    }
    struct config_guest *g = &st->cfg.guests[st->cfg.n_guests - 1];
    for (size_t i = 0; i < N_GUEST_KEYS; i++) {
        if (strcmp(guest_keys[i], key) != 0)
            continue;
        if (st->guest_key_line[i]) {
            add_error(st, st->line, "'%s' is set twice in [guest %s] (first at line %d)", key,
                      g->name, st->guest_key_line[i]);
            return;
        }
        st->guest_key_line[i] = st->line;
        char err[200];
        if (config_guest_set(g, key, value, err, sizeof(err)) < 0)
            add_error(st, st->line, "%s", err);
        return;
    }
    add_error(st, st->line,
              "unknown key '%s' in [guest %s] (known: qmp, channel, floor, "
              "ceiling, weight)",
              key, g->name);
}

/* One key of a section read through a key_spec table into the struct at base; key_line
 * remembers where each key was set, to refuse a second setting. */
static void table_key(struct parse_state *st, const char *section, const struct key_spec *keys,
                      size_t n_keys, int *key_line, void *base, const char *key, const char *value)
{
    for (size_t i = 0; i < n_keys; i++) {
        if (strcmp(keys[i].name, key) != 0)
            continue;
        if (key_line[i]) {
            add_error(st, st->line, "'%s' is set twice in [%s] (first at line %d)", key, section,
                      key_line[i]);
            return;
        }
        key_line[i] = st->line;
        char err[200];
        if (set_key(&keys[i], base, value, err, sizeof(err)) < 0)
            add_error(st, st->line, "%s", err);
        return;
    }
    add_error(st, st->line, "unknown key '%s' in [%s]", key, section);
}

static void daemon_key(struct parse_state *st, const char *key, const char *value)
{
    table_key(st, "daemon", daemon_keys, N_DAEMON_KEYS, st->daemon_key_line, &st->cfg.daemon, key,
              value);
}

static void libvirt_key(struct parse_state *st, const char *key, const char *value)
{
    /* The section's presence turns the backend on; `enabled = false` keeps it off. */
    if (!st->cfg.libvirt.line) {
        st->cfg.libvirt.line = st->section_line;
        st->cfg.libvirt.enabled = true;
    }
    table_key(st, "libvirt", libvirt_keys, N_LIBVIRT_KEYS, st->libvirt_key_line, &st->cfg.libvirt,
              key, value);
}

static void policy_key(struct parse_state *st, const char *key, const char *value)
{
    if (!st->policy_line)
        st->policy_line = st->section_line;
    for (size_t i = 0; i < st->n_policy_keys; i++) {
        if (strcmp(st->policy_keys[i].key, key) == 0) {
            add_error(st, st->line, "'%s' is set twice in [policy] (first at line %d)", key,
                      st->policy_keys[i].line);
            return;
        }
    }
    int r = policy_config_set(&st->cfg.policy, key, value);
    if (r == -ENOENT) {
        add_error(st, st->line, "unknown key '%s' in [policy] (see docs/policy.md)", key);
        return;
    }
    if (r < 0) {
        add_error(st, st->line,
                  "bad value for %s: '%s' (see docs/policy.md for its unit and range)", key, value);
        return;
    }
    if (st->n_policy_keys < sizeof(st->policy_keys) / sizeof(st->policy_keys[0]) &&
        strlen(key) < sizeof(st->policy_keys[0].key)) {
        strcpy(st->policy_keys[st->n_policy_keys].key, key);
        st->policy_keys[st->n_policy_keys++].line = st->line;
    }
}

/* inih's callback: one name = value pair. Always returns 1 (keep going): errors are
 * collected here with their line, so inih's own return means a syntax error. */
static int on_pair(void *user, const char *section, const char *key, const char *value)
{
    struct parse_state *st = user;

    st->pairs_in_section++;
    if (st->guest_section_seq && st->guest_section_seq != st->section_seq)
        finish_guest(st);
    if (st->skip_section)
        return 1;
    if (section[0] == '\0') {
        add_error(st, st->line,
                  "'%s' is outside any section ([daemon], [policy], [libvirt], [guest NAME])", key);
    } else if (strcmp(section, "daemon") == 0) {
        daemon_key(st, key, value);
    } else if (strcmp(section, "libvirt") == 0) {
        libvirt_key(st, key, value);
    } else if (strcmp(section, "policy") == 0) {
        policy_key(st, key, value);
    } else if (strncmp(section, "guest", 5) == 0 && (section[5] == ' ' || section[5] == '\t')) {
        const char *name = section + 6;
        while (*name == ' ' || *name == '\t')
            name++;
        guest_key(st, name, key, value);
    } else if (st->bad_section_seq != st->section_seq) {
        st->bad_section_seq = st->section_seq;
        add_error(st, st->section_line,
                  "unknown section [%s] (known: [daemon], [policy], [libvirt], [guest NAME])",
                  section);
    }
    return 1;
}

/* Checks across sections, once everything is read. */
static void check_whole(struct parse_state *st)
{
    struct config *cfg = &st->cfg;
    const struct config_daemon *d = &cfg->daemon;
    char err[200];

    if (policy_config_check(&cfg->policy, err, sizeof(err)) < 0)
        add_error(st, st->policy_line, "[policy]: %s", err);
    if (d->guest_frame_burst < d->guest_frame_rate / 10)
        add_error(st, st->daemon_key_line[daemon_key_index("guest_frame_burst")],
                  "guest_frame_burst must be at least a tenth "
                  "of guest_frame_rate");
    if (d->reconnect_max_ms < d->reconnect_min_ms)
        add_error(st, st->daemon_key_line[daemon_key_index("reconnect_max")],
                  "reconnect_max is below reconnect_min");
    for (size_t i = 0; i < cfg->n_guests; i++) {
        const struct config_guest *a = &cfg->guests[i];
        if (strcmp(a->qmp_path, d->control_socket) == 0 ||
            strcmp(a->channel_path, d->control_socket) == 0)
            add_error(st, a->line, "guest '%s' uses the control socket's path", a->name);
        for (size_t j = 0; j < i; j++) {
            const struct config_guest *b = &cfg->guests[j];
            if (a->qmp_path[0] && (strcmp(a->qmp_path, b->qmp_path) == 0 ||
                                   strcmp(a->qmp_path, b->channel_path) == 0))
                add_error(st, a->line, "guest '%s' uses the path %s of guest '%s' (line %d)",
                          a->name, a->qmp_path, b->name, b->line);
            if (a->channel_path[0] && (strcmp(a->channel_path, b->qmp_path) == 0 ||
                                       strcmp(a->channel_path, b->channel_path) == 0))
                add_error(st, a->line, "guest '%s' uses the path %s of guest '%s' (line %d)",
                          a->name, a->channel_path, b->name, b->line);
        }
    }
}

/* See config.h. */
int config_parse_buffer(const char *text, size_t len, struct config *ret_cfg,
                        struct config_errors *errs)
{
    struct parse_state st = {.p = text, .end = text + len, .errs = errs};

    memset(errs, 0, sizeof(*errs));
    config_init(&st.cfg);
    int r = ini_parse_stream(read_line, &st, on_pair, &st);
    finish_guest(&st);
    if (st.section_seq && st.pairs_in_section == 0)
        add_error(&st, st.section_line, "section has no keys");
    if (r > 0)
        add_error(&st, r, "syntax error: expected [section], name = value, or a comment");
    else if (r < 0)
        add_error(&st, 0, "out of memory while parsing");
    check_whole(&st);

    if (errs->count || errs->dropped) {
        config_free(&st.cfg);
        return -EINVAL;
    }
    *ret_cfg = st.cfg;
    return 0;
}

/* See config.h. */
int config_load_file(const char *path, struct config *ret_cfg, struct config_errors *errs)
{
    memset(errs, 0, sizeof(*errs));
    int err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = -errno;
        goto fail;
    }
    char *buf = malloc(CONFIG_MAX_FILE + 1);
    if (!buf) {
        err = -ENOMEM;
        close(fd);
        goto fail;
    }
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, buf + len, CONFIG_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            err = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > CONFIG_MAX_FILE) {
            err = -EFBIG;
            break;
        }
    }
    close(fd);
    if (err == 0)
        err = config_parse_buffer(buf, len, ret_cfg, errs);
    free(buf);
    if (err == 0 || errs->count)
        return err;
fail:
    errs->count = 1;
    errs->items[0].line = 0;
    if (err == -EFBIG)
        snprintf(errs->items[0].message, sizeof(errs->items[0].message),
                 "file is larger than %u bytes", CONFIG_MAX_FILE);
    else
        snprintf(errs->items[0].message, sizeof(errs->items[0].message), "cannot read: %s",
                 strerror(-err));
    return err;
}
