/* bellows-scale: one real bellowsd against N simulated guests (bench/scale/sim.h).
 *
 *   bellows-scale --bellowsd PATH --guests N [options]
 *
 * Phases of one run, printed as one JSON object on stdout (progress on stderr):
 *   rss        bellowsd's RSS with 0 guests, then with N connected (config reloaded by
 *              SIGHUP), and the time until all N were connected and welcomed;
 *   idle       context switches of all bellowsd threads over --idle-seconds with every
 *              guest connected and silent (wake-ups per second);
 *   latency    --probes critical pressure frames, one at a time, each to a different
 *              guest: time from the frame written to the balloon command read by that
 *              guest's QMP peer (p50/p99/min/max); again under --load-rate frames/s of
 *              background load when that is given;
 *   throughput pressure frames (level low) from all guests at rising offered rates, each
 *              for --stage-seconds: frames the daemon read per second (what left the
 *              sockets' queues), messages it decoded per second (its own counters, read
 *              through its control socket) and its CPU use; stops once it falls behind.
 * The daemon runs with a fake host /proc (calm host) and per-guest rate limits raised to
 * their maxima, so neither host pressure nor throttling shapes the figures.
 * See docs/benchmarks.md ("Scale"). */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <linux/sockios.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/scale/procstat.h"
#include "bench/scale/sim.h"

#define MIB (UINT64_C(1) << 20)

struct options {
    const char *bellowsd;
    unsigned guests;
    double idle_seconds;
    unsigned probes;
    double stage_seconds;
    double start_rate;
    double max_rate;
    double connect_timeout;
    double load_rate;
    const char *phases; /* comma list of rss,idle,latency,throughput */
    bool keep;
};

static struct options opt = {
    .guests = 100,
    .idle_seconds = 30,
    .probes = 200,
    .stage_seconds = 5,
    .start_rate = 1000,
    .max_rate = 1e6,
    .connect_timeout = 300,
    .phases = "rss,idle,latency,throughput",
};

static struct sim sim;
static char dir[64];
static char config_path[128];
static uv_process_t daemon_proc;
static bool daemon_running;
static int64_t daemon_exit_status;
static int daemon_term_signal;
static const char *phase = "setup";
static const char *died_in;

static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bellows-scale: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* --- waiting on the loop --- */

static void deadline_cb(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void nothing_cb(uv_timer_t *t)
{
    (void)t;
}

/* Run the loop until pred(arg) holds, the daemon exits, or timeout seconds pass. */
static bool wait_until(bool (*pred)(void *), void *arg, double timeout)
{
    bool expired = false;
    uv_timer_t timer;
    uv_timer_init(sim.loop, &timer);
    timer.data = &expired;
    uv_timer_start(&timer, deadline_cb, (uint64_t)(timeout * 1000), 0);
    /* Wake once a second too, so predicates about elapsed time are looked at even when
     * nothing else happens. */
    uv_timer_t tick;
    uv_timer_init(sim.loop, &tick);
    uv_timer_start(&tick, nothing_cb, 1000, 1000);
    bool ok = false;
    for (;;) {
        if (pred && pred(arg)) {
            ok = true;
            break;
        }
        if (expired || !daemon_running)
            break;
        uv_run(sim.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&timer, NULL);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(sim.loop, UV_RUN_NOWAIT);
    return ok;
}

static void run_for(double seconds)
{
    wait_until(NULL, NULL, seconds);
}

/* --- files: fake host /proc, config --- */

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -errno;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -errno;
}

/* A calm host: no PSI, plenty of MemAvailable, so host pressure never steers decisions;
 * 64 TiB, room for 10,000 guests at their 4G ceiling, so the host budget (on, as by
 * default) never cuts a move but its check is part of every decision's cost. */
static int write_fake_proc(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/proc/pressure", dir);
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        return -errno;
    snprintf(path, sizeof(path), "%s/proc/pressure/memory", dir);
    int r = write_file(path, "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                             "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
    if (r < 0)
        return r;
    snprintf(path, sizeof(path), "%s/proc/meminfo", dir);
    return write_file(path, "MemTotal:       68719476736 kB\nMemFree:        67000000000 kB\n"
                            "MemAvailable:   67000000000 kB\nSwapTotal:             0 kB\n"
                            "SwapFree:              0 kB\n");
}

/* Write the daemon's config with the first n guests; returns its size or -errno. */
static long write_config(unsigned n)
{
    char tmp[160];
    snprintf(tmp, sizeof(tmp), "%s.tmp", config_path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f,
            "[daemon]\ncontrol_socket = %s/ctl\nproc_dir = %s/proc\nstate_dir = %s/state\n"
            "log_level = warning\n"
            "guest_frame_rate = 10000\nguest_frame_burst = 100000\n"
            "guest_byte_rate = 1G\nguest_byte_burst = 1G\n",
            dir, dir, dir);
    for (unsigned i = 0; i < n; i++) {
        struct sim_guest *g = &sim.guests[i];
        fprintf(f, "[guest %s]\nqmp=%s\nchannel=%s\nfloor=512M\nceiling=4G\n", g->name, g->qmp_path,
                g->chan_path);
    }
    long size = ftell(f);
    if (fclose(f) != 0 || rename(tmp, config_path) < 0)
        return -errno;
    return size;
}

/* --- the daemon --- */

static void daemon_exited(uv_process_t *p, int64_t status, int term_signal)
{
    daemon_running = false;
    daemon_exit_status = status;
    daemon_term_signal = term_signal;
    died_in = phase;
    uv_close((uv_handle_t *)p, NULL);
}

static int start_daemon(void)
{
    char log_path[128];
    snprintf(log_path, sizeof(log_path), "%s/bellowsd.log", dir);
    FILE *log = fopen(log_path, "w");
    if (!log)
        return -errno;
    char *args[] = {(char *)opt.bellowsd, "--config", config_path, NULL};
    uv_stdio_container_t stdio[3] = {
        {.flags = UV_IGNORE},
        {.flags = UV_INHERIT_FD, .data.fd = fileno(log)},
        {.flags = UV_INHERIT_FD, .data.fd = fileno(log)},
    };
    uv_process_options_t po = {
        .exit_cb = daemon_exited,
        .file = opt.bellowsd,
        .args = args,
        .stdio = stdio,
        .stdio_count = 3,
    };
    int r = uv_spawn(sim.loop, &daemon_proc, &po);
    fclose(log);
    if (r < 0)
        return r;
    daemon_running = true;
    return 0;
}

static bool file_exists(void *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static int daemon_stat(struct procstat *st)
{
    if (!daemon_running)
        return -ESRCH;
    return procstat_read(daemon_proc.pid, st);
}

/* --- the daemon's own counters, through its control socket (docs/control.md) --- */

struct daemon_counters {
    bool ok;
    uint64_t frames, messages, pressure_events, invalid, rate_limited, throttled, moves;
};

static char ctl_path[96];

/* One blocking "list" request; the benchmark's loop waits meanwhile, which is harmless:
 * the daemon needs nothing from the simulated guests to answer. */
static struct daemon_counters daemon_counters(void)
{
    struct daemon_counters c = {0};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", ctl_path);
    struct timeval tv = {.tv_sec = 30};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
        write(fd, "{\"cmd\":\"list\"}\n", 15) != 15)
        goto out;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *nb = realloc(buf, cap);
            if (!nb)
                goto out;
            buf = nb;
        }
        ssize_t n = read(fd, buf + len, cap - len);
        if (n <= 0)
            goto out;
        len += (size_t)n;
        if (memchr(buf + len - n, '\n', (size_t)n))
            break;
    }
    json_error_t err;
    json_t *reply = json_loadb(buf, len, JSON_DISABLE_EOF_CHECK, &err);
    json_t *guests = json_object_get(reply, "guests");
    size_t i;
    json_t *g;
    json_array_foreach (guests, i, g) {
        json_t *k = json_object_get(g, "counters");
        c.frames += (uint64_t)json_integer_value(json_object_get(k, "frames"));
        c.messages += (uint64_t)json_integer_value(json_object_get(k, "messages"));
        c.pressure_events += (uint64_t)json_integer_value(json_object_get(k, "pressure_events"));
        c.invalid += (uint64_t)json_integer_value(json_object_get(k, "invalid"));
        c.rate_limited += (uint64_t)json_integer_value(json_object_get(k, "rate_limited"));
        c.throttled += (uint64_t)json_integer_value(json_object_get(k, "throttled"));
        c.moves += (uint64_t)json_integer_value(json_object_get(k, "moves"));
    }
    c.ok = json_is_array(guests);
    json_decref(reply);
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return c;
}

static json_t *counters_json(const struct daemon_counters *c)
{
    if (!c->ok)
        return json_null();
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "frames", (json_int_t)c->frames,
                     "messages", (json_int_t)c->messages, "pressure_events",
                     (json_int_t)c->pressure_events, "invalid", (json_int_t)c->invalid,
                     "rate_limited", (json_int_t)c->rate_limited, "throttled",
                     (json_int_t)c->throttled, "moves", (json_int_t)c->moves);
}

/* --- shards: guests hosted by child processes ---
 * Each simulated guest costs this process 4 descriptors (2 listening, 2 connected). When
 * RLIMIT_NOFILE cannot be raised far enough (no CAP_SYS_RESOURCE), the guests beyond what
 * fits are hosted by forked children, each with its own loop, that answer the daemon
 * alike and report how many of their guests are ready over a socketpair. Load and probes
 * come from the parent's guests only. */

struct shard {
    unsigned first, count;
    pid_t pid;
    uv_pipe_t link;
    char line[64];
    size_t len;
    bool listening;
    unsigned ready;
};

static struct shard *shards;
static unsigned n_shards;
static unsigned hosted; /* guests hosted by this process: [0, hosted) */

static uv_timer_t report_timer;
static uv_pipe_t parent_link;
static unsigned reported = ~0u;

static void child_report(uv_timer_t *t)
{
    (void)t;
    unsigned n = 0;
    for (unsigned i = 0; i < sim.n_guests; i++)
        n += sim.guests[i].welcomed && sim.guests[i].qmp_queried;
    if (n == reported)
        return;
    reported = n;
    char line[32];
    int len = snprintf(line, sizeof(line), "R %u\n", n);
    uv_buf_t b = uv_buf_init(line, (unsigned)len);
    uv_try_write((uv_stream_t *)&parent_link, &b, 1);
}

static void child_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[64];
    (void)h;
    (void)s;
    b->base = buf;
    b->len = sizeof(buf);
}

static void child_link_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    (void)b;
    if (n >= 0)
        return;
    /* The parent is done: close everything and leave. */
    for (unsigned i = 0; i < sim.n_guests; i++)
        sim_guest_close(&sim.guests[i]);
    uv_close((uv_handle_t *)st, NULL);
    uv_close((uv_handle_t *)&report_timer, NULL);
}

/* The body of a shard process: host guests [first, first + count) of all. */
static int child_main(struct sim_guest *all, unsigned first, unsigned count, int fd)
{
    sim.loop = uv_default_loop();
    sim.guests = all + first;
    sim.n_guests = count;
    uv_pipe_init(sim.loop, &parent_link, 0);
    uv_pipe_open(&parent_link, fd);
    for (unsigned i = 0; i < count; i++) {
        int r = sim_guest_listen(&sim, &sim.guests[i]);
        if (r < 0) {
            say("shard: guest %u: listen: %s", first + i, uv_strerror(r));
            return 1;
        }
    }
    uv_buf_t b = uv_buf_init("L\n", 2);
    uv_try_write((uv_stream_t *)&parent_link, &b, 1);
    uv_timer_init(sim.loop, &report_timer);
    uv_timer_start(&report_timer, child_report, 100, 100);
    uv_read_start((uv_stream_t *)&parent_link, child_alloc, child_link_read);
    uv_run(sim.loop, UV_RUN_DEFAULT);
    return 0;
}

static void shard_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    struct shard *sh = st->data;
    if (n < 0) {
        uv_close((uv_handle_t *)st, NULL);
        return;
    }
    for (ssize_t i = 0; i < n; i++) {
        char c = b->base[i];
        if (c != '\n') {
            if (sh->len < sizeof(sh->line) - 1)
                sh->line[sh->len++] = c;
            continue;
        }
        sh->line[sh->len] = '\0';
        sh->len = 0;
        if (sh->line[0] == 'L')
            sh->listening = true;
        else if (sh->line[0] == 'R')
            sh->ready = (unsigned)strtoul(sh->line + 2, NULL, 10);
    }
}

static void shard_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
    static char buf[256];
    (void)h;
    (void)s;
    b->base = buf;
    b->len = sizeof(buf);
}

/* Fork the shards for guests [hosted, total); before the parent's loop exists. */
static int fork_shards(struct sim_guest *all, unsigned total, unsigned per_process)
{
    n_shards = (total - hosted + per_process - 1) / per_process;
    shards = calloc(n_shards ? n_shards : 1, sizeof(*shards));
    int fds[64][2];
    if (n_shards > 64)
        return -E2BIG;
    for (unsigned k = 0; k < n_shards; k++) {
        struct shard *sh = &shards[k];
        sh->first = hosted + k * per_process;
        sh->count = total - sh->first < per_process ? total - sh->first : per_process;
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds[k]) < 0)
            return -errno;
        fflush(NULL);
        sh->pid = fork();
        if (sh->pid < 0)
            return -errno;
        if (sh->pid == 0) {
            for (unsigned j = 0; j <= k; j++)
                close(fds[j][0]);
            _exit(child_main(all, sh->first, sh->count, fds[k][1]));
        }
        close(fds[k][1]);
    }
    for (unsigned k = 0; k < n_shards; k++)
        shards[k].len = (size_t)fds[k][0]; /* handed to the loop below */
    return 0;
}

static void open_shard_links(void)
{
    for (unsigned k = 0; k < n_shards; k++) {
        struct shard *sh = &shards[k];
        int fd = (int)sh->len;
        sh->len = 0;
        uv_pipe_init(sim.loop, &sh->link, 0);
        uv_pipe_open(&sh->link, fd);
        sh->link.data = sh;
        uv_read_start((uv_stream_t *)&sh->link, shard_alloc, shard_read);
    }
}

static bool shards_listening(void *arg)
{
    (void)arg;
    for (unsigned k = 0; k < n_shards; k++)
        if (!shards[k].listening)
            return false;
    return true;
}

static unsigned shards_ready(void)
{
    unsigned n = 0;
    for (unsigned k = 0; k < n_shards; k++)
        n += shards[k].ready;
    return n;
}

/* --- readiness --- */

static unsigned n_ready(void)
{
    unsigned n = 0;
    for (unsigned i = 0; i < sim.n_guests; i++) {
        struct sim_guest *g = &sim.guests[i];
        n += g->welcomed && g->qmp_queried;
    }
    return n;
}

static unsigned last_ready;
static uint64_t last_ready_ns; /* when the count of ready guests last rose */

static bool all_ready(void *arg)
{
    (void)arg;
    unsigned n = n_ready() + shards_ready();
    if (n > last_ready) {
        last_ready = n;
        last_ready_ns = uv_hrtime();
    }
    return n == opt.guests;
}

/* All ready, or at least 99 % and no progress for 15 s (the rest will not come). */
static bool ready_or_stuck(void *arg)
{
    if (all_ready(arg))
        return true;
    return last_ready >= opt.guests - opt.guests / 100 &&
           uv_hrtime() - last_ready_ns > UINT64_C(15000000000);
}

/* --- latency probes --- */

static uint64_t *lat_ns;
static unsigned lat_n;
static uint64_t stray_balloons; /* balloon commands nobody probed for */

static void on_balloon(struct sim_guest *g, uint64_t value, uint64_t now_ns)
{
    (void)value;
    if (g->probe_sent_ns) {
        lat_ns[lat_n++] = now_ns - g->probe_sent_ns;
        g->probe_sent_ns = 0;
    } else {
        stray_balloons++;
    }
}

static bool probe_answered(void *arg)
{
    return ((struct sim_guest *)arg)->probe_sent_ns == 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *sorted, unsigned n, double p)
{
    if (n == 0)
        return 0;
    unsigned i = (unsigned)(p / 100.0 * (n - 1) + 0.5);
    return (double)sorted[i] / 1000.0;
}

static void load_start(double rate);
static void load_stop(void);

/* Probes one at a time; with load_rate > 0, while all guests send low-level frames at that
 * total rate. */
static json_t *run_latency(double load_rate)
{
    unsigned probes = opt.probes < sim.n_guests ? opt.probes : sim.n_guests;
    lat_ns = calloc(probes, sizeof(*lat_ns));
    lat_n = 0;
    stray_balloons = 0;
    sim.on_balloon = on_balloon;
    unsigned missed = 0, unsent = 0;
    if (load_rate > 0) {
        load_start(load_rate);
        /* Steady load first, and past the policy's 2 s critical window of the unloaded
         * round's probes, so a guest probed twice is not held as an echo. */
        run_for(2.5);
    }
    for (unsigned i = 0; i < probes && daemon_running; i++) {
        /* A stride coprime with N visits distinct guests. */
        struct sim_guest *g = &sim.guests[(uint64_t)i * 7919 % sim.n_guests];
        uint64_t t = uv_hrtime();
        g->probe_sent_ns = t;
        if (sim_guest_send_pressure(g, BP_LEVEL_CRITICAL, t) != 1) {
            g->probe_sent_ns = 0;
            unsent++;
            continue;
        }
        if (!wait_until(probe_answered, g, 2.0)) {
            g->probe_sent_ns = 0;
            missed++;
        }
    }
    if (load_rate > 0)
        load_stop();
    sim.on_balloon = NULL;
    qsort(lat_ns, lat_n, sizeof(*lat_ns), cmp_u64);
    json_t *j = json_pack("{s:f, s:i, s:i, s:i, s:i, s:I}", "load_per_s", load_rate, "probes",
                          probes, "answered", lat_n, "missed", missed, "unsent", unsent,
                          "stray_balloon_cmds", (json_int_t)stray_balloons);
    if (lat_n) {
        json_object_set_new(j, "min_us", json_real(pct(lat_ns, lat_n, 0)));
        json_object_set_new(j, "p50_us", json_real(pct(lat_ns, lat_n, 50)));
        json_object_set_new(j, "p99_us", json_real(pct(lat_ns, lat_n, 99)));
        json_object_set_new(j, "max_us", json_real(pct(lat_ns, lat_n, 100)));
    }
    free(lat_ns);
    lat_ns = NULL;
    return j;
}

/* --- throughput --- */

static double offered_rate;
static uint64_t offer_start_ns;
static uint64_t offered; /* frames the generator tried to send */
static uint64_t sent_ok;
static unsigned next_guest;

static void load_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t due = (uint64_t)((double)(uv_hrtime() - offer_start_ns) / 1e9 * offered_rate);
    unsigned tries = 0;
    while (offered < due && tries < sim.n_guests * 4u) {
        struct sim_guest *g = &sim.guests[next_guest];
        next_guest = (next_guest + 1) % sim.n_guests;
        tries++;
        int r = sim_guest_send_pressure(g, BP_LEVEL_LOW, uv_hrtime());
        if (r == 1) {
            sent_ok++;
            offered++;
        } else if (r == 0) {
            offered++; /* offered but refused by a full socket: the daemon is behind */
        }
    }
}

static uv_timer_t load_timer;

/* Offer pressure frames (level low) from all guests at rate per second until load_stop(). */
static void load_start(double rate)
{
    offered_rate = rate;
    offer_start_ns = uv_hrtime();
    offered = sent_ok = 0;
    uv_timer_start(&load_timer, load_tick, 1, 1);
}

static void load_stop(void)
{
    uv_timer_stop(&load_timer);
}

static uint64_t frames_sent_total(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < sim.n_guests; i++)
        n += sim.guests[i].frames_sent;
    return n;
}

static uint64_t unread_bytes_total(void)
{
    uint64_t n = 0, b;
    for (unsigned i = 0; i < sim.n_guests; i++)
        if (sim_guest_unread(&sim.guests[i], &b) == 0)
            n += b;
    return n;
}

/* SIOCOUTQ on a unix socket counts the kernel's whole buffer size per queued write, not
 * the payload: measure it for one frame to turn queued bytes into frames. */
static double queued_bytes_per_frame(void)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        return 0;
    char frame[BP_MAX_FRAME];
    size_t len;
    double per = 0;
    if (sim_guest_encode_pressure(&sim.guests[0], BP_LEVEL_LOW, uv_hrtime(), frame, sizeof(frame),
                                  &len) == 0) {
        int q = 0;
        for (int i = 0; i < 10; i++)
            if (write(sv[0], frame, len) != (ssize_t)len)
                break;
        if (ioctl(sv[0], SIOCOUTQ, &q) == 0)
            per = q / 10.0;
    }
    close(sv[0]);
    close(sv[1]);
    return per;
}

static json_t *run_throughput(double *ret_best_unsat, double *ret_best)
{
    json_t *stages = json_array();
    double per_frame = queued_bytes_per_frame();
    double best_unsat = 0, best = 0;
    for (double rate = opt.start_rate; rate <= opt.max_rate && daemon_running; rate *= 2) {
        struct procstat d0, d1;
        struct rusage u0, u1;
        uint64_t s0 = frames_sent_total();
        double q0 = per_frame > 0 ? (double)unread_bytes_total() / per_frame : 0;
        struct daemon_counters c0 = daemon_counters();
        uint64_t eagain0 = sim.counters.write_eagain;
        if (daemon_stat(&d0) < 0)
            break;
        getrusage(RUSAGE_SELF, &u0);
        uint64_t t0 = uv_hrtime();
        load_start(rate);
        run_for(opt.stage_seconds);
        load_stop();
        uint64_t t1 = uv_hrtime();
        if (daemon_stat(&d1) < 0)
            break;
        getrusage(RUSAGE_SELF, &u1);
        struct daemon_counters c1 = daemon_counters();
        uint64_t s1 = frames_sent_total();
        double q1 = per_frame > 0 ? (double)unread_bytes_total() / per_frame : 0;
        double secs = (double)(t1 - t0) / 1e9;
        double read_rate = ((double)(s1 - s0) - (q1 - q0)) / secs;
        double cpu = (d1.cpu_seconds - d0.cpu_seconds) / secs * 100;
        double self_cpu = ((double)(u1.ru_utime.tv_sec - u0.ru_utime.tv_sec) +
                           (double)(u1.ru_stime.tv_sec - u0.ru_stime.tv_sec) +
                           (double)(u1.ru_utime.tv_usec - u0.ru_utime.tv_usec) / 1e6 +
                           (double)(u1.ru_stime.tv_usec - u0.ru_stime.tv_usec) / 1e6) /
                          secs * 100;
        json_t *stage = json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:I}", "offered_per_s", rate,
                                  "sent_per_s", (double)sent_ok / secs, "read_per_s", read_rate,
                                  "daemon_cpu_pct", cpu, "sim_cpu_pct", self_cpu,
                                  "queued_frames_end", q1, "rss_kb", (json_int_t)d1.rss_kb);
        /* The daemon's own count of messages decoded over the same interval (the control
         * requests themselves are outside the timed interval's edges by a few ms). */
        double decoded_rate = -1;
        if (c0.ok && c1.ok) {
            decoded_rate = (double)(c1.messages - c0.messages) / secs;
            json_object_set_new(stage, "decoded_per_s", json_real(decoded_rate));
            json_object_set_new(stage, "rate_limited",
                                json_integer((json_int_t)(c1.rate_limited - c0.rate_limited)));
            json_object_set_new(stage, "invalid",
                                json_integer((json_int_t)(c1.invalid - c0.invalid)));
        }
        json_array_append_new(stages, stage);
        say("throughput: offered %.0f/s, sent %.0f/s, daemon read %.0f/s, decoded %.0f/s, "
            "daemon cpu %.0f%%, sim cpu %.0f%%",
            rate, (double)sent_ok / secs, read_rate, decoded_rate, cpu, self_cpu);
        /* Who set the pace: the daemon is behind when frames pile up in its sockets or a
         * socket filled; otherwise a shortfall is the simulator's own (CPU starved). */
        uint64_t eagain = sim.counters.write_eagain - eagain0;
        bool behind = eagain > 0 || q1 - q0 > 0.05 * (double)(s1 - s0) + 10;
        bool sim_short = !behind && (double)sent_ok < 0.97 * rate * secs;
        json_object_set_new(stage, "daemon_behind", json_boolean(behind));
        json_object_set_new(stage, "sim_limited", json_boolean(sim_short));
        if (cpu > 0)
            json_object_set_new(stage, "read_per_daemon_cpu_s", json_real(read_rate / (cpu / 100)));
        /* Time the daemon was runnable but had no CPU: on a shared machine this, not the
         * daemon, is often what sets the pace. */
        json_object_set_new(stage, "daemon_runq_wait_pct",
                            json_real((d1.runq_wait_seconds - d0.runq_wait_seconds) / secs * 100));
        if (read_rate > best)
            best = read_rate;
        if (!behind && cpu < 80 && read_rate > best_unsat)
            best_unsat = read_rate;
        if (behind || sim_short)
            break;
    }
    *ret_best_unsat = best_unsat;
    *ret_best = best;
    return stages;
}

/* --- main --- */

static void usage(FILE *to)
{
    fprintf(to, "usage: bellows-scale --bellowsd PATH [--guests N] [--phases LIST]\n"
                "         [--idle-seconds S] [--probes K] [--stage-seconds S]\n"
                "         [--start-rate R] [--max-rate R] [--connect-timeout S]\n"
                "         [--load-rate R] [--keep]\n"
                "  --load-rate: also probe latency under this background load (frames/s)\n"
                "  --phases: comma list of rss,idle,latency,throughput (default: all)\n");
}

static void parse_args(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"bellowsd", required_argument, NULL, 'd'},
        {"guests", required_argument, NULL, 'n'},
        {"phases", required_argument, NULL, 'p'},
        {"idle-seconds", required_argument, NULL, 'i'},
        {"probes", required_argument, NULL, 'k'},
        {"stage-seconds", required_argument, NULL, 's'},
        {"start-rate", required_argument, NULL, 'r'},
        {"max-rate", required_argument, NULL, 'm'},
        {"connect-timeout", required_argument, NULL, 'c'},
        {"load-rate", required_argument, NULL, 'l'},
        {"keep", no_argument, NULL, 'K'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            opt.bellowsd = optarg;
            break;
        case 'n':
            opt.guests = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            opt.phases = optarg;
            break;
        case 'i':
            opt.idle_seconds = atof(optarg);
            break;
        case 'k':
            opt.probes = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 's':
            opt.stage_seconds = atof(optarg);
            break;
        case 'r':
            opt.start_rate = atof(optarg);
            break;
        case 'm':
            opt.max_rate = atof(optarg);
            break;
        case 'c':
            opt.connect_timeout = atof(optarg);
            break;
        case 'l':
            opt.load_rate = atof(optarg);
            break;
        case 'K':
            opt.keep = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (!opt.bellowsd || opt.guests == 0 || opt.guests > 100000 || opt.stage_seconds <= 0 ||
        opt.start_rate <= 0) {
        usage(stderr);
        exit(2);
    }
}

static bool want(const char *name)
{
    size_t n = strlen(name);
    for (const char *p = opt.phases; (p = strstr(p, name)); p += n)
        if ((p == opt.phases || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

/* Each guest needs 2 listening and 2 connected sockets here, 2 in the daemon. */
static json_t *raise_nofile(void)
{
    struct rlimit old, rl;
    getrlimit(RLIMIT_NOFILE, &old);
    rlim_t need = (rlim_t)opt.guests * 4 + 256;
    rl = old;
    if (rl.rlim_cur < need) {
        rl.rlim_cur = need;
        if (rl.rlim_max < need)
            rl.rlim_max = need; /* needs CAP_SYS_RESOURCE; fs.nr_open bounds it */
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            say("cannot raise RLIMIT_NOFILE to %llu: %s; staying at the hard limit %llu",
                (unsigned long long)need, strerror(errno), (unsigned long long)old.rlim_max);
            rl.rlim_cur = rl.rlim_max = old.rlim_max;
            setrlimit(RLIMIT_NOFILE, &rl);
            getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    return json_pack("{s:I, s:I, s:I}", "before_soft", (json_int_t)old.rlim_cur, "before_hard",
                     (json_int_t)old.rlim_max, "now", (json_int_t)rl.rlim_cur);
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    json_t *out = json_pack("{s:s, s:i}", "bench", "scale", "guests", opt.guests);
    double load[3];
    if (getloadavg(load, 3) == 3) /* the machine is shared: say how busy it was */
        json_object_set_new(out, "loadavg_start",
                            json_pack("[f, f, f]", load[0], load[1], load[2]));
    json_object_set_new(out, "rlimit_nofile", raise_nofile());

    snprintf(dir, sizeof(dir), "/tmp/bs.XXXXXX"); /* short: socket paths max 107 bytes */
    if (!mkdtemp(dir)) {
        say("mkdtemp: %s", strerror(errno));
        return 1;
    }
    char procdir[96];
    snprintf(procdir, sizeof(procdir), "%s/proc", dir);
    mkdir(procdir, 0700);
    snprintf(config_path, sizeof(config_path), "%s/bellowsd.conf", dir);
    if (write_fake_proc() < 0) {
        say("cannot write %s", procdir);
        return 1;
    }

    sim.initial_actual = 1024 * MIB;
    sim.guests = calloc(opt.guests, sizeof(*sim.guests));
    for (unsigned i = 0; i < opt.guests; i++) {
        struct sim_guest *g = &sim.guests[i];
        g->index = i;
        snprintf(g->name, sizeof(g->name), "g%u", i);
        snprintf(g->qmp_path, sizeof(g->qmp_path), "%s/%uq", dir, i);
        snprintf(g->chan_path, sizeof(g->chan_path), "%s/%uc", dir, i);
    }
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    unsigned per_process = rl.rlim_cur > 1024 ? (unsigned)((rl.rlim_cur - 256) / 4) : 200;
    hosted = opt.guests < per_process ? opt.guests : per_process;
    int fr = fork_shards(sim.guests, opt.guests, per_process);
    if (fr < 0) {
        say("cannot fork shards: %s", strerror(-fr));
        return 1;
    }
    sim.loop = uv_default_loop();
    sim.n_guests = hosted;
    uv_timer_init(sim.loop, &load_timer);
    open_shard_links();
    json_object_set_new(out, "sim_processes", json_integer(1 + n_shards));
    json_object_set_new(out, "load_guests", json_integer(hosted));

    /* Start with no guests: the baseline RSS. */
    long size0 = write_config(0);
    if (size0 < 0 || start_daemon() < 0) {
        say("cannot start %s", opt.bellowsd);
        return 1;
    }
    snprintf(ctl_path, sizeof(ctl_path), "%s/ctl", dir);
    phase = "start";
    if (!wait_until(file_exists, ctl_path, 10))
        say("control socket %s did not appear within 10 s", ctl_path);
    struct procstat st0 = {0}, stn = {0};
    run_for(0.5);
    daemon_stat(&st0);

    /* Then N guests, added by a reload. */
    phase = "connect";
    if (!wait_until(shards_listening, NULL, 60)) {
        say("shard processes did not start listening");
        json_object_set_new(out, "error", json_string("shards did not start listening"));
        goto out;
    }
    for (unsigned i = 0; i < hosted; i++) {
        int r = sim_guest_listen(&sim, &sim.guests[i]);
        if (r < 0) {
            say("guest %u: listen: %s", i, uv_strerror(r));
            json_object_set_new(out, "error",
                                json_sprintf("listen failed at guest %u: %s", i, uv_strerror(r)));
            goto out;
        }
    }
    long size = write_config(opt.guests);
    json_object_set_new(out, "config_bytes", json_integer(size));
    uint64_t t0 = uv_hrtime();
    if (daemon_running)
        uv_process_kill(&daemon_proc, SIGHUP);
    wait_until(ready_or_stuck, NULL, opt.connect_timeout);
    bool connected = all_ready(NULL);
    double connect_s = (double)((last_ready_ns ? last_ready_ns : uv_hrtime()) - t0) / 1e9;
    json_object_set_new(out, "connect",
                        json_pack("{s:b, s:f, s:i, s:I, s:I}", "all_ready", connected,
                                  "seconds_to_last_ready", connect_s, "ready",
                                  n_ready() + shards_ready(), "qmp_connects",
                                  (json_int_t)sim.counters.qmp_connects, "chan_connects",
                                  (json_int_t)sim.counters.chan_connects));
    say("%u/%u guests ready after %.2f s", n_ready() + shards_ready(), opt.guests, connect_s);
    /* A few guests short (the daemon out of descriptors, say): measure the rest anyway;
     * "connect" says how many were ready. */
    if (n_ready() + shards_ready() < opt.guests - opt.guests / 100)
        goto out;
    run_for(1.0);
    if (want("rss") && daemon_stat(&stn) == 0) {
        json_object_set_new(
            out, "rss",
            json_pack("{s:I, s:I, s:f, s:I, s:i, s:i}", "rss0_kb", (json_int_t)st0.rss_kb,
                      "rssN_kb", (json_int_t)stn.rss_kb, "per_guest_kb",
                      ((double)stn.rss_kb - (double)st0.rss_kb) / last_ready, "hwm_kb",
                      (json_int_t)stn.hwm_kb, "threads", stn.threads, "fds", stn.fds));
        say("rss: %llu kB at 0 guests, %llu kB at %u: %.1f kB per guest",
            (unsigned long long)st0.rss_kb, (unsigned long long)stn.rss_kb, last_ready,
            ((double)stn.rss_kb - (double)st0.rss_kb) / last_ready);
    }

    if (want("idle") && daemon_running) {
        phase = "idle";
        struct procstat a, b;
        daemon_stat(&a);
        uint64_t ta = uv_hrtime();
        run_for(opt.idle_seconds);
        double secs = (double)(uv_hrtime() - ta) / 1e9;
        if (daemon_stat(&b) == 0) {
            uint64_t sw = (b.ctxsw_vol - a.ctxsw_vol) + (b.ctxsw_invol - a.ctxsw_invol);
            json_object_set_new(
                out, "idle",
                json_pack("{s:f, s:I, s:I, s:f, s:f}", "seconds", secs, "ctxsw_voluntary",
                          (json_int_t)(b.ctxsw_vol - a.ctxsw_vol), "ctxsw_involuntary",
                          (json_int_t)(b.ctxsw_invol - a.ctxsw_invol), "wakeups_per_s",
                          (double)sw / secs, "cpu_pct",
                          (b.cpu_seconds - a.cpu_seconds) / secs * 100));
            say("idle: %.1f wake-ups/s", (double)sw / secs);
        }
    }

    if (want("latency") && daemon_running) {
        phase = "latency";
        for (int loaded = 0; loaded <= (opt.load_rate > 0); loaded++) {
            json_t *lat = run_latency(loaded ? opt.load_rate : 0);
            json_object_set_new(out, loaded ? "latency_loaded" : "latency", lat);
            say("latency (load %.0f/s): p50 %.0f us, p99 %.0f us (%lld answered, %lld missed)",
                loaded ? opt.load_rate : 0.0, json_real_value(json_object_get(lat, "p50_us")),
                json_real_value(json_object_get(lat, "p99_us")),
                (long long)json_integer_value(json_object_get(lat, "answered")),
                (long long)json_integer_value(json_object_get(lat, "missed")));
        }
    }

    if (want("throughput") && daemon_running) {
        phase = "throughput";
        double unsat, best;
        json_t *stages = run_throughput(&unsat, &best);
        json_object_set_new(out, "throughput",
                            json_pack("{s:f, s:f, s:o}", "sustained_per_s_cpu_below_80pct", unsat,
                                      "max_read_per_s", best, "stages", stages));
    }

out:
    json_object_set_new(out, "sim",
                        json_pack("{s:I, s:I, s:I, s:I, s:I}", "disconnects",
                                  (json_int_t)sim.counters.disconnects, "welcomes",
                                  (json_int_t)sim.counters.welcomes, "balloon_cmds",
                                  (json_int_t)sim.counters.balloon_cmds, "write_eagain",
                                  (json_int_t)sim.counters.write_eagain, "bad_from_daemon",
                                  (json_int_t)sim.counters.bad_from_daemon));
    if (getloadavg(load, 3) == 3)
        json_object_set_new(out, "loadavg_end", json_pack("[f, f, f]", load[0], load[1], load[2]));
    bool daemon_survived_flag = daemon_running;
    if (daemon_running) {
        struct daemon_counters c = daemon_counters();
        json_object_set_new(out, "daemon_counters", counters_json(&c));
    }
    if (daemon_running) {
        json_object_set_new(out, "daemon_survived", json_true());
        phase = "stop";
        uv_process_kill(&daemon_proc, SIGTERM);
        run_for(10);
    } else {
        json_object_set_new(out, "daemon_survived", json_false());
        json_object_set_new(out, "daemon_died",
                            json_pack("{s:s, s:I, s:i}", "phase", died_in ? died_in : "?",
                                      "exit_status", (json_int_t)daemon_exit_status, "signal",
                                      daemon_term_signal));
    }
    json_object_set_new(out, "daemon_log", json_sprintf("%s/bellowsd.log", dir));
    for (unsigned i = 0; i < hosted; i++)
        sim_guest_close(&sim.guests[i]);
    uv_close((uv_handle_t *)&load_timer, NULL);
    for (unsigned k = 0; k < n_shards; k++) {
        if (!uv_is_closing((uv_handle_t *)&shards[k].link))
            uv_close((uv_handle_t *)&shards[k].link, NULL);
    }
    uv_run(sim.loop, UV_RUN_NOWAIT);
    for (unsigned k = 0; k < n_shards; k++)
        waitpid(shards[k].pid, NULL, 0);
    json_dumpf(out, stdout, JSON_COMPACT | JSON_REAL_PRECISION(6));
    fputc('\n', stdout);
    json_decref(out);
    if (!opt.keep && daemon_survived_flag) {
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf -- '%s'", dir);
        if (system(cmd) != 0)
            say("could not remove %s", dir);
    }
    return 0;
}
