/* bellowsctl: the command-line client of bellowsd's control socket (docs/control.md).
 * One request, one reply: a short-lived blocking client needs no event loop. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#include "ctl/control_client.h"
#include "ctl/size_text.h"
#include "ctl/top.h"

#define DEFAULT_SOCKET "/run/bellowsd/control.sock"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: bellowsctl [--socket PATH] [--json] COMMAND [ARGS]\n"
        "commands:\n"
        "  list                          every guest: level, PSI, balloon, limits, last decision\n"
        "  show NAME                     one guest with its recent decisions\n"
        "  pause NAME | resume NAME      stop / restart managing a guest's balloon\n"
        "  set NAME floor=SIZE ceiling=SIZE weight=N    change limits (any subset)\n"
        "  add NAME qmp=PATH channel=PATH floor=SIZE ceiling=SIZE [weight=N]\n"
        "  remove NAME                   stop managing a guest (its balloon stays)\n"
        "  libvirt-event EVENT UUID [DOMAIN]   from the libvirt hook: started, stopped or\n"
        "                                reconnect; bellowsd rescans libvirt's domains\n"
        "  top [-d S] [-b] [-n N]        live view of every guest (bellowsctl top -h)\n"
        "options:\n"
        "  -s, --socket PATH   control socket (default $BELLOWS_CONTROL_SOCKET or " DEFAULT_SOCKET
        ")\n"
        "  -j, --json          print the daemon's JSON reply as it is\n");
}

/* Build the request object from the command line; NULL (with a message) on misuse. */
static json_t *build_request(int argc, char **argv)
{
    static const struct {
        const char *name;
        int min_args, max_args; /* after the command: NAME and key=value pairs */
        bool pairs;
    } cmds[] = {
        {"list", 0, 0, false},   {"show", 1, 1, false}, {"pause", 1, 1, false},
        {"resume", 1, 1, false}, {"set", 2, 4, true},   {"add", 5, 6, true},
        {"remove", 1, 1, false},
    };
    const char *cmd = argv[0];
    int nargs = argc - 1;
    if (strcmp(cmd, "libvirt-event") == 0) {
        if (nargs < 2 || nargs > 3) {
            fprintf(stderr, "bellowsctl: wrong number of arguments for '%s'\n", cmd);
            usage(stderr);
            return NULL;
        }
        return json_pack("{ssssssss}", "cmd", cmd, "event", argv[1], "uuid", argv[2], "domain",
                         nargs == 3 ? argv[3] : "");
    }
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].name, cmd) != 0)
            continue;
        if (nargs < cmds[i].min_args || nargs > cmds[i].max_args) {
            fprintf(stderr, "bellowsctl: wrong number of arguments for '%s'\n", cmd);
            usage(stderr);
            return NULL;
        }
        json_t *req = json_pack("{ss}", "cmd", cmd);
        if (nargs >= 1)
            json_object_set_new(req, "name", json_string(argv[1]));
        for (int a = 2; a < argc; a++) {
            char *eq = strchr(argv[a], '=');
            if (!cmds[i].pairs || !eq || eq == argv[a]) {
                fprintf(stderr, "bellowsctl: expected key=value, got '%s'\n", argv[a]);
                json_decref(req);
                return NULL;
            }
            char key[32];
            snprintf(key, sizeof(key), "%.*s", (int)(eq - argv[a]), argv[a]);
            json_object_set_new(req, key, json_string(eq + 1));
        }
        return req;
    }
    fprintf(stderr, "bellowsctl: unknown command '%s'\n", cmd);
    usage(stderr);
    return NULL;
}

/* A size from the reply ("-" when it is not a byte count). */
static const char *size_text(json_t *v, char *buf, size_t cap)
{
    bool known = json_is_integer(v) && json_integer_value(v) >= 0;
    return ctl_size_text(known, known ? (uint64_t)json_integer_value(v) : 0, buf, cap);
}

static const char *str(json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "-";
}

/* STATE: paused, the balloon's link down (no-qmp, no-libvirt), no agent, or managed. */
static const char *guest_state(json_t *g)
{
    json_t *libvirt = json_object_get(g, "libvirt");
    if (json_is_true(json_object_get(g, "paused")))
        return "paused";
    if (json_is_object(libvirt) && !json_is_true(json_object_get(libvirt, "connected")))
        return "no-libvirt";
    if (!json_is_object(libvirt) &&
        !json_is_true(json_object_get(json_object_get(g, "qmp"), "ready")))
        return "no-qmp";
    if (!json_is_true(json_object_get(json_object_get(g, "channel"), "connected")))
        return "no-agent";
    return "managed";
}

static void print_guest_row(json_t *g)
{
    char a[32], t[32], f[32], c[32], psi[16] = "-";
    json_t *balloon = json_object_get(g, "balloon");
    json_t *p = json_object_get(g, "psi_some_avg10");
    if (json_is_number(p))
        snprintf(psi, sizeof(psi), "%.2f", json_number_value(p));
    const char *state = guest_state(g);
    json_t *last = json_object_get(g, "last_move");
    char lastbuf[96] = "-";
    if (json_is_object(last))
        snprintf(lastbuf, sizeof(lastbuf), "%s (%s) %s", str(last, "action"), str(last, "reason"),
                 str(last, "result"));
    printf("%-16s %-8s %6s %8s %8s %8s %8s %6lld %-8s %s\n", str(g, "name"), str(g, "level"), psi,
           size_text(json_object_get(balloon, "actual"), a, sizeof(a)),
           size_text(json_object_get(balloon, "target"), t, sizeof(t)),
           size_text(json_object_get(g, "floor"), f, sizeof(f)),
           size_text(json_object_get(g, "ceiling"), c, sizeof(c)),
           (long long)json_integer_value(json_object_get(g, "weight")), state, lastbuf);
}

static void print_list(json_t *reply)
{
    json_t *host = json_object_get(reply, "host");
    if (json_is_object(host)) {
        char avail[32], hold[64];
        /* What the guests hold against the host budget, as top shows it. */
        json_t *held = json_object_get(host, "held"), *budget = json_object_get(host, "budget");
        ctl_hold_text(json_is_integer(held), (uint64_t)json_integer_value(held),
                      json_is_integer(budget), (uint64_t)json_integer_value(budget), hold,
                      sizeof(hold));
        printf("host: PSI some avg10 %.2f%%, MemAvailable %s%s%s, %s%s\n",
               json_number_value(json_object_get(host, "psi_some_avg10")),
               size_text(json_object_get(host, "mem_available"), avail, sizeof(avail)),
               hold[0] ? ", " : "", hold,
               json_is_true(json_object_get(host, "pressure")) ? "under pressure" : "no pressure",
               json_is_true(json_object_get(reply, "dry_run")) ? ", advisory mode (dry run)" : "");
    }
    printf("%-16s %-8s %6s %8s %8s %8s %8s %6s %-8s %s\n", "NAME", "LEVEL", "PSI", "ACTUAL",
           "TARGET", "FLOOR", "CEILING", "WEIGHT", "STATE", "LAST MOVE");
    size_t i;
    json_t *g;
    json_array_foreach (json_object_get(reply, "guests"), i, g)
        print_guest_row(g);
}

/* "45s", "8m20s", "2h05m". */
static const char *duration_text(json_t *ms_v, char *buf, size_t cap)
{
    long long s = (long long)(json_integer_value(ms_v) + 999) / 1000;
    if (s < 60)
        snprintf(buf, cap, "%llds", s);
    else if (s < 3600)
        snprintf(buf, cap, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(buf, cap, "%lldh%02lldm", s / 3600, s / 60 % 60);
    return buf;
}

static double num(json_t *obj, const char *key)
{
    return json_number_value(json_object_get(obj, key));
}

/* The policy's reading of the guest (docs/control.md, "sizing"): what it uses and needs,
 * its stall against the base and margin, and what holds its inflates back. */
static void print_sizing(json_t *z)
{
    if (!json_is_object(z))
        return;
    char a[32], b[32], c[32], d[32];
    if (json_is_integer(json_object_get(z, "need")))
        printf("sizing: uses %s, overhead %s, needs %s with its buffer; working set %s\n",
               size_text(json_object_get(z, "used"), a, sizeof(a)),
               size_text(json_object_get(z, "overhead"), b, sizeof(b)),
               size_text(json_object_get(z, "need"), c, sizeof(c)),
               size_text(json_object_get(z, "working_set"), d, sizeof(d)));
    else
        printf("sizing: use not known yet (no snapshot, or the overhead not measured); "
               "working set %s\n",
               size_text(json_object_get(z, "working_set"), d, sizeof(d)));
    json_t *stall = json_object_get(z, "stall");
    if (json_is_object(stall)) {
        printf("stall: %.2f %% last interval, %.2f average, %.2f level", num(stall, "last_pct"),
               num(stall, "avg_pct"), num(stall, "level_pct"));
        if (num(stall, "base_pct") > 0)
            printf("; base %.2f %% (does not respond to size)", num(stall, "base_pct"));
        printf("; margin %.2f points%s\n", num(stall, "margin_pct"),
               json_is_true(json_object_get(stall, "measuring"))
                   ? "; measuring the last move's effect"
                   : "");
    } else
        printf("stall: not measured yet\n");
    json_t *hurt = json_object_get(z, "hurt");
    if (json_is_object(hurt))
        printf("hurt at %s: inflates stop a step above it for %s more\n",
               size_text(json_object_get(hurt, "size"), a, sizeof(a)),
               duration_text(json_object_get(hurt, "forgotten_in_ms"), b, sizeof(b)));
    long long flips = (long long)json_integer_value(json_object_get(z, "flips"));
    if (json_integer_value(json_object_get(z, "inflate_wait_ms")) > 0) {
        printf("given memory: no inflate for %s more",
               duration_text(json_object_get(z, "inflate_wait_ms"), a, sizeof(a)));
        if (flips > 0)
            printf(" (the wait after a deflate, doubled for each of %lld recent reversals)", flips);
        printf("\n");
    }
    json_t *stuck = json_object_get(z, "stuck");
    if (json_is_object(stuck))
        printf("stuck: its balloon did not follow %lld moves in a row; tried again in %s\n",
               (long long)json_integer_value(json_object_get(stuck, "count")),
               duration_text(json_object_get(stuck, "retry_in_ms"), a, sizeof(a)));
}

static void print_show(json_t *g)
{
    printf("%-16s %-8s %6s %8s %8s %8s %8s %6s %-8s %s\n", "NAME", "LEVEL", "PSI", "ACTUAL",
           "TARGET", "FLOOR", "CEILING", "WEIGHT", "STATE", "LAST MOVE");
    print_guest_row(g);
    json_t *libvirt = json_object_get(g, "libvirt");
    printf("agent: %s\n", str(g, "agent"));
    if (json_is_object(libvirt))
        printf("libvirt: domain %s, uuid %s\n", str(libvirt, "domain"), str(libvirt, "uuid"));
    else
        printf("qmp: %s\n", str(json_object_get(g, "qmp"), "path"));
    printf("channel: %s%s\n", str(json_object_get(g, "channel"), "path"),
           json_is_true(json_object_get(json_object_get(g, "channel"), "throttled"))
               ? " (throttled)"
               : "");
    if (json_is_true(json_object_get(g, "balloon_counted_as_used")))
        printf("balloon: counted as used in the guest (deflate-on-oom), its use read as the "
               "balloon's size less MemAvailable\n");
    print_sizing(json_object_get(g, "sizing"));
    json_t *last = json_object_get(g, "last_decision");
    if (json_is_object(last))
        printf("last decision: %s (%s), %lld ms ago\n", str(last, "action"), str(last, "reason"),
               (long long)json_integer_value(json_object_get(last, "age_ms")));
    printf("counters:");
    const char *key;
    json_t *v;
    json_object_foreach (json_object_get(g, "counters"), key, v)
        printf(" %s=%lld", key, (long long)json_integer_value(v));
    printf("\nrecent decisions (newest first):\n");
    size_t i;
    json_t *d;
    json_array_foreach (json_object_get(g, "decisions"), i, d) {
        char from[32], to[32];
        printf("  %s  %-7s %8s -> %-8s %-14s %s%s%s\n", str(d, "time"), str(d, "action"),
               size_text(json_object_get(d, "from"), from, sizeof(from)),
               size_text(json_object_get(d, "to"), to, sizeof(to)), str(d, "reason"),
               str(d, "result"), json_object_get(d, "error") ? ": " : "",
               json_object_get(d, "error") ? str(d, "error") : "");
    }
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"socket", required_argument, NULL, 's'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = getenv("BELLOWS_CONTROL_SOCKET");
    bool raw = false;
    int opt;
    if (!path || !path[0])
        path = DEFAULT_SOCKET;
    while ((opt = getopt_long(argc, argv, "+s:jh", options, NULL)) != -1) {
        switch (opt) {
        case 's':
            path = optarg;
            break;
        case 'j':
            raw = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[optind], "top") == 0)
        return top_main(path, argc - optind, argv + optind);
    json_t *req = build_request(argc - optind, argv + optind);
    if (!req)
        return 2;
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    size_t len = strlen(text);
    char *line = malloc(len + 2);
    memcpy(line, text, len);
    strcpy(line + len, "\n");
    free(text);

    char *reply_text = control_exchange(path, line);
    free(line);
    if (!reply_text) {
        fprintf(stderr, "bellowsctl: %s: %s\n", path, strerror(errno));
        return 3;
    }
    json_error_t jerr;
    json_t *reply = json_loads(reply_text, 0, &jerr);
    if (!reply) {
        fprintf(stderr, "bellowsctl: bad reply from bellowsd: %s\n", jerr.text);
        free(reply_text);
        return 3;
    }
    bool ok = json_is_true(json_object_get(reply, "ok"));
    if (raw) {
        printf("%s\n", reply_text);
    } else if (!ok) {
        fprintf(stderr, "bellowsctl: %s\n", str(reply, "error"));
    } else if (strcmp(argv[optind], "list") == 0) {
        print_list(reply);
    } else if (strcmp(argv[optind], "show") == 0) {
        print_show(json_object_get(reply, "guest"));
    } else if (json_is_object(json_object_get(reply, "guest"))) {
        printf("%-16s %-8s %6s %8s %8s %8s %8s %6s %-8s %s\n", "NAME", "LEVEL", "PSI", "ACTUAL",
               "TARGET", "FLOOR", "CEILING", "WEIGHT", "STATE", "LAST MOVE");
        print_guest_row(json_object_get(reply, "guest"));
    }
    free(reply_text);
    json_decref(reply);
    return ok ? 0 : 1;
}
