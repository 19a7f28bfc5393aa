/* The control protocol's parser and handler over a registry built from literals, with fake
 * add/remove effects. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/control/control_proto.h"

struct fake {
    int adds, removes, kicks, libvirt_events;
    char event[16], uuid[40], domain[300];
    struct config_guest added;
    struct registry *reg;
    int add_result;
};

static int fake_add(void *ctx, const struct config_guest *cfg, char *err, size_t cap)
{
    struct fake *f = ctx;
    f->adds++;
    f->added = *cfg;
    if (f->add_result < 0) {
        snprintf(err, cap, "fake add refused");
        return f->add_result;
    }
    struct guest *g = guest_new(cfg, false);
    return registry_add(f->reg, g);
}

static void fake_remove(void *ctx, struct guest *g)
{
    struct fake *f = ctx;
    f->removes++;
    registry_remove(f->reg, g);
    guest_free(g);
}

static void fake_kick(void *ctx)
{
    ((struct fake *)ctx)->kicks++;
}

static void fake_libvirt_event(void *ctx, const char *event, const char *uuid, const char *domain)
{
    struct fake *f = ctx;
    f->libvirt_events++;
    snprintf(f->event, sizeof(f->event), "%s", event);
    snprintf(f->uuid, sizeof(f->uuid), "%s", uuid);
    snprintf(f->domain, sizeof(f->domain), "%s", domain);
}

static const struct control_ops ops = {
    .add = fake_add, .remove = fake_remove, .kick = fake_kick, .libvirt_event = fake_libvirt_event};

struct world {
    struct registry reg;
    struct policy_config pc;
    struct policy_host host;
    struct hostmem_sample sample;
    struct fake fake;
    struct control_context ctx;
};

static void add_guest(struct registry *reg, const char *name, uint64_t floor, uint64_t ceiling)
{
    struct config_guest cfg = {.floor_bytes = floor, .ceiling_bytes = ceiling, .weight = 100};
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    snprintf(cfg.qmp_path, sizeof(cfg.qmp_path), "/run/%s.qmp", name);
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "/run/%s.chan", name);
    assert_int_equal(registry_add(reg, guest_new(&cfg, true)), 0);
}

static int setup(void **state)
{
    static struct world w;
    memset(&w, 0, sizeof(w));
    registry_init(&w.reg);
    policy_config_defaults(&w.pc);
    policy_host_init(&w.host);
    w.sample.psi.some.avg10 = 1.5;
    w.sample.meminfo.mem_total_kb = 1000;
    w.sample.meminfo.mem_available_kb = 400;
    add_guest(&w.reg, "web1", 256 << 20, 1u << 30);
    add_guest(&w.reg, "db", 512 << 20, 2u << 30);
    w.fake.reg = &w.reg;
    w.ctx = (struct control_context){
        .reg = &w.reg,
        .policy = &w.pc,
        .host = &w.host,
        .host_sample = &w.sample,
        .dry_run = true,
        .now = 100000,
        .ops = &ops,
        .ops_ctx = &w.fake,
    };
    *state = &w;
    return 0;
}

static int teardown(void **state)
{
    struct world *w = *state;
    for (size_t i = 0; i < w->reg.n; i++)
        guest_free(w->reg.guests[i]);
    registry_free(&w->reg);
    return 0;
}

static json_t *run(struct world *w, const char *line)
{
    json_t *reply = control_handle_line(&w->ctx, line, strlen(line));
    assert_non_null(reply);
    return reply;
}

static void expect_error(struct world *w, const char *line, const char *needle)
{
    json_t *reply = run(w, line);
    assert_true(json_is_false(json_object_get(reply, "ok")));
    const char *err = json_string_value(json_object_get(reply, "error"));
    assert_non_null(err);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s' for %s", err, needle, line);
    json_decref(reply);
}

static void parser_refuses_bad_requests(void **state)
{
    struct world *w = *state;
    expect_error(w, "", "not JSON");
    expect_error(w, "{\"cmd\":\"list\"", "not JSON");
    expect_error(w, "[1,2]", "JSON object");
    expect_error(w, "{}", "\"cmd\" is missing");
    expect_error(w, "{\"cmd\":7}", "\"cmd\" is missing or not a string");
    expect_error(w, "{\"cmd\":\"explode\"}", "unknown command 'explode'");
    expect_error(w, "{\"cmd\":\"show\"}", "needs a \"name\"");
    expect_error(w, "{\"cmd\":\"show\",\"name\":\"a b\"}", "must be a guest name");
    expect_error(w, "{\"cmd\":\"show\",\"name\":5}", "must be a guest name");
    expect_error(w, "{\"cmd\":\"show\",\"name\":\"web1\",\"floor\":\"1G\"}", "takes no \"floor\"");
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\"}", "at least one of");
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"qmp\":\"/x\"}", "takes no \"qmp\"");
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":-1}", "non-negative integer");
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":true}", "non-negative integer");
    expect_error(w, "{\"cmd\":\"list\",\"cmd\":\"show\"}", "not JSON"); /* duplicate key */
    expect_error(w, "{\"cmd\":\"show\",\"name\":\"nobody\"}", "no guest named 'nobody'");
    /* Nothing was changed by any of them. */
    assert_int_equal(w->fake.kicks + w->fake.adds + w->fake.removes, 0);
}

static void list_shows_every_guest(void **state)
{
    struct world *w = *state;
    /* Give web1 a known balloon and a decision. */
    struct policy_guest *p = &w->reg.policy[registry_find(&w->reg, "web1")->index];
    policy_note_actual(&w->pc, p, 768u << 20, 99000);
    json_t *reply = run(w, "{\"cmd\":\"list\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    assert_true(json_is_true(json_object_get(reply, "dry_run")));
    json_t *host = json_object_get(reply, "host");
    assert_int_equal(json_integer_value(json_object_get(host, "mem_available")), 400 * 1024);
    json_t *guests = json_object_get(reply, "guests");
    assert_int_equal(json_array_size(guests), 2);
    json_t *g = json_array_get(guests, 0);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "web1");
    assert_string_equal(json_string_value(json_object_get(g, "level")), "none");
    assert_int_equal(json_integer_value(json_object_get(g, "floor")), 256 << 20);
    assert_int_equal(json_integer_value(json_object_get(g, "ceiling")), 1 << 30);
    assert_int_equal(json_integer_value(json_object_get(g, "weight")), 100);
    json_t *balloon = json_object_get(g, "balloon");
    assert_int_equal(json_integer_value(json_object_get(balloon, "actual")), 768 << 20);
    assert_true(json_is_null(json_object_get(balloon, "target")));
    assert_true(json_is_false(json_object_get(g, "paused")));
    assert_true(json_is_null(json_object_get(g, "last_decision")));
    assert_non_null(json_object_get(json_object_get(g, "counters"), "rate_limited"));
    assert_null(json_object_get(g, "decisions")); /* only show has the ring */
    g = json_array_get(guests, 1);
    assert_true(json_is_null(json_object_get(json_object_get(g, "balloon"), "actual")));
    json_decref(reply);
}

static void show_has_recent_decisions_bounded(void **state)
{
    struct world *w = *state;
    struct guest *g = registry_find(&w->reg, "db");
    for (int i = 0; i < GUEST_DECISION_RING + 5; i++) {
        struct policy_decision d = {.action = POLICY_DEFLATE,
                                    .reason = POLICY_R_CRITICAL,
                                    .from_bytes = (uint64_t)i << 20,
                                    .to_bytes = (uint64_t)(i + 1) << 20};
        struct decision_entry *e = guest_record_move(g, &d, 1700000000000 + i, MOVE_DONE);
        if (i == GUEST_DECISION_RING + 4) {
            e->result = MOVE_FAILED;
            snprintf(e->error, sizeof(e->error), "DeviceNotActive");
        }
    }
    json_t *reply = run(w, "{\"cmd\":\"show\",\"name\":\"db\"}");
    json_t *guest = json_object_get(reply, "guest");
    json_t *decisions = json_object_get(guest, "decisions");
    assert_int_equal(json_array_size(decisions), GUEST_DECISION_RING);
    json_t *newest = json_array_get(decisions, 0);
    assert_int_equal(json_integer_value(json_object_get(newest, "seq")), GUEST_DECISION_RING + 5);
    assert_string_equal(json_string_value(json_object_get(newest, "action")), "deflate");
    assert_string_equal(json_string_value(json_object_get(newest, "reason")),
                        policy_reason_name(POLICY_R_CRITICAL));
    assert_string_equal(json_string_value(json_object_get(newest, "result")), "failed");
    assert_string_equal(json_string_value(json_object_get(newest, "error")), "DeviceNotActive");
    assert_string_equal(json_string_value(json_object_get(newest, "time")),
                        "2023-11-14T22:13:20.036Z");
    json_t *oldest = json_array_get(decisions, GUEST_DECISION_RING - 1);
    assert_int_equal(json_integer_value(json_object_get(oldest, "seq")), 6);
    assert_int_equal(json_integer_value(json_object_get(oldest, "from")), 5 << 20);
    json_t *last_move = json_object_get(guest, "last_move");
    assert_int_equal(json_integer_value(json_object_get(last_move, "seq")),
                     GUEST_DECISION_RING + 5);
    json_decref(reply);
}

static void pause_resume_and_set(void **state)
{
    struct world *w = *state;
    struct guest *g = registry_find(&w->reg, "web1");
    json_t *reply = run(w, "{\"cmd\":\"pause\",\"name\":\"web1\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_true(w->reg.policy[g->index].paused);
    assert_int_equal(w->fake.kicks, 1);

    reply = run(w, "{\"cmd\":\"resume\",\"name\":\"web1\"}");
    json_decref(reply);
    assert_false(w->reg.policy[g->index].paused);

    reply = run(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"floor\":\"512M\",\"weight\":250}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_int_equal(g->cfg.floor_bytes, 512 << 20);
    assert_int_equal(w->reg.policy[g->index].floor_bytes, 512 << 20);
    assert_int_equal(w->reg.policy[g->index].weight, 250);
    assert_int_equal(g->cfg.ceiling_bytes, 1 << 30);

    /* Invalid combinations change nothing at all. */
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":9,\"floor\":\"2G\"}",
                 "above ceiling");
    expect_error(w, "{\"cmd\":\"set\",\"name\":\"web1\",\"ceiling\":\"lots\"}", "not a size");
    assert_int_equal(g->cfg.floor_bytes, 512 << 20);
    assert_int_equal(w->reg.policy[g->index].weight, 250);
    assert_int_equal(w->reg.policy[g->index].ceiling_bytes, 1 << 30);
}

static void add_and_remove(void **state)
{
    struct world *w = *state;
    expect_error(w, "{\"cmd\":\"add\",\"name\":\"new\",\"qmp\":\"/q\"}", "no channel");
    expect_error(w,
                 "{\"cmd\":\"add\",\"name\":\"web1\",\"qmp\":\"/q\",\"channel\":\"/c\","
                 "\"floor\":\"1G\",\"ceiling\":\"1G\"}",
                 "exists already");
    assert_int_equal(w->fake.adds, 0);

    json_t *reply =
        run(w, "{\"cmd\":\"add\",\"name\":\"new\",\"qmp\":\"/run/n.qmp\","
               "\"channel\":\"/run/n.chan\",\"floor\":\"128M\",\"ceiling\":1073741824}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_int_equal(w->fake.adds, 1);
    assert_string_equal(w->fake.added.qmp_path, "/run/n.qmp");
    assert_int_equal(w->fake.added.ceiling_bytes, 1 << 30);
    assert_int_equal(w->fake.added.weight, CONFIG_DEFAULT_WEIGHT);
    assert_int_equal(w->reg.n, 3);

    w->fake.add_result = -EINVAL;
    expect_error(w,
                 "{\"cmd\":\"add\",\"name\":\"new2\",\"qmp\":\"/q2\",\"channel\":\"/c2\","
                 "\"floor\":\"1G\",\"ceiling\":\"1G\"}",
                 "fake add refused");

    reply = run(w, "{\"cmd\":\"remove\",\"name\":\"web1\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_int_equal(w->fake.removes, 1);
    assert_null(registry_find(&w->reg, "web1"));
    /* The guest moved into the hole keeps its own policy state. */
    struct guest *moved = registry_find(&w->reg, "new");
    assert_int_equal(w->reg.policy[moved->index].floor_bytes, 128 << 20);
    struct guest *db = registry_find(&w->reg, "db");
    assert_int_equal(w->reg.policy[db->index].floor_bytes, 512 << 20);
}

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

/* A guest of a libvirt domain: shown with its domain, limits settable, not removable;
 * the hook's libvirt-event reaches the daemon's rescan, and bad ones are refused. */
static void libvirt_guests_and_hook_events(void **state)
{
    struct world *w = *state;
    struct config_guest cfg = {.floor_bytes = 256 << 20, .ceiling_bytes = 1u << 30, .weight = 100};
    snprintf(cfg.name, sizeof(cfg.name), "web-1");
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "/var/lib/libvirt/web-1.sock");
    struct guest *g = guest_new(&cfg, false);
    g->backend = GUEST_BACKEND_LIBVIRT;
    snprintf(g->uuid, sizeof(g->uuid), UUID);
    snprintf(g->domain, sizeof(g->domain), "web-1");
    g->libvirt_connected = true;
    assert_int_equal(registry_add(&w->reg, g), 0);
    assert_ptr_equal(registry_find_uuid(&w->reg, UUID), g);
    assert_null(registry_find_uuid(&w->reg, "00000000-0000-0000-0000-000000000000"));

    json_t *reply = run(w, "{\"cmd\":\"show\",\"name\":\"web-1\"}");
    json_t *j = json_object_get(reply, "guest");
    assert_string_equal(json_string_value(json_object_get(j, "source")), "libvirt");
    assert_true(json_is_null(json_object_get(j, "qmp")));
    json_t *lv = json_object_get(j, "libvirt");
    assert_string_equal(json_string_value(json_object_get(lv, "uuid")), UUID);
    assert_string_equal(json_string_value(json_object_get(lv, "domain")), "web-1");
    assert_true(json_is_true(json_object_get(lv, "connected")));
    json_decref(reply);
    /* A QMP guest has no libvirt part. */
    reply = run(w, "{\"cmd\":\"show\",\"name\":\"web1\"}");
    assert_true(json_is_null(json_object_get(json_object_get(reply, "guest"), "libvirt")));
    json_decref(reply);

    /* set works without a QMP path; remove is refused: the domain's lifecycle decides. */
    reply = run(w, "{\"cmd\":\"set\",\"name\":\"web-1\",\"floor\":\"512M\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_int_equal(w->reg.policy[g->index].floor_bytes, 512 << 20);
    expect_error(w, "{\"cmd\":\"remove\",\"name\":\"web-1\"}", "is libvirt domain web-1");
    assert_int_equal(w->fake.removes, 0);
    assert_ptr_equal(registry_find(&w->reg, "web-1"), g);

    /* The hook's request, exactly as packaging/libvirt-hook-qemu sends it. */
    reply = run(w, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                   "\",\"domain\":\"web 1 \\\"x\\\"\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_int_equal(w->fake.libvirt_events, 1);
    assert_string_equal(w->fake.event, "started");
    assert_string_equal(w->fake.uuid, UUID);
    assert_string_equal(w->fake.domain, "web 1 \"x\"");
    reply = run(w, "{\"cmd\":\"libvirt-event\",\"event\":\"stopped\",\"uuid\":\"" UUID "\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_decref(reply);
    assert_string_equal(w->fake.domain, "");

    expect_error(w, "{\"cmd\":\"libvirt-event\",\"uuid\":\"" UUID "\"}", "needs an \"event\"");
    expect_error(w, "{\"cmd\":\"libvirt-event\",\"event\":\"started\"}", "and a \"uuid\"");
    expect_error(w, "{\"cmd\":\"libvirt-event\",\"event\":\"prepare\",\"uuid\":\"" UUID "\"}",
                 "started, stopped or reconnect");
    expect_error(w, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"6695eb01\"}",
                 "must be a UUID");
    expect_error(w,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":"
                 "\"6695eb01-f6a4-8304-79aa-97f2502e193g\"}",
                 "must be a UUID");
    expect_error(w,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                 "\",\"domain\":\"a\\nb\"}",
                 "control character");
    expect_error(
        w, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID "\",\"domain\":7}",
        "must be a domain name");
    expect_error(w,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                 "\",\"name\":\"web-1\"}",
                 "takes no \"name\"");
    assert_int_equal(w->fake.libvirt_events, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(parser_refuses_bad_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(list_shows_every_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(show_has_recent_decisions_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(pause_resume_and_set, setup, teardown),
        cmocka_unit_test_setup_teardown(add_and_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(libvirt_guests_and_hook_events, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
