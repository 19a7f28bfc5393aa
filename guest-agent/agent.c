/* bellows-agent's loop: sources -> coalescer -> port, and the host's welcome back. */
#include "guest-agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define NS_PER_MS UINT64_C(1000000)

static void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logmsg(const char *fmt, ...)
{
    va_list ap;
    fputs("bellows-agent: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Read a small file whole into buf (NUL-terminated). Returns the length or -errno. */
static ssize_t read_small_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    while (len + 1 < cap) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = -errno;
            close(fd);
            return err;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    return (ssize_t)len;
}

/* "<kernel boot id>-<random>": the host tells a reboot and an agent restart apart from a
 * reconnect, and seq restarts with every new boot_id. */
static void make_boot_id(char *buf, size_t cap)
{
    char kernel[64] = "unknown";
    uint32_t rnd = 0;
    ssize_t n = read_small_file("/proc/sys/kernel/random/boot_id", kernel, sizeof(kernel));
    if (n > 0 && kernel[n - 1] == '\n')
        kernel[n - 1] = '\0';
    if (n <= 0)
        snprintf(kernel, sizeof(kernel), "unknown");
    if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
        rnd = (uint32_t)now_ns() ^ (uint32_t)getpid();
    snprintf(buf, cap, "%.40s-%08x", kernel, rnd);
}

static uint32_t running_sources(const struct agent *a)
{
    uint32_t s = 0;
    if (a->has_vmpressure)
        s |= 1u << BP_SOURCE_VMPRESSURE;
    if (a->has_psi)
        s |= 1u << BP_SOURCE_PSI;
    return s;
}

static void describe(const struct bp_msg *m, char *buf, size_t cap)
{
    switch (m->type) {
    case BP_MSG_PRESSURE:
        snprintf(buf, cap, "pressure seq=%llu level=%s source=%s",
                 (unsigned long long)m->u.pressure.seq, bp_level_name(m->u.pressure.level),
                 bp_source_name(m->u.pressure.source));
        break;
    case BP_MSG_REPORT:
        snprintf(buf, cap, "report seq=%llu level=%s", (unsigned long long)m->u.report.seq,
                 bp_level_name(m->u.report.level));
        break;
    default:
        snprintf(buf, cap, "%s", bp_msg_type_name(m->type));
        break;
    }
}

/* Encode and hand one message to the port (or stdout with --print). Returns 0, or -1 when
 * it cannot be encoded (dropped, logged). */
static int emit(struct agent *a, struct bp_msg *m)
{
    char frame[BP_MAX_FRAME];
    size_t len;

    if (m->type == BP_MSG_PRESSURE)
        m->u.pressure.seq = ++a->seq;
    else if (m->type == BP_MSG_REPORT)
        m->u.report.seq = ++a->seq;
    enum bp_error e = bp_encode(m, frame, sizeof(frame), &len);
    if (e != BP_OK) {
        logmsg("cannot encode %s: %s; dropped", bp_msg_type_name(m->type), bp_error_name(e));
        return -1;
    }
    if (a->opts.verbose) {
        char what[96];
        describe(m, what, sizeof(what));
        logmsg("send %s", what);
    }
    if (a->opts.print) {
        /* The JSON and its LF, without the leading RS. */
        fwrite(frame + 1, 1, len - 1, stdout);
        fflush(stdout);
        return 0;
    }
    guest_port_send(&a->port, frame, len);
#ifdef BELLOWS_AGENT_BENCH
    /* Benchmark build: wake-up to write() done, for frames written at once. */
    if (m->type == BP_MSG_PRESSURE && guest_port_ready(&a->port))
        logmsg("bench: seq=%llu level=%s source=%s wake_ns=%llu written_ns=%llu",
               (unsigned long long)m->u.pressure.seq, bp_level_name(m->u.pressure.level),
               bp_source_name(m->u.pressure.source), (unsigned long long)m->u.pressure.mono_ns,
               (unsigned long long)now_ns());
#endif
    return 0;
}

static void send_hello(struct agent *a)
{
    struct bp_msg m = {.type = BP_MSG_HELLO};
    m.u.hello.protocol_version = BP_PROTOCOL_VERSION;
    snprintf(m.u.hello.agent, sizeof(m.u.hello.agent), "bellows-agent %s", BELLOWS_VERSION);
    snprintf(m.u.hello.boot_id, sizeof(m.u.hello.boot_id), "%s", a->boot_id);
    m.u.hello.sources = running_sources(a);
    m.u.hello.caps = BP_CAP_SETTINGS | (a->co.cfg.report_ns ? BP_CAP_REPORT : 0);
    a->need_hello = false;
    emit(a, &m);
}

/* Send what waits, as long as the port takes it: the hello first after each (re)connect. */
static void flush(struct agent *a)
{
    struct bp_msg m;

    if (a->stopping)
        return;
    if (a->opts.print) {
        if (a->need_hello)
            send_hello(a);
        while (co_pop(&a->co, &m))
            emit(a, &m);
        return;
    }
    while (guest_port_ready(&a->port)) {
        if (a->need_hello) {
            send_hello(a);
            continue;
        }
        if (!co_pop(&a->co, &m))
            break;
        emit(a, &m);
    }
}

static void on_tick(uv_timer_t *timer);

/* Arm the timer for the coalescer's next deadline. */
static void rearm(struct agent *a)
{
    if (a->stopping)
        return;
    uint64_t deadline = co_next_deadline(&a->co);
    if (deadline == CO_NEVER) {
        uv_timer_stop(&a->tick);
        return;
    }
    uint64_t now = now_ns();
    uint64_t ms = deadline <= now ? 0 : (deadline - now + NS_PER_MS - 1) / NS_PER_MS;
    uv_timer_start(&a->tick, on_tick, ms, 0);
}

static bool take_snapshot(struct agent *a, struct bp_mem *mem)
{
    int r = snapshot_read(&a->snap, mem);
    if (r < 0) {
        logmsg("cannot read %s/meminfo: %s", a->opts.proc_root, strerror(-r));
        memset(mem, 0, sizeof(*mem));
        return false;
    }
    return true;
}

/* After the hello the host gets the current state at once, not at the next heartbeat. */
static void queue_fresh_report(struct agent *a)
{
    struct bp_mem mem;
    take_snapshot(a, &mem);
    co_report(&a->co, now_ns(), &mem);
    rearm(a);
}

static void on_tick(uv_timer_t *timer)
{
    struct agent *a = timer->data;
    uint64_t now = now_ns();
    if (co_tick(&a->co, now)) {
        struct bp_mem mem;
        take_snapshot(a, &mem);
        co_report(&a->co, now, &mem);
    }
    flush(a);
    rearm(a);
}

/* End of a loop iteration with notifications: one event per source at its highest level. */
static void on_batch(uv_check_t *check)
{
    struct agent *a = check->data;
    struct bp_mem mem;
    bool have_mem = false;

    uv_check_stop(check);
    for (int s = 0; s < BP_SOURCE_COUNT; s++) {
        if (!a->note[s].pending)
            continue;
        a->note[s].pending = false;
        if (!have_mem)
            have_mem = take_snapshot(a, &mem) || true;
        co_event(&a->co, (enum bp_source)s, a->note[s].level, a->note[s].now_ns, &mem);
    }
    flush(a);
    rearm(a);
}

static void note(struct agent *a, enum bp_source source, enum bp_level level, uint64_t now)
{
    if (!a->note[source].pending) {
        a->note[source].pending = true;
        a->note[source].level = level;
        a->note[source].now_ns = now;
    } else if (level > a->note[source].level) {
        a->note[source].level = level;
    }
    uv_check_start(&a->batch, on_batch);
}

static void on_vmpressure(struct vmpressure_source *src, enum bp_level level, uint64_t now,
                          void *opaque)
{
    (void)src;
    note(opaque, BP_SOURCE_VMPRESSURE, level, now);
}

static void on_psi(struct psi_source *src, enum bp_level level, uint64_t now, void *opaque)
{
    (void)src;
    note(opaque, BP_SOURCE_PSI, level, now);
}

static void on_psi_gone(struct psi_source *src, enum bp_level level, void *opaque)
{
    (void)opaque;
    logmsg("psi: %s trigger on %s reported an error (file removed?); stopped", bp_level_name(level),
           src->path);
}

/* --- the host's side of the conversation --- */

static void on_frame(const char *payload, size_t len, void *opaque)
{
    struct agent *a = opaque;
    struct bp_msg m;
    char detail[128];
    enum bp_error e = bp_decode(payload, len, &m, detail, sizeof(detail));

    if (e != BP_OK) {
        a->bad_frames++;
        if (e != BP_ERR_UNKNOWN_TYPE)
            logmsg("bad frame from host (%s: %s); ignored", bp_error_name(e), detail);
        return;
    }
    if (m.type != BP_MSG_WELCOME) {
        a->bad_frames++;
        logmsg("unexpected %s from host; ignored", bp_msg_type_name(m.type));
        return;
    }
    co_apply_welcome(&a->co, m.u.welcome.report_interval_ms, m.u.welcome.levels, now_ns());
    logmsg("welcome: report interval %llu ms, levels 0x%x",
           (unsigned long long)(a->co.cfg.report_ns / NS_PER_MS), m.u.welcome.levels);
    rearm(a);
}

static void on_port_up(struct guest_port *port, void *opaque)
{
    struct agent *a = opaque;
    logmsg("port %s open", port->path);
    a->last_logged_err = 1; /* log the next failure whatever it is */
    bp_framer_reset(&a->framer);
    a->need_hello = true;
    queue_fresh_report(a);
    flush(a);
}

static void on_port_writable(struct guest_port *port, void *opaque)
{
    (void)port;
    flush(opaque);
}

static void on_port_data(struct guest_port *port, const char *data, size_t len, void *opaque)
{
    struct agent *a = opaque;
    (void)port;
    bp_framer_feed(&a->framer, data, len, on_frame, a);
}

static void on_port_down(struct guest_port *port, int err, uint64_t delay_ms, void *opaque)
{
    struct agent *a = opaque;
    a->need_hello = true;
    /* Log each change of state once: a closed host side retries every few seconds. */
    if (err == a->last_logged_err)
        return;
    a->last_logged_err = err;
    const char *what = port->cfg.device ? port->cfg.device : port->cfg.name;
    if (err == 0)
        logmsg("port %s: host side closed; retrying every %llu ms at most", what,
               (unsigned long long)a->opts.reconnect_max_ms);
    else
        logmsg("port %s: %s; retrying in %llu ms (then up to every %llu ms)", what,
               err == -ENOENT && !port->cfg.device ? "no such port yet" : strerror(-err),
               (unsigned long long)delay_ms, (unsigned long long)a->opts.reconnect_max_ms);
}

static const struct guest_port_ops port_ops = {
    .on_up = on_port_up,
    .on_writable = on_port_writable,
    .on_data = on_port_data,
    .on_down = on_port_down,
};

/* --- start-up --- */

static int start_vmpressure(struct agent *a, char *why, size_t why_cap)
{
    char mount[PATH_MAX];
    const char *cgroup = a->opts.cgroup;

    if (!cgroup) {
        static char mountinfo[65536];
        ssize_t n = read_small_file("/proc/self/mountinfo", mountinfo, sizeof(mountinfo));
        if (n < 0) {
            snprintf(why, why_cap, "cannot read /proc/self/mountinfo: %s", strerror((int)-n));
            return -1;
        }
        int r = vmpressure_find_mount(mountinfo, (size_t)n, mount, sizeof(mount));
        if (r < 0) {
            snprintf(why, why_cap,
                     "the cgroup v1 memory controller is not mounted (none in "
                     "/proc/self/mountinfo; e.g. mount -t cgroup -o memory memory "
                     "/sys/fs/cgroup/memory)");
            return -1;
        }
        cgroup = mount;
    }
    int r = vmpressure_start(&a->vmpressure, a->loop, cgroup, a->opts.vmpressure_mode,
                             on_vmpressure, a);
    if (r < 0) {
        snprintf(why, why_cap, "cannot register on %s/memory.pressure_level: %s", cgroup,
                 strerror(-r));
        return -1;
    }
    logmsg("vmpressure: low, medium, critical on %s (mode %s)", cgroup,
           vmpressure_mode_name(a->opts.vmpressure_mode));
    a->has_vmpressure = true;
    return 0;
}

static int start_psi(struct agent *a, char *why, size_t why_cap)
{
    int r = psi_start(&a->psi, a->loop, a->opts.psi_file, a->opts.psi, on_psi, on_psi_gone, a);
    if (r < 0) {
        snprintf(why, why_cap, "cannot register a trigger on %s: %s%s", a->opts.psi_file,
                 strerror(-r),
                 r == -ENOENT && strcmp(a->opts.psi_file, AGENT_DEFAULT_PSI_FILE) == 0
                     ? " (the kernel needs CONFIG_PSI=y and psi=1 on its command line)"
                     : "");
        return -1;
    }
    for (int i = 0; i < 3; i++) {
        char asked[64], got[64];
        if (!a->psi.lv[i].asked.enabled)
            continue;
        psi_spec_trigger(&a->psi.lv[i].asked, asked, sizeof(asked));
        psi_spec_trigger(&a->psi.lv[i].registered, got, sizeof(got));
        if (a->psi.lv[i].fell_back)
            logmsg("psi: %s trigger \"%s\" on %s (the kernel refused \"%s\" with EINVAL: "
                   "without CAP_SYS_RESOURCE windows must be multiples of 2 s)",
                   bp_level_name((enum bp_level)(i + 1)), got, a->opts.psi_file, asked);
        else
            logmsg("psi: %s trigger \"%s\" on %s", bp_level_name((enum bp_level)(i + 1)), got,
                   a->opts.psi_file);
    }
    a->has_psi = true;
    return 0;
}

static int start_sources(struct agent *a)
{
    char why_vmp[PATH_MAX + 512] = "not asked for", why_psi[PATH_MAX + 512] = "not asked for";
    bool want_vmp = a->opts.sources_auto || (a->opts.sources & AGENT_SOURCE_VMPRESSURE);
    bool want_psi = a->opts.sources_auto || (a->opts.sources & AGENT_SOURCE_PSI);

    if (want_vmp && start_vmpressure(a, why_vmp, sizeof(why_vmp)) < 0) {
        if (!a->opts.sources_auto) {
            logmsg("vmpressure: %s", why_vmp);
            return -1;
        }
    }
    if (want_psi && start_psi(a, why_psi, sizeof(why_psi)) < 0) {
        if (!a->opts.sources_auto) {
            logmsg("psi: %s", why_psi);
            return -1;
        }
    }
    if (!a->has_vmpressure && !a->has_psi) {
        /* With auto, a kernel without either source (cgroup v2 only and psi=0) gets a
         * reports-only agent: the host still sees the guest's memory in every report, and
         * exiting would only make the service manager restart it for ever. */
        logmsg("no pressure source available: vmpressure: %s; psi: %s", why_vmp, why_psi);
        if (a->opts.report_ms)
            logmsg("running reports-only: a memory report every %u ms (or as the host's "
                   "welcome says), no pressure events",
                   a->opts.report_ms);
        else
            logmsg("running reports-only: a memory report after each connect and when the "
                   "host's welcome asks for them (--report-interval 0), no pressure events");
        return 0;
    }
    if (a->opts.sources_auto && !a->has_vmpressure)
        logmsg("vmpressure not used: %s", why_vmp);
    if (a->opts.sources_auto && !a->has_psi)
        logmsg("psi not used: %s", why_psi);
    return 0;
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct agent *a = sig->data;
    logmsg("signal %d: stopping", signum);
    agent_stop(a);
}

int agent_start(struct agent *a, uv_loop_t *loop, const struct agent_options *opts)
{
    memset(a, 0, sizeof(*a));
    a->opts = *opts;
    a->loop = loop;
    a->need_hello = true;
    a->last_logged_err = 1;
    bp_framer_init(&a->framer);
    make_boot_id(a->boot_id, sizeof(a->boot_id));

    int r = snapshot_open(&a->snap, opts->proc_root);
    if (r < 0) {
        logmsg("cannot open %s/meminfo: %s", opts->proc_root, strerror(-r));
        return -1;
    }
    struct co_config cc = {
        .repeat_ns = opts->repeat_ms * NS_PER_MS,
        .critical_repeat_ns = opts->critical_repeat_ms * NS_PER_MS,
        .report_ns = opts->report_ms * NS_PER_MS,
        .quiet_ns = opts->quiet_ms * NS_PER_MS,
        .levels = 0,
        .queue_cap = AGENT_QUEUE_SIZE,
    };
    co_init(&a->co, &cc, now_ns());

    uv_timer_init(loop, &a->tick);
    a->tick.data = a;
    uv_check_init(loop, &a->batch);
    a->batch.data = a;
    uv_signal_init(loop, &a->sigterm);
    a->sigterm.data = a;
    uv_signal_start(&a->sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &a->sigint);
    a->sigint.data = a;
    uv_signal_start(&a->sigint, on_signal, SIGINT);

    if (start_sources(a) < 0)
        goto fail;

    if (!opts->print) {
        struct guest_port_config pc = {
            .device = opts->device,
            .name = opts->port_name,
            .backoff_min_ms = AGENT_DEFAULT_RECONNECT_MIN_MS,
            .backoff_max_ms = opts->reconnect_max_ms,
        };
        r = guest_port_init(loop, &a->port, &pc, &port_ops, a);
        if (r < 0) {
            logmsg("port: %s", uv_strerror(r));
            goto fail;
        }
        a->has_port = true;
        guest_port_start(&a->port);
    } else {
        queue_fresh_report(a);
        flush(a);
    }
    rearm(a);
    return 0;

fail:
    agent_stop(a);
    uv_run(loop, UV_RUN_DEFAULT);
    return -1;
}

static void on_handle_closed(uv_handle_t *handle)
{
    (void)handle;
}

static void on_port_closed(struct guest_port *port)
{
    (void)port;
}

static void on_vmpressure_closed(struct vmpressure_source *src)
{
    (void)src;
}

static void on_psi_closed(struct psi_source *src)
{
    (void)src;
}

void agent_stop(struct agent *a)
{
    if (a->stopping)
        return;
    a->stopping = true;
    uv_close((uv_handle_t *)&a->tick, on_handle_closed);
    uv_close((uv_handle_t *)&a->batch, on_handle_closed);
    uv_close((uv_handle_t *)&a->sigterm, on_handle_closed);
    uv_close((uv_handle_t *)&a->sigint, on_handle_closed);
    if (a->has_port)
        guest_port_close(&a->port, on_port_closed);
    if (a->has_vmpressure)
        vmpressure_close(&a->vmpressure, on_vmpressure_closed);
    if (a->has_psi)
        psi_close(&a->psi, on_psi_closed);
    snapshot_close(&a->snap);
}
