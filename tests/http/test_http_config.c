/* The HTTP surface's settings: listening addresses as operators write them, and the
 * [daemon] keys http_listen, http_max_clients and history with their defaults, ranges
 * and the line each error points at. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/config/config.h"
#include "host-daemon/util/netaddr.h"

static void addresses(void **state)
{
    (void)state;
    struct netaddr a;
    char err[200];

    assert_int_equal(netaddr_parse("127.0.0.1:8466", &a, err, sizeof(err)), 0);
    assert_true(a.enabled);
    assert_int_equal(a.addr.ss_family, AF_INET);
    assert_int_equal(ntohs(((struct sockaddr_in *)&a.addr)->sin_port), 8466);
    assert_int_equal(a.addr_len, sizeof(struct sockaddr_in));
    assert_true(netaddr_is_loopback(&a));
    assert_string_equal(a.text, "127.0.0.1:8466");

    assert_int_equal(netaddr_parse("[::1]:1", &a, err, sizeof(err)), 0);
    assert_int_equal(a.addr.ss_family, AF_INET6);
    assert_int_equal(ntohs(((struct sockaddr_in6 *)&a.addr)->sin6_port), 1);
    assert_true(netaddr_is_loopback(&a));

    assert_int_equal(netaddr_parse("0.0.0.0:65535", &a, err, sizeof(err)), 0);
    assert_false(netaddr_is_loopback(&a));
    assert_int_equal(netaddr_parse("[::]:9000", &a, err, sizeof(err)), 0);
    assert_false(netaddr_is_loopback(&a));

    assert_int_equal(netaddr_parse("off", &a, err, sizeof(err)), 0);
    assert_false(a.enabled);
    assert_false(netaddr_is_loopback(&a));

    static const char *const bad[] = {
        "",          "8466",           "localhost:8466", "127.0.0.1",   "127.0.0.1:",
        "1.2.3.4:0", "1.2.3.4:65536",  "1.2.3.4:84a",    "::1:8466",    "[::1]8466",
        "[::1:8466", "[1.2.3.4]:8466", "1.2.3:8466",     "OFF",         "127.0.0.1:+80",
        "[::1]:",    "1.2.3.4:123456", " 1.2.3.4:80",    "1.2.3.4:80 ",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&a, 0x5A, sizeof(a));
        err[0] = '\0';
        if (netaddr_parse(bad[i], &a, err, sizeof(err)) != -EINVAL)
            fail_msg("accepted '%s'", bad[i]);
        assert_true(err[0] != '\0');
        assert_int_equal(((unsigned char *)&a)[0], 0x5A); /* untouched */
    }
}

static int parse(const char *text, struct config *cfg, struct config_errors *errs)
{
    return config_parse_buffer(text, strlen(text), cfg, errs);
}

static void defaults(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse("[daemon]\nlog_level = info\n", &cfg, &errs), 0);
    assert_true(cfg.daemon.http_listen.enabled);
    assert_string_equal(cfg.daemon.http_listen.text, CONFIG_DEFAULT_HTTP_LISTEN);
    assert_true(netaddr_is_loopback(&cfg.daemon.http_listen));
    assert_int_equal(cfg.daemon.http_max_clients, 64);
    assert_int_equal(cfg.daemon.history_ms, 3600000);
    assert_int_equal(cfg.daemon.http_timeout_ms, 10000);
    config_free(&cfg);
}

static void keys(void **state)
{
    (void)state;
    struct config cfg;
    struct config_errors errs;
    assert_int_equal(parse("[daemon]\nhttp_listen = [::1]:9999\nhttp_max_clients = 8\n"
                           "history = 10min\n",
                           &cfg, &errs),
                     0);
    assert_int_equal(cfg.daemon.http_listen.addr.ss_family, AF_INET6);
    assert_int_equal(cfg.daemon.http_max_clients, 8);
    assert_int_equal(cfg.daemon.history_ms, 600000);
    config_free(&cfg);

    assert_int_equal(parse("[daemon]\nhttp_listen = off\n", &cfg, &errs), 0);
    assert_false(cfg.daemon.http_listen.enabled);
    config_free(&cfg);
}

/* Each bad value is refused with an error at its line. */
static void errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *needle;
    } cases[] = {
        {"[daemon]\nhttp_listen = localhost:80\n", "not a listening address"},
        {"[daemon]\nhttp_listen = 127.0.0.1:0\n", "port"},
        {"[daemon]\nhttp_max_clients = 0\n", "out of range"},
        {"[daemon]\nhttp_max_clients = 5000\n", "out of range"},
        {"[daemon]\nhistory = 10s\n", "out of range"},
        {"[daemon]\nhistory = 2000min\n", "out of range"},
        {"[daemon]\nhistory = 10\n", "not a duration"},
        {"[daemon]\nhttp_timeout = 500ms\n", "out of range"},
        {"[daemon]\nhttp_timeout = 6min\n", "out of range"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config cfg;
        struct config_errors errs;
        if (parse(cases[i].text, &cfg, &errs) != -EINVAL)
            fail_msg("accepted: %s", cases[i].text);
        assert_int_equal(errs.count, 1);
        assert_int_equal(errs.items[0].line, 2);
        if (!strstr(errs.items[0].message, cases[i].needle))
            fail_msg("'%s' has no '%s'", errs.items[0].message, cases[i].needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addresses),
        cmocka_unit_test(defaults),
        cmocka_unit_test(keys),
        cmocka_unit_test(errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
