#!/usr/bin/env python3
"""Churn sweep: what the quality benchmark's cache-churn guest stalls at each balloon size,
and how its measured working set follows the size. No controller: the benchmark sets the
balloon itself, largest size first.

The guest and its workload are bench/quality.py's `churn` (512 MiB, a 256 MiB swap disk,
streaming through 600 MiB of its data disk while re-reading a 48 MiB hot part every 2 s).
At each size: the balloon is set and waited for, --settle s pass, then --hold s are
measured from the guest's own 5 s samples (the quality benchmark's sampler):
  some_pct / full_pct  growth of PSI memory some/full total over the window, percent
  ws_mib               quality.py's working set: the largest MemTotal - MemAvailable +
                       Active(file) in the window, plus the balloon's overhead over MemTotal
  ratio                balloon / ws_mib (the quality benchmark's churn goal is <= 1.25)
One JSON object per size on stdout, then a markdown table.

usage: churn_sweep.py --source DIR --build DIR --workload EXE [--sizes MiB,...]
                      [--settle S] [--hold S] [--keep]
"""

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import guestlib  # noqa: E402
from guestlib import MIB  # noqa: E402
import quality  # noqa: E402

CEILING_MIB = 512
# What each dd of the workload is doing, every 5 s on the console: its state and where it
# sleeps in the kernel (a workload that stops reading shows here, not in the stall).
DD_SAMPLER = ("while :; do for p in $(pidof dd); do echo \"BELLOWS DD $p $(cut -d' ' -f3 "
              "/proc/$p/stat) $(cat /proc/$p/wchan)\"; done; sleep 5; done")


def log(msg):
    print("churn_sweep: %s" % msg, file=sys.stderr, flush=True)


def watch(g, seconds):
    """The guest's WS lines over the next seconds: (host time first seen, total kB,
    used kB, Active(file) kB, some us, full us), the console read once a second."""
    offset = os.path.getsize(g.console.log_path)
    seen = []
    end = time.monotonic() + seconds
    while True:
        with open(g.console.log_path, "rb") as f:
            f.seek(offset)
            data = f.read()
        cut = data.rfind(b"\n") + 1
        offset += cut
        now = time.monotonic()
        for (t, a, af, s, fu) in quality.WS_RE.findall(data[:cut].decode("utf-8", "replace")):
            seen.append((now, int(t), int(t) - int(a), int(af), int(s), int(fu)))
        if now >= end:
            return seen
        time.sleep(1)


def measure(g, size, settle, hold):
    """Set the balloon to size, wait for it, let it settle, measure a window."""
    g.observer().execute("balloon", {"value": size})
    guestlib.wait_for(lambda: abs(g.observer().actual() - size) <= MIB, 180,
                      "balloon at %d MiB" % (size // MIB), interval=0.5)
    time.sleep(settle)  # a fixed wait by design: the window starts after the move
    seen = watch(g, hold)
    if len(seen) < 3:
        raise guestlib.GuestError("fewer than 3 samples in %d s at %d MiB"
                                  % (hold, size // MIB))
    first, last = seen[0], seen[-1]
    span_us = (last[0] - first[0]) * 1e6  # host times, each at most a second late
    overhead = size - last[1] * 1024
    ws = max(used + actf for (_, _, used, actf, _, _) in seen) * 1024 + overhead
    return {"bench": "churn_sweep", "balloon_mib": size // MIB,
            "mem_total_mib": round(last[1] / 1024, 1),
            "some_pct": round(100.0 * (last[4] - first[4]) / span_us, 1),
            "full_pct": round(100.0 * (last[5] - first[5]) / span_us, 1),
            "used_mib": round(max(s[2] for s in seen) / 1024, 1),
            "active_file_mib": round(max(s[3] for s in seen) / 1024, 1),
            "ws_mib": round(ws / MIB, 1), "ratio": round(size / ws, 2),
            "samples": len(seen)}


def table(rows):
    out = ["| balloon, MiB | MemTotal, MiB | PSI some % | PSI full % | used, MiB | "
           "Active(file), MiB | working set, MiB | balloon / working set |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| %d | %.0f | %.1f | %.1f | %.0f | %.0f | %.0f | %.2f |"
                   % (r["balloon_mib"], r["mem_total_mib"], r["some_pct"], r["full_pct"],
                      r["used_mib"], r["active_file_mib"], r["ws_mib"], r["ratio"]))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--sizes", default="512,384,320,256,224,192,160,128,112,96",
                   help="balloon sizes, MiB, in order")
    p.add_argument("--settle", type=float, default=30, help="seconds after each move")
    p.add_argument("--hold", type=float, default=120, help="seconds measured at each size")
    p.add_argument("--warmup", type=float, default=60, help="seconds of workload before")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    sizes = [int(s) * MIB for s in args.sizes.split(",")]
    if any(not 64 * MIB <= s <= CEILING_MIB * MIB for s in sizes):
        log("sizes must be within 64..%d MiB" % CEILING_MIB)
        return 2

    image = guestlib.guest_image(args.source, os.path.join(args.build, "guest"),
                                 workload=args.workload)
    # SIGTERM stops the sweep like Ctrl-C: the guest and the cgroup are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    tmp = tempfile.mkdtemp(prefix="bellows-churn-sweep-")
    log("run directory %s; load average %s" % (tmp, os.getloadavg()))
    disk_mib, _, script = quality.workloads(1)["churn"]
    cg = quality.Cgroup("bellows-churn-sweep-%d" % os.getpid(), 4 << 30)  # no limit, a home
    g = None
    try:
        disk = quality.make_disk(os.path.join(tmp, "disk.img"), disk_mib)
        g = quality.BenchGuest("churn", os.path.join(tmp, "churn"), image,
                               mem_mib=CEILING_MIB, agent=False, disk=disk, cgroup=cg,
                               swap_mib=256)
        g.start()
        g.wait_ready(timeout=400)
        g.start_background(quality.WS_SAMPLER)
        g.start_background(script)
        g.start_background(DD_SAMPLER)
        log("booted; %d s of workload before the first size" % args.warmup)
        time.sleep(args.warmup)  # a fixed wait by design: the workload's steady state
        rows = []
        for size in sizes:
            r = measure(g, size, args.settle, args.hold)
            r["load_average"] = os.getloadavg()
            print(json.dumps(r), flush=True)
            rows.append(r)
        print(table(rows), flush=True)
    finally:
        if g is not None:
            g.stop()
        cg.remove()
        if args.keep:
            log("run directory kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
