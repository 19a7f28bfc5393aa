/* The libvirt balloon backend (host-daemon/libvirt/libvirt_balloon.c) against libvirt's
 * in-process test driver (test:///default): the balloon interface's contract as the core
 * relies on it. ready only after start, from a later loop turn; moves and queries complete
 * later, never inside the call, with libvirt's refusal as text; a lost connection is
 * `lost` and the next size `ready`; close cancels what is pending and stops every event;
 * its part of a guest's view. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <cmocka.h>

#include "host-daemon/libvirt/libvirt_balloon.h"
#include "host-daemon/libvirt/libvirt_event_uv.h"

#define MiB (UINT64_C(1) << 20)

static uv_loop_t loop;
static virConnectPtr admin;
static struct libvirt_balloons set;

/* What the client reported, as the libvirt guests module would see it. */
static char appeared_uuid[VIR_UUID_STRING_BUFLEN];
static uint64_t appeared_actual;

static void on_appeared(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                        uint64_t actual, void *opaque)
{
    (void)b;
    (void)opaque;
    snprintf(appeared_uuid, sizeof(appeared_uuid), "%s", info->uuid);
    appeared_actual = actual;
}

static void on_balloon(struct libvirt_backend *b, const char *uuid, uint64_t actual, void *opaque)
{
    (void)b;
    (void)opaque;
    struct balloon *lb = libvirt_balloons_find(&set, uuid);
    if (lb)
        libvirt_balloon_note_actual(lb, actual);
}

static const struct libvirt_backend_callbacks callbacks = {
    .domain_appeared = on_appeared,
    .balloon_changed = on_balloon,
};

/* The core's side: events and completions, counted. */
struct core {
    int readies, actuals, losts, dones, queries, closed;
    uint64_t ready_bytes, actual_bytes, query_bytes;
    uint64_t token;
    int status, query_status;
    char error[200];
    bool in_call; /* a completion inside the call that started it would set this */
    bool called_in_call;
};
static struct core core;

static void ev_ready(void *opaque, uint64_t bytes)
{
    (void)opaque;
    core.readies++;
    core.ready_bytes = bytes;
}

static void ev_actual(void *opaque, uint64_t bytes)
{
    (void)opaque;
    core.actuals++;
    core.actual_bytes = bytes;
}

static void ev_lost(void *opaque, const char *reason)
{
    (void)opaque;
    (void)reason;
    core.losts++;
}

static const struct balloon_events events = {
    .ready = ev_ready, .actual = ev_actual, .lost = ev_lost};

static void on_done(void *opaque, uint64_t token, int status, const char *error)
{
    (void)opaque;
    core.dones++;
    core.token = token;
    core.status = status;
    snprintf(core.error, sizeof(core.error), "%s", error ? error : "");
    core.called_in_call |= core.in_call;
}

static void on_query(void *opaque, int status, uint64_t bytes, const char *error)
{
    (void)opaque;
    (void)error;
    core.queries++;
    core.query_status = status;
    core.query_bytes = bytes;
    core.called_in_call |= core.in_call;
}

static void on_closed(void *opaque)
{
    (void)opaque;
    core.closed++;
}

/* The client's calls run on worker threads: let the loop turn for a while, so that their
 * answers (and the balloon's later-turn deliveries) come in. */
static uv_timer_t spin_timer;
static bool spin_done;

static void on_spin(uv_timer_t *t)
{
    (void)t;
    spin_done = true;
}

static void spin(void)
{
    spin_done = false;
    uv_timer_init(&loop, &spin_timer);
    uv_timer_start(&spin_timer, on_spin, 300, 0);
    while (!spin_done)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&spin_timer, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

#define CHANNEL                                                                                    \
    "<channel type='unix'><source mode='bind' path='/run/bellows/lb.sock'/>"                       \
    "<target type='virtio' name='org.bellows.pressure.0'/></channel>"

static void the_contract(void **state)
{
    (void)state;
    struct libvirt_backend_config cfg;
    struct libvirt_backend *client;
    libvirt_backend_config_defaults(&cfg);
    cfg.uri = "test:///default";
    assert_int_equal(libvirt_backend_new(&loop, &cfg, &callbacks, NULL, &client), 0);
    assert_int_equal(libvirt_backend_start(client), 0);
    virDomainPtr dom =
        virDomainCreateXML(admin,
                           "<domain type='test'><name>lb</name>"
                           "<memory unit='MiB'>512</memory>"
                           "<currentMemory unit='MiB'>384</currentMemory>"
                           "<os><type>hvm</type></os><devices>" CHANNEL "</devices></domain>",
                           0);
    assert_non_null(dom);
    spin();
    assert_int_equal(appeared_actual, 384 * MiB);

    struct balloon *b =
        libvirt_balloon_new(&set, client, &loop, "guest-lb", appeared_uuid, "lb", appeared_actual);
    assert_non_null(b);
    assert_ptr_equal(libvirt_balloons_find(&set, appeared_uuid), b);
    assert_string_equal(libvirt_balloon_guest(b), "guest-lb");
    char text[100];
    b->ops->describe(b, text, sizeof(text));
    assert_string_equal(text, "libvirt domain lb");
    assert_int_equal(b->ops->fds, 0);

    /* ready comes after start, from a later turn. */
    balloon_bind(b, &events, NULL);
    assert_int_equal(b->ops->start(b), 0);
    assert_int_equal(core.readies, 0);
    spin();
    assert_int_equal(core.readies, 1);
    assert_int_equal(core.ready_bytes, 384 * MiB);

    /* A move: accepted, completed later with its token. */
    core.in_call = true;
    assert_int_equal(b->ops->set_target(b, 256 * MiB, 7, on_done, NULL, NULL, 0), 0);
    core.in_call = false;
    assert_int_equal(core.dones, 0);
    /* A second one while the first is pending is refused. */
    char err[200];
    assert_int_equal(b->ops->set_target(b, 300 * MiB, 8, on_done, NULL, err, sizeof(err)), -EBUSY);
    spin();
    assert_int_equal(core.dones, 1);
    assert_int_equal(core.token, 7);
    assert_int_equal(core.status, 0);
    virDomainInfo info;
    assert_int_equal(virDomainGetInfo(dom, &info), 0);
    assert_int_equal(info.memory, 256 * 1024);

    /* Above the domain's maximum: refused at once (the client knows the maximum), with why;
     * done never runs. */
    assert_int_equal(b->ops->set_target(b, 600 * MiB, 9, on_done, NULL, err, sizeof(err)), -ERANGE);
    assert_string_equal(err, "target outside 1 MiB..the domain's maximum memory");
    spin();
    assert_int_equal(core.dones, 1);

    /* The size, read again later. */
    core.in_call = true;
    assert_int_equal(b->ops->query(b, on_query, NULL), 0);
    core.in_call = false;
    assert_int_equal(core.queries, 0);
    spin();
    assert_int_equal(core.queries, 1);
    assert_int_equal(core.query_status, 0);
    /* The last size libvirt told: the test driver sends no balloon event for the move, and
     * the refused move above was refused without a call (the maximum is known). */
    assert_int_equal(core.query_bytes, 384 * MiB);
    assert_false(core.called_in_call);

    /* Its part of the view. */
    json_t *guest = json_object();
    b->ops->view(b, guest);
    json_t *lv = json_object_get(guest, "libvirt");
    assert_string_equal(json_string_value(json_object_get(lv, "domain")), "lb");
    assert_string_equal(json_string_value(json_object_get(lv, "uuid")), appeared_uuid);
    assert_true(json_is_true(json_object_get(lv, "connected")));
    json_decref(guest);

    /* libvirtd away: lost, shown disconnected; the next size read is ready again. */
    libvirt_balloons_set_connected(&set, false, "connection lost: end of file");
    assert_int_equal(core.losts, 1);
    guest = json_object();
    b->ops->view(b, guest);
    assert_true(json_is_false(json_object_get(json_object_get(guest, "libvirt"), "connected")));
    json_decref(guest);
    assert_int_equal(b->ops->query(b, on_query, NULL), -EAGAIN); /* unknown: nothing to say */
    libvirt_balloons_set_connected(&set, true, "test:///default");
    int readies = core.readies, actuals = core.actuals;
    libvirt_balloon_note_actual(b, 256 * MiB);
    assert_int_equal(core.readies, readies + 1);
    assert_int_equal(core.actuals, actuals);
    libvirt_balloon_note_actual(b, 250 * MiB);
    assert_int_equal(core.actuals, actuals + 1);
    assert_int_equal(core.actual_bytes, 250 * MiB);

    /* Close with a move pending: cancelled inside close, nothing after, memory later. */
    assert_int_equal(b->ops->set_target(b, 200 * MiB, 10, on_done, NULL, NULL, 0), 0);
    int dones = core.dones, events_before = core.readies + core.actuals + core.losts;
    b->ops->close(b, on_closed, NULL);
    assert_int_equal(core.dones, dones + 1);
    assert_int_equal(core.status, -ECANCELED);
    assert_int_equal(core.closed, 0);
    assert_null(libvirt_balloons_find(&set, appeared_uuid));
    spin();
    assert_int_equal(core.closed, 1);
    assert_int_equal(core.dones, dones + 1);
    assert_int_equal(core.readies + core.actuals + core.losts, events_before);

    /* A balloon whose client went away refuses moves at once. */
    struct balloon *b2 = libvirt_balloon_new(&set, client, &loop, "g2", "x", "d2", MiB);
    libvirt_balloons_detach(&set);
    assert_null(set.head);
    assert_int_equal(b2->ops->set_target(b2, 2 * MiB, 1, on_done, NULL, err, sizeof(err)),
                     -ENOTCONN);
    assert_string_equal(err, "the libvirt backend is not running");
    b2->ops->close(b2, NULL, NULL);

    assert_int_equal(virDomainDestroy(dom), 0);
    virDomainFree(dom);
    libvirt_backend_close(client);
    spin();
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
        cmocka_unit_test(the_contract),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
