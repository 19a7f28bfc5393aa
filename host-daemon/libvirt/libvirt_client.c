/* libvirt backend: connection, discovery, balloon. See libvirt_backend.h. */
#include "host-daemon/libvirt/libvirt_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "host-daemon/libvirt/libvirt_event_uv.h"

#define URI_MAX 1024
#define MIN_TARGET_BYTES (UINT64_C(1) << 20)

/* A running domain with a usable bellows channel. */
struct managed {
    struct managed *next;
    char uuid[VIR_UUID_STRING_BUFLEN];
    char name[LIBVIRT_DOMAIN_NAME_MAX + 1];
    int domid;         /* libvirt's runtime id: a new one means a new QEMU process */
    bool actual_known; /* false after a reconnect until read again */
    uint64_t actual_bytes;
    bool seen; /* scratch for rescan */
};

struct libvirt_backend {
    uv_loop_t *loop;
    struct libvirt_backend_config cfg;
    char uri[URI_MAX];
    struct libvirt_backend_callbacks cb;
    void *opaque;

    virConnectPtr conn;
    int lifecycle_id;
    int balloon_id;
    int metadata_id;
    bool lost; /* libvirt said the connection closed; drop it from the timer */
    char lost_why[64];
    uint64_t backoff_ms;
    uv_timer_t timer; /* deferred drop and reconnect */

    struct managed *domains;
    char last_error[256];
};

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
}

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

static void note_libvirt_error(struct libvirt_backend *b, const char *what)
{
    snprintf(b->last_error, sizeof(b->last_error), "%s: %s", what, virGetLastErrorMessage());
}

static struct managed *find(const struct libvirt_backend *b, const char *uuid)
{
    for (struct managed *m = b->domains; m; m = m->next)
        if (strcmp(m->uuid, uuid) == 0)
            return m;
    return NULL;
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

static void reject(struct libvirt_backend *b, const char *name, const char *why)
{
    if (b->cb.domain_rejected)
        b->cb.domain_rejected(b, name, why, b->opaque);
}

/* A running domain: manage it if it has a usable bellows channel. */
static void consider(struct libvirt_backend *b, virDomainPtr dom)
{
    char uuid[VIR_UUID_STRING_BUFLEN];
    const char *name = virDomainGetName(dom);
    int domid = (int)virDomainGetID(dom);
    struct libvirt_domain_info *info;
    struct managed *m;
    virDomainInfo dinfo;
    char *xml;

    if (virDomainGetUUIDString(dom, uuid) < 0)
        return;
    m = find(b, uuid);
    if (m && m->domid == domid) {
        m->seen = true;
        if (virDomainGetInfo(dom, &dinfo) == 0)
            set_actual(b, m, (uint64_t)dinfo.memory * 1024);
        return;
    }
    if (m)
        forget(b, m); /* restarted: the old QEMU and its channel are gone */

    xml = virDomainGetXMLDesc(dom, 0);
    if (xml == NULL) {
        note_libvirt_error(b, "virDomainGetXMLDesc");
        return; /* gone already, or libvirtd went away: the next event or rescan retries */
    }
    info = calloc(1, sizeof(*info));
    if (info == NULL) {
        free(xml);
        return;
    }
    if (libvirt_domain_xml_parse(xml, strlen(xml), &b->cfg.defaults, info) < 0) {
        reject(b, name, "its domain XML could not be parsed");
        goto out;
    }
    if (!info->has_channel)
        goto out; /* not a bellows guest: left alone */
    if (info->channel_path[0] == '\0') {
        reject(b, name, info->errors);
        goto out;
    }
    if (virDomainGetInfo(dom, &dinfo) < 0) {
        note_libvirt_error(b, "virDomainGetInfo");
        reject(b, name, "its balloon size cannot be read");
        goto out;
    }
    m = calloc(1, sizeof(*m));
    if (m == NULL)
        goto out;
    memcpy(m->uuid, uuid, sizeof(m->uuid));
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->domid = domid;
    m->seen = true;
    m->actual_known = true;
    m->actual_bytes = (uint64_t)dinfo.memory * 1024;
    m->next = b->domains;
    b->domains = m;
    if (b->cb.domain_appeared)
        b->cb.domain_appeared(b, info, m->actual_bytes, b->opaque);
out:
    free(info);
    free(xml);
}

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct libvirt_backend *b = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];
    struct managed *m;

    (void)conn;
    (void)detail;
    if (event == VIR_DOMAIN_EVENT_STARTED) {
        consider(b, dom);
    } else if (event == VIR_DOMAIN_EVENT_STOPPED) {
        /* Shut down, destroyed, crashed, saved, or migrated away (detail MIGRATED). */
        if (virDomainGetUUIDString(dom, uuid) == 0 && (m = find(b, uuid)) != NULL)
            forget(b, m);
    }
    return 0;
}

static void on_balloon_change(virConnectPtr conn, virDomainPtr dom, unsigned long long kib,
                              void *opaque)
{
    struct libvirt_backend *b = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];
    struct managed *m;

    (void)conn;
    if (virDomainGetUUIDString(dom, uuid) == 0 && (m = find(b, uuid)) != NULL)
        set_actual(b, m, (uint64_t)kib * 1024);
}

/* Our metadata changed on a managed domain: read the limits again. */
static void on_metadata_change(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                               void *opaque)
{
    struct libvirt_backend *b = opaque;
    char uuid[VIR_UUID_STRING_BUFLEN];
    struct libvirt_domain_info *info;
    char *xml;

    (void)conn;
    if (type != VIR_DOMAIN_METADATA_ELEMENT || nsuri == NULL ||
        strcmp(nsuri, LIBVIRT_BELLOWS_XMLNS) != 0)
        return;
    if (virDomainGetUUIDString(dom, uuid) < 0 || find(b, uuid) == NULL)
        return;
    xml = virDomainGetXMLDesc(dom, 0);
    if (xml == NULL) {
        note_libvirt_error(b, "virDomainGetXMLDesc");
        return;
    }
    info = calloc(1, sizeof(*info));
    if (info && libvirt_domain_xml_parse(xml, strlen(xml), &b->cfg.defaults, info) == 0 &&
        b->cb.limits_changed)
        b->cb.limits_changed(b, info, b->opaque);
    free(info);
    free(xml);
}

static void on_timer(uv_timer_t *timer);

/* Called by libvirt from the loop when the connection dies (EOF, error, keepalive). The
 * connection is dropped from a timer: closing it from inside libvirt's callback is unsafe. */
static void on_connection_closed(virConnectPtr conn, int reason, void *opaque)
{
    struct libvirt_backend *b = opaque;
    static const char *const reasons[] = {"error", "end of file", "keepalive timeout",
                                          "closed by client"};

    (void)conn;
    if (reason == VIR_CONNECT_CLOSE_REASON_CLIENT)
        return;
    b->lost = true;
    snprintf(b->lost_why, sizeof(b->lost_why), "connection lost: %s",
             reason >= 0 && reason < 4 ? reasons[reason] : "unknown");
    uv_timer_start(&b->timer, on_timer, 0, 0);
}

static void close_connection(struct libvirt_backend *b)
{
    if (b->conn == NULL)
        return;
    if (b->lifecycle_id >= 0)
        virConnectDomainEventDeregisterAny(b->conn, b->lifecycle_id);
    if (b->balloon_id >= 0)
        virConnectDomainEventDeregisterAny(b->conn, b->balloon_id);
    if (b->metadata_id >= 0)
        virConnectDomainEventDeregisterAny(b->conn, b->metadata_id);
    virConnectUnregisterCloseCallback(b->conn, on_connection_closed);
    virConnectClose(b->conn);
    virResetLastError(); /* deregistering on a dead connection fails; that is expected */
    b->conn = NULL;
    b->lifecycle_id = -1;
    b->balloon_id = -1;
    b->metadata_id = -1;
}

static void schedule_reconnect(struct libvirt_backend *b)
{
    b->backoff_ms = libvirt_backend_next_backoff(&b->cfg, b->backoff_ms);
    uv_timer_start(&b->timer, on_timer, b->backoff_ms, 0);
}

/* Lost: forget every actual size (never act blind), keep the domains until the
 * reconnect's rescan says which still run. */
static void drop_connection(struct libvirt_backend *b, const char *why)
{
    close_connection(b);
    for (struct managed *m = b->domains; m; m = m->next)
        m->actual_known = false;
    if (b->cb.connection_changed)
        b->cb.connection_changed(b, false, why, b->opaque);
}

static int connect_now(struct libvirt_backend *b)
{
    b->conn = virConnectOpen(b->uri);
    if (b->conn == NULL) {
        note_libvirt_error(b, "virConnectOpen");
        goto fail;
    }
    /* Keepalive exists on connections to a daemon; an in-process driver (test:///) has
     * nothing to keep alive and says "not supported". */
    if (virConnectSetKeepAlive(b->conn, b->cfg.keepalive_interval_s, b->cfg.keepalive_count) < 0) {
        if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT) {
            note_libvirt_error(b, "virConnectSetKeepAlive");
            goto fail;
        }
        virResetLastError();
    }
    if (virConnectRegisterCloseCallback(b->conn, on_connection_closed, b, NULL) < 0) {
        note_libvirt_error(b, "virConnectRegisterCloseCallback");
        goto fail;
    }
    /* Events before the listing, so a domain starting in between is not missed. */
    b->lifecycle_id =
        virConnectDomainEventRegisterAny(b->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), b, NULL);
    b->balloon_id =
        virConnectDomainEventRegisterAny(b->conn, NULL, VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_balloon_change), b, NULL);
    b->metadata_id =
        virConnectDomainEventRegisterAny(b->conn, NULL, VIR_DOMAIN_EVENT_ID_METADATA_CHANGE,
                                         VIR_DOMAIN_EVENT_CALLBACK(on_metadata_change), b, NULL);
    if (b->lifecycle_id < 0 || b->balloon_id < 0 || b->metadata_id < 0) {
        note_libvirt_error(b, "virConnectDomainEventRegisterAny");
        goto fail;
    }
    b->backoff_ms = 0;
    b->last_error[0] = '\0';
    if (b->cb.connection_changed)
        b->cb.connection_changed(b, true, b->uri, b->opaque);
    libvirt_backend_rescan(b);
    return 0;

fail:
    close_connection(b);
    schedule_reconnect(b);
    return -ENOTCONN;
}

static void on_timer(uv_timer_t *timer)
{
    struct libvirt_backend *b = timer->data;

    if (b->lost) {
        b->lost = false;
        drop_connection(b, b->lost_why);
        schedule_reconnect(b);
        return;
    }
    if (b->conn == NULL)
        connect_now(b);
}

int libvirt_backend_new(uv_loop_t *loop, const struct libvirt_backend_config *cfg,
                        const struct libvirt_backend_callbacks *callbacks, void *opaque,
                        struct libvirt_backend **ret)
{
    struct libvirt_backend *b;
    int err;

    err = libvirt_event_uv_register(loop);
    if (err < 0)
        return err;
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    b->loop = loop;
    b->cfg = *cfg;
    snprintf(b->uri, sizeof(b->uri), "%s", cfg->uri ? cfg->uri : "qemu:///system");
    b->cfg.uri = b->uri;
    if (callbacks)
        b->cb = *callbacks;
    b->opaque = opaque;
    b->lifecycle_id = -1;
    b->balloon_id = -1;
    b->metadata_id = -1;
    uv_timer_init(loop, &b->timer);
    b->timer.data = b;
    *ret = b;
    return 0;
}

int libvirt_backend_start(struct libvirt_backend *b)
{
    if (b->conn)
        return 0;
    uv_timer_stop(&b->timer);
    return connect_now(b);
}

int libvirt_backend_rescan(struct libvirt_backend *b)
{
    virDomainPtr *doms = NULL;
    struct managed *m, *next;
    int n;

    if (b->conn == NULL || b->lost)
        return -ENOTCONN;
    n = virConnectListAllDomains(b->conn, &doms, VIR_CONNECT_LIST_DOMAINS_ACTIVE);
    if (n < 0) {
        note_libvirt_error(b, "virConnectListAllDomains");
        return -ENOTCONN;
    }
    for (m = b->domains; m; m = m->next)
        m->seen = false;
    for (int i = 0; i < n; i++) {
        consider(b, doms[i]);
        virDomainFree(doms[i]);
    }
    free(doms);
    for (m = b->domains; m; m = next) {
        next = m->next;
        if (!m->seen)
            forget(b, m);
    }
    return 0;
}

int libvirt_backend_set_balloon(struct libvirt_backend *b, const char *uuid, uint64_t target_bytes)
{
    struct managed *m = find(b, uuid);
    unsigned long kib = (unsigned long)(target_bytes / 1024);
    virDomainInfo dinfo;
    virDomainPtr dom;
    int err = 0;

    if (m == NULL)
        return -ENOENT;
    if (b->conn == NULL || b->lost)
        return -ENOTCONN;
    dom = virDomainLookupByUUIDString(b->conn, uuid);
    if (dom == NULL) {
        note_libvirt_error(b, "virDomainLookupByUUIDString");
        return -ENOENT;
    }
    /* Never act blind: the balloon's size now, and the domain's maximum. */
    if (virDomainGetInfo(dom, &dinfo) < 0) {
        note_libvirt_error(b, "virDomainGetInfo");
        err = -EIO;
        goto out;
    }
    set_actual(b, m, (uint64_t)dinfo.memory * 1024);
    if (target_bytes < MIN_TARGET_BYTES || kib > dinfo.maxMem) {
        err = -ERANGE;
        goto out;
    }
    if (virDomainSetMemoryFlags(dom, kib, VIR_DOMAIN_AFFECT_LIVE) < 0) {
        note_libvirt_error(b, "virDomainSetMemoryFlags");
        err = -EIO;
    }
out:
    virDomainFree(dom);
    return err;
}

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

bool libvirt_backend_connected(const struct libvirt_backend *b)
{
    return b->conn != NULL && !b->lost;
}

unsigned libvirt_backend_count(const struct libvirt_backend *b)
{
    unsigned n = 0;
    for (const struct managed *m = b->domains; m; m = m->next)
        n++;
    return n;
}

const char *libvirt_backend_last_error(const struct libvirt_backend *b)
{
    return b->last_error;
}

static void on_closed(uv_handle_t *handle)
{
    free(handle->data);
}

void libvirt_backend_close(struct libvirt_backend *b)
{
    struct managed *m, *next;

    if (b == NULL)
        return;
    close_connection(b);
    for (m = b->domains; m; m = next) {
        next = m->next;
        free(m);
    }
    b->domains = NULL;
    uv_close((uv_handle_t *)&b->timer, on_closed);
}
