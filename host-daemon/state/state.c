/* Operator state: find, put, serialize and parse (see state.h). */
#include "host-daemon/state/state.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

/* See state.h. */
void state_init(struct state *st)
{
    memset(st, 0, sizeof(*st));
}

/* See state.h. */
void state_free(struct state *st)
{
    free(st->guests);
    state_init(st);
}

static bool keyed_by_uuid(const char *uuid)
{
    return uuid && uuid[0];
}

static size_t find_index(const struct state *st, const char *name, const char *uuid)
{
    for (size_t i = 0; i < st->n; i++) {
        const struct state_guest *g = &st->guests[i];
        if (keyed_by_uuid(uuid) ? strcmp(g->uuid, uuid) == 0
                                : !g->uuid[0] && name && strcmp(g->name, name) == 0)
            return i;
    }
    return st->n;
}

/* See state.h. */
struct state_guest *state_find(struct state *st, const char *name, const char *uuid)
{
    size_t i = find_index(st, name, uuid);
    return i < st->n ? &st->guests[i] : NULL;
}

/* See state.h. */
void state_remove(struct state *st, const char *name, const char *uuid)
{
    size_t i = find_index(st, name, uuid);
    if (i == st->n)
        return;
    memmove(&st->guests[i], &st->guests[i + 1], (st->n - i - 1) * sizeof(st->guests[0]));
    st->n--;
}

/* The entry holds something worth a line in the file. */
static bool holds_something(const struct state_guest *g)
{
    return g->paused || g->has_limits || g->added || g->policy[0] || g->policy_bad;
}

/* See state.h. */
size_t state_prune_policy(struct state *st, int64_t before_wall_ms,
                          bool (*present)(const struct state_guest *g, void *opaque), void *opaque)
{
    size_t kept = 0;
    for (size_t i = 0; i < st->n; i++) {
        const struct state_guest *g = &st->guests[i];
        int64_t wall;
        bool stale = !g->paused && !g->has_limits && !g->added && g->policy[0] &&
                     policy_state_wall(g->policy, &wall) == 0 && wall < before_wall_ms &&
                     !present(g, opaque);
        if (stale)
            continue;
        if (kept != i)
            st->guests[kept] = st->guests[i];
        kept++;
    }
    size_t dropped = st->n - kept;
    st->n = kept;
    return dropped;
}

/* See state.h. */
int state_put(struct state *st, const struct state_guest *g)
{
    if (!holds_something(g)) {
        state_remove(st, g->name, g->uuid);
        return 0;
    }
    size_t i = find_index(st, g->name, g->uuid);
    if (i == st->n) {
        if (st->n >= STATE_MAX_GUESTS)
            return -E2BIG;
        if (st->n == st->cap) {
            size_t cap = st->cap ? st->cap * 2 : 16;
            struct state_guest *p = realloc(st->guests, cap * sizeof(*p));
            if (!p)
                return -ENOMEM;
            st->guests = p;
            st->cap = cap;
        }
        st->n++;
    }
    st->guests[i] = *g;
    return 0;
}

static json_t *guest_json(const struct state_guest *g)
{
    json_t *o = json_pack("{ss}", "name", g->name);
    if (!o)
        return NULL;
    int bad = 0;
    if (g->uuid[0])
        bad |= json_object_set_new(o, "uuid", json_string(g->uuid));
    if (g->paused)
        bad |= json_object_set_new(o, "paused", json_true());
    if (g->has_limits)
        bad |= json_object_set_new(o, "limits",
                                   json_pack("{sIsIsI}", "floor", (json_int_t)g->floor_bytes,
                                             "ceiling", (json_int_t)g->ceiling_bytes, "weight",
                                             (json_int_t)g->weight));
    if (g->added)
        bad |= json_object_set_new(
            o, "added", json_pack("{ssss}", "qmp", g->qmp_path, "channel", g->channel_path));
    if (g->policy[0])
        bad |= json_object_set_new(o, "policy", json_string(g->policy));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* See state.h. */
int state_serialize(const struct state *st, char **ret_text, size_t *ret_len)
{
    /* One entry per line: readable, and a change shows as a changed line. */
    size_t len = 0, cap = 64 + st->n * 320;
    char *out = malloc(cap);
    if (!out)
        return -ENOMEM;
    len = (size_t)snprintf(out, cap, "{\"version\":%d,\"guests\":[", STATE_VERSION);
    for (size_t i = 0; i < st->n; i++) {
        json_t *o = guest_json(&st->guests[i]);
        char *entry = o ? json_dumps(o, JSON_COMPACT) : NULL;
        json_decref(o);
        size_t n = entry ? strlen(entry) : 0;
        if (entry && len + n + 8 > cap) {
            size_t ncap = (len + n + 8) * 2;
            char *p = realloc(out, ncap);
            if (p) {
                out = p;
                cap = ncap;
            } else {
                free(entry);
                entry = NULL;
            }
        }
        if (!entry) {
            free(out);
            return -ENOMEM;
        }
        len += (size_t)snprintf(out + len, cap - len, "%s\n%s", i ? "," : "", entry);
        free(entry);
    }
    if (len + 8 > cap) {
        char *p = realloc(out, len + 8);
        if (!p) {
            free(out);
            return -ENOMEM;
        }
        out = p;
        cap = len + 8;
    }
    len += (size_t)snprintf(out + len, cap - len, "%s]}\n", st->n ? "\n" : "");
    *ret_text = out;
    *ret_len = len;
    return 0;
}

static int fail(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t cap, const char *fmt, ...)
{
    if (err && cap) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, cap, fmt, ap);
        va_end(ap);
    }
    return -EINVAL;
}

static bool uuid_valid(const char *s)
{
    if (strlen(s) != STATE_UUID_LEN)
        return false;
    for (int i = 0; i < STATE_UUID_LEN; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* Only these keys may appear in an object; anything else is a typo or a newer format. */
static int check_keys(const json_t *o, const char *const *allowed, const char *what, char *err,
                      size_t cap)
{
    const char *key;
    json_t *v;
    json_object_foreach ((json_t *)o, key, v) {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok |= strcmp(key, *a) == 0;
        if (!ok)
            return fail(err, cap, "%s: unknown key \"%s\"", what, key);
    }
    return 0;
}

static int size_of(const json_t *o, const char *key, uint64_t *ret, const char *what, char *err,
                   size_t cap)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return fail(err, cap, "%s: \"%s\" is not a size in bytes above 0", what, key);
    *ret = (uint64_t)json_integer_value(v);
    return 0;
}

static int path_of(const json_t *o, const char *key, char *out, const char *what, char *err,
                   size_t cap)
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || s[0] != '/' || strlen(s) >= CONFIG_PATH_MAX)
        return fail(err, cap, "%s: \"%s\" is not an absolute path under %d bytes", what, key,
                    CONFIG_PATH_MAX);
    strcpy(out, s);
    return 0;
}

/* A policy line as the policy writes it: printable, one line, short enough. Its words are
 * the policy's to check. */
static bool policy_text_valid(const json_t *v)
{
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != strlen(s) || strlen(s) >= STATE_POLICY_MAX)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static int parse_guest(const json_t *o, size_t index, int version, struct state_guest *g, char *err,
                       size_t cap)
{
    static const char *const keys_v1[] = {"name", "uuid", "paused", "limits", "added", NULL};
    static const char *const keys[] = {"name", "uuid", "paused", "limits", "added", "policy", NULL};
    static const char *const limit_keys[] = {"floor", "ceiling", "weight", NULL};
    static const char *const added_keys[] = {"qmp", "channel", NULL};
    char what[96];
    const json_t *v;

    snprintf(what, sizeof(what), "guests[%zu]", index);
    if (!json_is_object(o))
        return fail(err, cap, "%s: not an object", what);
    if (check_keys(o, version >= 2 ? keys : keys_v1, what, err, cap) < 0)
        return -EINVAL;
    memset(g, 0, sizeof(*g));
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!name || !config_guest_name_valid(name))
        return fail(err, cap, "%s: no valid \"name\"", what);
    strcpy(g->name, name);
    snprintf(what, sizeof(what), "guest %s", name);
    if ((v = json_object_get(o, "uuid"))) {
        if (!json_is_string(v) || !uuid_valid(json_string_value(v)))
            return fail(err, cap, "%s: \"uuid\" is not a UUID", what);
        strcpy(g->uuid, json_string_value(v));
    }
    if ((v = json_object_get(o, "paused"))) {
        if (!json_is_boolean(v))
            return fail(err, cap, "%s: \"paused\" is not true or false", what);
        g->paused = json_is_true(v);
    }
    if ((v = json_object_get(o, "limits"))) {
        uint64_t weight;
        if (!json_is_object(v) || check_keys(v, limit_keys, what, err, cap) < 0)
            return fail(err, cap, "%s: \"limits\" is not {floor, ceiling, weight}", what);
        if (size_of(v, "floor", &g->floor_bytes, what, err, cap) < 0 ||
            size_of(v, "ceiling", &g->ceiling_bytes, what, err, cap) < 0 ||
            size_of(v, "weight", &weight, what, err, cap) < 0)
            return -EINVAL;
        if (g->floor_bytes > g->ceiling_bytes)
            return fail(err, cap, "%s: floor above ceiling", what);
        if (weight > CONFIG_MAX_WEIGHT)
            return fail(err, cap, "%s: weight over %d", what, CONFIG_MAX_WEIGHT);
        g->has_limits = true;
        g->weight = (uint32_t)weight;
    }
    if ((v = json_object_get(o, "added"))) {
        if (!json_is_object(v) || check_keys(v, added_keys, what, err, cap) < 0)
            return fail(err, cap, "%s: \"added\" is not {qmp, channel}", what);
        if (path_of(v, "qmp", g->qmp_path, what, err, cap) < 0 ||
            path_of(v, "channel", g->channel_path, what, err, cap) < 0)
            return -EINVAL;
        if (!g->has_limits)
            return fail(err, cap, "%s: an added guest needs its limits", what);
        if (g->uuid[0])
            return fail(err, cap, "%s: a libvirt guest cannot be added at run time", what);
        g->added = true;
    }
    if ((v = json_object_get(o, "policy"))) {
        if (policy_text_valid(v) && json_string_value(v)[0])
            strcpy(g->policy, json_string_value(v));
        else
            g->policy_bad = true;
    }
    return 0;
}

/* Every entry of a parsed root into *st; -EINVAL (err set) or -ENOMEM. */
static int parse_root(const json_t *root, struct state *st, char *err, size_t err_cap)
{
    static const char *const keys[] = {"version", "guests", NULL};
    if (!json_is_object(root))
        return fail(err, err_cap, "not a JSON object");
    if (check_keys(root, keys, "state", err, err_cap) < 0)
        return -EINVAL;
    const json_t *version = json_object_get(root, "version");
    const json_t *guests = json_object_get(root, "guests");
    if (!json_is_integer(version) || json_integer_value(version) < STATE_VERSION_MIN ||
        json_integer_value(version) > STATE_VERSION)
        return fail(err, err_cap, "\"version\" is not %d to %d", STATE_VERSION_MIN, STATE_VERSION);
    if (!json_is_array(guests) || json_array_size(guests) > STATE_MAX_GUESTS)
        return fail(err, err_cap, "\"guests\" is not an array of at most %d entries",
                    STATE_MAX_GUESTS);
    for (size_t i = 0; i < json_array_size(guests); i++) {
        struct state_guest g;
        if (parse_guest(json_array_get(guests, i), i, (int)json_integer_value(version), &g, err,
                        err_cap) < 0)
            return -EINVAL;
        if (state_find(st, g.name, g.uuid))
            return fail(err, err_cap, "guest %s: listed twice", g.name);
        if (state_put(st, &g) < 0) {
            fail(err, err_cap, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

/* See state.h. */
int state_parse(const char *text, size_t len, struct state *ret, char *err, size_t err_cap)
{
    json_error_t jerr;
    struct state st;

    if (len > STATE_MAX_TEXT)
        return fail(err, err_cap, "over %u bytes", STATE_MAX_TEXT);
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return fail(err, err_cap, "not JSON: %s (line %d)", jerr.text, jerr.line);
    state_init(&st);
    int r = parse_root(root, &st, err, err_cap);
    json_decref(root);
    if (r < 0) {
        state_free(&st);
        return r;
    }
    *ret = st;
    return 0;
}
