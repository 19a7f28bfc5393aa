/* Listening addresses: "IPV4:PORT", "[IPV6]:PORT", "off". */
#include "host-daemon/util/netaddr.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *text, uint16_t *ret)
{
    if (!*text || strlen(text) > 5)
        return -EINVAL;
    unsigned long v = 0;
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v == 0 || v > 65535)
        return -EINVAL;
    *ret = (uint16_t)v;
    return 0;
}

/* See netaddr.h. */
int netaddr_parse(const char *text, struct netaddr *ret, char *err, size_t err_cap)
{
    struct netaddr a;
    char host[NETADDR_TEXT_MAX];
    const char *port;
    uint16_t port_num;

    memset(&a, 0, sizeof(a));
    if (strcmp(text, "off") == 0) {
        snprintf(ret->text, sizeof(ret->text), "off");
        ret->enabled = false;
        ret->addr_len = 0;
        return 0;
    }
    if (strlen(text) >= sizeof(a.text))
        goto bad;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close || close[1] != ':')
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(close - text - 1), text + 1);
        port = close + 2;
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.addr;
        if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
            goto bad;
        if (parse_port(port, &port_num) < 0)
            goto bad_port;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port_num);
        a.addr_len = sizeof(*sin6);
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon)
            goto bad;
        snprintf(host, sizeof(host), "%.*s", (int)(colon - text), text);
        port = colon + 1;
        struct sockaddr_in *sin = (struct sockaddr_in *)&a.addr;
        if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
            goto bad;
        if (parse_port(port, &port_num) < 0)
            goto bad_port;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port_num);
        a.addr_len = sizeof(*sin);
    }
    a.enabled = true;
    snprintf(a.text, sizeof(a.text), "%s", text);
    *ret = a;
    return 0;
bad_port:
    snprintf(err, err_cap, "'%s': the port must be a number 1..65535", text);
    return -EINVAL;
bad:
    snprintf(err, err_cap,
             "'%.64s' is not a listening address (IPV4:PORT, [IPV6]:PORT or off, e.g. "
             "127.0.0.1:8466)",
             text);
    return -EINVAL;
}

/* See netaddr.h. */
bool netaddr_is_loopback(const struct netaddr *a)
{
    if (!a->enabled)
        return false;
    if (a->addr.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addr;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->addr;
    return IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr);
}
