/* libvirt_event_uv against a real libvirtd (run through tests/libvirt/with-libvirtd, root):
 * qemu:///system with keepalive on, lifecycle events of a transient TCG domain (no disk,
 * it sits in firmware) arrive as STARTED then STOPPED through our uv loop, the connection
 * stays alive over an idle stretch longer than keepalive would allow without working I/O,
 * and everything libvirt registered is removed and freed when the connection closes. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uv.h>

#include "host-daemon/libvirt/libvirt_event_uv.h"

#define KEEPALIVE_INTERVAL_S 1
#define KEEPALIVE_COUNT 2

static uv_loop_t loop;
static bool in_loop;
static int failures;

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "ok: " : "FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!ok)
        failures++;
}

struct seen {
    const char *name;
    int events[8]; /* VIR_DOMAIN_EVENT_* in arrival order, for our domain only */
    int n;
    int started, stopped; /* counts; STARTED comes with a RESUMED, in either order */
    bool outside_loop;    /* a callback ran outside uv_run: not through our loop */
    uint64_t started_ms, stopped_ms;
    int closed; /* connection close callback calls */
};

static void on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
    struct seen *s = opaque;
    (void)conn;
    if (!in_loop)
        s->outside_loop = true;
    if (strcmp(virDomainGetName(dom), s->name) != 0 || s->n >= 8)
        return;
    s->events[s->n++] = event;
    fprintf(stderr, "event %d detail %d\n", event, detail);
    if (event == VIR_DOMAIN_EVENT_STARTED && s->started++ == 0)
        s->started_ms = uv_now(&loop);
    if (event == VIR_DOMAIN_EVENT_STOPPED && s->stopped++ == 0)
        s->stopped_ms = uv_now(&loop);
}

static void on_close(virConnectPtr conn, int reason, void *opaque)
{
    (void)conn;
    (void)reason;
    ((struct seen *)opaque)->closed++;
}

static uv_timer_t guard;
static bool guard_expired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_expired = true;
}

/* Run the loop until *count >= want or limit_ms passed. */
static void run_until(const int *count, int want, uint64_t limit_ms)
{
    guard_expired = false;
    uv_timer_start(&guard, on_guard, limit_ms, 0);
    while ((count == NULL || *count < want) && !guard_expired) {
        in_loop = true;
        uv_run(&loop, UV_RUN_ONCE);
        in_loop = false;
    }
    uv_timer_stop(&guard);
}

static void on_libvirt_error(void *opaque, virErrorPtr err)
{
    (void)opaque;
    fprintf(stderr, "libvirt: %s\n", err->message);
}

int main(void)
{
    char name[64], xml[1024];
    struct seen s = {.name = name};
    virConnectPtr conn = NULL;
    virDomainPtr dom = NULL;
    int cb_id = -1;
    bool destroyed = false;

    snprintf(name, sizeof(name), "bellows-evtest-%d", (int)getpid());
    snprintf(xml, sizeof(xml),
             "<domain type='qemu'><name>%s</name>"
             "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
             "<devices><memballoon model='none'/></devices></domain>",
             name);

    uv_loop_init(&loop);
    uv_timer_init(&loop, &guard);
    check(libvirt_event_uv_register(&loop) == 0, "event impl registered");
    virSetErrorFunc(NULL, on_libvirt_error);

    conn = virConnectOpen("qemu:///system");
    check(conn != NULL, "connected to qemu:///system");
    if (conn == NULL)
        goto out;
    check(virConnectSetKeepAlive(conn, KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT) == 0,
          "keepalive on (%d s x %d)", KEEPALIVE_INTERVAL_S, KEEPALIVE_COUNT);
    check(virConnectRegisterCloseCallback(conn, on_close, &s, NULL) == 0,
          "close callback registered");
    cb_id = virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                             VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &s, NULL);
    check(cb_id >= 0, "lifecycle callback registered");
    check(libvirt_event_uv_pending() > 0, "libvirt watches its socket through our impl (%u)",
          libvirt_event_uv_pending());

    uv_update_time(&loop);
    uint64_t t0 = uv_now(&loop);
    dom = virDomainCreateXML(conn, xml, 0);
    check(dom != NULL, "transient domain %s created", name);
    if (dom == NULL)
        goto out;
    run_until(&s.started, 1, 20000);
    check(s.started == 1 && s.stopped == 0, "STARTED event arrived %llu ms after create",
          (unsigned long long)(s.started_ms - t0));

    /* Idle longer than keepalive tolerates (interval x count) without a working loop. */
    run_until(NULL, 0, 1000 * KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 2));
    check(virConnectIsAlive(conn) == 1 && s.closed == 0,
          "connection alive after %d s idle with keepalive",
          KEEPALIVE_INTERVAL_S * (KEEPALIVE_COUNT + 2));

    uv_update_time(&loop);
    uint64_t t1 = uv_now(&loop);
    check(virDomainDestroy(dom) == 0, "domain destroyed");
    destroyed = true;
    uv_update_time(&loop);
    uint64_t t2 = uv_now(&loop);
    fprintf(stderr, "virDomainDestroy took %llu ms\n", (unsigned long long)(t2 - t1));
    run_until(&s.stopped, 1, 20000);
    check(s.stopped == 1 && s.events[s.n - 1] == VIR_DOMAIN_EVENT_STOPPED,
          "STOPPED event arrived %llu ms after destroy returned",
          (unsigned long long)(s.stopped_ms - t2));
    check(!s.outside_loop, "every callback ran inside uv_run");

out:
    if (dom) {
        if (!destroyed)
            virDomainDestroy(dom); /* after a failure: leave nothing running */
        virDomainFree(dom);
    }
    if (conn) {
        if (cb_id >= 0)
            virConnectDomainEventDeregisterAny(conn, cb_id);
        virConnectUnregisterCloseCallback(conn, on_close);
        virConnectClose(conn);
    }
    /* libvirt removes its watches and timeouts on close; their ff run from the loop. */
    for (int i = 0; i < 10 && libvirt_event_uv_pending() > 0; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    check(libvirt_event_uv_pending() == 0, "all handles and timeouts freed after close (%u left)",
          libvirt_event_uv_pending());
    uv_close((uv_handle_t *)&guard, NULL);
    libvirt_event_uv_release(); /* its wake-up handle: nothing is left to wake for */
    uv_run(&loop, UV_RUN_NOWAIT);
    check(uv_loop_close(&loop) == 0, "uv loop closes cleanly");
    return failures ? 1 : 0;
}
