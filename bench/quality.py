#!/usr/bin/env python3
"""Quality benchmark: one workload on a few real guests (QEMU TCG), run once under each
controller, one after the other in one invocation:

  static   no balloon management: the balloons stay where the run put them at the start;
  mom      a polling controller following oVirt MOM's published default balloon rules
           (bench/mom.py: 5 s collection, 10 s policy, 20 % host-free threshold, 5 % steps),
           talking QMP itself;
  bellows  bellowsd with the agent in each guest, default policy.

Every arm starts from the same state: each guest booted with --ceiling MiB, its balloon
set to --start MiB. The host these guests share is a modelled one of --host MiB: its free
memory is --host minus the sum of the balloons' actual sizes. MOM reads that figure as its
host free memory; bellowsd reads it as MemAvailable from a /proc directory the benchmark
writes every second (host PSI zero). Nothing else differs between the arms.

Measured per arm (one JSON object per arm on stdout, progress on stderr):
  oom_kills          kernel OOM kills in the guests (console, from /dev/kmsg)
  stall_s            guest PSI "full" total growth over the run (/proc/pressure/memory)
  returned_gib_s     integral over the run of sum(ceiling - balloon actual), GiB x s
  reversals          direction changes in each guest's BALLOON_CHANGE sequence
  completion_s       from the workload start until the last guest's workload ended
  failed_workloads   workload scripts that ended with a non-zero status

usage: quality.py --source DIR --build DIR --workload EXE [--agent EXE] [--bellowsd EXE]
                  [--arms static,mom,bellows] [--tail S] [--keep]
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import guestlib  # noqa: E402
from guestlib import MIB, Guest  # noqa: E402
import mom  # noqa: E402

# The workload: phases of growth, bursts and quiet, one script per guest. Each ends with a
# line the benchmark waits for. sizes in MiB, for guests of 512 MiB started at 288 MiB.
WORKLOADS = {
    # grows slowly past what its balloon leaves it, holds, then stays quiet
    "grow": "sleep 10; workload alloc --mib 380 --rate 6 --hold 20",
    # sudden bursts with quiet gaps between them
    "burst": "sleep 5; workload alloc --mib 260 --rate 0 --hold 4 --repeat 4 --pause 20",
    # quiet for a long while, then a medium demand late in the run
    "late": "sleep 90; workload alloc --mib 200 --rate 20 --hold 10",
}


def log(msg):
    print("quality: %s" % msg, file=sys.stderr, flush=True)


def psi_full_total_us(g):
    status, out = g.run("cat /proc/pressure/memory")
    m = re.search(r"^full .*total=(\d+)", out, re.M)
    if status != 0 or not m:
        raise guestlib.GuestError("%s: cannot read PSI: %r" % (g.name, out))
    return int(m.group(1))


def reversals(values, deadband=MIB):
    """Direction changes in a sequence of balloon sizes (moves under deadband ignored)."""
    n, last = 0, 0
    for a, b in zip(values, values[1:]):
        d = b - a
        if abs(d) < deadband:
            continue
        sign = 1 if d > 0 else -1
        if last and sign != last:
            n += 1
        last = sign
    return n


class FakeHostProc:
    """A /proc directory for bellowsd: PSI zero, MemTotal the modelled host, MemAvailable
    what the balloons leave of it. Rewritten atomically every sample."""

    def __init__(self, path, host_bytes):
        self.path = path
        self.host = host_bytes
        os.makedirs(os.path.join(path, "pressure"), exist_ok=True)
        with open(os.path.join(path, "pressure", "memory"), "w") as f:
            f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        self.update(0)

    def update(self, used_bytes):
        free_kb = max(0, self.host - used_bytes) // 1024
        tmp = os.path.join(self.path, "meminfo.tmp")
        with open(tmp, "w") as f:
            f.write("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n"
                    "SwapTotal:             0 kB\nSwapFree:              0 kB\n"
                    % (self.host // 1024, free_kb, free_kb))
        os.rename(tmp, os.path.join(self.path, "meminfo"))


def run_arm(arm, args, image, tmp):
    ceiling, start, floor, host = (args.ceiling * MIB, args.start * MIB, args.floor * MIB,
                                   args.host * MIB)
    use_agent = arm == "bellows"
    guests = [Guest(name, os.path.join(tmp, arm, name), image, mem_mib=args.ceiling,
                    agent=use_agent) for name in WORKLOADS]
    daemon = None
    result = {"bench": "quality", "arm": arm, "guests": len(guests), "ceiling_mib": args.ceiling,
              "start_mib": args.start, "floor_mib": args.floor, "host_mib": args.host}
    try:
        boot = guestlib.boot_all(guests)
        log("%s: booted in %s" % (arm, {k: round(v, 1) for k, v in boot.items()}))
        for g in guests:
            g.observer().execute("balloon", {"value": start})
        for g in guests:
            guestlib.wait_for(lambda: g.observer().actual() <= start + MIB, 60,
                              "%s balloon at start size" % g.name, interval=0.5)
            g.observer().events.clear()
        psi0 = {g.name: psi_full_total_us(g) for g in guests}

        fake = FakeHostProc(os.path.join(tmp, arm, "proc"), host)
        controller = None
        if arm == "mom":
            controller = mom.Mom(host_total_bytes=host,
                                 guests={g.name: mom.MomGuest(g.observer(), floor, ceiling)
                                         for g in guests})
        elif arm == "bellows":
            conf = os.path.join(tmp, arm, "bellowsd.conf")
            guestlib.write_config(conf, guests,
                                  settings={g.name: {"floor": "%dM" % args.floor}
                                            for g in guests},
                                  daemon={"control_socket": os.path.join(tmp, arm, "ctl.sock"),
                                          "proc_dir": fake.path, "log_level": "info"})
            dlog = open(os.path.join(tmp, arm, "bellowsd.log"), "w")
            daemon = subprocess.Popen([args.bellowsd, "--config", conf], stdout=dlog,
                                      stderr=subprocess.STDOUT)
            dlog.close()

        for g in guests:
            g.console.mark()
            g.wl_mark = g.console.offset
            g.start_background("s=0; %s || s=$?; echo BELLOWS WL-END status=$s"
                               % WORKLOADS[g.name])
        t0 = time.monotonic()
        ended = {}
        returned = 0.0
        last = t0
        deadline = t0 + args.max_seconds
        tail_until = None
        while True:
            now = time.monotonic()
            actual = {g.name: g.observer().actual() for g in guests}
            fake.update(sum(actual.values()))
            returned += sum(ceiling - a for a in actual.values()) * (now - last) / (1 << 30)
            last = now
            if controller:
                controller.tick(now, sum(actual.values()))
            for g in guests:
                if g.name in ended:
                    continue
                m = re.search(r"^BELLOWS WL-END status=(\d+)", g.console.text(g.wl_mark), re.M)
                if m:
                    ended[g.name] = (now - t0, int(m.group(1)))
                    log("%s: %s workload ended at %.0fs, status %s"
                        % (arm, g.name, now - t0, m.group(1)))
            if daemon is not None and daemon.poll() is not None:
                result["daemon_exit"] = daemon.returncode
                log("%s: bellowsd exited with %s" % (arm, daemon.returncode))
                daemon = None
            if tail_until is None and len(ended) == len(guests):
                tail_until = now + args.tail
            if (tail_until is not None and now >= tail_until) or now >= deadline:
                break
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        duration = time.monotonic() - t0

        result.update({
            "seconds": round(duration, 1),
            "completion_s": round(max(v[0] for v in ended.values()), 1)
            if len(ended) == len(guests) else None,
            "failed_workloads": sum(1 for v in ended.values() if v[1] != 0)
            + len(guests) - len(ended),
            "oom_kills": sum(g.oom_kills() for g in guests),
            "stall_s": round(sum(psi_full_total_us(g) - psi0[g.name] for g in guests) / 1e6, 2),
            "returned_gib_s": round(returned, 1),
            "reversals": sum(reversals([start] + g.observer().balloon_changes())
                             for g in guests),
            "balloon_commands": controller.commands if controller else None,
            "per_guest": {g.name: {"oom_kills": g.oom_kills(),
                                   "end": ended.get(g.name),
                                   "final_actual_mib": g.observer().actual() // MIB,
                                   "changes": len(g.observer().balloon_changes())}
                          for g in guests},
        })
    finally:
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(10)
            except subprocess.TimeoutExpired:
                daemon.kill()
        for g in guests:
            g.stop()
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--agent")
    p.add_argument("--bellowsd")
    p.add_argument("--arms", default="static,mom,bellows")
    p.add_argument("--ceiling", type=int, default=512, help="guest size, MiB")
    p.add_argument("--start", type=int, default=288, help="balloon at the start, MiB")
    p.add_argument("--floor", type=int, default=160, help="floor for the controllers, MiB")
    p.add_argument("--host", type=int, default=1200, help="modelled host memory, MiB")
    p.add_argument("--tail", type=float, default=60, help="seconds kept after the workloads")
    p.add_argument("--max-seconds", type=float, default=420)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    arms = args.arms.split(",")
    if "bellows" in arms and not (args.bellowsd and args.agent):
        log("the bellows arm needs --bellowsd and --agent")
        return 2
    image_dir = os.path.join(args.build, "guest")
    cmd = [os.path.join(args.source, "scripts", "guest-image"), "--workload", args.workload]
    if args.agent:
        cmd += ["--agent", args.agent]
    out = subprocess.run(cmd + [image_dir], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    image = (out[0], out[1])
    tmp = tempfile.mkdtemp(prefix="bellows-quality-")
    try:
        for arm in arms:
            log("arm %s" % arm)
            print(json.dumps(run_arm(arm, args, image, tmp)), flush=True)
    finally:
        if args.keep:
            log("run directory kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
