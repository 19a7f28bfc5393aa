#!/usr/bin/env python3
"""Guests' decision latency with bellowsd's HTTP surface idle, busy and under attack,
side by side in one run (docs/benchmarks.md, "HTTP surface").

    bench/http_load.py BUILDDIR [--guests 100] [--reps 1]

Each arm starts a fresh bellowsd with GUESTS simulated guests (bellows-simguests) sending
5 low pressure events a second each, waits 2 s for its clients to settle in, then sends
PROBES critical pressure events, one at a time 10 ms apart, to the guests in turn, and
measures the time until bellowsd's balloon command reaches that guest's QMP monitor (on
the simulator's clock). Arms:
  off        http_listen = off (the daemon as it was before the surface)
  idle       the surface on, nobody asking
  dashboard  4 event-stream readers (dashboards) and 2 loops each fetching /metrics and
             the guest list twice a second
  attack     the dashboard arm plus 1,000 connections (600 idle, 400 dripping bytes), 20
             requests with 64 KiB headers, 200 unknown paths and a stream client that
             never reads
The clients run in a process of their own at nice 19 (tests/http/httpload.py): on a
2-core machine they would otherwise take the daemon's CPU, which in production they do
not (they run elsewhere); what is measured is what they cost bellowsd's loop.
Prints one line per arm: latency p50/p99/max, bellowsd's CPU seconds over the arm, its
peak RSS, and what the clients got."""
import argparse
import os
import signal
import subprocess
import sys
import time

HTTP_TESTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "http")
sys.path.insert(0, HTTP_TESTS)
from httpload import percentile, probes, proc_status  # noqa: E402
from surface import Surface  # noqa: E402


# Every probe must get its move: small steps far below a high ceiling, and a critical
# event 100 ms after the last one is not taken for its echo.
POLICY = "critical_step_bytes = 64M\ncritical_step_pct = 0\ncritical_window_ms = 100\n"


def arm(build, name, guests, probes_n):
    http = name != "off"
    cfg = "guest_frame_rate = 100\nguest_frame_burst = 200\n"
    with Surface(build, guests=guests, http=http, daemon_cfg=cfg, policy_cfg=POLICY,
                 ceiling_mib=256 * 1024) as s:
        names = ["g%d" % (i % guests + 1) for i in range(probes_n)]
        s.sim("load 5")
        load = None
        if name in ("dashboard", "attack"):
            load = subprocess.Popen([sys.executable, os.path.join(HTTP_TESTS, "httpload.py"),
                                     "--port", str(s.port), "--mode", name],
                                    stdout=subprocess.PIPE, text=True)
            assert load.stdout.readline().strip() == "running"
        time.sleep(2)  # the clients connected, the drips dripping, the streams flowing
        before = proc_status(s.daemon.pid)
        t0 = time.monotonic()
        lat = probes(s, names, settle=0.01)
        took = time.monotonic() - t0
        after = proc_status(s.daemon.pid)
        counts = ""
        if load:
            load.send_signal(signal.SIGTERM)
            counts = load.stdout.read().strip()
            load.wait()
        s.sim("load 0")
        return {
            "arm": name, "guests": guests, "probes": len(lat),
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat),
            "cpu_s": after["cpu_s"] - before["cpu_s"], "seconds": took,
            "peak_rss_kib": after["VmHWM"], "clients": counts,
        }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--guests", type=int, default=100)
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--probes", type=int, default=500)
    ap.add_argument("--arms", default="off,idle,dashboard,attack")
    args = ap.parse_args()
    print("%-10s %6s %8s %8s %8s %9s %8s %10s" % ("arm", "guests", "p50 ms", "p99 ms", "max ms",
                                                  "CPU s", "over s", "peak RSS"))
    arms = args.arms.split(",")
    for rep in range(args.reps):
        for name in arms:
            r = arm(args.build, name, args.guests, args.probes)
            print("%-10s %6d %8.2f %8.2f %8.2f %9.2f %8.1f %7d KiB" % (
                r["arm"], r["guests"], r["p50_ms"], r["p99_ms"], r["max_ms"], r["cpu_s"],
                r["seconds"], r["peak_rss_kib"]), flush=True)
            if r["clients"]:
                print("           clients: %s" % r["clients"], flush=True)


if __name__ == "__main__":
    main()
