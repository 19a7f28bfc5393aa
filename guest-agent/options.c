/* Command-line parsing for bellows-agent. */
#include "guest-agent/options.h"

#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

enum {
    OPT_PORT = 256,
    OPT_DEVICE,
    OPT_PRINT,
    OPT_SOURCES,
    OPT_CGROUP,
    OPT_VMPRESSURE_MODE,
    OPT_PSI_FILE,
    OPT_PSI_LOW,
    OPT_PSI_MEDIUM,
    OPT_PSI_CRITICAL,
    OPT_REPORT,
    OPT_REPEAT,
    OPT_CRITICAL_REPEAT,
    OPT_QUIET,
    OPT_RECONNECT_MAX,
    OPT_PROC_ROOT,
    OPT_NO_MLOCK,
};

static const struct option long_options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"print", no_argument, NULL, OPT_PRINT},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"cgroup", required_argument, NULL, OPT_CGROUP},
    {"vmpressure-mode", required_argument, NULL, OPT_VMPRESSURE_MODE},
    {"psi-file", required_argument, NULL, OPT_PSI_FILE},
    {"psi-low", required_argument, NULL, OPT_PSI_LOW},
    {"psi-medium", required_argument, NULL, OPT_PSI_MEDIUM},
    {"psi-critical", required_argument, NULL, OPT_PSI_CRITICAL},
    {"report-interval", required_argument, NULL, OPT_REPORT},
    {"repeat-interval", required_argument, NULL, OPT_REPEAT},
    {"critical-repeat-interval", required_argument, NULL, OPT_CRITICAL_REPEAT},
    {"quiet-after", required_argument, NULL, OPT_QUIET},
    {"reconnect-max", required_argument, NULL, OPT_RECONNECT_MAX},
    {"proc-root", required_argument, NULL, OPT_PROC_ROOT},
    {"no-mlock", no_argument, NULL, OPT_NO_MLOCK},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

static const char *const psi_option_names[] = {"--psi-low", "--psi-medium", "--psi-critical"};

void agent_options_default(struct agent_options *opts)
{
    *opts = (struct agent_options){
        .port_name = AGENT_DEFAULT_PORT,
        .sources_auto = true,
        .vmpressure_mode = VMPRESSURE_MODE_DEFAULT,
        .psi_file = AGENT_DEFAULT_PSI_FILE,
        .report_ms = AGENT_DEFAULT_REPORT_MS,
        .repeat_ms = AGENT_DEFAULT_REPEAT_MS,
        .critical_repeat_ms = AGENT_DEFAULT_CRITICAL_REPEAT_MS,
        .quiet_ms = AGENT_DEFAULT_QUIET_MS,
        .reconnect_max_ms = AGENT_DEFAULT_RECONNECT_MAX_MS,
        .proc_root = AGENT_DEFAULT_PROC_ROOT,
        .mlock = true,
    };
    for (int i = 0; i < 3; i++)
        opts->psi[i] = psi_spec_default((enum bp_level)(i + 1));
}

static int fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* Milliseconds in min..max. */
static int parse_ms(const char *text, uint32_t min, uint32_t max, uint32_t *ret)
{
    char *end;
    if (text[0] < '0' || text[0] > '9')
        return -EINVAL;
    errno = 0;
    unsigned long v = strtoul(text, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -EINVAL;
    *ret = (uint32_t)v;
    return 0;
}

static int parse_sources(const char *text, struct agent_options *opts)
{
    if (strcmp(text, "auto") == 0) {
        opts->sources_auto = true;
        opts->sources = 0;
        return 0;
    }
    unsigned sources = 0;
    const char *p = text;
    while (*p) {
        size_t n = strcspn(p, ",");
        if (n == strlen("vmpressure") && strncmp(p, "vmpressure", n) == 0)
            sources |= AGENT_SOURCE_VMPRESSURE;
        else if (n == strlen("psi") && strncmp(p, "psi", n) == 0)
            sources |= AGENT_SOURCE_PSI;
        else
            return -EINVAL;
        p += n;
        if (*p == ',')
            p++;
    }
    if (sources == 0)
        return -EINVAL;
    opts->sources_auto = false;
    opts->sources = sources;
    return 0;
}

int agent_options_parse(struct agent_options *opts, int argc, char **argv, char *err,
                        size_t err_cap)
{
    int c;

    err[0] = '\0';
    optind = 0; /* also resets getopt's state between calls */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":vhV", long_options, NULL)) != -1) {
        const char *a = optarg;
        switch (c) {
        case OPT_PORT:
            if (a[0] == '\0' || strchr(a, '/') || strcmp(a, ".") == 0 || strcmp(a, "..") == 0)
                return fail(err, err_cap, "--port: \"%s\" is not a port name", a);
            opts->port_name = a;
            break;
        case OPT_DEVICE:
            if (a[0] == '\0')
                return fail(err, err_cap, "--device: empty path");
            opts->device = a;
            break;
        case OPT_PRINT:
            opts->print = true;
            break;
        case OPT_SOURCES:
            if (parse_sources(a, opts) < 0)
                return fail(err, err_cap,
                            "--sources: \"%s\": use auto, or a list of vmpressure,psi", a);
            break;
        case OPT_CGROUP:
            opts->cgroup = a;
            break;
        case OPT_VMPRESSURE_MODE:
            if (vmpressure_mode_parse(a, &opts->vmpressure_mode) < 0)
                return fail(err, err_cap,
                            "--vmpressure-mode: \"%s\": use default, hierarchy or local", a);
            break;
        case OPT_PSI_FILE:
            opts->psi_file = a;
            break;
        case OPT_PSI_LOW:
        case OPT_PSI_MEDIUM:
        case OPT_PSI_CRITICAL:
            if (psi_spec_parse(a, &opts->psi[c - OPT_PSI_LOW]) < 0)
                return fail(err, err_cap,
                            "%s: \"%s\": use some:STALL_MS:WINDOW_MS, full:STALL_MS:WINDOW_MS "
                            "(0 < stall <= window <= 10000) or off",
                            psi_option_names[c - OPT_PSI_LOW], a);
            break;
        case OPT_REPORT:
            if (parse_ms(a, 0, 3600000, &opts->report_ms) < 0 ||
                (opts->report_ms > 0 && opts->report_ms < 100))
                return fail(err, err_cap,
                            "--report-interval: \"%s\": milliseconds, 0 or 100..3600000", a);
            break;
        case OPT_REPEAT:
            if (parse_ms(a, 0, 3600000, &opts->repeat_ms) < 0)
                return fail(err, err_cap, "--repeat-interval: \"%s\": milliseconds, 0..3600000", a);
            break;
        case OPT_CRITICAL_REPEAT:
            if (parse_ms(a, 0, 3600000, &opts->critical_repeat_ms) < 0)
                return fail(err, err_cap,
                            "--critical-repeat-interval: \"%s\": milliseconds, 0..3600000", a);
            break;
        case OPT_QUIET:
            if (parse_ms(a, 1, 3600000, &opts->quiet_ms) < 0)
                return fail(err, err_cap, "--quiet-after: \"%s\": milliseconds, 1..3600000", a);
            break;
        case OPT_RECONNECT_MAX:
            if (parse_ms(a, AGENT_DEFAULT_RECONNECT_MIN_MS, 600000, &opts->reconnect_max_ms) < 0)
                return fail(err, err_cap, "--reconnect-max: \"%s\": milliseconds, %u..600000", a,
                            AGENT_DEFAULT_RECONNECT_MIN_MS);
            break;
        case OPT_PROC_ROOT:
            opts->proc_root = a;
            break;
        case OPT_NO_MLOCK:
            opts->mlock = false;
            break;
        case 'v':
            opts->verbose = true;
            break;
        case 'h':
            opts->help = true;
            break;
        case 'V':
            opts->version = true;
            break;
        case ':':
            return fail(err, err_cap, "%s needs a value", argv[optind - 1]);
        default:
            return fail(err, err_cap, "unknown option %s", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return fail(err, err_cap, "unexpected argument \"%s\"", argv[optind]);
    if (!opts->sources_auto && (opts->sources & AGENT_SOURCE_PSI) && !opts->psi[0].enabled &&
        !opts->psi[1].enabled && !opts->psi[2].enabled)
        return fail(err, err_cap, "--sources psi with every --psi-* level off");
    return 0;
}

void agent_options_usage(FILE *out)
{
    char low[32], medium[32], critical[32];
    struct psi_spec d;
    d = psi_spec_default(BP_LEVEL_LOW);
    psi_spec_name(&d, low, sizeof(low));
    d = psi_spec_default(BP_LEVEL_MEDIUM);
    psi_spec_name(&d, medium, sizeof(medium));
    d = psi_spec_default(BP_LEVEL_CRITICAL);
    psi_spec_name(&d, critical, sizeof(critical));

    fprintf(out,
            "Usage: bellows-agent [OPTION]...\n"
            "Forward the kernel's memory-pressure notifications to the host over virtio-serial.\n"
            "\n"
            "Transport:\n"
            "  --port NAME             virtio-serial port name, found through\n"
            "                          /dev/virtio-ports/NAME or /sys/class/virtio-ports/*/name\n"
            "                          (default: %s)\n"
            "  --device PATH           use this character device, FIFO or unix socket instead\n"
            "                          (default: none, find the port by name)\n"
            "  --print                 print each message as JSON, one per line, on stdout\n"
            "                          instead of sending it (default: off)\n"
            "  --reconnect-max MS      longest wait between reconnect attempts; the first is\n"
            "                          %u ms, doubling (default: %u)\n"
            "\n"
            "Pressure sources:\n"
            "  --sources LIST          auto, or a comma list of vmpressure,psi; auto starts\n"
            "                          every source this kernel has (default: auto)\n"
            "  --cgroup PATH           cgroup v1 memory cgroup for vmpressure (default: the root\n"
            "                          of the mounted v1 memory controller)\n"
            "  --vmpressure-mode MODE  default, hierarchy or local (default: default)\n"
            "  --psi-file PATH         PSI file for triggers, e.g. a cgroup v2 memory.pressure\n"
            "                          (default: %s)\n"
            "  --psi-low SPEC          PSI trigger for level low (default: %s)\n"
            "  --psi-medium SPEC       PSI trigger for level medium (default: %s)\n"
            "  --psi-critical SPEC     PSI trigger for level critical (default: %s)\n"
            "                          SPEC is some:STALL_MS:WINDOW_MS, full:STALL_MS:WINDOW_MS\n"
            "                          or off; a window the kernel refuses (not a multiple of\n"
            "                          2 s without CAP_SYS_RESOURCE) is widened to one\n"
            "\n"
            "Messages:\n"
            "  --report-interval MS    heartbeat report every MS, 0 for none; the host's\n"
            "                          welcome may change it (default: %u)\n"
            "  --repeat-interval MS    at most one message per level and source in MS when the\n"
            "                          level repeats (the newest repeat is sent when the\n"
            "                          interval is over); a change goes at once (default: %u)\n"
            "  --critical-repeat-interval MS\n"
            "                          the same for repeats of critical; 0 sends every one\n"
            "                          (default: %u)\n"
            "  --quiet-after MS        a source with no notification for MS is back to level\n"
            "                          none (default: %u)\n"
            "  --proc-root DIR         read meminfo, vmstat and pressure/memory under DIR\n"
            "                          (default: %s)\n"
            "\n"
            "Other:\n"
            "  --no-mlock              do not lock the agent's memory (default: mlockall)\n"
            "  -v, --verbose           log every message sent on stderr (default: off)\n"
            "  -h, --help              show this help and exit\n"
            "  -V, --version           show the version and exit\n",
            AGENT_DEFAULT_PORT, AGENT_DEFAULT_RECONNECT_MIN_MS, AGENT_DEFAULT_RECONNECT_MAX_MS,
            AGENT_DEFAULT_PSI_FILE, low, medium, critical, AGENT_DEFAULT_REPORT_MS,
            AGENT_DEFAULT_REPEAT_MS, AGENT_DEFAULT_CRITICAL_REPEAT_MS, AGENT_DEFAULT_QUIET_MS,
            AGENT_DEFAULT_PROC_ROOT);
}
