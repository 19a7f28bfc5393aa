/* A TCP listening address as operators write it: "127.0.0.1:8466", "[::1]:8466",
 * "0.0.0.0:8466", or "off". Pure: numeric addresses only (no name lookup, so nothing can
 * block and nothing depends on resolver configuration). */
#ifndef BELLOWS_NETADDR_H
#define BELLOWS_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#define NETADDR_TEXT_MAX 64

struct netaddr {
    bool enabled; /* false for "off" */
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char text[NETADDR_TEXT_MAX]; /* as written, for logs and the config dump */
};

/* Parse "IPV4:PORT", "[IPV6]:PORT" or "off" (port 1..65535). Returns 0, or -EINVAL with a
 * reason in err; *ret untouched on error. */
int netaddr_parse(const char *text, struct netaddr *ret, char *err, size_t err_cap);

/* Whether the address is a loopback one (127.0.0.0/8, ::1). */
bool netaddr_is_loopback(const struct netaddr *a);

#endif
