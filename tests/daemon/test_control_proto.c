/* The control protocol's parser and handler over fake control_ops: what each request
 * asks of the daemon, and that refused requests ask nothing. (The daemon's side of each
 * change is tested in test_core.c, the JSON views in test_views.c.) */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/control/control_proto.h"

#define MAX_GUESTS 8

/* A daemon in miniature: guests by name with their settings, and what was asked. */
struct fake {
    struct config_guest guests[MAX_GUESTS];
    size_t n;
    int finds, lists, shows, pauses, sets, adds, removes, vm_events;
    bool paused_arg, with_decisions_arg;
    char name_arg[CONFIG_NAME_MAX + 1];
    struct config_guest cfg_arg;
    char event[16], uuid[40], domain[300];
    int add_result, remove_result;
};

static struct config_guest *lookup(struct fake *f, const char *name)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->guests[i].name, name) == 0)
            return &f->guests[i];
    return NULL;
}

static int fake_find(void *ctx, const char *name, struct config_guest *ret_cfg)
{
    struct fake *f = ctx;
    f->finds++;
    struct config_guest *g = lookup(f, name);
    if (!g)
        return -ENOENT;
    *ret_cfg = *g;
    return 0;
}

static json_t *fake_list(void *ctx)
{
    struct fake *f = ctx;
    f->lists++;
    return json_pack("{sbsns[]}", "dry_run", 1, "host", "guests");
}

static json_t *fake_show(void *ctx, const char *name, bool with_decisions)
{
    struct fake *f = ctx;
    f->shows++;
    f->with_decisions_arg = with_decisions;
    struct config_guest *g = lookup(f, name);
    return json_pack("{sssI}", "name", name, "floor", (json_int_t)g->floor_bytes);
}

static void fake_pause(void *ctx, const char *name, bool paused)
{
    struct fake *f = ctx;
    f->pauses++;
    f->paused_arg = paused;
    snprintf(f->name_arg, sizeof(f->name_arg), "%s", name);
}

static void fake_set_limits(void *ctx, const char *name, const struct config_guest *cfg)
{
    struct fake *f = ctx;
    f->sets++;
    snprintf(f->name_arg, sizeof(f->name_arg), "%s", name);
    f->cfg_arg = *cfg;
    *lookup(f, name) = *cfg;
}

static int fake_add(void *ctx, const struct config_guest *cfg, char *err, size_t cap)
{
    struct fake *f = ctx;
    f->adds++;
    f->cfg_arg = *cfg;
    if (f->add_result < 0) {
        snprintf(err, cap, "fake add refused");
        return f->add_result;
    }
    f->guests[f->n++] = *cfg;
    return 0;
}

static int fake_remove(void *ctx, const char *name, char *err, size_t cap)
{
    struct fake *f = ctx;
    f->removes++;
    snprintf(f->name_arg, sizeof(f->name_arg), "%s", name);
    if (f->remove_result < 0) {
        snprintf(err, cap, "guest '%s' is libvirt domain %s: it goes when the domain stops", name,
                 name);
        return f->remove_result;
    }
    struct config_guest *g = lookup(f, name);
    *g = f->guests[--f->n];
    return 0;
}

static void fake_vm_event(void *ctx, const char *event, const char *uuid, const char *domain)
{
    struct fake *f = ctx;
    f->vm_events++;
    snprintf(f->event, sizeof(f->event), "%s", event);
    snprintf(f->uuid, sizeof(f->uuid), "%s", uuid);
    snprintf(f->domain, sizeof(f->domain), "%s", domain);
}

static const struct control_ops ops = {
    .find = fake_find,
    .list = fake_list,
    .show = fake_show,
    .pause = fake_pause,
    .set_limits = fake_set_limits,
    .add = fake_add,
    .remove = fake_remove,
    .vm_event = fake_vm_event,
};

static void add_guest(struct fake *f, const char *name, uint64_t floor, uint64_t ceiling)
{
    struct config_guest *cfg = &f->guests[f->n++];
    *cfg = (struct config_guest){.floor_bytes = floor, .ceiling_bytes = ceiling, .weight = 100};
    snprintf(cfg->name, sizeof(cfg->name), "%s", name);
    snprintf(cfg->qmp_path, sizeof(cfg->qmp_path), "/run/%s.qmp", name);
    snprintf(cfg->channel_path, sizeof(cfg->channel_path), "/run/%s.chan", name);
}

static int setup(void **state)
{
    static struct fake f;
    memset(&f, 0, sizeof(f));
    add_guest(&f, "web1", 256 << 20, 1u << 30);
    add_guest(&f, "db", 512 << 20, 2u << 30);
    *state = &f;
    return 0;
}

static json_t *run(struct fake *f, const char *line)
{
    json_t *reply = control_handle_line(&ops, f, line, strlen(line));
    assert_non_null(reply);
    return reply;
}

static void expect_ok(struct fake *f, const char *line)
{
    json_t *reply = run(f, line);
    if (!json_is_true(json_object_get(reply, "ok")))
        fail_msg("%s -> %s", line, json_string_value(json_object_get(reply, "error")));
    json_decref(reply);
}

static void expect_error(struct fake *f, const char *line, const char *needle)
{
    json_t *reply = run(f, line);
    assert_true(json_is_false(json_object_get(reply, "ok")));
    const char *err = json_string_value(json_object_get(reply, "error"));
    assert_non_null(err);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s' for %s", err, needle, line);
    json_decref(reply);
}

/* No change at all was asked of the daemon. */
static void assert_no_change(const struct fake *f)
{
    assert_int_equal(f->pauses + f->sets + f->adds + f->removes + f->vm_events, 0);
}

static void parser_refuses_bad_requests(void **state)
{
    struct fake *f = *state;
    expect_error(f, "", "not JSON");
    expect_error(f, "{\"cmd\":\"list\"", "not JSON");
    expect_error(f, "[1,2]", "JSON object");
    expect_error(f, "{}", "\"cmd\" is missing");
    expect_error(f, "{\"cmd\":7}", "\"cmd\" is missing or not a string");
    expect_error(f, "{\"cmd\":\"explode\"}", "unknown command 'explode'");
    expect_error(f, "{\"cmd\":\"show\"}", "needs a \"name\"");
    expect_error(f, "{\"cmd\":\"show\",\"name\":\"a b\"}", "must be a guest name");
    expect_error(f, "{\"cmd\":\"show\",\"name\":5}", "must be a guest name");
    expect_error(f, "{\"cmd\":\"show\",\"name\":\"web1\",\"floor\":\"1G\"}", "takes no \"floor\"");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\"}", "at least one of");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"qmp\":\"/x\"}", "takes no \"qmp\"");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":-1}", "non-negative integer");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":true}", "non-negative integer");
    expect_error(f, "{\"cmd\":\"list\",\"cmd\":\"show\"}", "not JSON"); /* duplicate key */
    assert_int_equal(f->finds, 0); /* none of them got past the parser */
    expect_error(f, "{\"cmd\":\"show\",\"name\":\"nobody\"}", "no guest named 'nobody'");
    expect_error(f, "{\"cmd\":\"pause\",\"name\":\"nobody\"}", "no guest named 'nobody'");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"nobody\",\"weight\":5}", "no guest named");
    expect_error(f, "{\"cmd\":\"remove\",\"name\":\"nobody\"}", "no guest named 'nobody'");
    assert_int_equal(f->shows, 0);
    assert_no_change(f);
}

/* list and show only read: their replies are the daemon's views under "ok". */
static void list_and_show_read_views(void **state)
{
    struct fake *f = *state;
    json_t *reply = run(f, "{\"cmd\":\"list\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    assert_true(json_is_true(json_object_get(reply, "dry_run")));
    assert_true(json_is_null(json_object_get(reply, "host")));
    assert_true(json_is_array(json_object_get(reply, "guests")));
    assert_string_equal(json_object_iter_key(json_object_iter(reply)), "ok"); /* first */
    json_decref(reply);
    assert_int_equal(f->lists, 1);

    reply = run(f, "{\"cmd\":\"show\",\"name\":\"db\"}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    json_t *guest = json_object_get(reply, "guest");
    assert_string_equal(json_string_value(json_object_get(guest, "name")), "db");
    assert_true(f->with_decisions_arg); /* show has the ring */
    json_decref(reply);
    assert_no_change(f);
}

static void pause_resume_and_set(void **state)
{
    struct fake *f = *state;
    expect_ok(f, "{\"cmd\":\"pause\",\"name\":\"web1\"}");
    assert_int_equal(f->pauses, 1);
    assert_true(f->paused_arg);
    assert_string_equal(f->name_arg, "web1");
    expect_ok(f, "{\"cmd\":\"resume\",\"name\":\"web1\"}");
    assert_int_equal(f->pauses, 2);
    assert_false(f->paused_arg);

    /* set: the guest's settings with the new limits, checked, in one call. */
    json_t *reply = run(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"floor\":\"512M\",\"weight\":250}");
    assert_true(json_is_true(json_object_get(reply, "ok")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(reply, "guest"), "floor")),
                     512 << 20);
    assert_false(f->with_decisions_arg);
    json_decref(reply);
    assert_int_equal(f->sets, 1);
    assert_string_equal(f->name_arg, "web1");
    assert_int_equal(f->cfg_arg.floor_bytes, 512 << 20);
    assert_int_equal(f->cfg_arg.weight, 250);
    assert_int_equal(f->cfg_arg.ceiling_bytes, 1 << 30);
    assert_string_equal(f->cfg_arg.qmp_path, "/run/web1.qmp"); /* the rest kept */

    /* A guest without a QMP path (a libvirt domain's) takes new limits too. */
    add_guest(f, "web-1", 256 << 20, 1u << 30);
    lookup(f, "web-1")->qmp_path[0] = '\0';
    expect_ok(f, "{\"cmd\":\"set\",\"name\":\"web-1\",\"floor\":\"512M\"}");
    assert_int_equal(f->sets, 2);
    assert_int_equal(f->cfg_arg.floor_bytes, 512 << 20);
    assert_string_equal(f->cfg_arg.qmp_path, "");

    /* Invalid combinations change nothing at all. */
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":9,\"floor\":\"2G\"}",
                 "above ceiling");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"ceiling\":\"lots\"}", "not a size");
    expect_error(f, "{\"cmd\":\"set\",\"name\":\"web1\",\"weight\":10001}", "weight");
    assert_int_equal(f->sets, 2);
}

static void add_and_remove(void **state)
{
    struct fake *f = *state;
    expect_error(f, "{\"cmd\":\"add\",\"name\":\"new\",\"qmp\":\"/q\"}", "no channel");
    expect_error(f,
                 "{\"cmd\":\"add\",\"name\":\"web1\",\"qmp\":\"/q\",\"channel\":\"/c\","
                 "\"floor\":\"1G\",\"ceiling\":\"1G\"}",
                 "exists already");
    assert_int_equal(f->adds, 0);

    expect_ok(f, "{\"cmd\":\"add\",\"name\":\"new\",\"qmp\":\"/run/n.qmp\","
                 "\"channel\":\"/run/n.chan\",\"floor\":\"128M\",\"ceiling\":1073741824}");
    assert_int_equal(f->adds, 1);
    assert_string_equal(f->cfg_arg.name, "new");
    assert_string_equal(f->cfg_arg.qmp_path, "/run/n.qmp");
    assert_string_equal(f->cfg_arg.channel_path, "/run/n.chan");
    assert_int_equal(f->cfg_arg.floor_bytes, 128 << 20);
    assert_int_equal(f->cfg_arg.ceiling_bytes, 1 << 30);
    assert_int_equal(f->cfg_arg.weight, CONFIG_DEFAULT_WEIGHT);

    /* The daemon's refusal is the reply. */
    f->add_result = -EINVAL;
    expect_error(f,
                 "{\"cmd\":\"add\",\"name\":\"new2\",\"qmp\":\"/q2\",\"channel\":\"/c2\","
                 "\"floor\":\"1G\",\"ceiling\":\"1G\"}",
                 "fake add refused");

    expect_ok(f, "{\"cmd\":\"remove\",\"name\":\"web1\"}");
    assert_int_equal(f->removes, 1);
    assert_string_equal(f->name_arg, "web1");
    assert_null(lookup(f, "web1"));
    f->remove_result = -EPERM;
    expect_error(f, "{\"cmd\":\"remove\",\"name\":\"db\"}", "is libvirt domain db");
    assert_non_null(lookup(f, "db"));
}

#define UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"

/* The hook's libvirt-event reaches the daemon, and bad ones are refused. */
static void hook_events(void **state)
{
    struct fake *f = *state;
    /* The hook's request, exactly as packaging/libvirt-hook-qemu sends it. */
    expect_ok(f, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                 "\",\"domain\":\"web 1 \\\"x\\\"\"}");
    assert_int_equal(f->vm_events, 1);
    assert_string_equal(f->event, "started");
    assert_string_equal(f->uuid, UUID);
    assert_string_equal(f->domain, "web 1 \"x\"");
    expect_ok(f, "{\"cmd\":\"libvirt-event\",\"event\":\"stopped\",\"uuid\":\"" UUID "\"}");
    assert_string_equal(f->event, "stopped");
    assert_string_equal(f->domain, "");

    expect_error(f, "{\"cmd\":\"libvirt-event\",\"uuid\":\"" UUID "\"}", "needs an \"event\"");
    expect_error(f, "{\"cmd\":\"libvirt-event\",\"event\":\"started\"}", "and a \"uuid\"");
    expect_error(f, "{\"cmd\":\"libvirt-event\",\"event\":\"prepare\",\"uuid\":\"" UUID "\"}",
                 "started, stopped or reconnect");
    expect_error(f, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"6695eb01\"}",
                 "must be a UUID");
    expect_error(f,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":"
                 "\"6695eb01-f6a4-8304-79aa-97f2502e193g\"}",
                 "must be a UUID");
    expect_error(f,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                 "\",\"domain\":\"a\\nb\"}",
                 "control character");
    expect_error(
        f, "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID "\",\"domain\":7}",
        "must be a domain name");
    expect_error(f,
                 "{\"cmd\":\"libvirt-event\",\"event\":\"started\",\"uuid\":\"" UUID
                 "\",\"name\":\"web-1\"}",
                 "takes no \"name\"");
    assert_int_equal(f->vm_events, 2);
}

/* Which commands change something (the control server logs those). */
static void changes_are_known(void **state)
{
    (void)state;
    assert_false(control_is_change(CONTROL_LIST));
    assert_false(control_is_change(CONTROL_SHOW));
    assert_true(control_is_change(CONTROL_PAUSE));
    assert_true(control_is_change(CONTROL_RESUME));
    assert_true(control_is_change(CONTROL_SET));
    assert_true(control_is_change(CONTROL_ADD));
    assert_true(control_is_change(CONTROL_REMOVE));
    assert_true(control_is_change(CONTROL_LIBVIRT_EVENT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(parser_refuses_bad_requests, setup),
        cmocka_unit_test_setup(list_and_show_read_views, setup),
        cmocka_unit_test_setup(pause_resume_and_set, setup),
        cmocka_unit_test_setup(add_and_remove, setup),
        cmocka_unit_test_setup(hook_events, setup),
        cmocka_unit_test(changes_are_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
