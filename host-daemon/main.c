/* bellowsd: command line, configuration check, the loop, and the wiring: which modules
 * (control socket, libvirt guests) and which balloon backend (QMP) the core is given. The
 * one place outside qmp/ and libvirt/ that names them. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include "host-daemon/config/config.h"
#include "host-daemon/control/control_daemon.h"
#include "host-daemon/core/daemon.h"
#include "host-daemon/http/http_daemon.h"
#include "host-daemon/libvirt/libvirt_guests.h"
#include "host-daemon/qmp/qmp_balloon.h"
#include "host-daemon/util/log.h"

#define DEFAULT_CONFIG "/etc/bellows/bellowsd.conf"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: bellowsd [--config FILE] [--check-config] [--dry-run]\n"
            "  -c, --config FILE   configuration (default " DEFAULT_CONFIG ")\n"
            "  -n, --check-config  validate the configuration, explain each error, exit\n"
            "  -d, --dry-run       advisory mode: decide and log, move no balloon\n"
            "  -V, --version       print the version\n"
            "  -h, --help          this text\n"
            "Signals: SIGHUP reloads the configuration; SIGTERM/SIGINT stop without moving any "
            "balloon.\n");
}

static void print_errors(const char *path, const struct config_errors *errs)
{
    for (size_t i = 0; i < errs->count; i++)
        fprintf(stderr, "%s:%d: %s\n", path, errs->items[i].line, errs->items[i].message);
    if (errs->dropped)
        fprintf(stderr, "%s: %zu more errors not shown\n", path, errs->dropped);
    fprintf(stderr, "bellowsd: %zu error%s in %s\n", errs->count + errs->dropped,
            errs->count + errs->dropped == 1 ? "" : "s", path);
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"check-config", no_argument, NULL, 'n'},
        {"dry-run", no_argument, NULL, 'd'},      {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *path = DEFAULT_CONFIG;
    bool check_only = false, dry_run = false;
    int opt;

    while ((opt = getopt_long(argc, argv, "c:ndVh", options, NULL)) != -1) {
        switch (opt) {
        case 'c':
            path = optarg;
            break;
        case 'n':
            check_only = true;
            break;
        case 'd':
            dry_run = true;
            break;
        case 'V':
            printf("bellowsd %s\n", BELLOWS_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    struct config cfg;
    struct config_errors errs;
    if (config_load_file(path, &cfg, &errs) < 0) {
        print_errors(path, &errs);
        return 1;
    }
    if (cfg.libvirt.enabled && !libvirt_guests_available()) {
        fprintf(stderr, "%s:%d: [libvirt]: this bellowsd was built without libvirt\n", path,
                cfg.libvirt.line);
        config_free(&cfg);
        return 1;
    }
    if (check_only) {
        printf("%s: ok, %zu guest%s%s%s\n", path, cfg.n_guests, cfg.n_guests == 1 ? "" : "s",
               cfg.libvirt.enabled ? ", libvirt backend on " : "",
               cfg.libvirt.enabled ? cfg.libvirt.uri : "");
        config_free(&cfg);
        return 0;
    }

    /* A control client or guest socket closing under a write must not kill the daemon. */
    signal(SIGPIPE, SIG_IGN);
    uv_loop_t *loop = uv_default_loop();
    struct daemon *d = daemon_new();
    int r = d ? control_daemon_attach(d) : -ENOMEM;
    if (r == 0)
        r = http_daemon_attach(d);
    if (r == 0 && cfg.libvirt.enabled)
        r = libvirt_guests_attach(d);
    if (r < 0) {
        fprintf(stderr, "bellowsd: cannot set up: %s\n", strerror(-r));
        daemon_free(d);
        config_free(&cfg);
        return 1;
    }
    r = daemon_start(d, loop, &cfg, path, dry_run, &qmp_balloon_factory);
    uv_run(loop, UV_RUN_DEFAULT);
    daemon_free(d);
    uv_loop_close(loop);
    if (r < 0)
        return 1;
    log_info("stopped");
    return 0;
}
