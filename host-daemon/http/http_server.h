/* bellowsd's HTTP server: libmicrohttpd in external-epoll mode, driven from bellowsd's own
 * libuv loop and never blocking it.
 *
 * MHD's epoll descriptor is watched with a uv_poll_t; when it is readable, or when the
 * timer armed from MHD_get_timeout() fires, MHD_run() does the work that is ready, without
 * waiting, and the timer is armed again. Every request is answered at once by a handler
 * (read-only: GET and HEAD; anything else gets 405 before the handler is asked).
 * Event-stream clients get a bounded queue each (sse.h); a stream whose queue is empty is
 * suspended (MHD_suspend_connection) and resumed when an event is broadcast, so idle
 * streams cost no work; one whose queue overflows is cut off. Limits: connections (at
 * the limit MHD stops accepting: more wait in the kernel's listen queue until a slot
 * frees), per-connection memory (headers and URL beyond it get 431 or 414), an idle
 * timeout and a deadline per request (slow clients, even dripping ones, are closed),
 * event streams (more get 503).
 */
#ifndef BELLOWS_HTTP_SERVER_H
#define BELLOWS_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "host-daemon/util/netaddr.h"

struct http_server;
struct MHD_Connection;

struct http_server_limits {
    unsigned max_clients;      /* concurrent connections */
    unsigned max_streams;      /* concurrent event-stream clients, within max_clients */
    size_t stream_queue_bytes; /* unread event bytes held per stream client */
    unsigned timeout_s;        /* a connection idle this long is closed */
    unsigned request_s;        /* ... and one that takes longer to send a request or read
                                  its reply, however it drips (event streams excepted) */
    size_t request_memory;     /* per connection: request line, headers */
    unsigned keepalive_ms;     /* a comment to every stream this often */
};

/* Defaults documented in docs/operations.md. */
void http_server_limits_default(struct http_server_limits *lim);

struct http_request {
    const char *method;
    const char *path; /* without the query, unescaped */
    struct MHD_Connection *conn;
};

/* A query argument of the request, NULL when absent. */
const char *http_request_arg(const struct http_request *req, const char *name);
/* A header of the request, NULL when absent. */
const char *http_request_header(const struct http_request *req, const char *name);

struct http_reply {
    unsigned status;
    const char *content_type;
    char *body; /* malloc'ed and taken over, unless body_static */
    size_t len;
    bool body_static;
    const char *cache_control; /* NULL: no-store */
    struct {
        const char *name, *value; /* static strings */
    } headers[3];                 /* more headers: ETag, Allow, Retry-After ... */
    size_t n_headers;
    /* Open an event stream instead: body (may be empty) is the first text sent. */
    bool stream;
};

/* A JSON reply (j is taken over). */
void http_reply_json(struct http_reply *r, unsigned status, json_t *j);
/* {"error": "..."} with the given status. */
void http_reply_error(struct http_reply *r, unsigned status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Add a header to a reply (at most 3; name and value must outlive the reply). */
void http_reply_header(struct http_reply *r, const char *name, const char *value);

/* Fills reply for req; called on the loop thread, must not block. */
typedef void (*http_handler_fn)(void *opaque, const struct http_request *req,
                                struct http_reply *reply);

struct http_server_stats {
    uint64_t requests;
    uint64_t responses[6];  /* by class: [2] 2xx ... [5] 5xx */
    uint64_t streams_open;  /* event-stream clients now */
    uint64_t streams_total; /* opened since start */
    uint64_t streams_dropped;
    uint64_t connections_open; /* TCP connections held now */
    uint64_t connections_total;
    uint64_t connections_peak; /* most held at once */
    uint64_t connections_cut;  /* closed for taking longer than request_s */
};

/* What the server has to say (this library does not log: its owner does). warning: an
 * operator should know (a stream client dropped); else a detail (libmicrohttpd's own
 * messages). */
typedef void (*http_log_fn)(void *opaque, bool warning, const char *msg);

/* Listen on addr and serve; log may be NULL. Returns 0, or a negative errno with a reason
 * in err. */
int http_server_start(uv_loop_t *loop, const struct netaddr *addr,
                      const struct http_server_limits *lim, http_handler_fn handler,
                      http_log_fn log, void *opaque, struct http_server **ret, char *err,
                      size_t err_cap);

/* The TCP port it listens on (the kernel's choice when addr had port 0, as tests do). */
uint16_t http_server_port(const struct http_server *s);

/* Queue one complete event (sse_format's text) to every stream client. */
void http_server_broadcast(struct http_server *s, const char *text, size_t len);

const struct http_server_stats *http_server_stats(const struct http_server *s);

/* Close every connection and stop listening; memory goes once libuv lets go of the
 * handles. No handler call after this returns. */
void http_server_close(struct http_server *s);

#endif
