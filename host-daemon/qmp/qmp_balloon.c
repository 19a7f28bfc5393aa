/* The QMP balloon backend: qmp.c's client behind the balloon interface; it logs its own
 * link: a failure when it starts or changes (connect, a hung greeting or handshake, a
 * dead monitor), then at most a summary a minute while it lasts (util/faillog.h); ready
 * once per failure episode; a size QEMU got wrong once, then summarised. */
#include "host-daemon/qmp/qmp_balloon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-daemon/qmp/qmp.h"
#include "host-daemon/util/faillog.h"
#include "host-daemon/util/log.h"

struct qmp_balloon {
    struct balloon base; /* first: a struct balloon * is a struct qmp_balloon * */
    struct qmp_client *client;
    uv_loop_t *loop;
    char guest[CONFIG_NAME_MAX + 1];
    char path[CONFIG_PATH_MAX];
    struct faillog log;     /* the link's failures */
    bool ready_told;        /* this failure episode's first ready was logged */
    uint64_t ready_at;      /* loop ms of the last ready */
    uint64_t stable_ms;     /* ready this long: the failure episode is over */
    struct faillog bad_log; /* sizes QEMU sent that were not sizes */
    balloon_closed_cb closed;
    void *closed_opaque;
};

/* A pending move: its token and where its completion goes. */
struct move {
    balloon_done_cb done;
    void *opaque;
    uint64_t token;
};

/* A pending query. */
struct query {
    balloon_query_cb done;
    void *opaque;
};

static double mib(uint64_t bytes)
{
    return (double)bytes / (double)(1u << 20);
}

static struct qmp_balloon *of(struct balloon *b)
{
    return (struct qmp_balloon *)b;
}

/* QEMU's error as one text: "GenericError: text", or the errno's text. */
static void error_text(const struct qmp_result *res, char *buf, size_t cap)
{
    if (res->status == -EREMOTEIO)
        snprintf(buf, cap, "%s%s%s", res->error_class ? res->error_class : "error",
                 res->error_desc ? ": " : "", res->error_desc ? res->error_desc : "");
    else
        snprintf(buf, cap, "%s", strerror(-res->status));
}

static void on_ready(struct qmp_client *c, int64_t actual_bytes, void *opaque)
{
    (void)c;
    struct qmp_balloon *q = opaque;
    q->ready_at = uv_now(q->loop);
    if (!q->log.failing)
        log_info("guest %s: QMP %s ready, balloon at %.1f MiB", q->guest, q->path,
                 mib((uint64_t)actual_bytes));
    else if (!q->ready_told)
        log_info("guest %s: QMP %s ready after %llu failed attempts, balloon at %.1f MiB", q->guest,
                 q->path, (unsigned long long)q->log.total, mib((uint64_t)actual_bytes));
    else /* it keeps dropping soon after: the failure's summary says so */
        log_debug("guest %s: QMP %s ready again, balloon at %.1f MiB", q->guest, q->path,
                  mib((uint64_t)actual_bytes));
    q->ready_told = true;
    balloon_emit_ready(&q->base, (uint64_t)actual_bytes);
}

static void on_balloon_change(struct qmp_client *c, int64_t actual_bytes, void *opaque)
{
    (void)c;
    struct qmp_balloon *q = opaque;
    balloon_emit_actual(&q->base, (uint64_t)actual_bytes);
}

static void on_disconnect(struct qmp_client *c, int err, const char *reason, bool was_ready,
                          void *opaque)
{
    struct qmp_balloon *q = opaque;
    uint64_t now = uv_now(q->loop);
    const char *phase = qmp_client_failed_phase(c);
    if (!reason)
        reason = "";
    /* A link that stayed ready long enough ended the last failure episode. */
    if (was_ready && now - q->ready_at >= q->stable_ms && faillog_ok(&q->log, (int64_t)now))
        q->ready_told = false;
    switch (faillog_fail(&q->log, err, phase, (int64_t)now)) {
    case FAILLOG_NEW:
        q->ready_told = false;
        log_warning("guest %s: QMP %s: %s (%s, while %s); retrying with backoff", q->guest, q->path,
                    strerror(-err), reason, phase);
        break;
    case FAILLOG_SUMMARY:
        log_warning("guest %s: QMP %s still failing: %llu times in the last %.0f s, %llu since "
                    "%.0f s ago (%s: %s, while %s); retrying with backoff",
                    q->guest, q->path, (unsigned long long)q->log.summarised,
                    FAILLOG_SUMMARY_MS / 1000.0, (unsigned long long)q->log.total,
                    (double)((int64_t)now - q->log.since_ms) / 1000, strerror(-err), reason, phase);
        break;
    case FAILLOG_QUIET:
        log_debug("guest %s: QMP %s: %s (%s, while %s); retrying in %llu ms", q->guest, q->path,
                  strerror(-err), reason, phase, (unsigned long long)qmp_client_retry_ms(c));
        break;
    }
    balloon_emit_lost(&q->base, reason[0] ? reason : strerror(-err));
}

/* QEMU sent a balloon size that is not a size: ignored by the client; said here. */
static void on_bad_actual(struct qmp_client *c, const char *where, void *opaque)
{
    struct qmp_balloon *q = opaque;
    int64_t now = (int64_t)uv_now(q->loop);
    switch (faillog_fail(&q->bad_log, -EBADMSG, where, now)) {
    case FAILLOG_NEW:
        log_warning("guest %s: QMP %s: a %s without a valid size (not an integer above 0): "
                    "ignored; more are counted",
                    q->guest, q->path, where);
        break;
    case FAILLOG_SUMMARY:
        log_warning("guest %s: QMP %s: %llu more sizes ignored in the last %.0f s (%llu in all)",
                    q->guest, q->path, (unsigned long long)q->bad_log.summarised,
                    FAILLOG_SUMMARY_MS / 1000.0,
                    (unsigned long long)qmp_client_stats(c)->bad_actuals);
        break;
    case FAILLOG_QUIET:
        break;
    }
}

static int qb_start(struct balloon *b)
{
    return qmp_client_start(of(b)->client);
}

static void on_move_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    (void)c;
    struct move *m = opaque;
    char text[200];
    if (res->status != 0)
        error_text(res, text, sizeof(text));
    m->done(m->opaque, m->token, res->status, res->status == 0 ? NULL : text);
    free(m);
}

static int qb_set_target(struct balloon *b, uint64_t target_bytes, uint64_t token,
                         balloon_done_cb done, void *opaque, char *error, size_t error_cap)
{
    struct move *m = malloc(sizeof(*m));
    if (!m)
        return -ENOMEM;
    *m = (struct move){.done = done, .opaque = opaque, .token = token};
    int r = qmp_client_set_balloon(of(b)->client, (int64_t)target_bytes, on_move_done, m);
    if (r < 0) {
        free(m);
        if (error)
            snprintf(error, error_cap, "%s", strerror(-r));
    }
    return r;
}

static void on_query_done(struct qmp_client *c, const struct qmp_result *res, void *opaque)
{
    (void)c;
    struct query *q = opaque;
    char text[200];
    int status = res->status;
    if (status == 0 && res->actual_bytes < 0)
        status = -EPROTO;
    if (status != 0)
        error_text(&(struct qmp_result){.status = status,
                                        .error_class = res->error_class,
                                        .error_desc = res->error_desc},
                   text, sizeof(text));
    q->done(q->opaque, status, status == 0 ? (uint64_t)res->actual_bytes : 0,
            status == 0 ? NULL : text);
    free(q);
}

static int qb_query(struct balloon *b, balloon_query_cb done, void *opaque)
{
    struct query *q = malloc(sizeof(*q));
    if (!q)
        return -ENOMEM;
    *q = (struct query){.done = done, .opaque = opaque};
    int r = qmp_client_query_balloon(of(b)->client, on_query_done, q);
    if (r < 0)
        free(q);
    return r;
}

static void on_client_closed(struct qmp_client *c, void *opaque)
{
    (void)c;
    struct qmp_balloon *q = opaque;
    if (q->closed)
        q->closed(q->closed_opaque);
    free(q);
}

static void qb_close(struct balloon *b, balloon_closed_cb closed, void *opaque)
{
    struct qmp_balloon *q = of(b);
    q->closed = closed;
    q->closed_opaque = opaque;
    /* Pending commands fail with -ECANCELED inside; the memory goes once libuv lets go. */
    qmp_client_close(q->client, on_client_closed);
}

static void qb_describe(const struct balloon *b, char *buf, size_t cap)
{
    snprintf(buf, cap, "QMP %s", ((const struct qmp_balloon *)b)->path);
}

static void qb_view(const struct balloon *b, json_t *guest)
{
    const struct qmp_balloon *q = (const struct qmp_balloon *)b;
    json_object_set_new(
        guest, "qmp",
        json_pack("{sssb}", "path", q->path, "ready", qmp_client_is_ready(q->client)));
}

static const struct balloon_ops qmp_balloon_ops = {
    .kind = "qmp",
    .move_note = "",
    .fds = 1, /* the monitor's socket */
    .start = qb_start,
    .set_target = qb_set_target,
    .query = qb_query,
    .close = qb_close,
    .describe = qb_describe,
    .view = qb_view,
};

static int qb_open(uv_loop_t *loop, const struct config_guest *cfg,
                   const struct config_daemon *daemon_cfg, struct balloon **ret)
{
    struct qmp_client_config qc = {
        .backoff_min_ms = daemon_cfg->reconnect_min_ms,
        .backoff_max_ms = daemon_cfg->reconnect_max_ms,
    };
    static const struct qmp_callbacks cbs = {
        .on_ready = on_ready,
        .on_balloon_change = on_balloon_change,
        .on_disconnect = on_disconnect,
        .on_bad_actual = on_bad_actual,
    };
    struct qmp_balloon *q = calloc(1, sizeof(*q));
    if (!q)
        return -ENOMEM;
    balloon_init(&q->base, &qmp_balloon_ops);
    q->loop = loop;
    /* As the client's own rule for its backoff (qmp.h, stable_ms). */
    q->stable_ms = daemon_cfg->reconnect_max_ms > 1000 ? daemon_cfg->reconnect_max_ms : 1000;
    snprintf(q->guest, sizeof(q->guest), "%s", cfg->name);
    snprintf(q->path, sizeof(q->path), "%s", cfg->qmp_path);
    int r = qmp_client_new(loop, cfg->qmp_path, &qc, &cbs, q, &q->client);
    if (r < 0) {
        free(q);
        return r;
    }
    *ret = &q->base;
    return 0;
}

/* See qmp_balloon.h. */
const struct balloon_factory qmp_balloon_factory = {
    .kind = "qmp",
    .open = qb_open,
};
