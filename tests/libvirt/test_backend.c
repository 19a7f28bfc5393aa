/* libvirt_backend's pure parts: defaults and the reconnect backoff. (Its libvirt side is
 * tested against a real libvirtd: real_backend.c.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/libvirt_backend.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_backoff_doubles_within_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
