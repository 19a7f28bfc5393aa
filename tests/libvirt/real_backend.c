/* libvirt_backend against a real libvirtd (through tests/libvirt/with-libvirtd, root).
 *   real-libvirt-backend [KERNEL INITRD [restart]]
 * - a domain running before the backend starts is discovered at connect, limits from its
 *   metadata, actual size from libvirt;
 * - a domain with the channel (path left to libvirt) started after is reported within a
 *   second, one without the channel is ignored, bad metadata comes with its error and
 *   defaults;
 * - a destroyed domain is reported gone within a second;
 * - with a guest kernel (scripts/guest-image), a move goes out on a worker, answers on the
 *   loop, moves the real balloon, and the BALLOON_CHANGE event brings the new actual size;
 * - with "restart" (the wrapper started libvirtd, so we may stop it):
 *   libvirtd frozen (SIGSTOP) for 2 s while a move of A is in flight: the loop's timers keep
 *   firing on time (the move waits on its worker), a second move is refused as busy; after
 *   SIGCONT the move answers once, with success;
 *   then libvirtd killed and started again: the backend drops every actual size, refuses
 *   to move, reconnects and finds the same running domain again without reporting it gone
 *   or new. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <uv.h>

#include "host-daemon/libvirt/libvirt_client.h"
#include "host-daemon/libvirt/libvirt_event_uv.h"
#include "host-daemon/libvirt/libvirt_worker.h"

#define MiB (UINT64_C(1) << 20)

static uv_loop_t loop;
static int failures;

static uint64_t now_ms(void);

static void check(bool ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "[%6.2f s] ", (double)now_ms() / 1000.0);
    fputs(ok ? "ok: " : "FAIL: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (!ok)
        failures++;
}

/* What the backend reported. */
struct record {
    int appeared, disappeared, balloon_changes, ups, downs, rejected, limits, moves;
    int move_status;
    struct libvirt_domain_info last_limits;
    struct libvirt_domain_info last_info;
    uint64_t last_appeared_actual;
    char last_gone[64];
    char last_balloon_uuid[40];
    uint64_t last_balloon;
    uint64_t appeared_ms, gone_ms, balloon_ms, up_ms, down_ms;
};
static struct record rec;

static void on_appeared(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                        uint64_t actual, void *opaque)
{
    (void)b;
    (void)opaque;
    rec.appeared++;
    rec.last_info = *info;
    rec.last_appeared_actual = actual;
    rec.appeared_ms = now_ms();
    fprintf(stderr,
            "  appeared %s actual %llu MiB channel %s floor %llu MiB (%s) ceiling %llu "
            "MiB (%s) weight %u (%s)%s%s\n",
            info->name, (unsigned long long)(actual / MiB), info->channel_path,
            (unsigned long long)(info->floor_bytes / MiB),
            libvirt_limit_source_name(info->floor_from),
            (unsigned long long)(info->ceiling_bytes / MiB),
            libvirt_limit_source_name(info->ceiling_from), info->weight,
            libvirt_limit_source_name(info->weight_from), info->errors[0] ? " errors: " : "",
            info->errors);
}

static void on_disappeared(struct libvirt_backend *b, const char *uuid, const char *name,
                           void *opaque)
{
    (void)b;
    (void)uuid;
    (void)opaque;
    rec.disappeared++;
    snprintf(rec.last_gone, sizeof(rec.last_gone), "%s", name);
    rec.gone_ms = now_ms();
    fprintf(stderr, "  disappeared %s\n", name);
}

static void on_balloon(struct libvirt_backend *b, const char *uuid, uint64_t actual, void *opaque)
{
    (void)b;
    (void)opaque;
    rec.balloon_changes++;
    snprintf(rec.last_balloon_uuid, sizeof(rec.last_balloon_uuid), "%s", uuid);
    rec.last_balloon = actual;
    rec.balloon_ms = now_ms();
    fprintf(stderr, "  balloon %s actual %llu KiB\n", uuid, (unsigned long long)(actual / 1024));
}

static void on_limits(struct libvirt_backend *b, const struct libvirt_domain_info *info,
                      void *opaque)
{
    (void)b;
    (void)opaque;
    rec.limits++;
    rec.last_limits = *info;
    fprintf(stderr, "  limits of %s: floor %llu MiB ceiling %llu MiB weight %u%s%s\n", info->name,
            (unsigned long long)(info->floor_bytes / MiB),
            (unsigned long long)(info->ceiling_bytes / MiB), info->weight,
            info->errors[0] ? " errors: " : "", info->errors);
}

static void on_connection(struct libvirt_backend *b, bool up, const char *why, void *opaque)
{
    (void)b;
    (void)opaque;
    if (up) {
        rec.ups++;
        rec.up_ms = now_ms();
    } else {
        rec.downs++;
        rec.down_ms = now_ms();
    }
    fprintf(stderr, "  connection %s: %s\n", up ? "up" : "down", why);
}

static void on_rejected(struct libvirt_backend *b, const char *name, const char *why, void *opaque)
{
    (void)b;
    (void)opaque;
    rec.rejected++;
    fprintf(stderr, "  rejected %s: %s\n", name, why);
}

static void on_move(struct libvirt_backend *b, const char *uuid, int status, const char *error,
                    void *opaque)
{
    (void)b;
    (void)uuid;
    (void)opaque;
    rec.moves++;
    rec.move_status = status;
    fprintf(stderr, "  move answered: %d %s\n", status, error);
}

/* A 10 ms ticker: the largest gap between ticks shows whether the loop ever waited. */
static uv_timer_t ticker;
static uint64_t last_tick_ms, max_tick_gap_ms;

static void on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime() / 1000000;
    if (last_tick_ms && now - last_tick_ms > max_tick_gap_ms)
        max_tick_gap_ms = now - last_tick_ms;
    last_tick_ms = now;
}

static uv_timer_t guard;
static bool guard_expired;

static void on_guard(uv_timer_t *t)
{
    (void)t;
    guard_expired = true;
}

/* Run the loop until *count >= want or limit_ms passed. */
static void run_until(const int *count, int want, uint64_t limit_ms)
{
    /* A blocking call of this test (virDomainCreateXML) may have held the loop: the guard
     * counts from now, not from the loop's last look at the clock. */
    uv_update_time(&loop);
    guard_expired = false;
    uv_timer_start(&guard, on_guard, limit_ms, 0);
    while ((count == NULL || *count < want) && !guard_expired)
        uv_run(&loop, UV_RUN_ONCE);
    uv_timer_stop(&guard);
}

/* Milliseconds since the test started. */
static uint64_t now_ms(void)
{
    static uint64_t start;
    uint64_t now = uv_hrtime() / 1000000;
    if (start == 0)
        start = now;
    return now - start;
}

static virDomainPtr create(virConnectPtr conn, const char *xml)
{
    virDomainPtr dom = virDomainCreateXML(conn, xml, 0);
    if (dom == NULL)
        fprintf(stderr, "virDomainCreateXML: %s\n", virGetLastErrorMessage());
    return dom;
}

static void destroy(virDomainPtr *dom)
{
    if (*dom) {
        virDomainDestroy(*dom);
        virDomainFree(*dom);
        *dom = NULL;
    }
}

/* Run a command; its exit status or -1. */
static int run(const char *const argv[])
{
    pid_t pid = fork();
    int status;
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    if (pid < 0 || waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void on_libvirt_error(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err; /* the backend reports what matters; keep libvirt's own printing quiet */
}

int main(int argc, char **argv)
{
    const char *kernel = argc >= 3 ? argv[1] : NULL;
    const char *initrd = argc >= 3 ? argv[2] : NULL;
    bool restart = argc >= 4 && strcmp(argv[3], "restart") == 0;
    char xml[4096], os[1024], tag[32];
    char a_uuid[VIR_UUID_STRING_BUFLEN] = "";
    virConnectPtr conn = NULL;
    virDomainPtr a = NULL, b_dom = NULL, c = NULL;
    struct libvirt_backend *b = NULL;
    struct libvirt_backend_config cfg;
    uint64_t t0, actual = 0;
    const char *tmp = getenv("TMPDIR");

    char tmpdir[160];
    /* Socket paths must stay short: a long TMPDIR is not used. */
    snprintf(tmpdir, sizeof(tmpdir), "%s/bellows-lvtest-XXXXXX",
             tmp && *tmp && strlen(tmp) < 64 ? tmp : P_tmpdir);
    if (mkdtemp(tmpdir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tag, sizeof(tag), "%d", (int)getpid());

    uv_loop_init(&loop);
    uv_timer_init(&loop, &guard);
    uv_timer_init(&loop, &ticker);
    virSetErrorFunc(NULL, on_libvirt_error);
    libvirt_backend_config_defaults(&cfg);
    cfg.keepalive_interval_s = 1;
    cfg.keepalive_count = 2;
    cfg.reconnect_min_ms = 100;
    cfg.reconnect_max_ms = 1000;
    cfg.defaults.floor_bytes = 48 * MiB;
    cfg.defaults.weight = 100;
    struct libvirt_backend_callbacks cbs = {
        .domain_appeared = on_appeared,
        .domain_disappeared = on_disappeared,
        .balloon_changed = on_balloon,
        .limits_changed = on_limits,
        .connection_changed = on_connection,
        .domain_rejected = on_rejected,
    };
    check(libvirt_backend_new(&loop, &cfg, &cbs, NULL, &b) == 0, "backend created");

    /* Our own connection, on the same event impl, to create and destroy domains. */
    conn = virConnectOpen("qemu:///system");
    check(conn != NULL, "test connection to qemu:///system");
    if (conn == NULL)
        goto out;

    /* A: running before the backend starts; booting the guest kernel when we have one. */
    if (kernel)
        snprintf(os, sizeof(os),
                 "<os><type arch='x86_64' machine='pc'>hvm</type><kernel>%s</kernel>"
                 "<initrd>%s</initrd><cmdline>console=ttyS0 quiet no_timer_check bellows.agent=0"
                 "</cmdline></os>",
                 kernel, initrd);
    else
        snprintf(os, sizeof(os), "<os><type arch='x86_64' machine='pc'>hvm</type></os>");
    snprintf(xml, sizeof(xml),
             "<domain type='qemu'><name>bellows-lvA-%s</name>"
             "<metadata><bellows:guest xmlns:bellows='https://bellows.dev/xmlns/guest/1' "
             "floor='96M' ceiling='224MiB' weight='300'/></metadata>"
             "<memory unit='MiB'>256</memory><vcpu>1</vcpu>%s"
             "<on_poweroff>destroy</on_poweroff><on_reboot>destroy</on_reboot>"
             "<devices><serial type='pty'/>"
             "<channel type='unix'><source mode='bind' path='%s/a.sock'/>"
             "<target type='virtio' name='org.bellows.pressure.0'/></channel>"
             "<memballoon model='virtio'><stats period='2'/></memballoon></devices></domain>",
             tag, os, tmpdir);
    a = create(conn, xml);
    check(a != NULL, "domain A created before the backend starts");
    if (a == NULL)
        goto out;
    virDomainGetUUIDString(a, a_uuid);

    check(libvirt_backend_start(b) == 0, "backend started");
    run_until(&rec.appeared, 1, 10000);
    check(rec.ups == 1 && rec.appeared == 1, "connected, A discovered (appeared %d): %s",
          rec.appeared, libvirt_backend_last_error(b));
    check(strcmp(rec.last_info.uuid, a_uuid) == 0 && rec.last_info.floor_bytes == 96 * MiB &&
              rec.last_info.ceiling_bytes == 224 * MiB && rec.last_info.weight == 300 &&
              rec.last_info.floor_from == LIBVIRT_LIMIT_METADATA,
          "A's limits from its metadata");
    check(rec.last_appeared_actual == 256 * MiB, "A's actual size from libvirt: %llu MiB",
          (unsigned long long)(rec.last_appeared_actual / MiB));
    char a_sock[300];
    snprintf(a_sock, sizeof(a_sock), "%s/a.sock", tmpdir);
    check(strcmp(rec.last_info.channel_path, a_sock) == 0, "A's channel path from the live XML");

    /* New limits on the running domain, as `virsh metadata --live` sets them. */
    t0 = now_ms();
    check(virDomainSetMetadata(a, VIR_DOMAIN_METADATA_ELEMENT,
                               "<guest floor='64M' ceiling='200M' weight='50'/>", "bellows",
                               LIBVIRT_BELLOWS_XMLNS, VIR_DOMAIN_AFFECT_LIVE) == 0,
          "A's metadata changed live");
    run_until(&rec.limits, 1, 5000);
    check(rec.limits == 1 && rec.last_limits.floor_bytes == 64 * MiB &&
              rec.last_limits.ceiling_bytes == 200 * MiB && rec.last_limits.weight == 50,
          "A's new limits reported %llu ms after the change", (unsigned long long)(now_ms() - t0));

    /* C without the channel, then B with it (path chosen by libvirt) and bad metadata: when B is
     * reported, C's STARTED event (earlier) has been handled and must have been ignored. */
    snprintf(xml, sizeof(xml),
             "<domain type='qemu'><name>bellows-lvC-%s</name>"
             "<memory unit='MiB'>32</memory><vcpu>1</vcpu>"
             "<os><type arch='x86_64' machine='pc'>hvm</type></os>"
             "<devices><memballoon model='virtio'/></devices></domain>",
             tag);
    c = create(conn, xml);
    check(c != NULL, "domain C (no channel) created");
    snprintf(xml, sizeof(xml),
             "<domain type='qemu'><name>bellows-lvB-%s</name>"
             "<metadata><b:guest xmlns:b='https://bellows.dev/xmlns/guest/1' weight='heavy'/>"
             "</metadata><memory unit='MiB'>64</memory>"
             "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm</type></os>"
             "<devices><channel type='unix'>"
             "<target type='virtio' name='org.bellows.pressure.0'/></channel>"
             "<memballoon model='virtio'/></devices></domain>",
             tag);
    t0 = now_ms();
    b_dom = create(conn, xml);
    /* virDomainCreateXML blocks this loop until libvirtd has started the domain; its
     * events are handled from the moment it returns. */
    uint64_t started = now_ms();
    check(b_dom != NULL, "domain B created (libvirtd took %llu ms)",
          (unsigned long long)(started - t0));
    run_until(&rec.appeared, 2, 5000);
    check(rec.appeared == 2 && strstr(rec.last_info.name, "bellows-lvB-") != NULL,
          "B reported %llu ms after it started", (unsigned long long)(rec.appeared_ms - started));
    check(rec.appeared_ms - started < 1000, "... within a second");
    check(rec.last_info.floor_bytes == 48 * MiB &&
              rec.last_info.floor_from == LIBVIRT_LIMIT_DEFAULT && rec.last_info.weight == 100 &&
              rec.last_info.weight_from == LIBVIRT_LIMIT_DEFAULT &&
              strstr(rec.last_info.errors, "weight=\"heavy\"") != NULL,
          "B: bad metadata reported (%s), default floor and weight used", rec.last_info.errors);
    const char *auto_suffix = "/org.bellows.pressure.0";
    size_t plen = strlen(rec.last_info.channel_path);
    check(plen > strlen(auto_suffix) &&
              strcmp(rec.last_info.channel_path + plen - strlen(auto_suffix), auto_suffix) == 0,
          "B's channel path, chosen by libvirt, from the live XML: %s", rec.last_info.channel_path);
    check(libvirt_backend_count(b) == 2, "C ignored: 2 domains managed (%u)",
          libvirt_backend_count(b));

    destroy(&b_dom);
    t0 = now_ms();
    run_until(&rec.disappeared, 1, 5000);
    check(rec.disappeared == 1 && strstr(rec.last_gone, "bellows-lvB-") != NULL,
          "B reported gone %llu ms after destroy returned", (unsigned long long)(rec.gone_ms - t0));
    check(rec.gone_ms - t0 < 1000, "... within a second");
    destroy(&c);
    check(libvirt_backend_count(b) == 1, "A still managed");

    check(libvirt_backend_move(b, "00000000-0000-0000-0000-000000000000", 128 * MiB, 0, on_move,
                               NULL) == -ENOENT,
          "a move of an unmanaged domain refused");
    check(libvirt_backend_move(b, a_uuid, 512 * MiB, 0, on_move, NULL) == -ERANGE,
          "a move above the domain's maximum refused");

    if (kernel) {
        /* The guest may still be booting: QEMU keeps the target and the guest's balloon
         * driver takes it when it starts. */
        int before = rec.balloon_changes, moves = rec.moves;
        t0 = now_ms();
        check(libvirt_backend_move(b, a_uuid, 192 * MiB, 256 * MiB, on_move, NULL) == 0,
              "move(A, 192 MiB) sent to a worker");
        run_until(&rec.moves, moves + 1, 10000);
        check(rec.moves == moves + 1 && rec.move_status == 0, "the move answered 0 after %llu ms",
              (unsigned long long)(now_ms() - t0));
        for (int i = 0; i < 20 && !(rec.balloon_changes > before && rec.last_balloon == 192 * MiB);
             i++)
            run_until(&rec.balloon_changes, rec.balloon_changes + 1, 10000);
        check(rec.last_balloon == 192 * MiB && strcmp(rec.last_balloon_uuid, a_uuid) == 0,
              "BALLOON_CHANGE brought actual 192 MiB, %llu ms after the request",
              (unsigned long long)(rec.balloon_ms - t0));
        check(libvirt_backend_actual(b, a_uuid, &actual) == 0 && actual == 192 * MiB,
              "backend's actual for A is 192 MiB");
    } else {
        fprintf(stderr, "SKIP: no guest kernel given: the balloon move is not checked\n");
    }

    if (restart) {
        char pidtext[32] = "";
        FILE *f = fopen("/run/libvirtd.pid", "r");
        if (f) {
            if (fgets(pidtext, sizeof(pidtext), f) == NULL)
                pidtext[0] = '\0';
            fclose(f);
        }
        pid_t pid = (pid_t)atoi(pidtext);

        /* Frozen libvirtd: the move waits on its worker, the loop does not wait at all. */
        int moves = rec.moves;
        check(pid > 1 && kill(pid, SIGSTOP) == 0, "libvirtd (pid %d) frozen", (int)pid);
        check(libvirt_backend_move(b, a_uuid, 200 * MiB, 0, on_move, NULL) == 0,
              "a move sent while libvirtd is frozen");
        check(libvirt_backend_move(b, a_uuid, 210 * MiB, 0, on_move, NULL) == -EBUSY,
              "a second move of the same domain refused: one in flight");
        last_tick_ms = max_tick_gap_ms = 0;
        uv_timer_start(&ticker, on_tick, 10, 10);
        run_until(NULL, 0, 2000); /* under keepalive's 1 s x (2 + 1): the link stays */
        check(rec.moves == moves, "no answer while libvirtd is frozen");
        /* Had the loop waited for libvirtd, one gap would span the 2 s freeze; what is left
         * is this machine's scheduling (other work shares its cores). */
        check(max_tick_gap_ms < 1000,
              "the loop's 10 ms timer never waited for libvirtd (longest gap %llu ms of a "
              "2000 ms freeze)",
              (unsigned long long)max_tick_gap_ms);
        check(kill(pid, SIGCONT) == 0, "libvirtd thawed");
        t0 = now_ms();
        run_until(&rec.moves, moves + 1, 10000);
        uv_timer_stop(&ticker);
        check(rec.moves == moves + 1 && rec.move_status == 0,
              "the move answered once, with success, %llu ms after the thaw",
              (unsigned long long)(now_ms() - t0));
        run_until(NULL, 0, 300);
        check(rec.moves == moves + 1, "... and only once");

        int downs = rec.downs, ups = rec.ups, appeared = rec.appeared, gone = rec.disappeared;
        int sizes = rec.balloon_changes;
        check(pid > 1 && kill(pid, SIGTERM) == 0, "libvirtd (pid %d) stopped", (int)pid);
        t0 = now_ms();
        run_until(&rec.downs, downs + 1, 10000);
        check(rec.downs == downs + 1, "backend saw the connection drop after %llu ms",
              (unsigned long long)(rec.down_ms - t0));
        check(libvirt_backend_actual(b, a_uuid, &actual) == -EAGAIN,
              "A's actual size forgotten while disconnected");
        check(libvirt_backend_move(b, a_uuid, 160 * MiB, 0, on_move, NULL) == -ENOTCONN,
              "no balloon move while disconnected");
        /* The old daemon must be gone before a new one can take its pid file. */
        for (int i = 0; i < 100 && kill(pid, 0) == 0; i++)
            run_until(NULL, 0, 100);
        const char *start_libvirtd[] = {"libvirtd", "-d", NULL};
        check(run(start_libvirtd) == 0, "libvirtd started again");
        t0 = now_ms();
        run_until(&rec.ups, ups + 1, 20000);
        check(rec.ups == ups + 1, "backend reconnected %llu ms after libvirtd restarted",
              (unsigned long long)(rec.up_ms - t0));
        /* The listing, then A looked at again on a worker: its size comes back. */
        run_until(&rec.balloon_changes, sizes + 1, 10000);
        check(rec.appeared == appeared && rec.disappeared == gone,
              "A found again, neither reported gone nor new");
        check(libvirt_backend_actual(b, a_uuid, &actual) == 0,
              "A's actual size read again %llu ms after the reconnect: %llu MiB",
              (unsigned long long)(rec.balloon_ms - rec.up_ms), (unsigned long long)(actual / MiB));
        /* Our test connection died with libvirtd: open a fresh one to clean up. */
        virDomainFree(a);
        a = NULL;
        virConnectClose(conn);
        conn = virConnectOpen("qemu:///system");
        if (conn)
            a = virDomainLookupByUUIDString(conn, a_uuid);
    }

    t0 = now_ms();
    int gone = rec.disappeared;
    destroy(&a);
    run_until(&rec.disappeared, gone + 1, 5000);
    check(rec.disappeared == gone + 1 && libvirt_backend_count(b) == 0, "A reported gone");

out:
    destroy(&a);
    destroy(&b_dom);
    destroy(&c);
    if (conn)
        virConnectClose(conn);
    if (b)
        libvirt_backend_close(b); /* a worker closes the connection */
    libvirt_event_uv_release();
    for (int i = 0; i < 100 && (libvirt_event_uv_pending() > 0 || lv_pool_live_threads() > 0); i++)
        run_until(NULL, 0, 50);
    check(libvirt_event_uv_pending() == 0 && lv_pool_live_threads() == 0,
          "all libvirt handles and timeouts freed (%u left), every worker ended",
          libvirt_event_uv_pending());
    uv_close((uv_handle_t *)&guard, NULL);
    uv_close((uv_handle_t *)&ticker, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    check(uv_loop_close(&loop) == 0, "uv loop closes cleanly");
    char sock[300];
    snprintf(sock, sizeof(sock), "%s/a.sock", tmpdir);
    unlink(sock);
    rmdir(tmpdir);
    return failures ? 1 : 0;
}
