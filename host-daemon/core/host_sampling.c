/* The host's own pressure: PSI and MemAvailable read on a timer into the policy's host
 * state (and, on the same timer, the minute summary of frames dropped from agents). */
#include <errno.h>
#include <string.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/log.h"

static void on_host_sample(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    struct hostmem_sample s;
    int64_t now = daemon_now(d);
    if (now - d->last_summary_at >= 60000) {
        links_summarise_rejects(d);
        d->last_summary_at = now;
    }
    int r = hostmem_read(d->cfg.daemon.proc_dir, &s);
    if (r < 0) {
        if (!d->host_warned)
            log_warning("host pressure: cannot read %s/pressure/memory and %s/meminfo: %s; "
                        "host reclaim is off until it can",
                        d->cfg.daemon.proc_dir, d->cfg.daemon.proc_dir, strerror(-r));
        d->host_warned = true;
        return;
    }
    if (d->host_warned)
        log_info("host pressure: readable again");
    d->host_warned = false;
    d->host_sample = s;
    d->host_known = true;
    policy_host_input(&d->host, s.psi.some.avg10, s.meminfo.mem_total_kb * 1024,
                      s.meminfo.mem_available_kb * 1024);
    daemon_kick(d);
}

/* See daemon_internal.h. */
void host_sampling_init(struct daemon *d)
{
    uv_timer_init(d->loop, &d->host_timer);
    d->host_timer.data = d;
}

/* See daemon_internal.h. */
void host_sampling_start(struct daemon *d, uint64_t first_ms)
{
    uv_timer_start(&d->host_timer, on_host_sample, first_ms, d->cfg.daemon.host_sample_ms);
}

/* See daemon_internal.h. */
void host_sampling_close(struct daemon *d)
{
    uv_close((uv_handle_t *)&d->host_timer, NULL);
}
