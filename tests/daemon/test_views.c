/* The JSON views over a registry built from literals: a guest, its ring, the host, the
 * list; and the registry's own bookkeeping they read through. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "host-daemon/views/views.h"

/* A balloon backend that only has a view: the view delegates the backend's key to it. */
static void fake_view(const struct balloon *b, json_t *guest)
{
    (void)b;
    json_object_set_new(guest, "libvirt", json_pack("{ss}", "domain", "web-1"));
}
static const struct balloon_ops fake_ops = {.kind = "fake", .view = fake_view};

struct world {
    struct registry reg;
    struct policy_config pc;
    struct policy_host host;
    struct hostmem_sample sample;
    struct daemon_view view;
    struct balloon balloon;
};

static struct guest *add_guest(struct registry *reg, const char *name, uint64_t floor,
                               uint64_t ceiling)
{
    struct config_guest cfg = {.floor_bytes = floor, .ceiling_bytes = ceiling, .weight = 100};
    snprintf(cfg.name, sizeof(cfg.name), "%s", name);
    snprintf(cfg.qmp_path, sizeof(cfg.qmp_path), "/run/%s.qmp", name);
    snprintf(cfg.channel_path, sizeof(cfg.channel_path), "/run/%s.chan", name);
    struct guest *g = guest_new(&cfg, true);
    assert_int_equal(registry_add(reg, g), 0);
    return g;
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
    w.view = (struct daemon_view){
        .reg = &w.reg,
        .policy = &w.pc,
        .host = &w.host,
        .host_sample = &w.sample,
        .dry_run = true,
        .now = 100000,
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

static void list_shows_every_guest(void **state)
{
    struct world *w = *state;
    /* Give web1 a known balloon. */
    struct policy_guest *p = registry_policy(&w->reg, registry_find(&w->reg, "web1"));
    policy_note_actual(&w->pc, p, 768u << 20, 99000);
    json_t *reply = view_list(&w->view);
    assert_true(json_is_true(json_object_get(reply, "dry_run")));
    json_t *host = json_object_get(reply, "host");
    assert_int_equal(json_integer_value(json_object_get(host, "mem_available")), 400 * 1024);
    assert_int_equal(json_integer_value(json_object_get(host, "mem_total")), 1000 * 1024);
    assert_true(json_is_false(json_object_get(host, "pressure")));
    assert_true(json_is_null(json_object_get(host, "budget"))); /* none set */
    /* What the guests hold: web1's known balloon; db's size is not known yet. */
    assert_int_equal(json_integer_value(json_object_get(host, "held")), 768 << 20);
    json_t *guests = json_object_get(reply, "guests");
    assert_int_equal(json_array_size(guests), 2);
    json_t *g = json_array_get(guests, 0);
    assert_string_equal(json_string_value(json_object_get(g, "name")), "web1");
    assert_string_equal(json_string_value(json_object_get(g, "source")), "file");
    assert_string_equal(json_string_value(json_object_get(g, "level")), "none");
    assert_int_equal(json_integer_value(json_object_get(g, "floor")), 256 << 20);
    assert_int_equal(json_integer_value(json_object_get(g, "ceiling")), 1 << 30);
    assert_int_equal(json_integer_value(json_object_get(g, "weight")), 100);
    json_t *balloon = json_object_get(g, "balloon");
    assert_int_equal(json_integer_value(json_object_get(balloon, "actual")), 768 << 20);
    assert_true(json_is_null(json_object_get(balloon, "target")));
    assert_true(json_is_false(json_object_get(g, "paused")));
    assert_true(json_is_null(json_object_get(g, "last_decision")));
    assert_true(json_is_null(json_object_get(g, "agent")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(g, "channel"), "path")),
                        "/run/web1.chan");
    assert_non_null(json_object_get(json_object_get(g, "counters"), "rate_limited"));
    assert_non_null(json_object_get(json_object_get(g, "counters"), "qmp_connects"));
    assert_null(json_object_get(g, "decisions")); /* only show has the ring */
    g = json_array_get(guests, 1);
    assert_true(json_is_null(json_object_get(json_object_get(g, "balloon"), "actual")));
    json_decref(reply);

    /* No host reading yet: null. */
    w->view.host_sample = NULL;
    json_t *h = view_host(&w->view);
    assert_true(json_is_null(h));
    json_decref(h);
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
    json_t *guest = view_guest(&w->view, g, true);
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
    assert_null(json_object_get(oldest, "error")); /* only failed moves have one */
    json_t *last_move = json_object_get(guest, "last_move");
    assert_int_equal(json_integer_value(json_object_get(last_move, "seq")),
                     GUEST_DECISION_RING + 5);
    json_decref(guest);
}

/* show's "sizing": the policy's reading of the guest, null where it knows nothing yet;
 * not in list. */
static void show_has_the_policy_sizing(void **state)
{
    struct world *w = *state;
    struct guest *g = registry_find(&w->reg, "web1");
    struct policy_guest *p = registry_policy(&w->reg, g);
    json_t *j = view_guest(&w->view, g, true);
    json_t *z = json_object_get(j, "sizing");
    assert_true(json_is_object(z));
    assert_true(json_is_null(json_object_get(z, "need")));
    assert_true(json_is_null(json_object_get(z, "used")));
    assert_true(json_is_null(json_object_get(z, "stall")));
    assert_true(json_is_null(json_object_get(z, "hurt")));
    assert_true(json_is_null(json_object_get(z, "stuck")));
    assert_int_equal(json_integer_value(json_object_get(z, "working_set")), 256 << 20);
    assert_int_equal(json_integer_value(json_object_get(z, "inflate_wait_ms")), 0);
    json_decref(j);

    /* A snapshot of a guest using 300 MiB of its 1 GiB (24 MiB of overhead), then a
     * critical deflate at 90 s that it hurt at 1 GiB for (past its first quiet_ms). */
    policy_note_actual(&w->pc, p, 1u << 30, 0);
    struct bp_mem m = {.mem_total_kb = 1000 << 10, .mem_available_kb = 700 << 10};
    policy_note_report(&w->pc, p, BP_LEVEL_NONE, &m, 1000);
    struct policy_decision d = {.action = POLICY_DEFLATE,
                                .reason = POLICY_R_CRITICAL,
                                .from_bytes = 768u << 20,
                                .to_bytes = 1u << 30};
    w->pc.quiet_ms = 1000;
    policy_commit(&w->pc, p, &d, 90000);
    j = view_guest(&w->view, g, true);
    z = json_object_get(j, "sizing");
    assert_int_equal(json_integer_value(json_object_get(z, "used")), 300 << 20);
    assert_int_equal(json_integer_value(json_object_get(z, "overhead")), 24 << 20);
    assert_int_equal(json_integer_value(json_object_get(z, "need")), (360 + 24) << 20);
    json_t *hurt = json_object_get(z, "hurt");
    assert_int_equal(json_integer_value(json_object_get(hurt, "size")), 768 << 20);
    assert_int_equal(json_integer_value(json_object_get(hurt, "forgotten_in_ms")),
                     w->pc.hurt_memory_ms - 10000);
    assert_int_equal(json_integer_value(json_object_get(z, "inflate_wait_ms")),
                     w->pc.deflate_cooldown_ms - 10000);
    json_decref(j);

    j = view_guest(&w->view, g, false);
    assert_null(json_object_get(j, "sizing")); /* only show has it */
    json_decref(j);
}

/* The backend's key comes from its view; the other backend key stays null. A guest of a
 * source shows the source's name. */
static void backend_part_and_source(void **state)
{
    struct world *w = *state;
    struct guest *g = registry_find(&w->reg, "web1");
    json_t *j = view_guest(&w->view, g, false);
    assert_true(json_is_null(json_object_get(j, "qmp")));
    assert_true(json_is_null(json_object_get(j, "libvirt")));
    json_decref(j);

    balloon_init(&w->balloon, &fake_ops);
    g->balloon = &w->balloon;
    g->source = "libvirt";
    j = view_guest(&w->view, g, false);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "libvirt");
    assert_true(json_is_null(json_object_get(j, "qmp")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "libvirt"), "domain")),
                        "web-1");
    json_decref(j);
    g->balloon = NULL;
}

/* Removal moves the last guest into the hole; it keeps its own policy state. */
static void registry_removal_keeps_state(void **state)
{
    struct world *w = *state;
    struct guest *n = add_guest(&w->reg, "new", 128 << 20, 1u << 30);
    struct guest *web1 = registry_find(&w->reg, "web1");
    registry_remove(&w->reg, web1);
    guest_free(web1);
    assert_null(registry_find(&w->reg, "web1"));
    assert_int_equal(registry_count(&w->reg), 2);
    assert_ptr_equal(registry_at(&w->reg, n->index), n);
    assert_int_equal(registry_policy_of(&w->reg, n)->floor_bytes, 128 << 20);
    struct guest *db = registry_find(&w->reg, "db");
    assert_int_equal(registry_policy_of(&w->reg, db)->floor_bytes, 512 << 20);
    assert_null(registry_at(&w->reg, 2));
    assert_int_equal(registry_add(&w->reg, n), -EEXIST);
}

/* The budget in force and what the guests hold against it, in bytes. */
static void host_budget_and_held(void **state)
{
    struct world *w = *state;
    policy_host_budget(&w->host, 3ull << 30);
    policy_note_actual(&w->pc, registry_policy(&w->reg, registry_find(&w->reg, "web1")), 768u << 20,
                       99000);
    policy_note_actual(&w->pc, registry_policy(&w->reg, registry_find(&w->reg, "db")), 1u << 30,
                       99000);
    assert_int_equal(view_held_bytes(&w->view), (768u << 20) + (1u << 30));
    json_t *host = view_host(&w->view);
    assert_int_equal(json_integer_value(json_object_get(host, "budget")), 3ll << 30);
    assert_int_equal(json_integer_value(json_object_get(host, "held")), (768 << 20) + (1 << 30));
    json_decref(host);
    /* Off again: null, not 0. */
    policy_host_no_budget(&w->host);
    host = view_host(&w->view);
    assert_true(json_is_null(json_object_get(host, "budget")));
    json_decref(host);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(list_shows_every_guest, setup, teardown),
        cmocka_unit_test_setup_teardown(show_has_recent_decisions_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(show_has_the_policy_sizing, setup, teardown),
        cmocka_unit_test_setup_teardown(backend_part_and_source, setup, teardown),
        cmocka_unit_test_setup_teardown(registry_removal_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(host_budget_and_held, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
