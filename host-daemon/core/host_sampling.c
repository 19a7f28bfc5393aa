/* The host's own pressure and budget: PSI and MemAvailable (or a memory cgroup's limit,
 * usage and pressure) read on a timer into the policy's host state (and, on the same
 * timer, the minute summary of frames dropped from agents). */
#include <errno.h>
#include <string.h>

#include "host-daemon/core/daemon_internal.h"
#include "host-daemon/util/log.h"

/* Set the budget from this sample: what the guests' balloons hold by their known sizes (a
 * guest of unknown size is in the host's "used" and counts as not the guests'). While the
 * set of guests of known size changes (at start, at a QEMU restart) the last budget stays
 * one more sample: a guest whose size is being read has its memory in "used" but not yet
 * in the guests'. */
static void set_budget(struct daemon *d, const struct budget_settings *bs, struct budget_inputs *in,
                       int64_t now)
{
    uint64_t sum = 0, known = 0;
    for (size_t i = 0; i < d->reg.n; i++) {
        if (d->reg.policy[i].actual_known) {
            sum += d->reg.policy[i].actual_bytes;
            known++;
        }
    }
    bool changed = known != d->budget_guests_known;
    d->budget_guests_known = known;
    if (changed)
        return;
    in->guest_bytes = sum;
    in->guests = known;
    uint64_t old = d->host.budget_known ? d->host.budget_bytes : UINT64_MAX;
    policy_host_budget(&d->host, budget_compute(bs, &d->budget, in, now));
    rounds_budget_sampled(d, old);
}

/* The budget from the configured cgroup: its limit and usage (and, for v2, its pressure)
 * also stand for the host in the policy's host pressure. Returns false when unreadable. */
static bool sample_cgroup(struct daemon *d, const struct budget_settings *bs, int64_t now)
{
    const char *dir = d->cfg.daemon.budget_cgroup;
    struct budget_cgroup c;
    int r = budget_read_cgroup(dir, &c);
    if (r == 0 && c.limit_bytes >= BUDGET_UNLIMITED)
        r = -ERANGE;
    if (r < 0) {
        if (!d->budget_warned)
            log_warning("host budget: cannot read memory cgroup %s: %s; the last budget stays "
                        "in force until it can",
                        dir, r == -ERANGE ? "it has no limit" : strerror(-r));
        d->budget_warned = true;
        return false;
    }
    if (d->budget_warned)
        log_info("host budget: memory cgroup %s readable again", dir);
    d->budget_warned = false;
    double psi = c.has_psi ? c.psi.some.avg10 : d->host_known ? d->host_sample.psi.some.avg10 : 0;
    policy_host_input(&d->host, psi, c.limit_bytes,
                      c.usage_bytes < c.limit_bytes ? c.limit_bytes - c.usage_bytes : 0);
    struct budget_inputs in = {.total_bytes = c.limit_bytes, .used_bytes = c.usage_bytes};
    set_budget(d, bs, &in, now);
    return true;
}

static void on_host_sample(uv_timer_t *timer)
{
    struct daemon *d = timer->data;
    struct hostmem_sample s;
    int64_t now = daemon_now(d);
    if (now - d->last_summary_at >= 60000) {
        links_summarise_rejects(d);
        d->last_summary_at = now;
    }
    const struct config_daemon *cd = &d->cfg.daemon;
    struct budget_settings bs = {
        .reserve_bytes = cd->budget_reserve_bytes,
        .reserve_pct = cd->budget_reserve_pct,
        .guest_overhead = cd->budget_guest_overhead,
    };
    bool cgroup = cd->budget && cd->budget_cgroup[0];
    int r = hostmem_read(cd->proc_dir, &s);
    if (r < 0) {
        if (!d->host_warned)
            log_warning("host pressure: cannot read %s/pressure/memory and %s/meminfo: %s; "
                        "host reclaim is off until it can",
                        cd->proc_dir, cd->proc_dir, strerror(-r));
        d->host_warned = true;
    } else {
        if (d->host_warned)
            log_info("host pressure: readable again");
        d->host_warned = false;
        d->host_sample = s;
        d->host_known = true;
        if (!cgroup) {
            uint64_t total = s.meminfo.mem_total_kb * 1024;
            uint64_t avail = s.meminfo.mem_available_kb * 1024;
            policy_host_input(&d->host, s.psi.some.avg10, total, avail);
            if (cd->budget) {
                struct budget_inputs in = {.total_bytes = total,
                                           .used_bytes = total > avail ? total - avail : 0};
                set_budget(d, &bs, &in, now);
            }
        }
    }
    if (cgroup)
        sample_cgroup(d, &bs, now);
    if (!cd->budget)
        policy_host_no_budget(&d->host);
    daemon_kick(d);
}

/* See daemon_internal.h. */
void host_sampling_init(struct daemon *d)
{
    uv_timer_init(d->loop, &d->host_timer);
    d->host_timer.data = d;
    d->budget_guests_known = UINT64_MAX; /* the first sample is a change: no budget yet */
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
