/* bellows-agent entry point: options, mlockall, the loop. */
#include "guest-agent/agent.h"
#include "guest-agent/options.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static struct agent agent;

int main(int argc, char **argv)
{
    struct agent_options opts;
    char err[256];

    agent_options_default(&opts);
    if (agent_options_parse(&opts, argc, argv, err, sizeof(err)) < 0) {
        fprintf(stderr, "bellows-agent: %s (see --help)\n", err);
        return 2;
    }
    if (opts.help) {
        agent_options_usage(stdout);
        return 0;
    }
    if (opts.version) {
        printf("bellows-agent %s (protocol %d)\n", BELLOWS_VERSION, BP_PROTOCOL_VERSION);
        return 0;
    }
    /* A FIFO whose reader left raises SIGPIPE on write; the port handles EPIPE instead. */
    signal(SIGPIPE, SIG_IGN);

    uv_loop_t *loop = uv_default_loop();
    if (agent_start(&agent, loop, &opts) < 0)
        return 1;
    /* Lock after start-up so the loop, buffers and sources are resident: the agent must run
     * under the very pressure it reports. */
    if (opts.mlock && mlockall(MCL_CURRENT | MCL_FUTURE) < 0)
        fprintf(stderr, "bellows-agent: warning: mlockall: %s; running unlocked\n",
                strerror(errno));
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return 0;
}
