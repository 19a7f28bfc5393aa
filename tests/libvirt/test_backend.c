/* libvirt_backend: its pure parts (defaults, reconnect backoff, per-domain retry backoff),
 * and its libvirt side against libvirt's own in-process test driver (test:///default: no
 * daemon, no root), so the sanitizer build covers discovery, moves, limits and removal,
 * with every libvirt call on a worker thread and every result back on the loop. The same
 * against a real libvirtd, with reconnects: real_backend.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uv.h>
#include <cmocka.h>

#include "host-daemon/libvirt/libvirt_client.h"
#include "host-daemon/libvirt/libvirt_event_uv.h"
#include "host-daemon/libvirt/libvirt_worker.h"

#define MiB (UINT64_C(1) << 20)

static void test_defaults(void **state)
{
    (void)state;
    struct libvirt_backend_config cfg;
    libvirt_backend_config_defaults(&cfg);
    assert_string_equal(cfg.uri, "qemu:///system");
    assert_true(cfg.keepalive_interval_s > 0);
    assert_true(cfg.keepalive_count > 0);
    assert_true(cfg.reconnect_min_ms > 0);
    assert_true(cfg.reconnect_max_ms >= cfg.reconnect_min_ms);
    assert_true(cfg.defaults.floor_bytes > 0);
    assert_true(cfg.defaults.weight >= 1 && cfg.defaults.weight <= 10000);
}

static void test_backoff_doubles_within_bounds(void **state)
{
    (void)state;
    struct libvirt_backend_config cfg;
    libvirt_backend_config_defaults(&cfg);
    cfg.reconnect_min_ms = 500;
    cfg.reconnect_max_ms = 30000;
    uint64_t expected[] = {500, 1000, 2000, 4000, 8000, 16000, 30000, 30000};
    uint64_t d = 0;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        d = libvirt_backend_next_backoff(&cfg, d);
        assert_int_equal(d, expected[i]);
    }
    /* A previous delay below the minimum (config changed) comes back to it. */
    assert_int_equal(libvirt_backend_next_backoff(&cfg, 100), 500);
}

/* A domain that could not be read is retried on its own backoff. */
static void test_retry_backoff(void **state)
{
    (void)state;
    struct libvirt_backend_config cfg;
    libvirt_backend_config_defaults(&cfg);
    assert_int_equal(cfg.retry_min_ms, 1000);
    assert_int_equal(cfg.retry_max_ms, 60000);
    uint64_t expected[] = {1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000};
    uint64_t d = 0;
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        d = libvirt_backend_next_retry(&cfg, d);
        assert_int_equal(d, expected[i]);
    }
    assert_int_equal(libvirt_backend_next_retry(&cfg, 10), 1000);
}

/* --- against test:///default --- */

static uv_loop_t loop;
static virConnectPtr admin;    /* creates and destroys domains in the shared test driver */
static unsigned admin_handles; /* event handles of libvirt's own, for the admin connection */

struct seen {
    int appeared, disappeared, balloons, limits, rejected, ups, downs, moves;
    int move_status;
    char move_error[256];
    struct libvirt_domain_info info; /* last appeared */
    struct libvirt_domain_info limits_info;
    uint64_t actual; /* last appeared or balloon_changed */
    char rejected_why[LIBVIRT_DOMAIN_ERRORS_MAX];
};
static struct seen seen;

static void on_appeared(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                        uint64_t actual, void *opaque)
{
    (void)b;
    assert_ptr_equal(opaque, &seen);
    seen.appeared++;
    seen.info = *info;
    seen.actual = actual;
}

static void on_disappeared(struct libvirt_backend *b, const char *uuid, const char *name,
                           void *opaque)
{
    (void)b;
    (void)uuid;
    (void)name;
    (void)opaque;
    seen.disappeared++;
}

static void on_balloon(struct libvirt_backend *b, const char *uuid, uint64_t actual, void *opaque)
{
    (void)b;
    (void)uuid;
    (void)opaque;
    seen.balloons++;
    seen.actual = actual;
}

static void on_limits(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                      void *opaque)
{
    (void)b;
    (void)opaque;
    seen.limits++;
    seen.limits_info = *info;
}

static void on_connection(struct libvirt_backend *b, bool up, const char *why, void *opaque)
{
    (void)b;
    (void)why;
    (void)opaque;
    if (up)
        seen.ups++;
    else
        seen.downs++;
}

static void on_rejected(struct libvirt_backend *b, const char *name, const char *why, void *opaque)
{
    (void)b;
    (void)name;
    (void)opaque;
    seen.rejected++;
    snprintf(seen.rejected_why, sizeof(seen.rejected_why), "%s", why);
}

static const struct libvirt_backend_callbacks callbacks = {
    .domain_appeared = on_appeared,
    .domain_disappeared = on_disappeared,
    .balloon_changed = on_balloon,
    .limits_changed = on_limits,
    .connection_changed = on_connection,
    .domain_rejected = on_rejected,
};

/* Run the loop until `cond` holds (results come from worker threads), failing after a
 * bound; a guard timer keeps the loop turning meanwhile. */
static uv_timer_t guard;
static bool guard_fired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_fired = true;
}

#define RUN_UNTIL(cond)                                                                            \
    do {                                                                                           \
        guard_fired = false;                                                                       \
        uv_timer_start(&guard, on_guard, 5000, 0);                                                 \
        while (!(cond) && !guard_fired)                                                            \
            uv_run(&loop, UV_RUN_ONCE);                                                            \
        uv_timer_stop(&guard);                                                                     \
        if (!(cond))                                                                               \
            fail_msg("timed out waiting for %s", #cond);                                           \
    } while (0)

/* Let the loop run for a while: what must not happen has had its chance to. */
static void settle(void)
{
    guard_fired = false;
    uv_timer_start(&guard, on_guard, 100, 0);
    while (!guard_fired)
        uv_run(&loop, UV_RUN_ONCE);
}

static void on_move(struct libvirt_backend *b, const char *uuid, int status, const char *error,
                    void *opaque)
{
    (void)b;
    (void)uuid;
    assert_ptr_equal(opaque, &seen);
    seen.moves++;
    seen.move_status = status;
    snprintf(seen.move_error, sizeof(seen.move_error), "%s", error);
}

static virDomainPtr create(const char *name, const char *devices, const char *metadata)
{
    char xml[2048];
    snprintf(xml, sizeof(xml),
             "<domain type='test'><name>%s</name><metadata>%s</metadata>"
             "<memory unit='MiB'>512</memory><currentMemory unit='MiB'>384</currentMemory>"
             "<os><type>hvm</type></os><devices>%s</devices></domain>",
             name, metadata, devices);
    virDomainPtr dom = virDomainCreateXML(admin, xml, 0);
    assert_non_null(dom);
    return dom;
}

#define CHANNEL(path)                                                                              \
    "<channel type='unix'><source mode='bind' path='" path "'/>"                                   \
    "<target type='virtio' name='org.bellows.pressure.0'/></channel>"
#define NS "xmlns:bellows='https://bellows.dev/xmlns/guest/1'"

static struct libvirt_backend *start_backend(void)
{
    struct libvirt_backend_config cfg;
    struct libvirt_backend *b;
    libvirt_backend_config_defaults(&cfg);
    cfg.uri = "test:///default";
    cfg.defaults.floor_bytes = 64 * MiB;
    cfg.defaults.weight = 100;
    memset(&seen, 0, sizeof(seen));
    assert_int_equal(libvirt_backend_new(&loop, &cfg, &callbacks, &seen, &b), 0);
    assert_int_equal(libvirt_backend_start(b), 0);
    assert_false(libvirt_backend_connected(b)); /* a worker connects */
    assert_int_equal(libvirt_backend_start(b), -EALREADY);
    RUN_UNTIL(seen.ups == 1);
    assert_true(libvirt_backend_connected(b));
    return b;
}

/* Close, and wait until the worker closed the connection and every thread ended: then
 * nothing of libvirt is left on the loop (the teardown checks it). */
static uv_timer_t tick; /* a thread's end wakes nothing: look again every 10 ms */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* After a close: every worker thread ended and nothing of libvirt left on the loop. */
static void wait_all_gone(void)
{
    uv_timer_start(&tick, on_tick, 10, 10);
    RUN_UNTIL(lv_pool_live_threads() == 0 && libvirt_event_uv_pending() == admin_handles);
    uv_timer_stop(&tick);
}

static void stop_backend(struct libvirt_backend *b)
{
    libvirt_backend_close(b);
    wait_all_gone();
}

static void test_discovery(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    /* The test driver's own running domain "test" has no channel: left alone. */
    assert_int_equal(seen.appeared, 0);
    assert_int_equal(libvirt_backend_count(b), 0);

    virDomainPtr plain = create("plain", "", "");
    virDomainPtr pty = create("pty",
                              "<channel type='pty'><target type='virtio' "
                              "name='org.bellows.pressure.0'/></channel>",
                              "");
    virDomainPtr g = create("g1", CHANNEL("/run/bellows/g1.sock"),
                            "<bellows:guest " NS " floor='100M' ceiling='448MiB' weight='7'/>");
    RUN_UNTIL(seen.appeared == 1 && seen.rejected == 1);
    assert_string_equal(seen.info.name, "g1");
    assert_string_equal(seen.info.channel_path, "/run/bellows/g1.sock");
    assert_int_equal(seen.info.floor_bytes, 100 * MiB);
    assert_int_equal(seen.info.ceiling_bytes, 448 * MiB);
    assert_int_equal(seen.info.weight, 7);
    assert_int_equal(seen.actual, 384 * MiB);
    assert_int_equal(seen.rejected, 1); /* pty: declared but unusable, and said why */
    assert_non_null(strstr(seen.rejected_why, "type='pty'"));
    assert_int_equal(libvirt_backend_count(b), 1);

    /* A rescan, or a look at the one domain, finds the same domain: not reported again. */
    assert_int_equal(libvirt_backend_rescan(b), 0);
    char uuid[VIR_UUID_STRING_BUFLEN];
    assert_int_equal(virDomainGetUUIDString(g, uuid), 0);
    assert_int_equal(libvirt_backend_rescan_domain(b, uuid), 0);
    assert_int_equal(libvirt_backend_rescan_domain(b, "not-a-uuid"), -EINVAL);
    settle();
    assert_int_equal(seen.appeared, 1);
    assert_int_equal(seen.disappeared, 0);

    assert_int_equal(virDomainDestroy(g), 0);
    RUN_UNTIL(seen.disappeared == 1);
    assert_int_equal(libvirt_backend_count(b), 0);
    assert_int_equal(virDomainDestroy(plain), 0);
    assert_int_equal(virDomainDestroy(pty), 0);
    settle();
    assert_int_equal(seen.disappeared, 1);
    virDomainFree(g);
    virDomainFree(plain);
    virDomainFree(pty);
    stop_backend(b);
}

/* A listing taken before a domain started may come back after that domain was found
 * through its own event: the listing is old news and must not make it disappear. Many
 * rounds of a listing racing a start, each new domain must appear once and stay. */
static void test_listing_never_forgets_a_newer_domain(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    enum { ROUNDS = 100 };
    virDomainPtr doms[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        char name[32], devices[256];
        snprintf(name, sizeof(name), "race%d", i);
        snprintf(devices, sizeof(devices), CHANNEL("/run/bellows/race.sock"));
        for (int k = 0; k < 4; k++)
            assert_int_equal(libvirt_backend_rescan(b), 0);
        doms[i] = create(name, devices, "");
        RUN_UNTIL(seen.appeared == i + 1);
    }
    settle();
    assert_int_equal(seen.disappeared, 0);
    assert_int_equal(seen.appeared, ROUNDS);
    assert_int_equal(libvirt_backend_count(b), ROUNDS);
    for (int i = 0; i < ROUNDS; i++) {
        assert_int_equal(virDomainDestroy(doms[i]), 0);
        virDomainFree(doms[i]);
    }
    RUN_UNTIL(seen.disappeared == ROUNDS);
    stop_backend(b);
}

static void test_discovered_at_connect(void **state)
{
    (void)state;
    virDomainPtr g = create("early", CHANNEL("/run/bellows/early.sock"), "");
    struct libvirt_backend *b = start_backend();
    /* Found by the listing at connect. */
    RUN_UNTIL(seen.appeared == 1);
    assert_string_equal(seen.info.name, "early");
    assert_int_equal(seen.info.floor_bytes, 64 * MiB); /* daemon default */
    assert_int_equal(seen.info.floor_from, LIBVIRT_LIMIT_DEFAULT);
    assert_int_equal(seen.info.ceiling_from, LIBVIRT_LIMIT_MEMORY);
    /* Its STARTED event, still queued, must not report it twice. */
    settle();
    assert_int_equal(seen.appeared, 1);
    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    RUN_UNTIL(seen.disappeared == 1);
    stop_backend(b);
}

/* Moves go out on a worker and answer on the loop, one in flight per domain; the size is
 * read first, and a move decided on an old size is not sent. */
static void test_move(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    virDomainPtr g = create("mover", CHANNEL("/run/bellows/mover.sock"), "");
    char uuid[VIR_UUID_STRING_BUFLEN];
    uint64_t actual = 0;
    RUN_UNTIL(seen.appeared == 1);
    assert_int_equal(virDomainGetUUIDString(g, uuid), 0);
    assert_int_equal(libvirt_backend_actual(b, uuid, &actual), 0);
    assert_int_equal(actual, 384 * MiB);

    assert_int_equal(libvirt_backend_move(b, "6695eb01-0000-0000-0000-000000000000", 256 * MiB, 0,
                                          on_move, &seen),
                     -ENOENT);
    assert_int_equal(libvirt_backend_move(b, uuid, 513 * MiB, 0, on_move, &seen), -ERANGE);
    assert_int_equal(libvirt_backend_move(b, uuid, 1000, 0, on_move, &seen), -ERANGE);
    assert_int_equal(libvirt_backend_move(b, uuid, 256 * MiB, 384 * MiB, on_move, &seen), 0);
    assert_int_equal(seen.moves, 0); /* never from inside the call */
    assert_int_equal(libvirt_backend_move(b, uuid, 300 * MiB, 0, on_move, &seen), -EBUSY);
    RUN_UNTIL(seen.moves == 1);
    assert_int_equal(seen.move_status, 0);
    assert_string_equal(seen.move_error, "");
    virDomainInfo info;
    assert_int_equal(virDomainGetInfo(g, &info), 0);
    assert_int_equal(info.memory, 256 * 1024);

    /* Decided on 384 MiB, but it is at 256 MiB now: the fresh size first, then -ESTALE. */
    int before = seen.balloons;
    assert_int_equal(libvirt_backend_move(b, uuid, 300 * MiB, 384 * MiB, on_move, &seen), 0);
    RUN_UNTIL(seen.moves == 2);
    assert_int_equal(seen.move_status, -ESTALE);
    assert_int_equal(seen.balloons, before + 1);
    assert_int_equal(seen.actual, 256 * MiB);
    assert_int_equal(virDomainGetInfo(g, &info), 0);
    assert_int_equal(info.memory, 256 * 1024); /* nothing was sent */
    /* without an expected size it goes */
    assert_int_equal(libvirt_backend_move(b, uuid, 300 * MiB, 0, on_move, &seen), 0);
    RUN_UNTIL(seen.moves == 3);
    assert_int_equal(seen.move_status, 0);

    /* a move in flight when the domain stops is answered -ENOENT, once */
    assert_int_equal(libvirt_backend_move(b, uuid, 320 * MiB, 0, on_move, &seen), 0);
    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    RUN_UNTIL(seen.disappeared == 1 && seen.moves == 4);
    settle();
    assert_int_equal(seen.moves, 4);
    assert_int_equal(libvirt_backend_move(b, uuid, 256 * MiB, 0, on_move, &seen), -ENOENT);

    /* closing with a move in flight answers it -ECANCELED inside the close */
    virDomainPtr h = create("mover2", CHANNEL("/run/bellows/mover2.sock"), "");
    RUN_UNTIL(seen.appeared == 2);
    assert_int_equal(virDomainGetUUIDString(h, uuid), 0);
    assert_int_equal(libvirt_backend_move(b, uuid, 256 * MiB, 0, on_move, &seen), 0);
    libvirt_backend_close(b);
    assert_int_equal(seen.moves, 5);
    assert_int_equal(seen.move_status, -ECANCELED);
    wait_all_gone();
    assert_int_equal(virDomainDestroy(h), 0);
    virDomainFree(h);
}

static void test_limits_change(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    virDomainPtr g =
        create("tuned", CHANNEL("/run/bellows/tuned.sock"), "<bellows:guest " NS " floor='100M'/>");
    RUN_UNTIL(seen.appeared == 1);
    assert_int_equal(seen.info.floor_bytes, 100 * MiB);
    /* Another namespace's metadata: nothing to re-read. */
    assert_int_equal(virDomainSetMetadata(g, VIR_DOMAIN_METADATA_ELEMENT, "<x a='1'/>", "o",
                                          "https://example.org/other", VIR_DOMAIN_AFFECT_LIVE),
                     0);
    settle();
    assert_int_equal(seen.limits, 0);
    assert_int_equal(virDomainSetMetadata(g, VIR_DOMAIN_METADATA_ELEMENT,
                                          "<guest floor='200M' weight='zero'/>", "bellows",
                                          LIBVIRT_BELLOWS_XMLNS, VIR_DOMAIN_AFFECT_LIVE),
                     0);
    RUN_UNTIL(seen.limits == 1);
    assert_int_equal(seen.limits_info.floor_bytes, 200 * MiB);
    assert_int_equal(seen.limits_info.weight, 100); /* bad: default, and said why */
    assert_non_null(strstr(seen.limits_info.errors, "weight=\"zero\""));
    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    RUN_UNTIL(seen.disappeared == 1);
    stop_backend(b);
}

static void test_unreachable_uri_retries(void **state)
{
    (void)state;
    struct libvirt_backend_config cfg;
    struct libvirt_backend *b;
    libvirt_backend_config_defaults(&cfg);
    /* A daemon socket that is not there: the remote driver fails at once. */
    cfg.uri = "qemu+unix:///system?socket=/nonexistent-bellows/libvirt-sock";
    memset(&seen, 0, sizeof(seen));
    cfg.reconnect_min_ms = 20;
    cfg.reconnect_max_ms = 40;
    assert_int_equal(libvirt_backend_new(&loop, &cfg, &callbacks, &seen, &b), 0);
    assert_int_equal(libvirt_backend_start(b), 0);
    RUN_UNTIL(seen.downs == 3); /* each attempt fails, and is tried again */
    assert_false(libvirt_backend_connected(b));
    assert_non_null(strstr(libvirt_backend_last_error(b), "virConnectOpen"));
    assert_int_equal(libvirt_backend_rescan(b), -ENOTCONN);
    assert_int_equal(seen.ups, 0);
    stop_backend(b); /* with a retry pending: the timer goes with it */
}

static void quiet(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

static int setup(void **state)
{
    (void)state;
    virSetErrorFunc(NULL, quiet);
    if (uv_loop_init(&loop) != 0 || libvirt_event_uv_register(&loop) != 0)
        return -1;
    uv_timer_init(&loop, &guard);
    uv_timer_init(&loop, &tick);
    admin = virConnectOpen("test:///default");
    admin_handles = libvirt_event_uv_pending();
    return admin ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    virConnectClose(admin);
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    libvirt_event_uv_release();
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
    if (libvirt_event_uv_pending() != 0)
        return -1;
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
        cmocka_unit_test(test_retry_backoff),
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_listing_never_forgets_a_newer_domain),
        cmocka_unit_test(test_discovered_at_connect),
        cmocka_unit_test(test_move),
        cmocka_unit_test(test_limits_change),
        cmocka_unit_test(test_unreachable_uri_retries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
