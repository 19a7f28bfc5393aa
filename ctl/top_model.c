/* bellowsctl top's rows: read from a `list` reply, sorted, formatted as text. */
#include "ctl/top_model.h"

#include "ctl/size_text.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

static const char *const level_names[] = {"none", "low", "medium", "critical"};

/* See top_model.h. */
const char *top_sort_name(enum top_sort s)
{
    static const char *const names[] = {"pressure", "memory", "time", "name"};
    return s < TOP_SORT_COUNT ? names[s] : "?";
}

static unsigned level_of(const char *name)
{
    for (unsigned i = 0; name && i < 4; i++)
        if (strcmp(level_names[i], name) == 0)
            return i;
    return 0;
}

/* A size that may be null. */
static bool size_of(json_t *v, uint64_t *ret)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *ret = (uint64_t)json_integer_value(v);
    return true;
}

static void copy(char *dst, size_t cap, json_t *v)
{
    const char *s = json_string_value(v);
    snprintf(dst, cap, "%s", s ? s : "");
}

/* "2026-12-06T04:11:19.123Z" as wall-clock ms; -1 when it does not parse. */
static int64_t parse_iso_ms(const char *text)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *rest = text ? strptime(text, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (!rest)
        return -1;
    int ms = 0;
    if (rest[0] == '.')
        ms = atoi(rest + 1);
    return (int64_t)timegm(&tm) * 1000 + ms;
}

/* STATE as `bellowsctl list` shows it: paused, a link down, or managed. */
static void state_of(json_t *g, char *buf, size_t cap)
{
    json_t *libvirt = json_object_get(g, "libvirt");
    json_t *qmp = json_object_get(g, "qmp");
    json_t *balloon = json_object_get(g, "balloon");
    const char *s = "managed";
    if (json_is_true(json_object_get(g, "paused")))
        s = "paused";
    else if (json_is_object(libvirt) && !json_is_true(json_object_get(libvirt, "connected")))
        s = "no-libvirt";
    else if (json_is_object(qmp) && !json_is_true(json_object_get(qmp, "ready")))
        s = "no-qmp";
    else if (!json_is_object(libvirt) && !json_is_object(qmp) &&
             json_is_false(json_object_get(balloon, "ready")))
        s = "no-balloon";
    else if (!json_is_true(json_object_get(json_object_get(g, "channel"), "connected")))
        s = "no-agent";
    snprintf(buf, cap, "%s", s);
}

static void parse_guest(json_t *j, struct top_guest *g)
{
    memset(g, 0, sizeof(*g));
    copy(g->name, sizeof(g->name), json_object_get(j, "name"));
    g->level = level_of(json_string_value(json_object_get(j, "level")));
    g->paused = json_is_true(json_object_get(j, "paused"));
    json_t *psi = json_object_get(j, "psi_some_avg10");
    g->psi_known = json_is_number(psi);
    g->psi = g->psi_known ? json_number_value(psi) : 0;
    json_t *balloon = json_object_get(j, "balloon");
    g->actual_known = size_of(json_object_get(balloon, "actual"), &g->actual);
    g->target_known = size_of(json_object_get(balloon, "target"), &g->target);
    size_of(json_object_get(j, "floor"), &g->floor);
    size_of(json_object_get(j, "ceiling"), &g->ceiling);
    g->avail_known = size_of(json_object_get(j, "mem_available"), &g->avail);
    uint64_t total;
    if (g->avail_known && size_of(json_object_get(j, "mem_total"), &total) && total >= g->avail) {
        g->used_known = true;
        g->used = total - g->avail;
    }
    state_of(j, g->state, sizeof(g->state));
    json_t *last = json_object_get(j, "last_move");
    if (json_is_object(last)) {
        g->last_known = true;
        copy(g->action, sizeof(g->action), json_object_get(last, "action"));
        copy(g->reason, sizeof(g->reason), json_object_get(last, "reason"));
        copy(g->result, sizeof(g->result), json_object_get(last, "result"));
        g->last_ms = parse_iso_ms(json_string_value(json_object_get(last, "time")));
    }
}

/* See top_model.h. */
int top_frame_parse(const char *json_text, struct top_frame *ret, char *err, size_t err_cap)
{
    json_error_t jerr;
    json_t *root = json_loads(json_text, 0, &jerr);
    if (!root) {
        snprintf(err, err_cap, "bad reply from bellowsd: %s", jerr.text);
        return -EINVAL;
    }
    int r = -EINVAL;
    if (!json_is_true(json_object_get(root, "ok"))) {
        const char *e = json_string_value(json_object_get(root, "error"));
        snprintf(err, err_cap, "bellowsd: %s", e ? e : "not ok");
        goto out;
    }
    json_t *guests = json_object_get(root, "guests");
    if (!json_is_array(guests)) {
        snprintf(err, err_cap, "bad reply from bellowsd: no guest list");
        goto out;
    }
    struct top_frame f;
    memset(&f, 0, sizeof(f));
    f.dry_run = json_is_true(json_object_get(root, "dry_run"));
    json_t *host = json_object_get(root, "host");
    if (json_is_object(host)) {
        f.host_known = true;
        f.host_psi = json_number_value(json_object_get(host, "psi_some_avg10"));
        size_of(json_object_get(host, "mem_total"), &f.host_total);
        size_of(json_object_get(host, "mem_available"), &f.host_avail);
        f.host_pressure = json_is_true(json_object_get(host, "pressure"));
        f.budget_known = size_of(json_object_get(host, "budget"), &f.budget);
        f.held_known = size_of(json_object_get(host, "held"), &f.held);
    }
    f.n = json_array_size(guests);
    f.guests = calloc(f.n ? f.n : 1, sizeof(*f.guests));
    if (!f.guests) {
        snprintf(err, err_cap, "out of memory");
        r = -ENOMEM;
        goto out;
    }
    size_t i;
    json_t *g;
    json_array_foreach (guests, i, g) {
        parse_guest(g, &f.guests[i]);
        f.levels[f.guests[i].level]++;
    }
    *ret = f;
    r = 0;
out:
    json_decref(root);
    return r;
}

/* See top_model.h. */
void top_frame_free(struct top_frame *f)
{
    free(f->guests);
    memset(f, 0, sizeof(*f));
}

static int cmp_name(const struct top_guest *a, const struct top_guest *b)
{
    return strcmp(a->name, b->name);
}

#define CMP_DESC(x, y)                                                                             \
    do {                                                                                           \
        if ((x) != (y))                                                                            \
            return (x) > (y) ? -1 : 1;                                                             \
    } while (0)

static int cmp_pressure(const void *pa, const void *pb)
{
    const struct top_guest *a = pa, *b = pb;
    CMP_DESC(a->level, b->level);
    CMP_DESC(a->psi_known ? a->psi : -1, b->psi_known ? b->psi : -1);
    return cmp_name(a, b);
}

static int cmp_memory(const void *pa, const void *pb)
{
    const struct top_guest *a = pa, *b = pb;
    CMP_DESC(a->actual_known ? a->actual : 0, b->actual_known ? b->actual : 0);
    return cmp_name(a, b);
}

static int cmp_time(const void *pa, const void *pb)
{
    const struct top_guest *a = pa, *b = pb;
    CMP_DESC(a->last_known ? a->last_ms : INT64_MIN, b->last_known ? b->last_ms : INT64_MIN);
    return cmp_name(a, b);
}

static int cmp_names(const void *pa, const void *pb)
{
    return cmp_name(pa, pb);
}

/* See top_model.h. */
void top_frame_sort(struct top_frame *f, enum top_sort by)
{
    static int (*const cmp[])(const void *, const void *) = {cmp_pressure, cmp_memory, cmp_time,
                                                             cmp_names};
    if (by < TOP_SORT_COUNT && f->n > 1)
        qsort(f->guests, f->n, sizeof(*f->guests), cmp[by]);
}

/* "1.25G", "768M", "-". */
/* "12s", "5m", "3h", "2d", "-". */
static const char *age_text(bool known, int64_t then_ms, int64_t now_ms, char *buf, size_t cap)
{
    if (!known || then_ms < 0)
        return "-";
    int64_t s = (now_ms - then_ms) / 1000;
    if (s < 0)
        s = 0;
    if (s < 100)
        snprintf(buf, cap, "%" PRId64 "s", s);
    else if (s < 100 * 60)
        snprintf(buf, cap, "%" PRId64 "m", s / 60);
    else if (s < 48 * 3600)
        snprintf(buf, cap, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, cap, "%" PRId64 "d", s / 86400);
    return buf;
}

/* See top_model.h. */
void top_format_summary(const struct top_frame *f, int64_t now_ms, enum top_sort by, char *line1,
                        char *line2, size_t cap)
{
    time_t secs = (time_t)(now_ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char clock[16];
    strftime(clock, sizeof(clock), "%H:%M:%S", &tm);
    snprintf(line1, cap,
             "bellows top - %s  %zu guests: %zu critical, %zu medium, %zu low, %zu calm  "
             "sort: %s%s",
             clock, f->n, f->levels[3], f->levels[2], f->levels[1], f->levels[0], top_sort_name(by),
             f->dry_run ? "  DRY RUN (advisory)" : "");
    if (!f->host_known) {
        snprintf(line2, cap, "host: not read yet");
        return;
    }
    char avail[24], total[24], hold[64];
    ctl_hold_text(f->held_known, f->held, f->budget_known, f->budget, hold, sizeof(hold));
    snprintf(line2, cap, "host: PSI some 10s %.2f%%  available %s of %s%s%s  %s", f->host_psi,
             ctl_size_text(true, f->host_avail, avail, sizeof(avail)),
             ctl_size_text(true, f->host_total, total, sizeof(total)), hold[0] ? "  " : "", hold,
             f->host_pressure ? "UNDER PRESSURE" : "calm");
}

#define ROW_FORMAT "%-16.16s %-8s %6s %8s %8s %8s %8s %8s  %-7s %-14.14s %5s  %s"

/* See top_model.h. */
void top_format_columns(char *buf, size_t cap)
{
    snprintf(buf, cap, ROW_FORMAT, "NAME", "LEVEL", "PSI%", "BALLOON", "TARGET", "FLOOR", "CEILING",
             "USED", "LAST", "REASON", "AGE", "STATE");
}

/* See top_model.h. */
void top_format_row(const struct top_guest *g, int64_t now_ms, char *buf, size_t cap)
{
    char psi[16] = "-", a[24], t[24], fl[24], c[24], u[24], age[16];
    if (g->psi_known)
        snprintf(psi, sizeof(psi), "%.2f", g->psi);
    snprintf(buf, cap, ROW_FORMAT, g->name, level_names[g->level], psi,
             ctl_size_text(g->actual_known, g->actual, a, sizeof(a)),
             ctl_size_text(g->target_known, g->target, t, sizeof(t)),
             ctl_size_text(true, g->floor, fl, sizeof(fl)),
             ctl_size_text(true, g->ceiling, c, sizeof(c)),
             ctl_size_text(g->used_known, g->used, u, sizeof(u)), g->last_known ? g->action : "-",
             g->last_known ? g->reason : "-", age_text(g->last_known, g->last_ms, now_ms, age, 16),
             g->state);
}

/* See top_model.h. */
void top_format_csv_header(char *buf, size_t cap)
{
    snprintf(buf, cap,
             "time,name,level,psi_some_avg10,balloon_bytes,target_bytes,floor_bytes,"
             "ceiling_bytes,used_bytes,last_action,last_reason,last_age_s,state");
}

/* See top_model.h. */
void top_format_csv_row(const struct top_guest *g, int64_t now_ms, char *buf, size_t cap)
{
    char psi[24] = "", a[24] = "", t[24] = "", u[24] = "", age[24] = "";
    if (g->psi_known)
        snprintf(psi, sizeof(psi), "%.2f", g->psi);
    if (g->actual_known)
        snprintf(a, sizeof(a), "%" PRIu64, g->actual);
    if (g->target_known)
        snprintf(t, sizeof(t), "%" PRIu64, g->target);
    if (g->used_known)
        snprintf(u, sizeof(u), "%" PRIu64, g->used);
    if (g->last_known && g->last_ms >= 0)
        snprintf(age, sizeof(age), "%" PRId64, (now_ms - g->last_ms) / 1000);
    /* Guest names are [A-Za-z0-9._-]: nothing to quote. */
    snprintf(buf, cap, "%" PRId64 ",%s,%s,%s,%s,%s,%" PRIu64 ",%" PRIu64 ",%s,%s,%s,%s,%s",
             now_ms / 1000, g->name, level_names[g->level], psi, a, t, g->floor, g->ceiling, u,
             g->last_known ? g->action : "", g->last_known ? g->reason : "", age, g->state);
}
