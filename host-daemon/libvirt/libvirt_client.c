/* libvirt client: connection, discovery, balloon moves, every libvirt call on a worker
 * thread and every result back on the loop. See libvirt_client.h. */
#include "host-daemon/libvirt/libvirt_client.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>

#include "host-daemon/libvirt/libvirt_event_uv.h"
#include "host-daemon/libvirt/libvirt_worker.h"

#define URI_MAX 1024
#define UUID_BUF VIR_UUID_STRING_BUFLEN
#define MIN_TARGET_BYTES (UINT64_C(1) << 20)
#define STALE_BYTES (UINT64_C(1) << 20) /* a size this far from the expected one is news */
#define ERROR_MAX 256

/* ---- the loop side's records (loop thread only) ---- */

/* A running domain with a usable bellows channel. */
struct managed {
    struct managed *next;
    char uuid[UUID_BUF];
    char name[LIBVIRT_DOMAIN_NAME_MAX + 1];
    int domid;         /* libvirt's runtime id: a new one means a new QEMU process */
    bool actual_known; /* false after a reconnect until read again */
    uint64_t actual_bytes;
    uint64_t max_bytes; /* the domain's maximum, from its last read */
    bool seen;          /* scratch for rescan */
    bool moving;        /* a move job in flight: its done below is owed an answer */
    uint64_t move_seq;  /* which job that is: an answer for another one is ignored */
    libvirt_move_cb move_done;
    void *move_opaque;
};

/* A domain being looked at: a consider job in flight, or waiting to retry one. */
struct candidate {
    struct candidate *next;
    char uuid[UUID_BUF];
    char name[LIBVIRT_DOMAIN_NAME_MAX + 1];
    bool in_flight;
    bool again;          /* asked again while in flight: look once more */
    uint64_t backoff_ms; /* the last retry delay, 0 before the first failure */
    uint64_t retry_at;   /* loop ms of the next attempt, 0 when none is waiting */
};

/* What libvirt's callbacks reach: it outlives the backend until libvirt lets go of it
 * (the free callbacks), and may be told of a closed connection from any thread. */
struct lv_events {
    uv_mutex_t lock;
    unsigned refs;
    bool lost; /* the close callback ran */
    int lost_reason;
    struct libvirt_backend *b; /* loop thread only; NULL until connected, and after close */
    struct lv_pool *pool;
};

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_UP, CONN_CLOSING, CONN_WAITING };

struct libvirt_backend {
    uv_loop_t *loop;
    struct libvirt_backend_config cfg;
    char uri[URI_MAX];
    struct libvirt_backend_callbacks cb;
    void *opaque;
    struct lv_pool *pool;

    enum conn_state state;
    virConnectPtr conn; /* CONN_UP */
    struct lv_events *ev;
    int lifecycle_id, balloon_id, metadata_id;
    unsigned generation; /* bumped when a connection ends: late results are stale */
    uint64_t backoff_ms;
    uv_timer_t reconnect_timer;
    uv_timer_t retry_timer; /* candidates waiting to be looked at again */
    bool closing;
    int timers_open;
    uint64_t move_seq;

    struct managed *domains;
    struct candidate *candidates;
    char last_error[ERROR_MAX];
};

/* ---- jobs (run on a worker; done on the loop) ---- */

enum job_kind { JOB_CONNECT, JOB_CLOSE, JOB_LIST, JOB_CONSIDER, JOB_MOVE, JOB_METADATA };

enum verdict {
    V_MANAGE,      /* a running bellows guest */
    V_NOT_BELLOWS, /* running, no bellows channel: left alone */
    V_REJECT,      /* a bellows channel that cannot be used: said once, not retried */
    V_GONE,        /* not running (or no such domain) */
    V_FAILED,      /* libvirt failed: try again later */
};

struct listed {
    char uuid[UUID_BUF];
    int domid;
};

struct job {
    struct lv_job base; /* first */
    enum job_kind kind;
    struct libvirt_backend *b; /* for done only (loop thread) */
    unsigned generation;
    virConnectPtr conn; /* a reference of the job's own */
    struct lv_events *ev;

    /* inputs */
    char uri[URI_MAX];
    int keepalive_interval_s;
    unsigned keepalive_count;
    char uuid[UUID_BUF];
    struct libvirt_domain_defaults defaults;
    uint64_t target, expect, move_seq;
    int lifecycle_id, balloon_id, metadata_id; /* CONNECT out, CLOSE in */

    /* results */
    int status;
    char error[ERROR_MAX];
    enum verdict verdict;
    int domid;
    char name[LIBVIRT_DOMAIN_NAME_MAX + 1];
    bool have_size;
    uint64_t actual, max;
    struct libvirt_domain_info *info;
    struct listed *list;
    size_t n_list;
};

static void events_unref(void *opaque)
{
    struct lv_events *ev = opaque;
    uv_mutex_lock(&ev->lock);
    bool last = --ev->refs == 0;
    uv_mutex_unlock(&ev->lock);
    if (!last)
        return;
    lv_pool_unref(ev->pool);
    uv_mutex_destroy(&ev->lock);
    free(ev);
}

static void events_ref(struct lv_events *ev)
{
    uv_mutex_lock(&ev->lock);
    ev->refs++;
    uv_mutex_unlock(&ev->lock);
}

static void job_error(struct job *j, const char *what)
{
    snprintf(j->error, sizeof(j->error), "%s: %s", what, virGetLastErrorMessage());
}

/* Drop everything a job holds. Any thread. */
static void job_free(struct job *j)
{
    if (j->conn)
        virConnectClose(j->conn); /* our reference only, unless it is the last */
    if (j->ev)
        events_unref(j->ev);
    free(j->info);
    free(j->list);
    free(j);
}

static void close_connection(virConnectPtr conn, struct lv_events *ev, int lifecycle_id,
                             int balloon_id, int metadata_id);

static void release_job(struct lv_job *base)
{
    struct job *j = (struct job *)base;
    /* A connection made for a backend that closed meanwhile: close it here. */
    if (j->kind == JOB_CONNECT && j->status == 0 && j->conn) {
        close_connection(j->conn, j->ev, j->lifecycle_id, j->balloon_id, j->metadata_id);
        j->conn = NULL;
    }
    job_free(j);
}

/* ---- libvirt's callbacks (the loop's thread; the close callback any thread) ---- */

static void consider_soon(struct libvirt_backend *b, const char *uuid, const char *name);
static void forget(struct libvirt_backend *b, struct managed *m);
static struct managed *find(const struct libvirt_backend *b, const char *uuid);
static void set_actual(struct libvirt_backend *b, struct managed *m, uint64_t bytes);
static int submit(struct libvirt_backend *b, enum job_kind kind, const char *uuid);

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct lv_events *ev = opaque;
    struct libvirt_backend *b = ev->b;
    char uuid[UUID_BUF];
    struct managed *m;

    (void)conn;
    (void)detail;
    if (!b || b->closing || virDomainGetUUIDString(dom, uuid) < 0)
        return 0;
    if (event == VIR_DOMAIN_EVENT_STARTED) {
        consider_soon(b, uuid, virDomainGetName(dom));
    } else if (event == VIR_DOMAIN_EVENT_STOPPED) {
        /* Shut down, destroyed, crashed, saved, or migrated away (detail MIGRATED). */
        if ((m = find(b, uuid)) != NULL)
            forget(b, m);
    }
    return 0;
}

static void on_balloon_change(virConnectPtr conn, virDomainPtr dom, unsigned long long kib,
                              void *opaque)
{
    struct lv_events *ev = opaque;
    struct libvirt_backend *b = ev->b;
    char uuid[UUID_BUF];
    struct managed *m;

    (void)conn;
    if (b && !b->closing && virDomainGetUUIDString(dom, uuid) == 0 && (m = find(b, uuid)) != NULL)
        set_actual(b, m, (uint64_t)kib * 1024);
}

/* Our metadata changed on a managed domain: read the limits again (on a worker). */
static void on_metadata_change(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                               void *opaque)
{
    struct lv_events *ev = opaque;
    struct libvirt_backend *b = ev->b;
    char uuid[UUID_BUF];

    (void)conn;
    if (!b || b->closing || type != VIR_DOMAIN_METADATA_ELEMENT || nsuri == NULL ||
        strcmp(nsuri, LIBVIRT_BELLOWS_XMLNS) != 0)
        return;
    if (virDomainGetUUIDString(dom, uuid) < 0 || find(b, uuid) == NULL)
        return;
    submit(b, JOB_METADATA, uuid);
}

/* libvirt says the connection closed (EOF, error, keepalive). It may say so on a worker
 * thread (the one whose call saw it): note it and wake the loop. */
static void on_connection_closed(virConnectPtr conn, int reason, void *opaque)
{
    struct lv_events *ev = opaque;

    (void)conn;
    if (reason == VIR_CONNECT_CLOSE_REASON_CLIENT)
        return;
    uv_mutex_lock(&ev->lock);
    ev->lost = true;
    ev->lost_reason = reason;
    uv_mutex_unlock(&ev->lock);
    lv_pool_wake(ev->pool);
}

/* ---- what the workers run ---- */

/* Deregister and close; on a worker (or at worst the loop, at shutdown). */
static void close_connection(virConnectPtr conn, struct lv_events *ev, int lifecycle_id,
                             int balloon_id, int metadata_id)
{
    if (lifecycle_id >= 0)
        virConnectDomainEventDeregisterAny(conn, lifecycle_id);
    if (balloon_id >= 0)
        virConnectDomainEventDeregisterAny(conn, balloon_id);
    if (metadata_id >= 0)
        virConnectDomainEventDeregisterAny(conn, metadata_id);
    if (ev) {
        /* Once this returns the close callback cannot run: its reference can go. (Its free
         * callback is not used: drivers without close callbacks accept one and never call
         * it.) */
        virConnectUnregisterCloseCallback(conn, on_connection_closed);
        events_unref(ev);
    }
    virConnectClose(conn);
    virResetLastError(); /* deregistering on a dead connection fails; that is expected */
}

static void run_connect(struct job *j)
{
    virConnectPtr conn = virConnectOpen(j->uri);
    j->lifecycle_id = j->balloon_id = j->metadata_id = -1;
    if (!conn) {
        job_error(j, "virConnectOpen");
        j->status = -ENOTCONN;
        return;
    }
    /* Keepalive exists on connections to a daemon; an in-process driver (test:///) has
     * nothing to keep alive and says "not supported". */
    if (virConnectSetKeepAlive(conn, j->keepalive_interval_s, j->keepalive_count) < 0) {
        if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) {
            job_error(j, "virConnectSetKeepAlive");
            goto fail;
        }
        virResetLastError();
    }
    events_ref(j->ev); /* the close callback's, dropped by close_connection() */
    if (virConnectRegisterCloseCallback(conn, on_connection_closed, j->ev, NULL) < 0) {
        events_unref(j->ev);
        job_error(j, "virConnectRegisterCloseCallback");
        goto fail;
    }
    /* Events before the listing, so a domain starting in between is not missed. */
    events_ref(j->ev);
    j->lifecycle_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                                       VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle),
                                                       j->ev, events_unref);
    if (j->lifecycle_id < 0)
        events_unref(j->ev);
    events_ref(j->ev);
    j->balloon_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
                                                     VIR_DOMAIN_EVENT_CALLBACK(on_balloon_change),
                                                     j->ev, events_unref);
    if (j->balloon_id < 0)
        events_unref(j->ev);
    events_ref(j->ev);
    j->metadata_id = virConnectDomainEventRegisterAny(
        conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
        VIR_DOMAIN_EVENT_CALLBACK(on_metadata_change), j->ev, events_unref);
    if (j->metadata_id < 0)
        events_unref(j->ev);
    if (j->lifecycle_id < 0 || j->balloon_id < 0 || j->metadata_id < 0) {
        job_error(j, "virConnectDomainEventRegisterAny");
        close_connection(conn, j->ev, j->lifecycle_id, j->balloon_id, j->metadata_id);
        j->lifecycle_id = j->balloon_id = j->metadata_id = -1;
        j->status = -ENOTCONN;
        return;
    }
    j->conn = conn;
    j->status = 0;
    return;

fail:
    virConnectClose(conn);
    j->status = -ENOTCONN;
}

static void run_close(struct job *j)
{
    close_connection(j->conn, j->ev, j->lifecycle_id, j->balloon_id, j->metadata_id);
    j->conn = NULL; /* that was the backend's reference */
}

static void run_list(struct job *j)
{
    virDomainPtr *doms = NULL;
    int n = virConnectListAllDomains(j->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        job_error(j, "virConnectListAllDomains");
        j->status = -EIO;
        return;
    }
    j->list = calloc((size_t)n + 1, sizeof(*j->list));
    for (int i = 0; i < n; i++) {
        if (j->list && virDomainGetUUIDString(doms[i], j->list[j->n_list].uuid) == 0) {
            j->list[j->n_list].domid = (int)virDomainGetID(doms[i]);
            j->n_list++;
        }
        virDomainFree(doms[i]);
    }
    free(doms);
    j->status = j->list ? 0 : -ENOMEM;
}

/* The domain of j->uuid if it runs; else NULL with the verdict set. */
static virDomainPtr lookup_running(struct job *j)
{
    virDomainPtr dom = virDomainLookupByUUIDString(j->conn, j->uuid);
    if (!dom) {
        bool gone = virGetLastErrorCode() == VIR_ERR_NO_DOMAIN;
        job_error(j, "virDomainLookupByUUIDString");
        j->verdict = gone ? V_GONE : V_FAILED;
        return NULL;
    }
    snprintf(j->name, sizeof(j->name), "%s", virDomainGetName(dom));
    int active = virDomainIsActive(dom);
    if (active <= 0) {
        if (active < 0)
            job_error(j, "virDomainIsActive");
        j->verdict = active == 0 ? V_GONE : V_FAILED;
        virDomainFree(dom);
        return NULL;
    }
    j->domid = (int)virDomainGetID(dom);
    return dom;
}

static bool read_size(struct job *j, virDomainPtr dom)
{
    virDomainInfo info;
    if (virDomainGetInfo(dom, &info) < 0) {
        job_error(j, "virDomainGetInfo");
        return false;
    }
    j->have_size = true;
    j->actual = (uint64_t)info.memory * 1024;
    j->max = (uint64_t)info.maxMem * 1024;
    return true;
}

/* The domain's XML, parsed into j->info; false with the verdict set when not usable. */
static bool read_info(struct job *j, virDomainPtr dom)
{
    char *xml = virDomainGetXMLDesc(dom, 0);
    if (!xml) {
        job_error(j, "virDomainGetXMLDesc");
        j->verdict = V_FAILED;
        return false;
    }
    j->info = calloc(1, sizeof(*j->info));
    int r = j->info ? libvirt_domain_xml_parse(xml, strlen(xml), &j->defaults, j->info) : -ENOMEM;
    free(xml);
    if (r == -ENOMEM) {
        snprintf(j->error, sizeof(j->error), "out of memory");
        j->verdict = V_FAILED;
        return false;
    }
    if (r < 0) {
        snprintf(j->error, sizeof(j->error), "its domain XML could not be parsed");
        j->verdict = V_REJECT;
        return false;
    }
    return true;
}

static void run_consider(struct job *j)
{
    virDomainPtr dom = lookup_running(j);
    if (!dom)
        return;
    if (!read_info(j, dom))
        goto out;
    if (!j->info->has_channel) {
        j->verdict = V_NOT_BELLOWS;
        goto out;
    }
    if (j->info->channel_path[0] == '\0') {
        snprintf(j->error, sizeof(j->error), "%.200s", j->info->errors);
        j->verdict = V_REJECT;
        goto out;
    }
    if (!read_size(j, dom)) {
        j->verdict = V_FAILED;
        goto out;
    }
    j->verdict = V_MANAGE;
out:
    virDomainFree(dom);
}

static void run_metadata(struct job *j)
{
    virDomainPtr dom = lookup_running(j);
    if (!dom)
        return;
    if (read_info(j, dom))
        j->verdict = V_MANAGE;
    virDomainFree(dom);
}

static void run_move(struct job *j)
{
    virDomainPtr dom = lookup_running(j);
    if (!dom) {
        j->status = j->verdict == V_GONE ? -ENOENT : -EIO;
        return;
    }
    /* Never act blind: the balloon's size now, and the domain's maximum. */
    if (!read_size(j, dom)) {
        j->status = -EIO;
        goto out;
    }
    uint64_t off = j->actual > j->expect ? j->actual - j->expect : j->expect - j->actual;
    if (j->expect && off > STALE_BYTES) {
        snprintf(j->error, sizeof(j->error),
                 "the balloon was at %llu KiB, not %llu KiB as decided: decide again",
                 (unsigned long long)(j->actual / 1024), (unsigned long long)(j->expect / 1024));
        j->status = -ESTALE;
        goto out;
    }
    if (j->target < MIN_TARGET_BYTES || j->target > j->max) {
        snprintf(j->error, sizeof(j->error), "target outside 1 MiB..the domain's maximum memory");
        j->status = -ERANGE;
        goto out;
    }
    if (virDomainSetMemoryFlags(dom, (unsigned long)(j->target / 1024), VIR_DOMAIN_AFFECT_LIVE) <
        0) {
        job_error(j, "virDomainSetMemoryFlags");
        j->status = -EIO;
        goto out;
    }
    j->status = 0;
out:
    virDomainFree(dom);
}

static void run_job(struct lv_job *base)
{
    struct job *j = (struct job *)base;
    switch (j->kind) {
    case JOB_CONNECT:
        run_connect(j);
        break;
    case JOB_CLOSE:
        run_close(j);
        break;
    case JOB_LIST:
        run_list(j);
        break;
    case JOB_CONSIDER:
        run_consider(j);
        break;
    case JOB_MOVE:
        run_move(j);
        break;
    case JOB_METADATA:
        run_metadata(j);
        break;
    }
    /* Our reference goes here, on the worker: should it be the last one, closing the
     * connection is a round trip to libvirtd, which the loop must never wait for. */
    if (j->kind != JOB_CONNECT && j->conn) {
        virConnectClose(j->conn);
        j->conn = NULL;
    }
}

/* ---- the loop side ---- */

/* See libvirt_client.h. */
void libvirt_backend_config_defaults(struct libvirt_backend_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->uri = "qemu:///system";
    cfg->defaults.floor_bytes = UINT64_C(256) << 20;
    cfg->defaults.weight = 100;
    cfg->keepalive_interval_s = 5;
    cfg->keepalive_count = 3;
    cfg->reconnect_min_ms = 500;
    cfg->reconnect_max_ms = 30000;
    cfg->retry_min_ms = 1000;
    cfg->retry_max_ms = 60000;
    cfg->max_threads = 8;
}

/* See libvirt_client.h. */
uint64_t libvirt_backend_next_backoff(const struct libvirt_backend_config *cfg,
                                      uint64_t previous_ms)
{
    uint64_t next = previous_ms == 0 ? cfg->reconnect_min_ms : previous_ms * 2;
    if (next < cfg->reconnect_min_ms)
        next = cfg->reconnect_min_ms;
    if (next > cfg->reconnect_max_ms)
        next = cfg->reconnect_max_ms;
    return next;
}

/* See libvirt_client.h. */
uint64_t libvirt_backend_next_retry(const struct libvirt_backend_config *cfg, uint64_t previous_ms)
{
    uint64_t next = previous_ms == 0 ? cfg->retry_min_ms : previous_ms * 2;
    if (next < cfg->retry_min_ms)
        next = cfg->retry_min_ms;
    if (next > cfg->retry_max_ms)
        next = cfg->retry_max_ms;
    return next;
}

static struct managed *find(const struct libvirt_backend *b, const char *uuid)
{
    for (struct managed *m = b->domains; m; m = m->next)
        if (strcmp(m->uuid, uuid) == 0)
            return m;
    return NULL;
}

static struct candidate *find_candidate(const struct libvirt_backend *b, const char *uuid)
{
    for (struct candidate *c = b->candidates; c; c = c->next)
        if (strcmp(c->uuid, uuid) == 0)
            return c;
    return NULL;
}

static void drop_candidate(struct libvirt_backend *b, struct candidate *c)
{
    for (struct candidate **p = &b->candidates; *p; p = &(*p)->next) {
        if (*p == c) {
            *p = c->next;
            break;
        }
    }
    free(c);
}

/* A move owed its answer: give it now (status < 0). */
static void fail_move(struct libvirt_backend *b, struct managed *m, int status, const char *why)
{
    if (!m->moving)
        return;
    m->moving = false;
    if (m->move_done)
        m->move_done(b, m->uuid, status, why, m->move_opaque);
}

/* Unlink m, tell the daemon, free it. */
static void forget(struct libvirt_backend *b, struct managed *m)
{
    for (struct managed **p = &b->domains; *p; p = &(*p)->next) {
        if (*p == m) {
            *p = m->next;
            break;
        }
    }
    fail_move(b, m, -ENOENT, "the domain stopped");
    if (b->cb.domain_disappeared)
        b->cb.domain_disappeared(b, m->uuid, m->name, b->opaque);
    free(m);
}

static void set_actual(struct libvirt_backend *b, struct managed *m, uint64_t bytes)
{
    bool changed = !m->actual_known || m->actual_bytes != bytes;
    m->actual_known = true;
    m->actual_bytes = bytes;
    if (changed && b->cb.balloon_changed)
        b->cb.balloon_changed(b, m->uuid, bytes, b->opaque);
}

static void job_done(struct lv_job *base);

/* A job for the current connection (a reference to it taken), made and queued; `target`
 * and `expect` are a move's (set before a worker can see the job). */
static int submit_move(struct libvirt_backend *b, enum job_kind kind, const char *uuid,
                       uint64_t target, uint64_t expect, uint64_t move_seq)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j)
        return -ENOMEM;
    j->target = target;
    j->expect = expect;
    j->move_seq = move_seq;
    j->base.run = run_job;
    j->base.done = job_done;
    j->base.release = release_job;
    j->kind = kind;
    j->b = b;
    j->generation = b->generation;
    j->lifecycle_id = j->balloon_id = j->metadata_id = -1;
    j->defaults = b->cfg.defaults;
    if (uuid) {
        snprintf(j->uuid, sizeof(j->uuid), "%s", uuid);
        snprintf(j->base.key, sizeof(j->base.key), "%s", uuid);
    }
    if (kind != JOB_CONNECT && kind != JOB_CLOSE) {
        if (!b->conn) {
            free(j);
            return -ENOTCONN;
        }
        virConnectRef(b->conn);
        j->conn = b->conn;
    }
    int r = lv_pool_submit(b->pool, &j->base);
    if (r < 0)
        job_free(j);
    return r;
}

static int submit(struct libvirt_backend *b, enum job_kind kind, const char *uuid)
{
    return submit_move(b, kind, uuid, 0, 0, 0);
}

static void schedule_retry_timer(struct libvirt_backend *b);

/* Look at a domain on a worker, unless that is under way (then once more after it). */
static void consider_soon(struct libvirt_backend *b, const char *uuid, const char *name)
{
    struct candidate *c = find_candidate(b, uuid);
    if (!c) {
        c = calloc(1, sizeof(*c));
        if (!c)
            return;
        snprintf(c->uuid, sizeof(c->uuid), "%s", uuid);
        c->next = b->candidates;
        b->candidates = c;
    }
    if (name && name[0])
        snprintf(c->name, sizeof(c->name), "%s", name);
    if (c->in_flight) {
        c->again = true;
        return;
    }
    c->retry_at = 0;
    if (submit(b, JOB_CONSIDER, uuid) == 0)
        c->in_flight = true;
    else
        drop_candidate(b, c); /* not connected: the reconnect's listing brings it back */
}

static void on_retry_timer(uv_timer_t *t)
{
    struct libvirt_backend *b = t->data;
    uint64_t now = uv_now(b->loop);
    for (struct candidate *c = b->candidates, *next; c; c = next) {
        next = c->next;
        if (!c->in_flight && c->retry_at && c->retry_at <= now)
            consider_soon(b, c->uuid, NULL);
    }
    schedule_retry_timer(b);
}

/* One timer for every domain waiting to be looked at again: the earliest. */
static void schedule_retry_timer(struct libvirt_backend *b)
{
    uint64_t now = uv_now(b->loop), first = 0;
    for (struct candidate *c = b->candidates; c; c = c->next)
        if (!c->in_flight && c->retry_at && (!first || c->retry_at < first))
            first = c->retry_at;
    if (!first) {
        uv_timer_stop(&b->retry_timer);
        return;
    }
    uv_timer_start(&b->retry_timer, on_retry_timer, first > now ? first - now : 0, 0);
}

static void on_reconnect_timer(uv_timer_t *t);

static void connect_now(struct libvirt_backend *b)
{
    struct job *j = calloc(1, sizeof(*j));
    struct lv_events *ev = calloc(1, sizeof(*ev));
    if (!j || !ev || uv_mutex_init(&ev->lock) < 0) {
        free(j);
        free(ev);
        goto retry;
    }
    ev->refs = 1; /* the job's */
    ev->pool = b->pool;
    lv_pool_ref(b->pool);
    j->base.run = run_job;
    j->base.done = job_done;
    j->base.release = release_job;
    j->kind = JOB_CONNECT;
    j->b = b;
    j->generation = b->generation;
    j->ev = ev;
    snprintf(j->base.key, sizeof(j->base.key), "connection");
    snprintf(j->uri, sizeof(j->uri), "%s", b->uri);
    j->keepalive_interval_s = b->cfg.keepalive_interval_s;
    j->keepalive_count = b->cfg.keepalive_count;
    if (lv_pool_submit(b->pool, &j->base) < 0) {
        job_free(j);
        goto retry;
    }
    b->state = CONN_CONNECTING;
    return;
retry:
    b->state = CONN_WAITING;
    b->backoff_ms = libvirt_backend_next_backoff(&b->cfg, b->backoff_ms);
    uv_timer_start(&b->reconnect_timer, on_reconnect_timer, b->backoff_ms, 0);
}

static void on_reconnect_timer(uv_timer_t *t)
{
    struct libvirt_backend *b = t->data;
    if (b->state == CONN_WAITING && !b->closing)
        connect_now(b);
}

/* Hand the connection to a worker to close (deregister, close); it is ours no more. */
static void close_conn_async(struct libvirt_backend *b)
{
    if (!b->conn)
        return;
    struct job *j = calloc(1, sizeof(*j));
    if (j) {
        j->base.run = run_job;
        j->base.done = job_done;
        j->base.release = release_job;
        j->base.must_run = true;
        j->kind = JOB_CLOSE;
        j->b = b;
        j->generation = b->generation;
        j->conn = b->conn; /* the backend's reference, handed over */
        j->ev = b->ev;     /* and its reference to the events */
        j->lifecycle_id = b->lifecycle_id;
        j->balloon_id = b->balloon_id;
        j->metadata_id = b->metadata_id;
        snprintf(j->base.key, sizeof(j->base.key), "connection");
        if (lv_pool_submit(b->pool, &j->base) < 0) {
            j->conn = NULL;
            j->ev = NULL;
            job_free(j);
            j = NULL;
        }
    }
    if (!j) {
        /* No thread: close here rather than leak it (only when memory ran out). */
        close_connection(b->conn, b->ev, b->lifecycle_id, b->balloon_id, b->metadata_id);
        if (b->ev)
            events_unref(b->ev);
    }
    if (b->ev)
        b->ev->b = NULL;
    b->conn = NULL;
    b->ev = NULL;
    b->lifecycle_id = b->balloon_id = b->metadata_id = -1;
}

/* Lost: forget every actual size (never act blind), keep the domains until the
 * reconnect's listing says which still run, close the old connection on a worker. */
static void connection_lost(struct libvirt_backend *b, const char *why)
{
    b->generation++;
    close_conn_async(b);
    /* A move in flight answers when its call returns (libvirt fails it once the
     * connection is closed): it may have been done, and must not look undone. */
    for (struct managed *m = b->domains; m; m = m->next)
        m->actual_known = false;
    /* Domains waiting to be looked at come back with the listing. */
    while (b->candidates) {
        struct candidate *c = b->candidates;
        b->candidates = c->next;
        free(c);
    }
    uv_timer_stop(&b->retry_timer);
    snprintf(b->last_error, sizeof(b->last_error), "%s", why);
    b->state = CONN_WAITING;
    b->backoff_ms = libvirt_backend_next_backoff(&b->cfg, b->backoff_ms);
    uv_timer_start(&b->reconnect_timer, on_reconnect_timer, b->backoff_ms, 0);
    if (b->cb.connection_changed)
        b->cb.connection_changed(b, false, why, b->opaque);
}

/* The pool woke us: the connection's close callback may have run. */
static void on_wake(void *opaque)
{
    struct libvirt_backend *b = opaque;
    static const char *const reasons[] = {"error", "end of file", "keepalive timeout",
                                          "closed by client"};
    if (b->closing || !b->ev || b->state != CONN_UP)
        return;
    uv_mutex_lock(&b->ev->lock);
    bool lost = b->ev->lost;
    int reason = b->ev->lost_reason;
    uv_mutex_unlock(&b->ev->lock);
    if (!lost)
        return;
    char why[80];
    snprintf(why, sizeof(why), "connection lost: %s",
             reason >= 0 && reason < 4 ? reasons[reason] : "unknown");
    connection_lost(b, why);
}

static void connect_done(struct libvirt_backend *b, struct job *j)
{
    if (j->status < 0) {
        snprintf(b->last_error, sizeof(b->last_error), "%s", j->error);
        b->state = CONN_WAITING;
        b->backoff_ms = libvirt_backend_next_backoff(&b->cfg, b->backoff_ms);
        uv_timer_start(&b->reconnect_timer, on_reconnect_timer, b->backoff_ms, 0);
        if (b->cb.connection_changed)
            b->cb.connection_changed(b, false, j->error, b->opaque);
        return;
    }
    b->conn = j->conn; /* the job's reference becomes the backend's */
    b->ev = j->ev;
    j->conn = NULL;
    j->ev = NULL;
    b->lifecycle_id = j->lifecycle_id;
    b->balloon_id = j->balloon_id;
    b->metadata_id = j->metadata_id;
    b->ev->b = b;
    b->state = CONN_UP;
    b->backoff_ms = 0;
    b->last_error[0] = '\0';
    if (b->cb.connection_changed)
        b->cb.connection_changed(b, true, b->uri, b->opaque);
    on_wake(b); /* lost already? */
    if (b->state == CONN_UP)
        libvirt_backend_rescan(b);
}

/* A listing is a snapshot taken on a worker, and may come back after newer news: a
 * domain's own event found it (started after the snapshot), or found it gone. So a listing
 * only ever asks for a look (a consider job, serialized with the domain's other jobs, that
 * reads it fresh): a domain is forgotten, or taken as restarted, only on what that look
 * sees. A clean run once saw a listing taken before a domain started undo that domain's
 * discovery (disappeared, then appeared again). */
static void list_done(struct libvirt_backend *b, struct job *j)
{
    if (j->status < 0)
        return; /* the connection is going; its loss is told by the close callback */
    for (struct managed *m = b->domains; m; m = m->next)
        m->seen = false;
    for (size_t i = 0; i < j->n_list; i++) {
        struct managed *m = find(b, j->list[i].uuid);
        if (m)
            m->seen = true;
        /* New, restarted (another domid), or its size unknown after a reconnect. */
        if (!m || m->domid != j->list[i].domid || !m->actual_known)
            consider_soon(b, j->list[i].uuid, m ? m->name : NULL);
    }
    /* Not listed: stopped, or started after the snapshot. */
    for (struct managed *m = b->domains; m; m = m->next) {
        if (!m->seen)
            consider_soon(b, m->uuid, m->name);
    }
}

static void reject(struct libvirt_backend *b, const char *name, const char *why)
{
    if (b->cb.domain_rejected)
        b->cb.domain_rejected(b, name, why, b->opaque);
}

static void add_managed(struct libvirt_backend *b, struct job *j)
{
    struct managed *m = calloc(1, sizeof(*m));
    if (!m)
        return;
    snprintf(m->uuid, sizeof(m->uuid), "%s", j->uuid);
    snprintf(m->name, sizeof(m->name), "%s", j->name);
    m->domid = j->domid;
    m->actual_known = true;
    m->actual_bytes = j->actual;
    m->max_bytes = j->max;
    m->next = b->domains;
    b->domains = m;
    /* The UUID as libvirt said it, even if the XML had none. */
    snprintf(j->info->uuid, sizeof(j->info->uuid), "%s", j->uuid);
    if (b->cb.domain_appeared)
        b->cb.domain_appeared(b, j->info, m->actual_bytes, b->opaque);
}

static void consider_done(struct libvirt_backend *b, struct job *j)
{
    struct candidate *c = find_candidate(b, j->uuid);
    struct managed *m = find(b, j->uuid);
    if (!c)
        return; /* forgotten meanwhile (the connection was lost) */
    c->in_flight = false;
    if (j->name[0])
        snprintf(c->name, sizeof(c->name), "%s", j->name);
    switch (j->verdict) {
    case V_MANAGE:
        c->backoff_ms = 0;
        if (m && m->domid == j->domid) {
            m->max_bytes = j->max;
            set_actual(b, m, j->actual);
            break;
        }
        if (m)
            forget(b, m); /* restarted */
        add_managed(b, j);
        break;
    case V_GONE:
        if (m)
            forget(b, m);
        break;
    case V_NOT_BELLOWS:
        break;
    case V_REJECT:
        reject(b, j->name[0] ? j->name : j->uuid, j->error);
        break;
    case V_FAILED: {
        c->backoff_ms = libvirt_backend_next_retry(&b->cfg, c->backoff_ms);
        c->retry_at = uv_now(b->loop) + c->backoff_ms;
        if (b->cb.domain_failed)
            b->cb.domain_failed(b, c->uuid, c->name, j->error, c->backoff_ms, b->opaque);
        c = find_candidate(b, j->uuid); /* the callback may have closed things */
        if (c && c->again) {
            c->again = false;
            consider_soon(b, c->uuid, NULL);
        }
        schedule_retry_timer(b);
        return;
    }
    }
    c = find_candidate(b, j->uuid);
    if (!c)
        return;
    if (c->again) {
        c->again = false;
        consider_soon(b, c->uuid, NULL);
        return;
    }
    drop_candidate(b, c);
}

static void move_done(struct libvirt_backend *b, struct job *j)
{
    struct managed *m = find(b, j->uuid);
    if (m && j->have_size)
        m->max_bytes = j->max;
    /* The size read before a move that was not made, before the answer: a stale move is
     * decided again on it. After a move that was made it is old news (libvirt's balloon
     * event may have told a newer size already). */
    if (m && j->have_size && j->status != 0)
        set_actual(b, m, j->actual);
    m = find(b, j->uuid);
    if (!m || !m->moving || m->move_seq != j->move_seq)
        return; /* answered already (stopped, cancelled) */
    m->moving = false;
    if (j->status == -ENOENT)
        consider_soon(b, m->uuid, m->name); /* gone? the event may be late */
    if (m->move_done)
        m->move_done(b, m->uuid, j->status, j->status == 0 ? "" : j->error, m->move_opaque);
}

static void metadata_done(struct libvirt_backend *b, struct job *j)
{
    if (j->verdict == V_MANAGE && find(b, j->uuid) && b->cb.limits_changed) {
        snprintf(j->info->uuid, sizeof(j->info->uuid), "%s", j->uuid);
        b->cb.limits_changed(b, j->info, b->opaque);
    }
}

static void job_done(struct lv_job *base)
{
    struct job *j = (struct job *)base;
    struct libvirt_backend *b = j->b;

    if (j->kind == JOB_CONNECT) {
        connect_done(b, j);
    } else if (j->kind == JOB_CLOSE) {
        /* nothing: the connection was let go when the job was made */
    } else if (j->kind == JOB_MOVE) {
        move_done(b, j); /* a move answers even across a reconnect: libvirt did it or not */
    } else if (j->generation != b->generation) {
        if (j->kind == JOB_CONSIDER) {
            struct candidate *c = find_candidate(b, j->uuid);
            if (c)
                c->in_flight = false;
        }
    } else if (j->kind == JOB_LIST) {
        list_done(b, j);
    } else if (j->kind == JOB_CONSIDER) {
        consider_done(b, j);
    } else if (j->kind == JOB_METADATA) {
        metadata_done(b, j);
    }
    if (j->kind == JOB_CONNECT && j->conn) {
        /* Not taken (cannot happen); do not leak the connection. */
        release_job(base);
        return;
    }
    job_free(j);
}

/* See libvirt_client.h. */
int libvirt_backend_new(uv_loop_t *loop, const struct libvirt_backend_config *cfg,
                        const struct libvirt_backend_callbacks *callbacks, void *opaque,
                        struct libvirt_backend **ret)
{
    struct libvirt_backend *b;
    int err;

    err = libvirt_event_uv_register(loop);
    if (err < 0)
        return err;
    /* The domain XML is parsed on worker threads: libxml2 wants this once, first. */
    xmlInitParser();
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->loop = loop;
    b->cfg = *cfg;
    snprintf(b->uri, sizeof(b->uri), "%s", cfg->uri ? cfg->uri : "qemu:///system");
    b->cfg.uri = b->uri;
    if (!b->cfg.retry_min_ms)
        b->cfg.retry_min_ms = 1000;
    if (b->cfg.retry_max_ms < b->cfg.retry_min_ms)
        b->cfg.retry_max_ms = b->cfg.retry_min_ms;
    if (!b->cfg.max_threads)
        b->cfg.max_threads = 8;
    if (callbacks)
        b->cb = *callbacks;
    b->opaque = opaque;
    b->lifecycle_id = b->balloon_id = b->metadata_id = -1;
    err = lv_pool_new(loop, b->cfg.max_threads, on_wake, b, &b->pool);
    if (err < 0) {
        free(b);
        return err;
    }
    uv_timer_init(loop, &b->reconnect_timer);
    uv_timer_init(loop, &b->retry_timer);
    b->reconnect_timer.data = b;
    b->retry_timer.data = b;
    b->timers_open = 2;
    *ret = b;
    return 0;
}

/* See libvirt_client.h. */
int libvirt_backend_start(struct libvirt_backend *b)
{
    if (b->state != CONN_IDLE)
        return -EALREADY;
    connect_now(b);
    return 0;
}

/* See libvirt_client.h. */
int libvirt_backend_rescan(struct libvirt_backend *b)
{
    if (b->state != CONN_UP || b->closing)
        return -ENOTCONN;
    return submit(b, JOB_LIST, NULL);
}

static bool uuid_valid(const char *s)
{
    if (strlen(s) != UUID_BUF - 1)
        return false;
    for (int i = 0; i < UUID_BUF - 1; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
            return false;
    }
    return true;
}

/* See libvirt_client.h. */
int libvirt_backend_rescan_domain(struct libvirt_backend *b, const char *uuid)
{
    if (!uuid || !uuid_valid(uuid))
        return -EINVAL;
    if (b->state != CONN_UP || b->closing)
        return -ENOTCONN;
    struct managed *m = find(b, uuid);
    consider_soon(b, uuid, m ? m->name : NULL);
    return 0;
}

/* See libvirt_client.h. */
int libvirt_backend_move(struct libvirt_backend *b, const char *uuid, uint64_t target_bytes,
                         uint64_t expect_bytes, libvirt_move_cb done, void *opaque)
{
    struct managed *m = find(b, uuid);

    if (m == NULL)
        return -ENOENT;
    if (b->state != CONN_UP || b->closing)
        return -ENOTCONN;
    if (m->moving)
        return -EBUSY;
    if (target_bytes < MIN_TARGET_BYTES || (m->max_bytes && target_bytes > m->max_bytes))
        return -ERANGE;
    int r = submit_move(b, JOB_MOVE, uuid, target_bytes, expect_bytes, ++b->move_seq);
    if (r < 0)
        return r;
    m->moving = true;
    m->move_seq = b->move_seq;
    m->move_done = done;
    m->move_opaque = opaque;
    return 0;
}

/* See libvirt_client.h. */
void libvirt_backend_cancel_move(struct libvirt_backend *b, const char *uuid)
{
    struct managed *m = find(b, uuid);
    if (!m)
        return;
    m->moving = false; /* its answer, when the call returns, goes nowhere */
    m->move_done = NULL;
}

/* See libvirt_client.h. */
int libvirt_backend_actual(const struct libvirt_backend *b, const char *uuid, uint64_t *ret_bytes)
{
    const struct managed *m = find(b, uuid);
    if (m == NULL)
        return -ENOENT;
    if (!m->actual_known)
        return -EAGAIN;
    *ret_bytes = m->actual_bytes;
    return 0;
}

/* See libvirt_client.h. */
bool libvirt_backend_connected(const struct libvirt_backend *b)
{
    return b->state == CONN_UP;
}

/* See libvirt_client.h. */
unsigned libvirt_backend_count(const struct libvirt_backend *b)
{
    unsigned n = 0;
    for (const struct managed *m = b->domains; m; m = m->next)
        n++;
    return n;
}

/* See libvirt_client.h. */
void libvirt_backend_workers(const struct libvirt_backend *b, unsigned *threads, unsigned *busy,
                             unsigned *queued)
{
    lv_pool_counts(b->pool, threads, busy, queued);
}

/* See libvirt_client.h. */
const char *libvirt_backend_last_error(const struct libvirt_backend *b)
{
    return b->last_error;
}

static void on_timer_closed(uv_handle_t *handle)
{
    struct libvirt_backend *b = handle->data;
    if (--b->timers_open == 0)
        free(b);
}

/* See libvirt_client.h. */
void libvirt_backend_close(struct libvirt_backend *b)
{
    if (b == NULL || b->closing)
        return;
    b->closing = true;
    for (struct managed *m = b->domains; m; m = m->next)
        fail_move(b, m, -ECANCELED, "bellowsd is stopping");
    while (b->domains) {
        struct managed *m = b->domains;
        b->domains = m->next;
        free(m);
    }
    while (b->candidates) {
        struct candidate *c = b->candidates;
        b->candidates = c->next;
        free(c);
    }
    close_conn_async(b); /* a worker closes it, after the pool's close below */
    lv_pool_close(b->pool);
    b->pool = NULL;
    /* libvirt's last handles go when the worker has closed the connection; then the
     * event implementation lets the loop end. */
    libvirt_event_uv_release();
    uv_timer_stop(&b->reconnect_timer);
    uv_timer_stop(&b->retry_timer);
    uv_close((uv_handle_t *)&b->reconnect_timer, on_timer_closed);
    uv_close((uv_handle_t *)&b->retry_timer, on_timer_closed);
}
