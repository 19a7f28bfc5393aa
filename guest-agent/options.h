/* bellows-agent's command line: parsing into a struct and the --help text. Pure. */
#ifndef BELLOWS_AGENT_OPTIONS_H
#define BELLOWS_AGENT_OPTIONS_H

#include "guest-agent/psi_trigger.h"
#include "guest-agent/vmpressure.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define AGENT_DEFAULT_PORT "org.bellows.pressure.0"
#define AGENT_DEFAULT_PSI_FILE "/proc/pressure/memory"
#define AGENT_DEFAULT_PROC_ROOT "/proc"
#define AGENT_DEFAULT_REPORT_MS 5000u
#define AGENT_DEFAULT_REPEAT_MS 1000u
#define AGENT_DEFAULT_CRITICAL_REPEAT_MS 100u
#define AGENT_DEFAULT_QUIET_MS 5000u
#define AGENT_DEFAULT_RECONNECT_MIN_MS 100u
#define AGENT_DEFAULT_RECONNECT_MAX_MS 2000u
#define AGENT_QUEUE_SIZE 8u

/* Bits of agent_options.sources. */
#define AGENT_SOURCE_VMPRESSURE (1u << BP_SOURCE_VMPRESSURE)
#define AGENT_SOURCE_PSI (1u << BP_SOURCE_PSI)

struct agent_options {
    const char *port_name; /* --port */
    const char *device;    /* --device, NULL to find the port by name */
    bool print;            /* --print: print messages instead of sending them */
    bool sources_auto;     /* --sources auto (default): every source that works */
    unsigned sources;      /* AGENT_SOURCE_* when not auto */
    const char *cgroup;    /* --cgroup, NULL: root of the v1 memory controller */
    enum vmpressure_mode vmpressure_mode;
    const char *psi_file;        /* --psi-file */
    struct psi_spec psi[3];      /* --psi-low, --psi-medium, --psi-critical */
    uint32_t report_ms;          /* --report-interval, 0: no heartbeat */
    uint32_t repeat_ms;          /* --repeat-interval */
    uint32_t critical_repeat_ms; /* --critical-repeat-interval */
    uint32_t quiet_ms;           /* --quiet-after */
    uint32_t reconnect_max_ms;
    const char *proc_root; /* --proc-root */
    bool mlock;            /* false with --no-mlock */
    bool verbose;
    bool help, version;
};

/* Defaults for every option. */
void agent_options_default(struct agent_options *opts);

/* Parse argv (argv[0] is the program). Returns 0, or -EINVAL with a one-line reason in
 * err (NUL-terminated). Strings in *opts point into argv. */
int agent_options_parse(struct agent_options *opts, int argc, char **argv, char *err,
                        size_t err_cap);

/* Write the --help text: every option with its default. */
void agent_options_usage(FILE *out);

#endif
