/* bellows-simguests: simulated guests for tests of bellowsd's operator surface (the HTTP
 * API, the dashboard in a browser, promtool, bellowsctl top, the robustness benchmark).
 *
 * Each guest is what QEMU offers bellowsd: a scripted QMP monitor and the chardev socket
 * of the agent's virtio-serial port (bench/scale/sim_guest.c serves both). This program
 * listens for N of them, writes the [guest NAME] sections of a bellowsd config, and takes
 * commands on stdin, one per line, answering on stdout:
 *
 *   wait                         "welcomed N" once every guest's agent link is welcomed
 *   pressure NAME LEVEL [PSI]    a pressure event now (PSI some avg10 in %, default 40)
 *                                 -> "sent NAME SEQ"
 *   report NAME LEVEL PSI AVAIL  a report: level, PSI some avg10 %, MemAvailable MiB
 *   auto on|off                  every guest sends a report each second, calm and slowly
 *                                 varying (so plots have data)
 *   probe NAME                   a critical pressure event now; when bellowsd's balloon
 *                                 command reaches NAME's QMP monitor: "latency NAME US",
 *                                 the microseconds between the two on this process' clock
 *   load RATE                    every guest sends RATE low pressure events a second (0 stops)
 *   quit
 * and, unasked, "balloon NAME BYTES" for each balloon command a QMP monitor receives.
 *
 *   bellows-simguests --dir DIR --names a,b,c [--mib 1024] [--floor-mib 256]
 *                     [--ceiling-mib 2048]
 *   bellows-simguests --dir DIR --guests N    (names g1..gN)
 * Every balloon starts at --mib, below its ceiling, so pressure can be answered.
 * DIR/guests.conf is written before "ready" is printed. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "bench/scale/sim.h"
#include "protocol/bellows_protocol.h"

#define MIB (UINT64_C(1) << 20)

static uv_loop_t *loop;
static struct sim sim;
static uv_pipe_t in;
static uv_timer_t auto_timer, wait_timer, load_timer;
static double load_rate; /* low events per guest and second */
static double load_due;  /* events owed per guest, fractional */
static char line[4096];
static size_t line_len;
static uint64_t floor_mib = 256;
static unsigned ticks;

static struct sim_guest *find(const char *name)
{
    for (unsigned i = 0; i < sim.n_guests; i++)
        if (strcmp(sim.guests[i].name, name) == 0)
            return &sim.guests[i];
    return NULL;
}

static void free_tail(uv_write_t *req, int status)
{
    (void)status;
    free(req); /* the request is the first member of its block */
}

/* Write one message to g's channel as its agent would; the sequence number follows. */
static int send_msg(struct sim_guest *g, struct bp_msg *m)
{
    if (!g->chan_connected)
        return -ENOTCONN;
    uint64_t seq = g->seq + 1;
    uint64_t mono = SIM_MONO_BASE + uv_hrtime() % SIM_MONO_BASE;
    if (m->type == BP_MSG_PRESSURE) {
        m->u.pressure.seq = seq;
        m->u.pressure.mono_ns = mono;
    } else {
        m->u.report.seq = seq;
        m->u.report.mono_ns = mono;
    }
    char frame[BP_MAX_FRAME];
    size_t len;
    if (bp_encode(m, frame, sizeof(frame), &len) != BP_OK)
        return -EINVAL;
    uv_buf_t b = uv_buf_init(frame, (unsigned)len);
    int r = uv_try_write((uv_stream_t *)&g->chan_conn, &b, 1);
    if (r == UV_EAGAIN)
        r = 0;
    if (r < 0)
        return r;
    if ((size_t)r < len) {
        /* The socket is full: queue the rest, so the frame arrives whole, in order. */
        struct tail {
            uv_write_t req;
            char data[BP_MAX_FRAME];
        } *t = malloc(sizeof(*t));
        if (!t)
            return -ENOMEM;
        memcpy(t->data, frame + r, len - (size_t)r);
        uv_buf_t rest = uv_buf_init(t->data, (unsigned)(len - (size_t)r));
        int q = uv_write(&t->req, (uv_stream_t *)&g->chan_conn, &rest, 1, free_tail);
        if (q < 0) {
            free(t);
            return q;
        }
    }
    g->seq = seq;
    g->frames_sent++;
    return 0;
}

/* A snapshot whose MemTotal follows the balloon, as a guest's does. */
static struct bp_mem snapshot(const struct sim_guest *g, double psi, uint64_t avail_mib)
{
    struct bp_mem mem = {0};
    uint64_t total_kb = g->actual_bytes / 1024;
    uint64_t avail_kb = avail_mib * 1024;
    if (avail_kb > total_kb)
        avail_kb = total_kb;
    mem.mem_total_kb = total_kb;
    mem.mem_available_kb = avail_kb;
    mem.mem_free_kb = avail_kb / 2;
    mem.committed_as_kb = total_kb - avail_kb;
    mem.psi_some_avg10 = psi;
    mem.psi_full_avg10 = psi / 3;
    mem.psi_some_total_us = (uint64_t)ticks * 1000 + (uint64_t)(psi * 1000);
    mem.psi_full_total_us = mem.psi_some_total_us / 3;
    return mem;
}

static void reply(const char *fmt, const char *a, unsigned long long b)
{
    printf(fmt, a, b);
    fflush(stdout);
}

static void cmd_pressure(char *name, char *level_text, char *psi_text)
{
    struct sim_guest *g = find(name ? name : "");
    enum bp_level level;
    if (!g || !level_text || !bp_level_parse(level_text, &level) || level == BP_LEVEL_NONE) {
        reply("error %s %llu\n", "pressure: NAME low|medium|critical [PSI]", 0);
        return;
    }
    double psi = psi_text ? atof(psi_text) : 40.0;
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure.level = level;
    m.u.pressure.source = BP_SOURCE_PSI;
    m.u.pressure.mem = snapshot(g, psi, g->actual_bytes / MIB / 10);
    int r = send_msg(g, &m);
    if (r < 0)
        reply("error %s %llu\n", uv_strerror(r), 0);
    else
        reply("sent %s %llu\n", g->name, (unsigned long long)g->seq);
}

static void cmd_report(char *name, char *level_text, char *psi_text, char *avail_text)
{
    struct sim_guest *g = find(name ? name : "");
    enum bp_level level;
    if (!g || !level_text || !psi_text || !avail_text || !bp_level_parse(level_text, &level)) {
        reply("error %s %llu\n", "report: NAME LEVEL PSI AVAIL_MIB", 0);
        return;
    }
    struct bp_msg m = {.type = BP_MSG_REPORT};
    m.u.report.level = level;
    m.u.report.mem = snapshot(g, atof(psi_text), strtoull(avail_text, NULL, 10));
    int r = send_msg(g, &m);
    if (r < 0)
        reply("error %s %llu\n", uv_strerror(r), 0);
    else
        reply("sent %s %llu\n", g->name, (unsigned long long)g->seq);
}

/* Calm reports: PSI wandering between 0 and 4 %, half the memory available. */
static void on_auto(uv_timer_t *t)
{
    (void)t;
    ticks++;
    for (unsigned i = 0; i < sim.n_guests; i++) {
        struct sim_guest *g = &sim.guests[i];
        double psi = 2.0 + 2.0 * sin((ticks + i * 7) / 9.0);
        struct bp_msg m = {.type = BP_MSG_REPORT};
        m.u.report.level = BP_LEVEL_NONE;
        m.u.report.mem = snapshot(g, psi, g->actual_bytes / MIB / 2);
        send_msg(g, &m);
    }
}

static void on_wait(uv_timer_t *t)
{
    unsigned n = 0;
    for (unsigned i = 0; i < sim.n_guests; i++)
        n += sim.guests[i].welcomed && sim.guests[i].qmp_queried;
    if (n < sim.n_guests)
        return;
    uv_timer_stop(t);
    reply("welcomed %s%llu\n", "", n);
}

static void on_balloon(struct sim_guest *g, uint64_t value, uint64_t now_ns)
{
    if (g->probe_sent_ns) {
        reply("latency %s %llu\n", g->name,
              (unsigned long long)((now_ns - g->probe_sent_ns) / 1000));
        g->probe_sent_ns = 0;
    }
    reply("balloon %s %llu\n", g->name, (unsigned long long)value);
}

static void cmd_probe(char *name)
{
    struct sim_guest *g = find(name ? name : "");
    if (!g) {
        reply("error %s %llu\n", "probe: NAME", 0);
        return;
    }
    struct bp_msg m = {.type = BP_MSG_PRESSURE};
    m.u.pressure.level = BP_LEVEL_CRITICAL;
    m.u.pressure.source = BP_SOURCE_PSI;
    m.u.pressure.mem = snapshot(g, 70.0, g->actual_bytes / MIB / 20);
    g->probe_sent_ns = uv_hrtime();
    int r = send_msg(g, &m);
    if (r < 0) {
        g->probe_sent_ns = 0;
        reply("error %s %llu\n", uv_strerror(r), 0);
    }
}

/* Background load: low pressure events from every guest, spread over 50 ms slots. */
static void on_load(uv_timer_t *t)
{
    (void)t;
    load_due += load_rate / 20.0;
    unsigned n = (unsigned)load_due;
    load_due -= n;
    for (unsigned k = 0; k < n; k++) {
        for (unsigned i = 0; i < sim.n_guests; i++) {
            struct sim_guest *g = &sim.guests[i];
            if (g->probe_sent_ns)
                continue; /* never between a probe and its answer */
            struct bp_msg m = {.type = BP_MSG_PRESSURE};
            m.u.pressure.level = BP_LEVEL_LOW;
            m.u.pressure.source = BP_SOURCE_VMPRESSURE;
            m.u.pressure.mem = snapshot(g, 5.0, g->actual_bytes / MIB / 2);
            send_msg(g, &m);
        }
    }
}

static void quit(void)
{
    uv_timer_stop(&auto_timer);
    uv_timer_stop(&wait_timer);
    uv_close((uv_handle_t *)&auto_timer, NULL);
    uv_close((uv_handle_t *)&wait_timer, NULL);
    uv_close((uv_handle_t *)&load_timer, NULL);
    uv_close((uv_handle_t *)&in, NULL);
    for (unsigned i = 0; i < sim.n_guests; i++)
        sim_guest_close(&sim.guests[i]);
}

static void command(char *text)
{
    char *save = NULL;
    char *cmd = strtok_r(text, " \t\r", &save);
    char *a = strtok_r(NULL, " \t\r", &save);
    char *b = strtok_r(NULL, " \t\r", &save);
    char *c = strtok_r(NULL, " \t\r", &save);
    char *d = strtok_r(NULL, " \t\r", &save);
    if (!cmd)
        return;
    if (strcmp(cmd, "pressure") == 0)
        cmd_pressure(a, b, c);
    else if (strcmp(cmd, "report") == 0)
        cmd_report(a, b, c, d);
    else if (strcmp(cmd, "auto") == 0 && a && strcmp(a, "on") == 0)
        uv_timer_start(&auto_timer, on_auto, 0, 1000);
    else if (strcmp(cmd, "auto") == 0)
        uv_timer_stop(&auto_timer);
    else if (strcmp(cmd, "probe") == 0)
        cmd_probe(a);
    else if (strcmp(cmd, "load") == 0 && a) {
        load_rate = atof(a);
        load_due = 0;
        if (load_rate > 0)
            uv_timer_start(&load_timer, on_load, 50, 50);
        else
            uv_timer_stop(&load_timer);
    } else if (strcmp(cmd, "wait") == 0)
        uv_timer_start(&wait_timer, on_wait, 0, 20);
    else if (strcmp(cmd, "quit") == 0)
        quit();
    else
        reply("error %s %llu\n", "unknown command", 0);
}

static void alloc_in(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char storage[4096];
    *buf = uv_buf_init(storage, sizeof(storage));
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)s;
    if (n < 0) {
        quit(); /* the driver went away: so do the guests */
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char ch = buf->base[i];
        if (ch == '\n') {
            line[line_len] = '\0';
            command(line);
            line_len = 0;
            if (uv_is_closing((uv_handle_t *)&in))
                return;
        } else if (line_len + 1 < sizeof(line)) {
            line[line_len++] = ch;
        }
    }
}

static void usage(void)
{
    fprintf(stderr, "usage: bellows-simguests --dir DIR (--names a,b,c | --guests N) [--mib M] "
                    "[--floor-mib M] [--ceiling-mib M]\n");
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"dir", required_argument, NULL, 'd'},
        {"names", required_argument, NULL, 'n'},
        {"guests", required_argument, NULL, 'g'},
        {"mib", required_argument, NULL, 'm'},
        {"floor-mib", required_argument, NULL, 'f'},
        {"ceiling-mib", required_argument, NULL, 'c'},
        {NULL, 0, NULL, 0},
    };
    const char *dir = NULL, *names = NULL;
    unsigned count = 0;
    uint64_t mib = 1024, ceiling_mib = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case 'd':
            dir = optarg;
            break;
        case 'n':
            names = optarg;
            break;
        case 'g':
            count = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'm':
            mib = strtoull(optarg, NULL, 10);
            break;
        case 'f':
            floor_mib = strtoull(optarg, NULL, 10);
            break;
        case 'c':
            ceiling_mib = strtoull(optarg, NULL, 10);
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!dir || (!names && count == 0)) {
        usage();
        return 2;
    }
    if (ceiling_mib == 0)
        ceiling_mib = mib * 2;
    char *list = names ? strdup(names) : NULL;
    if (list) {
        count = 1;
        for (const char *p = list; *p; p++)
            count += *p == ',';
    }
    loop = uv_default_loop();
    sim.loop = loop;
    sim.n_guests = count;
    sim.guests = calloc(count, sizeof(*sim.guests));
    sim.initial_actual = mib * MIB;
    sim.on_balloon = on_balloon;
    char *save = NULL;
    char *name = list ? strtok_r(list, ",", &save) : NULL;
    char conf_path[4096];
    snprintf(conf_path, sizeof(conf_path), "%s/guests.conf", dir);
    FILE *conf = fopen(conf_path, "w");
    if (!conf || !sim.guests) {
        perror(conf_path);
        return 1;
    }
    for (unsigned i = 0; i < count; i++) {
        struct sim_guest *g = &sim.guests[i];
        g->index = i;
        if (list) {
            snprintf(g->name, sizeof(g->name), "%s", name);
            name = strtok_r(NULL, ",", &save);
        } else {
            snprintf(g->name, sizeof(g->name), "g%u", i + 1);
        }
        snprintf(g->qmp_path, sizeof(g->qmp_path), "%s/%s.qmp", dir, g->name);
        snprintf(g->chan_path, sizeof(g->chan_path), "%s/%s.chan", dir, g->name);
        int r = sim_guest_listen(&sim, g);
        if (r < 0) {
            fprintf(stderr, "bellows-simguests: %s: %s\n", g->name, uv_strerror(r));
            return 1;
        }
        fprintf(conf,
                "[guest %s]\nqmp = %s\nchannel = %s\nfloor = %lluM\nceiling = %lluM\n"
                "weight = 100\n\n",
                g->name, g->qmp_path, g->chan_path, (unsigned long long)floor_mib,
                (unsigned long long)ceiling_mib);
    }
    fclose(conf);
    uv_timer_init(loop, &auto_timer);
    uv_timer_init(loop, &wait_timer);
    uv_timer_init(loop, &load_timer);
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, alloc_in, on_stdin);
    printf("ready %u\n", count);
    fflush(stdout);
    uv_run(loop, UV_RUN_DEFAULT);
    for (unsigned i = 0; i < count; i++) {
        free(sim.guests[i].qmp_buf);
        free(sim.guests[i].framer);
    }
    free(list);
    free(sim.guests);
    return 0;
}
