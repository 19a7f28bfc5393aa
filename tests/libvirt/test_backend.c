/* libvirt_backend: its pure parts (defaults, reconnect backoff), and its libvirt side
 * against libvirt's own in-process test driver (test:///default: no daemon, no root), so
 * the sanitizer build covers discovery, moves, limits and removal. The same against a real
 * libvirtd, with reconnects: real_backend.c. */
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

/* --- against test:///default --- */

static uv_loop_t loop;
static virConnectPtr admin; /* creates and destroys domains in the shared test driver */

struct seen {
    int appeared, disappeared, balloons, limits, rejected, ups, downs;
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

/* Deliver queued libvirt events (the test driver dispatches them from a 0 timeout). */
static void spin(void)
{
    for (int i = 0; i < 5; i++)
        uv_run(&loop, UV_RUN_NOWAIT);
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
    assert_true(libvirt_backend_connected(b));
    assert_int_equal(seen.ups, 1);
    return b;
}

static void stop_backend(struct libvirt_backend *b)
{
    libvirt_backend_close(b);
    spin();
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
    spin();
    assert_int_equal(seen.appeared, 1);
    assert_string_equal(seen.info.name, "g1");
    assert_string_equal(seen.info.channel_path, "/run/bellows/g1.sock");
    assert_int_equal(seen.info.floor_bytes, 100 * MiB);
    assert_int_equal(seen.info.ceiling_bytes, 448 * MiB);
    assert_int_equal(seen.info.weight, 7);
    assert_int_equal(seen.actual, 384 * MiB);
    assert_int_equal(seen.rejected, 1); /* pty: declared but unusable, and said why */
    assert_non_null(strstr(seen.rejected_why, "type='pty'"));
    assert_int_equal(libvirt_backend_count(b), 1);

    /* A rescan finds the same domain: not reported again. */
    assert_int_equal(libvirt_backend_rescan(b), 0);
    assert_int_equal(seen.appeared, 1);
    assert_int_equal(seen.disappeared, 0);

    assert_int_equal(virDomainDestroy(g), 0);
    spin();
    assert_int_equal(seen.disappeared, 1);
    assert_int_equal(libvirt_backend_count(b), 0);
    assert_int_equal(virDomainDestroy(plain), 0);
    assert_int_equal(virDomainDestroy(pty), 0);
    spin();
    assert_int_equal(seen.disappeared, 1);
    virDomainFree(g);
    virDomainFree(plain);
    virDomainFree(pty);
    stop_backend(b);
}

static void test_discovered_at_connect(void **state)
{
    (void)state;
    virDomainPtr g = create("early", CHANNEL("/run/bellows/early.sock"), "");
    spin();
    struct libvirt_backend *b = start_backend();
    /* Found by the listing at connect, before any event. */
    assert_int_equal(seen.appeared, 1);
    assert_string_equal(seen.info.name, "early");
    assert_int_equal(seen.info.floor_bytes, 64 * MiB); /* daemon default */
    assert_int_equal(seen.info.floor_from, LIBVIRT_LIMIT_DEFAULT);
    assert_int_equal(seen.info.ceiling_from, LIBVIRT_LIMIT_MEMORY);
    /* Its STARTED event, still queued, must not report it twice. */
    spin();
    assert_int_equal(seen.appeared, 1);
    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    spin();
    assert_int_equal(seen.disappeared, 1);
    stop_backend(b);
}

static void test_set_balloon(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    virDomainPtr g = create("mover", CHANNEL("/run/bellows/mover.sock"), "");
    char uuid[VIR_UUID_STRING_BUFLEN];
    uint64_t actual = 0;
    spin();
    assert_int_equal(virDomainGetUUIDString(g, uuid), 0);
    assert_int_equal(libvirt_backend_actual(b, uuid, &actual), 0);
    assert_int_equal(actual, 384 * MiB);

    assert_int_equal(
        libvirt_backend_set_balloon(b, "6695eb01-0000-0000-0000-000000000000", 256 * MiB), -ENOENT);
    assert_int_equal(libvirt_backend_set_balloon(b, uuid, 513 * MiB), -ERANGE); /* > <memory> */
    assert_int_equal(libvirt_backend_set_balloon(b, uuid, 1000), -ERANGE);
    assert_int_equal(libvirt_backend_set_balloon(b, uuid, 256 * MiB), 0);
    /* libvirt now says 256 MiB (in KiB); the backend reads it before the next move. */
    virDomainInfo info;
    assert_int_equal(virDomainGetInfo(g, &info), 0);
    assert_int_equal(info.memory, 256 * 1024);
    int before = seen.balloons;
    assert_int_equal(libvirt_backend_set_balloon(b, uuid, 300 * MiB), 0);
    assert_int_equal(seen.balloons, before + 1);
    assert_int_equal(seen.actual, 256 * MiB);

    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    spin();
    assert_int_equal(libvirt_backend_set_balloon(b, uuid, 256 * MiB), -ENOENT);
    stop_backend(b);
}

static void test_limits_change(void **state)
{
    (void)state;
    struct libvirt_backend *b = start_backend();
    virDomainPtr g =
        create("tuned", CHANNEL("/run/bellows/tuned.sock"), "<bellows:guest " NS " floor='100M'/>");
    spin();
    assert_int_equal(seen.info.floor_bytes, 100 * MiB);
    /* Another namespace's metadata: nothing to re-read. */
    assert_int_equal(virDomainSetMetadata(g, VIR_DOMAIN_METADATA_ELEMENT, "<x a='1'/>", "o",
                                          "https://example.org/other", VIR_DOMAIN_AFFECT_LIVE),
                     0);
    spin();
    assert_int_equal(seen.limits, 0);
    assert_int_equal(virDomainSetMetadata(g, VIR_DOMAIN_METADATA_ELEMENT,
                                          "<guest floor='200M' weight='zero'/>", "bellows",
                                          LIBVIRT_BELLOWS_XMLNS, VIR_DOMAIN_AFFECT_LIVE),
                     0);
    spin();
    assert_int_equal(seen.limits, 1);
    assert_int_equal(seen.limits_info.floor_bytes, 200 * MiB);
    assert_int_equal(seen.limits_info.weight, 100); /* bad: default, and said why */
    assert_non_null(strstr(seen.limits_info.errors, "weight=\"zero\""));
    assert_int_equal(virDomainDestroy(g), 0);
    virDomainFree(g);
    spin();
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
    assert_int_equal(libvirt_backend_new(&loop, &cfg, &callbacks, &seen, &b), 0);
    assert_int_equal(libvirt_backend_start(b), -ENOTCONN);
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
    admin = virConnectOpen("test:///default");
    return admin ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    virConnectClose(admin);
    spin();
    if (libvirt_event_uv_pending() != 0)
        return -1;
    return uv_loop_close(&loop) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
        cmocka_unit_test(test_discovery),
        cmocka_unit_test(test_discovered_at_connect),
        cmocka_unit_test(test_set_balloon),
        cmocka_unit_test(test_limits_change),
        cmocka_unit_test(test_unreachable_uri_retries),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
