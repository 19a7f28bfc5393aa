/* bellowsd's metric families, written from a metrics_view (docs/operations.md). */
#include "host-daemon/metrics/metrics.h"

#include <stdlib.h>

#define US_PER_S 1e6

/* One per-guest gauge or counter: how to read its value from a guest, and whether the
 * guest has one (an unknown balloon size has no sample rather than a made-up 0). */
struct guest_family {
    const char *name;
    enum prom_type type;
    const char *help;
    bool (*has)(const struct metrics_guest *g);
    double (*value)(const struct metrics_guest *g);
    bool integer; /* print exactly: a byte count or counter */
};

static bool always(const struct metrics_guest *g)
{
    (void)g;
    return true;
}
static bool has_actual(const struct metrics_guest *g)
{
    return g->actual_known;
}
static bool has_target(const struct metrics_guest *g)
{
    return g->target_known;
}
static bool has_mem(const struct metrics_guest *g)
{
    return g->mem_known;
}
static bool has_need(const struct metrics_guest *g)
{
    return g->need_known;
}
static bool has_stall(const struct metrics_guest *g)
{
    return g->stall_known;
}

static double v_actual(const struct metrics_guest *g)
{
    return (double)g->actual_bytes;
}
static double v_target(const struct metrics_guest *g)
{
    return (double)g->target_bytes;
}
static double v_floor(const struct metrics_guest *g)
{
    return (double)g->floor_bytes;
}
static double v_ceiling(const struct metrics_guest *g)
{
    return (double)g->ceiling_bytes;
}
static double v_weight(const struct metrics_guest *g)
{
    return g->weight;
}
static double v_level(const struct metrics_guest *g)
{
    return g->level;
}
static double v_paused(const struct metrics_guest *g)
{
    return g->paused;
}
static double v_mem_total(const struct metrics_guest *g)
{
    return (double)g->mem_total_bytes;
}
static double v_mem_available(const struct metrics_guest *g)
{
    return (double)g->mem_available_bytes;
}
static double v_some_avg10(const struct metrics_guest *g)
{
    return g->psi_some_avg10 / 100.0;
}
static double v_full_avg10(const struct metrics_guest *g)
{
    return g->psi_full_avg10 / 100.0;
}
static double v_some_total(const struct metrics_guest *g)
{
    return (double)g->psi_some_total_us / US_PER_S;
}
static double v_full_total(const struct metrics_guest *g)
{
    return (double)g->psi_full_total_us / US_PER_S;
}
static double v_channel_up(const struct metrics_guest *g)
{
    return g->channel_connected;
}
static double v_backend_up(const struct metrics_guest *g)
{
    return g->backend_connected;
}
static double v_channel_connects(const struct metrics_guest *g)
{
    return (double)g->channel_connects;
}
static double v_read_bytes(const struct metrics_guest *g)
{
    return (double)g->channel_read_bytes;
}
static double v_junk_bytes(const struct metrics_guest *g)
{
    return (double)g->channel_junk_bytes;
}
static double v_move_failures(const struct metrics_guest *g)
{
    return (double)g->move_failures;
}
static double v_reversals(const struct metrics_guest *g)
{
    return (double)g->reversals;
}
static double v_need(const struct metrics_guest *g)
{
    return (double)g->need_bytes;
}
static double v_working_set(const struct metrics_guest *g)
{
    return (double)g->working_set_bytes;
}
static double v_stall(const struct metrics_guest *g)
{
    return g->stall_pct / 100.0;
}
static double v_stall_base(const struct metrics_guest *g)
{
    return g->stall_base_pct / 100.0;
}

/* clang-format off */
static const struct guest_family guest_families[] = {
    {"bellows_guest_balloon_actual_bytes", PROM_GAUGE,
     "Memory size of the guest as its balloon leaves it (QMP query-balloon actual); absent while unknown.",
     has_actual, v_actual, true},
    {"bellows_guest_balloon_target_bytes", PROM_GAUGE,
     "The last balloon target bellowsd sent (or advised in dry run); absent before the first move.",
     has_target, v_target, true},
    {"bellows_guest_floor_bytes", PROM_GAUGE,
     "The guest's floor: bellowsd never balloons it below this size.", always, v_floor, true},
    {"bellows_guest_ceiling_bytes", PROM_GAUGE,
     "The guest's ceiling: bellowsd never gives it more than this size.", always, v_ceiling, true},
    {"bellows_guest_weight", PROM_GAUGE,
     "The guest's weight (1..10000): higher keeps memory longer under host pressure.",
     always, v_weight, true},
    {"bellows_guest_pressure_level", PROM_GAUGE,
     "The guest's pressure level after decay: 0 none, 1 low, 2 medium, 3 critical.",
     always, v_level, true},
    {"bellows_guest_paused", PROM_GAUGE,
     "1 when an operator paused the management of this guest's balloon.", always, v_paused, true},
    {"bellows_guest_memory_total_bytes", PROM_GAUGE,
     "MemTotal in the guest's latest snapshot from its agent.", has_mem, v_mem_total, true},
    {"bellows_guest_memory_available_bytes", PROM_GAUGE,
     "MemAvailable in the guest's latest snapshot from its agent.", has_mem, v_mem_available, true},
    {"bellows_guest_memory_pressure_some_avg10_ratio", PROM_GAUGE,
     "The guest's memory PSI 'some' 10-second average, 0..1, from its latest snapshot.",
     has_mem, v_some_avg10, false},
    {"bellows_guest_memory_pressure_full_avg10_ratio", PROM_GAUGE,
     "The guest's memory PSI 'full' 10-second average, 0..1, from its latest snapshot.",
     has_mem, v_full_avg10, false},
    {"bellows_guest_memory_pressure_waiting_seconds_total", PROM_COUNTER,
     "Time some of the guest's tasks stalled on memory (PSI 'some' total), from its latest snapshot.",
     has_mem, v_some_total, false},
    {"bellows_guest_memory_pressure_stalled_seconds_total", PROM_COUNTER,
     "Time all of the guest's tasks stalled on memory (PSI 'full' total), from its latest snapshot.",
     has_mem, v_full_total, false},
    {"bellows_guest_channel_connected", PROM_GAUGE,
     "1 while bellowsd is connected to the guest agent's virtio-serial chardev socket.",
     always, v_channel_up, true},
    {"bellows_guest_backend_connected", PROM_GAUGE,
     "1 while the guest's balloon can be moved: its QMP monitor is ready or libvirt is connected.",
     always, v_backend_up, true},
    {"bellows_guest_channel_connects_total", PROM_COUNTER,
     "Connections made to the guest agent's chardev socket.", always, v_channel_connects, true},
    {"bellows_guest_channel_read_bytes_total", PROM_COUNTER,
     "Bytes read from the guest agent's channel.", always, v_read_bytes, true},
    {"bellows_guest_channel_junk_bytes_total", PROM_COUNTER,
     "Bytes from the guest agent's channel outside any frame, discarded.",
     always, v_junk_bytes, true},
    {"bellows_guest_move_failures_total", PROM_COUNTER,
     "Balloon moves that the backend refused, that timed out or whose link dropped.",
     always, v_move_failures, true},
    {"bellows_guest_reversals_total", PROM_COUNTER,
     "Moves in the direction opposite to the guest's previous move.", always, v_reversals, true},
    {"bellows_guest_need_bytes", PROM_GAUGE,
     "What the policy reckons the guest needs: what it uses plus buffer_pct plus the balloon's overhead; quiet inflates stop there. Absent until a snapshot and a measured overhead.",
     has_need, v_need, true},
    {"bellows_guest_working_set_bytes", PROM_GAUGE,
     "The least host rounds and funding leave the guest: its floor, its use plus host_buffer_pct, a size it hurt at while remembered.",
     always, v_working_set, true},
    {"bellows_guest_stall_ratio", PROM_GAUGE,
     "The guest's stall in the policy's last clean interval, 0..1 (PSI 'some' time, or major faults when those say more). Absent until measured.",
     has_stall, v_stall, false},
    {"bellows_guest_stall_base_ratio", PROM_GAUGE,
     "The part of the guest's stall that does not respond to its size, 0..1 (0: all of it does). Absent until measured.",
     has_stall, v_stall_base, false},
};
/* clang-format on */
#define N_GUEST_FAMILIES (sizeof(guest_families) / sizeof(guest_families[0]))

static void one_gauge(struct prom_buf *b, const char *name, const char *help, uint64_t value)
{
    prom_family(b, name, PROM_GAUGE, help);
    prom_sample_u64(b, name, NULL, 0, value);
}

static void write_guest_family(struct prom_buf *b, const struct metrics_view *v,
                               const struct guest_family *f)
{
    prom_family(b, f->name, f->type, f->help);
    for (size_t i = 0; i < v->n_guests; i++) {
        const struct metrics_guest *g = &v->guests[i];
        if (!f->has(g))
            continue;
        struct prom_label l = {"guest", g->name};
        double value = f->value(g);
        if (f->integer)
            prom_sample_u64(b, f->name, &l, 1, (uint64_t)value);
        else
            prom_sample(b, f->name, &l, 1, value);
    }
}

static void write_guests(struct prom_buf *b, const struct metrics_view *v)
{
    const char *info = "bellows_guest_info";
    prom_family(b, info, PROM_GAUGE,
                "Always 1; identifies a managed guest: its backend, where it came from, its "
                "libvirt domain and UUID, its agent's version.");
    for (size_t i = 0; i < v->n_guests; i++) {
        const struct metrics_guest *g = &v->guests[i];
        struct prom_label l[] = {{"guest", g->name},    {"backend", g->backend},
                                 {"source", g->source}, {"domain", g->domain},
                                 {"uuid", g->uuid},     {"agent", g->agent}};
        prom_sample_u64(b, info, l, sizeof(l) / sizeof(l[0]), 1);
    }
    for (size_t f = 0; f < N_GUEST_FAMILIES; f++)
        write_guest_family(b, v, &guest_families[f]);

    const char *moves = "bellows_guest_moves_total";
    prom_family(b, moves, PROM_COUNTER,
                "Balloon moves decided for the guest (sent, or advised in dry run), by action "
                "(deflate gives memory, inflate takes it) and the policy's reason.");
    for (size_t i = 0; i < v->n_guests; i++) {
        const struct metrics_guest *g = &v->guests[i];
        for (size_t m = 0; m < g->n_moves; m++) {
            struct prom_label l[] = {
                {"guest", g->name}, {"action", g->moves[m].action}, {"reason", g->moves[m].reason}};
            prom_sample_u64(b, moves, l, 3, g->moves[m].count);
        }
    }
    const char *frames = "bellows_guest_frames_total";
    prom_family(b, frames, PROM_COUNTER,
                "Frames from the guest's agent by outcome: accepted, or why they were dropped.");
    for (size_t i = 0; i < v->n_guests; i++) {
        const struct metrics_guest *g = &v->guests[i];
        for (size_t k = 0; k < g->n_frames; k++) {
            struct prom_label l[] = {{"guest", g->name}, {"outcome", g->frames[k].outcome}};
            prom_sample_u64(b, frames, l, 2, g->frames[k].count);
        }
    }
}

static void write_host(struct prom_buf *b, const struct metrics_host *h)
{
    if (!h->known)
        return;
    prom_family(b, "bellows_host_memory_total_bytes", PROM_GAUGE, "The host's MemTotal.");
    prom_sample_u64(b, "bellows_host_memory_total_bytes", NULL, 0, h->mem_total_bytes);
    prom_family(b, "bellows_host_memory_available_bytes", PROM_GAUGE, "The host's MemAvailable.");
    prom_sample_u64(b, "bellows_host_memory_available_bytes", NULL, 0, h->mem_available_bytes);
    prom_family(b, "bellows_host_memory_pressure_some_avg10_ratio", PROM_GAUGE,
                "The host's memory PSI 'some' 10-second average, 0..1.");
    prom_sample(b, "bellows_host_memory_pressure_some_avg10_ratio", NULL, 0,
                h->psi_some_avg10 / 100.0);
    prom_family(b, "bellows_host_memory_pressure_waiting_seconds_total", PROM_COUNTER,
                "Time some of the host's tasks stalled on memory (PSI 'some' total).");
    prom_sample(b, "bellows_host_memory_pressure_waiting_seconds_total", NULL, 0,
                (double)h->psi_some_total_us / US_PER_S);
    if (h->has_full) {
        prom_family(b, "bellows_host_memory_pressure_full_avg10_ratio", PROM_GAUGE,
                    "The host's memory PSI 'full' 10-second average, 0..1.");
        prom_sample(b, "bellows_host_memory_pressure_full_avg10_ratio", NULL, 0,
                    h->psi_full_avg10 / 100.0);
        prom_family(b, "bellows_host_memory_pressure_stalled_seconds_total", PROM_COUNTER,
                    "Time all of the host's tasks stalled on memory (PSI 'full' total).");
        prom_sample(b, "bellows_host_memory_pressure_stalled_seconds_total", NULL, 0,
                    (double)h->psi_full_total_us / US_PER_S);
    }
    one_gauge(b, "bellows_host_under_pressure",
              "1 while the policy holds the host under memory pressure (it reclaims from guests).",
              h->pressure);
    one_gauge(b, "bellows_host_guests_held_bytes",
              "What the guests hold against the host budget: their balloon sizes summed (the "
              "guests whose size is known).",
              h->guests_held_bytes);
    /* Absent, not 0, without a budget in force: 0 would read as "no room at all". */
    if (!h->budget_known)
        return;
    one_gauge(b, "bellows_host_budget_bytes", "Memory the guests may have in all.",
              h->budget_bytes);
    bool cgroup = h->budget_cgroup && h->budget_cgroup[0];
    struct prom_label l[] = {{"source", cgroup ? "cgroup" : "meminfo"},
                             {"cgroup", h->budget_cgroup}};
    prom_family(b, "bellows_host_budget_info", PROM_GAUGE,
                "1; where the host budget comes from: the host's MemTotal (meminfo) or a memory "
                "cgroup's limit (cgroup, with its path).");
    prom_sample_u64(b, "bellows_host_budget_info", l, cgroup ? 2 : 1, 1);
}

static void write_http(struct prom_buf *b, const struct metrics_http *h)
{
    const char *name = "bellows_http_requests_total";
    prom_family(b, name, PROM_COUNTER,
                "HTTP requests answered by bellowsd, by status class (2xx, 3xx, 4xx, 5xx).");
    static const char *const classes[] = {NULL, NULL, "2xx", "3xx", "4xx", "5xx"};
    for (size_t c = 2; c < 6; c++) {
        struct prom_label l = {"code", classes[c]};
        prom_sample_u64(b, name, &l, 1, h->responses[c]);
    }
    one_gauge(b, "bellows_http_connections", "HTTP connections bellowsd holds now.",
              h->connections_open);
    prom_family(b, "bellows_http_slow_connections_closed_total", PROM_COUNTER,
                "HTTP connections closed for taking longer than http_timeout to send a request "
                "or read its reply.");
    prom_sample_u64(b, "bellows_http_slow_connections_closed_total", NULL, 0, h->connections_cut);
    one_gauge(b, "bellows_http_event_streams", "Open event-stream (server-sent events) clients.",
              h->streams_open);
    prom_family(b, "bellows_http_event_streams_dropped_total", PROM_COUNTER,
                "Event-stream clients cut off because they did not read fast enough.");
    prom_sample_u64(b, "bellows_http_event_streams_dropped_total", NULL, 0, h->streams_dropped);
    one_gauge(b, "bellows_history_bytes",
              "Memory held by the per-guest and host history rings behind the dashboard.",
              h->history_bytes);
}

/* See metrics.h. */
void metrics_write(struct prom_buf *b, const struct metrics_view *v)
{
    struct prom_label version = {"version", v->version};
    prom_family(b, "bellows_build_info", PROM_GAUGE,
                "Always 1; the version of bellowsd that serves these metrics.");
    prom_sample_u64(b, "bellows_build_info", &version, 1, 1);
    one_gauge(b, "bellows_dry_run", "1 in advisory mode (dry run): moves are logged, not sent.",
              v->dry_run);
    one_gauge(b, "bellows_guests", "Guests bellowsd manages.", v->n_guests);
    prom_family(b, "bellows_decision_rounds_total", PROM_COUNTER,
                "Decision rounds run by the policy over all guests.");
    prom_sample_u64(b, "bellows_decision_rounds_total", NULL, 0, v->decision_rounds);
    write_host(b, &v->host);
    write_guests(b, v);
    if (v->http)
        write_http(b, v->http);
}

/* See metrics.h. */
char *metrics_render(const struct metrics_view *view, size_t *ret_len)
{
    struct prom_buf b;
    prom_buf_init(&b);
    metrics_write(&b, view);
    return prom_buf_take(&b, ret_len);
}
