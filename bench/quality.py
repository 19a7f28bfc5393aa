#!/usr/bin/env python3
"""Quality benchmark: one workload on five real guests (QEMU TCG) under a real host limit,
run under each controller ("arm") in one invocation, side by side:

  static       no balloon management: each balloon stays at its start size;
  mom          oVirt MOM's default balloon rules (bench/mom.py), polling through QMP;
  proxmox      Proxmox VE AutoBalloon's rules (bench/proxmox.py), polling through QMP;
  bellows-old  bellowsd as it was before issue 12 (--bellowsd-old: a build of 2f2a273);
  bellows      bellowsd now (--bellowsd), default policy, its budget from the cgroup.

The host limit is real: each arm's QEMU processes run in one cgroup v1 memory cgroup whose
limit (--limit MiB) is below the sum of the guests' ceilings. A QEMU the cgroup's OOM
killer kills is a VM lost. Every arm starts alike: the guests booted at --ceiling MiB,
their balloons put at --start MiB (an operator's static share of the limit).
The controllers see the host as that cgroup: MOM's host free memory and Proxmox's host
use are its limit minus its usage; bellows-old reads them from a /proc the benchmark
writes (MemTotal = limit, MemAvailable = limit - usage, PSI 0); bellows now reads the
cgroup itself (budget_cgroup) with a /proc of PSI 0 (the machine is shared: its real PSI
is other people's load).

The workload (times scaled by --time-scale), one guest each:
  cache   reads 300 MiB of its disk at boot (page cache filled), then idles;
  churn   streams through 600 MiB of its disk again and again while re-reading a 48 MiB
          hot part every 2 s (cache churn: low/medium events, little real need);
  grow    from 60 s, allocates 320 MiB at 0.5 MiB/s, holds 90 s, frees (a steady grower);
  burst   from 30 s, six bursts of 200 MiB (100 MiB/s) held 15 s, 75 s apart;
  late    boots at 300 s (a late starter), then 180 MiB at 10 MiB/s held 180 s;
then a quiet tail until --duration s. The allocations are a working set in use: written
again every 1-2 s (workload alloc --touch), so memory swapped out is missed at once. Each
guest has a --swap MiB swap disk (its /dev/vda; the data disk is /dev/vdb), both uncached
on the host (cache=none) so their pages are not the cgroup's.

Measured per arm (one JSON object per arm on stdout, a table at the end):
  oom_kills            kernel OOM kills in the guests (their consoles)
  vms_lost             QEMU processes killed (the cgroup's OOM killer: memory.oom_control)
  limit_failures       memory.failcnt of the cgroup (allocations that hit the limit)
  peak_mib / limit_mib memory.max_usage_in_bytes against the limit
  returned_gib_s       integral over the run of sum over running guests of
                       (ceiling - balloon actual), GiB x s
  stall_some_s/full_s  growth of each guest's PSI some/full total, summed
  reversals            direction changes in each guest's BALLOON_CHANGE sequence
  balloon_commands     balloon commands sent (the baselines count theirs; bellowsd's from
                       its log)
  quiet_to_ws_s        per quiet guest: seconds from the end of its activity until its
                       balloon came within 15 % of its working set
  churn_ws_ratio       the churn guest's balloon over its working set at the end
  hung_guests          guests whose kernel reported a task blocked for 120 s (per guest:
                       hung_task_at_s, when the benchmark saw the first report; the task
                       was blocked from 120 s before). Their stall and working set then
                       say nothing about the arm's controller. The benchmark then prints
                       the kernel stacks of the guest's blocked tasks on its console
                       (BELLOWS BLOCKED lines) for a diagnosis.
The working set is measured in each guest every 5 s (BELLOWS WS lines on its console):
MemTotal - MemAvailable (what the kernel cannot reclaim) + Active(file) (the page cache
the kernel sees in re-use), its largest value over the last 60 s; in balloon terms plus
the guest's overhead (balloon size - MemTotal). "Within 15 %": balloon <= 1.15 x that.

usage: quality.py --source DIR --build DIR --workload EXE --agent EXE --bellowsd EXE
                  [--bellowsd-old EXE] [--arms LIST] [--parallel N] [--limit MiB] [--keep]
"""

import argparse
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import guestlib  # noqa: E402
from guestlib import MIB, Guest  # noqa: E402
import mom  # noqa: E402
import proxmox  # noqa: E402

CGROUP_ROOT = "/sys/fs/cgroup/memory"
ALL_ARMS = ["static", "mom", "proxmox", "bellows-old", "bellows"]
# Set by SIGTERM or SIGINT: every arm stops where it is and cleans up (its QEMUs, bellowsd
# and cgroup), instead of the process dying and leaving them behind.
STOP = threading.Event()

# The guest's working-set sampler: meminfo and PSI totals every 5 s on its console.
WS_SAMPLER = (
    "while :; do set -- $(awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} "
    "/^Active\\(file\\):/{f=$2} END{print t, a, f}' /proc/meminfo) "
    "$(awk -F'[ =]' '/^some/{s=$NF} /^full/{f=$NF} END{print s, f}' /proc/pressure/memory); "
    "echo \"BELLOWS WS total=$1 avail=$2 actf=$3 some=$4 full=$5\"; sleep 5; done")
# The kernel stacks of the guest's blocked tasks (state D) on its console, once it reported
# a hung task: the report alone names the task, not where it waits (its stack is printed
# at KERN_INFO, under the console's `quiet`).
BLOCKED_STACKS = (
    "for p in /proc/[0-9]*; do grep -q '^State:.D' $p/status 2>/dev/null || continue; "
    "echo \"BELLOWS BLOCKED $(cat $p/comm) ${p#/proc/}\"; cat $p/stack; done")
HUNG_RE = re.compile(r"INFO: task \S+ blocked for more than \d+ seconds")
WS_RE = re.compile(r"BELLOWS WS total=(\d+) avail=(\d+) actf=(\d+) some=(\d+) full=(\d+)")


def workloads(scale):
    """name -> (disk MiB, boot at s, script). The script prints BELLOWS QUIET when the
    guest's activity ends (the churn guest's never does)."""
    def s(x):
        return max(1, int(round(x * scale)))
    return {
        "cache": (320, 0,
                  "exec 3</dev/vdb; dd if=/dev/vdb of=/dev/null bs=1M count=300 2>/dev/null; "
                  "echo \"BELLOWS QUI\"\"ET\"; sleep 1000000"),
        "churn": (700, 0,
                  "exec 3</dev/vdb; (while :; do dd if=/dev/vdb of=/dev/null bs=1M count=48 "
                  "2>/dev/null; sleep 2; done) & while :; do dd if=/dev/vdb of=/dev/null bs=1M "
                  "skip=48 count=600 2>/dev/null; done"),
        "grow": (0, 0, "sleep %d; workload alloc --mib 320 --rate %g --hold %d --touch 2; "
                 "echo \"BELLOWS QUI\"\"ET\"" % (s(60), 0.5 / scale, s(90))),
        "burst": (0, 0, "sleep %d; workload alloc --mib 200 --rate 100 --hold %d --repeat 6 "
                  "--pause %d --touch 1; echo \"BELLOWS QUI\"\"ET\"" % (s(30), s(15), s(75))),
        "late": (0, s(300), "sleep %d; workload alloc --mib 180 --rate %g --hold %d --touch 2; "
                 "echo \"BELLOWS QUI\"\"ET\"" % (s(30), 10 / scale, s(180))),
    }


def log(msg):
    print("quality: %s" % msg, file=sys.stderr, flush=True)


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


class Cgroup:
    """A cgroup v1 memory cgroup: the arm's host."""

    def __init__(self, name, limit_bytes):
        self.path = os.path.join(CGROUP_ROOT, name)
        os.makedirs(self.path)
        self.write("memory.limit_in_bytes", str(limit_bytes))
        self.limit = int(self.read("memory.limit_in_bytes"))

    def read(self, name):
        with open(os.path.join(self.path, name)) as f:
            return f.read()

    def write(self, name, value):
        with open(os.path.join(self.path, name), "w") as f:
            f.write(value)

    def usage(self):
        return int(self.read("memory.usage_in_bytes"))

    def stats(self):
        oom = dict(line.split() for line in self.read("memory.oom_control").splitlines())
        return {"failcnt": int(self.read("memory.failcnt")),
                "max_usage": int(self.read("memory.max_usage_in_bytes")),
                "oom_kill": int(oom.get("oom_kill", 0))}

    def remove(self):
        for _ in range(50):
            try:
                os.rmdir(self.path)
                return
            except OSError:
                time.sleep(0.2)
        log("cgroup %s not removed" % self.path)


class BenchGuest(Guest):
    """A test guest with a read-only data disk (uncached on the host), a capped TCG
    translation cache, started inside the arm's cgroup."""

    def __init__(self, *args, disk=None, cgroup=None, tb_mib=32, **kw):
        super().__init__(*args, **kw)
        self.disk = disk
        self.cgroup = cgroup
        self.tb_mib = tb_mib

    def kernel_args(self):
        # A loaded machine makes TCG slow enough for the kernel's timer check to fail at
        # boot ("IO-APIC + timer doesn't work"); skip it, as VMs commonly do.
        return super().kernel_args() + " no_timer_check"

    def command_line(self):
        cmd = super().command_line()
        cmd[cmd.index("tcg")] = "tcg,tb-size=%d" % self.tb_mib
        # The swap disk uncached on the host too: its pages are the guest's, not the cgroup's.
        cmd = [c.replace("cache=unsafe", "cache=none") if c.startswith("if=virtio") else c
               for c in cmd]
        if self.disk:
            cmd += ["-drive", "if=virtio,format=raw,cache=none,readonly=on,file=%s" % self.disk]
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.cgroup.path] + cmd


def make_disk(path, mib):
    """A data disk of random data, so nothing is shared or compressible."""
    subprocess.run(["dd", "if=/dev/urandom", "of=" + path, "bs=1M", "count=%d" % mib,
                    "status=none"], check=True)
    return path


def make_disks(tmp):
    """One data disk per size the workloads use."""
    return {mib: make_disk(os.path.join(tmp, "disk-%d.img" % mib), mib)
            for mib in sorted({d for d, _, _ in workloads(1).values() if d})}


class FakeHostProc:
    """A /proc directory for bellowsd: PSI zero, MemTotal the cgroup's limit, MemAvailable
    what its usage leaves. Rewritten atomically every sample."""

    def __init__(self, path, total_bytes):
        self.path = path
        self.total = total_bytes
        os.makedirs(os.path.join(path, "pressure"), exist_ok=True)
        with open(os.path.join(path, "pressure", "memory"), "w") as f:
            f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                    "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
        self.update(0)

    def update(self, used_bytes):
        free_kb = max(0, self.total - used_bytes) // 1024
        tmp = os.path.join(self.path, "meminfo.tmp")
        with open(tmp, "w") as f:
            f.write("MemTotal:       %d kB\nMemFree:        %d kB\nMemAvailable:   %d kB\n"
                    "SwapTotal:             0 kB\nSwapFree:              0 kB\n"
                    % (self.total // 1024, free_kb, free_kb))
        os.rename(tmp, os.path.join(self.path, "meminfo"))


class Arm:
    """One arm: its cgroup, guests, controller and measurements."""

    def __init__(self, name, args, image, disks, tmp):
        self.name = name
        self.args = args
        self.image = image
        self.disks = disks
        self.dir = os.path.join(tmp, name)
        os.makedirs(self.dir)
        self.result = {"bench": "quality", "arm": name}

    def log(self, msg):
        log("%s: %s" % (self.name, msg))

    def run(self):
        a = self.args
        if STOP.is_set():
            self.result["stopped"] = True
            return self.result
        self.cg = Cgroup("bellows-quality-%d-%s" % (os.getpid(), self.name), a.limit * MIB)
        bellows = self.name.startswith("bellows")
        wl = workloads(a.time_scale)
        self.guests = {}
        for name, (disk, boot_at, script) in wl.items():
            g = BenchGuest(name, os.path.join(self.dir, name), self.image, mem_mib=a.ceiling,
                           agent=bellows, disk=self.disks.get(disk), cgroup=self.cg,
                           tb_mib=a.tb_size, swap_mib=a.swap)
            # Not g.script: Guest.script is a script /init runs at boot, and the workload
            # must run once, when start_workload() types it (an earlier version ran it twice).
            g.boot_at, g.workload = boot_at, script
            g.running = g.lost = False
            g.ws_seen, g.ws_offset, g.quiet_at, g.hung_at = [], 0, None, None
            g.actuals = []  # (t, bytes)
            self.guests[name] = g
        daemon = None
        try:
            early = [g for g in self.guests.values() if g.boot_at == 0]
            boot = self.boot(early)
            self.log("booted in %s" % {k: round(v, 1) for k, v in boot.items()})
            for g in early:
                self.set_start(g)
            daemon = self.start_controller()
            self.loop()
        finally:
            guestlib.stop_process(daemon)
            for g in self.guests.values():
                if g.proc is not None:
                    g.stop()
            try:
                self.result["cgroup"] = self.cg.stats()
            finally:
                self.cg.remove()
        self.measure()
        return self.result

    def boot(self, guests, tries=3):
        """Boot them all at once; a guest whose QEMU exits during boot is started again."""
        for g in guests:
            g.start()
        pending = list(guests)
        deadline = time.monotonic() + 400
        while pending:
            for g in list(pending):
                try:
                    if g.is_ready():
                        pending.remove(g)
                except guestlib.GuestError as e:
                    g.boot_failures = getattr(g, "boot_failures", 0) + 1
                    if g.boot_failures >= tries:
                        raise
                    self.log("%s; starting it again" % e)
                    g.start()
            if STOP.is_set():
                raise guestlib.GuestError("%s: stopped while booting" % self.name)
            if time.monotonic() > deadline:
                raise guestlib.GuestError("%s: guests did not boot: %s"
                                          % (self.name, [g.name for g in pending]))
            time.sleep(0.2)
        return {g.name: g.boot_seconds for g in guests}

    def set_start(self, g):
        start = self.args.start * MIB
        g.observer().execute("balloon", {"value": start})
        guestlib.wait_for(lambda: g.observer().actual() <= start + MIB, 120,
                          "%s balloon at start size" % g.name, interval=0.5)
        g.observer().events.clear()
        g.running = True

    def start_controller(self):
        a = self.args
        floor, ceiling = a.floor * MIB, a.ceiling * MIB
        self.controller = None
        self.fake = None
        self.daemon = None
        if self.name == "mom":
            self.controller = mom.Mom(host_total_bytes=self.cg.limit, guests={})
            for g in self.guests.values():
                if g.running:
                    self.controller.guests[g.name] = mom.MomGuest(g.observer(), floor, ceiling)
        elif self.name == "proxmox":
            self.controller = proxmox.AutoBalloon(self.cg.limit)
            for g in self.guests.values():
                if g.running:
                    self.controller.add(g.name, proxmox.PveVm(g.observer(), floor, ceiling))
        elif self.name.startswith("bellows"):
            old = self.name == "bellows-old"
            self.fake = FakeHostProc(os.path.join(self.dir, "proc"), self.cg.limit)
            daemon = {"control_socket": os.path.join(self.dir, "ctl.sock"),
                      "proc_dir": self.fake.path, "log_level": "info"}
            if old:
                daemon["state_dir"] = None  # 2f2a273 has no operator state
            else:
                daemon["http_listen"] = "off"  # arms side by side would share its port
                daemon["budget_cgroup"] = self.cg.path
                # What QEMU itself uses per TCG guest beyond guest RAM, as measured here
                # (70-110 MiB with a 32 MiB translation cache): the operator's setting.
                daemon["budget_guest_overhead"] = "%dM" % a.guest_overhead
                self.fake = None  # bellowsd reads the cgroup itself; the /proc is calm
            conf = os.path.join(self.dir, "bellowsd.conf")
            guestlib.write_config(conf, list(self.guests.values()),
                                  settings={n: {"floor": "%dM" % a.floor} for n in self.guests},
                                  daemon=daemon)
            self.daemon_log = os.path.join(self.dir, "bellowsd.log")
            out = open(self.daemon_log, "w")
            exe = a.bellowsd_old if old else a.bellowsd
            proc = subprocess.Popen([exe, "--config", conf], stdout=out, stderr=subprocess.STDOUT)
            out.close()
            self.daemon = proc
            return proc
        return None

    def add_to_controller(self, g):
        floor, ceiling = self.args.floor * MIB, self.args.ceiling * MIB
        if self.name == "mom":
            self.controller.guests[g.name] = mom.MomGuest(g.observer(), floor, ceiling)
        elif self.name == "proxmox":
            self.controller.add(g.name, proxmox.PveVm(g.observer(), floor, ceiling))

    def start_workload(self, g, t0):
        g.console.mark()
        g.wl_mark = g.console.offset
        g.ws_offset = g.console.offset
        g.start_background(WS_SAMPLER)
        g.start_background(g.workload)

    def scan_console(self, g, t):
        """New WS lines and markers since the last look (host time t for each: when the
        benchmark saw it, at most a second late)."""
        try:
            with open(g.console.log_path, "rb") as f:
                f.seek(g.ws_offset)
                data = f.read()
        except FileNotFoundError:
            return
        cut = data.rfind(b"\n")
        if cut < 0:
            return
        g.ws_offset += cut + 1
        chunk = data[:cut + 1].decode("utf-8", "replace")
        for m in WS_RE.finditer(chunk):
            total, avail, actf, some, full = (int(x) for x in m.groups())
            g.ws_seen.append((t, total, total - avail, actf, some, full))
        if g.quiet_at is None and "BELLOWS QUIET" in chunk:
            g.quiet_at = t
        # The guest kernel's hung-task report: a task blocked for 120 s. Its workload's
        # figures (stall, working set) then say nothing about the arm (a churn guest's
        # stream froze with kcompactd0 blocked, its PSI total flat for the rest of a run).
        if g.hung_at is None and HUNG_RE.search(chunk):
            g.hung_at = t
            g.start_background(BLOCKED_STACKS)

    def loop(self):
        a = self.args
        t0 = time.monotonic()
        for g in self.guests.values():
            if g.running:
                self.start_workload(g, t0)
        self.returned = 0.0
        last = t0
        while True:
            now = time.monotonic()
            t = now - t0
            if t >= a.duration:
                break
            if STOP.is_set():
                self.log("stopped at %.0f s: the figures cover the run until then" % t)
                self.result["stopped_at_s"] = round(t, 1)
                break
            total = 0
            for g in self.guests.values():
                if g.proc is None and g.boot_at <= t:
                    self.log("starting %s at %.0f s" % (g.name, t))
                    g.start()
                if g.proc is None:
                    continue
                if not g.lost and g.running and g.proc.poll() is not None:
                    g.lost = True
                    g.running = False
                    g.lost_at = t
                    self.log("%s lost at %.0f s (QEMU exit %s)" % (g.name, t, g.proc.returncode))
                    if self.controller and self.name == "proxmox":
                        self.controller.remove(g.name)
                    elif self.controller and self.name == "mom":
                        self.controller.guests.pop(g.name, None)
                    continue
                if not g.running and not g.lost:
                    try:
                        ready = g.is_ready()
                    except guestlib.GuestError as e:
                        g.boot_failures = getattr(g, "boot_failures", 0) + 1
                        self.log("%s; starting it again" % e)
                        if g.boot_failures < 3:
                            g.start()
                        continue
                    if ready:
                        self.set_start(g)
                        self.add_to_controller(g)
                        self.start_workload(g, t0)
                    continue
                if g.lost:
                    continue
                try:
                    actual = g.observer().actual()
                except (guestlib.GuestError, OSError):
                    continue
                g.actuals.append((t, actual))
                total += actual
                self.returned += (a.ceiling * MIB - actual) * (now - last) / (1 << 30)
            usage = self.cg.usage()
            if self.fake:
                self.fake.update(usage)
            if self.controller:
                try:
                    self.controller.tick(now, usage)
                except (guestlib.GuestError, OSError) as e:
                    self.log("controller: %s" % e)
            if self.daemon is not None and self.daemon.poll() is not None:
                with open(self.daemon_log) as f:
                    tail = f.read()[-500:]
                raise RuntimeError("%s: bellowsd exited (%s) at %.0f s: %s"
                                   % (self.name, self.daemon.returncode, t, tail))
            for g in self.guests.values():
                if g.proc is not None and (g.running or g.lost):
                    self.scan_console(g, t)
            last = now
            time.sleep(max(0.0, 1.0 - (time.monotonic() - now)))
        for g in self.guests.values():
            if g.proc is not None and g.running:
                self.scan_console(g, a.duration)
                try:
                    g.changes = g.observer().balloon_changes()
                except (guestlib.GuestError, OSError):
                    g.changes = []
            else:
                g.changes = []

    def commands(self):
        if self.controller is not None:
            return self.controller.commands
        if not self.name.startswith("bellows"):
            return 0
        n = 0
        with open(self.daemon_log) as f:
            for line in f:
                if (re.search(r"guest \S+: (deflate|inflate) [\d.]+ MiB -> [\d.]+ MiB \(", line)
                        and "not sent" not in line):
                    n += 1
        return n

    def measure(self):
        a = self.args
        per = {}
        oom = some = full = 0
        for g in self.guests.values():
            d = {"oom_kills": g.oom_kills() if g.proc is not None else 0,
                 "lost": g.lost, "final_actual_mib": g.actuals[-1][1] // MIB if g.actuals else None,
                 "reversals": reversals([a.start * MIB] + g.changes),
                 "changes": len(g.changes)}
            if g.hung_at is not None:
                d["hung_task_at_s"] = round(g.hung_at, 1)
            oom += d["oom_kills"]
            if len(g.ws_seen) >= 2:
                d["stall_some_s"] = (g.ws_seen[-1][4] - g.ws_seen[0][4]) / 1e6
                d["stall_full_s"] = (g.ws_seen[-1][5] - g.ws_seen[0][5]) / 1e6
                some += d["stall_some_s"]
                full += d["stall_full_s"]
            d.update(self.working_set(g))
            per[g.name] = d
        cg = self.result.get("cgroup", {})
        self.result.update({
            "guests": len(self.guests), "ceiling_mib": a.ceiling, "start_mib": a.start,
            "floor_mib": a.floor, "limit_mib": a.limit, "seconds": a.duration,
            "oom_kills": oom,
            "vms_lost": sum(1 for g in self.guests.values() if g.lost),
            "limit_failures": cg.get("failcnt"),
            "peak_mib": cg.get("max_usage", 0) // MIB,
            "cgroup_oom_kills": cg.get("oom_kill"),
            "returned_gib_s": round(self.returned, 1),
            "stall_some_s": round(some, 2), "stall_full_s": round(full, 2),
            "reversals": sum(d["reversals"] for d in per.values()),
            "balloon_commands": self.commands(),
            "quiet_to_ws_s": {n: d.get("quiet_to_ws_s") for n, d in per.items()
                              if n != "churn"},
            "churn_ws_ratio": per["churn"].get("end_ws_ratio"),
            "hung_guests": sorted(n for n, d in per.items() if "hung_task_at_s" in d),
            "per_guest": per,
        })

    @staticmethod
    def working_set(g):
        """The guest's working set against its balloon: when it came within 15 % after
        going quiet, and the ratio at the end."""
        out = {}
        if not g.ws_seen or not g.actuals:
            return out
        # The guest's overhead: balloon size minus MemTotal, from a sample at a known size.
        oh = None
        for (t, total, used, actf, _, _) in g.ws_seen:
            sizes = [s for (ta, s) in g.actuals if abs(ta - t) <= 1.5]
            if sizes and max(sizes) == min(sizes):
                oh = sizes[0] - total * 1024
                break
        if oh is None:
            return out

        def ws_at(t, since=None):
            start = t - 60 if since is None else max(t - 60, since)
            w = [(used + actf) * 1024 for (ts, total, used, actf, _, _) in g.ws_seen
                 if start <= ts <= t]
            return max(w) + oh if w else None

        killed = g.proc is not None and g.oom_kills() > 0
        if g.quiet_at is not None and killed:
            out["quiet_at_s"] = round(g.quiet_at, 1)
            out["quiet_to_ws_s"] = "killed"  # its workload ended by an OOM kill
        elif g.quiet_at is not None:
            out["quiet_at_s"] = round(g.quiet_at, 1)
            for (t, size) in g.actuals:
                if t < g.quiet_at:
                    continue
                ws = ws_at(t, since=g.quiet_at)  # the working set once quiet, not before
                if ws and size <= 1.15 * ws:
                    out["quiet_to_ws_s"] = round(t - g.quiet_at, 1)
                    break
        t_end, size_end = g.actuals[-1]
        ws_end = ws_at(t_end)
        if ws_end:
            out["end_ws_mib"] = round(ws_end / MIB, 1)
            out["end_ws_ratio"] = round(size_end / ws_end, 2)
        return out


def table(results):
    """The per-arm figures side by side, as a markdown table."""
    rows = [("guest OOM kills", "oom_kills"), ("VMs lost", "vms_lost"),
            ("host limit failures (failcnt)", "limit_failures"),
            ("peak use / limit, MiB", None), ("memory returned, GiB·s", "returned_gib_s"),
            ("stall some, s", "stall_some_s"), ("stall full, s", "stall_full_s"),
            ("reversals", "reversals"), ("balloon commands", "balloon_commands")]
    arms = [r["arm"] for r in results]
    out = ["| | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
    for label, key in rows:
        if key is None:
            vals = ["%s / %s" % (r.get("peak_mib"), r.get("limit_mib")) for r in results]
        else:
            vals = [str(r.get(key)) for r in results]
        out.append("| %s | %s |" % (label, " | ".join(vals)))
    names = sorted({n for r in results for n in r.get("quiet_to_ws_s", {})})
    for n in names:
        vals = []
        for r in results:
            v = r.get("quiet_to_ws_s", {}).get(n)
            vals.append("never" if v is None else v if isinstance(v, str) else "%.0f s" % v)
        out.append("| %s: quiet to within 15 %% of its working set | %s |" % (n, " | ".join(vals)))
    out.append("| churn: balloon / working set at the end | %s |"
               % " | ".join(str(r.get("churn_ws_ratio")) for r in results))
    out.append("| guests with a hung kernel task (figures not comparable) | %s |"
               % " | ".join(", ".join(r.get("hung_guests", [])) or "none" for r in results))
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--agent")
    p.add_argument("--bellowsd")
    p.add_argument("--bellowsd-old", help="bellowsd built from 2f2a273 (before issue 12)")
    p.add_argument("--arms", default=",".join(ALL_ARMS))
    p.add_argument("--parallel", type=int, default=1, help="arms run at once")
    p.add_argument("--ceiling", type=int, default=512, help="guest size, MiB")
    p.add_argument("--start", type=int, default=256, help="balloon at the start, MiB")
    p.add_argument("--floor", type=int, default=64, help="floor for the controllers, MiB")
    p.add_argument("--limit", type=int, default=2300, help="the arm cgroup's limit, MiB")
    p.add_argument("--swap", type=int, default=256, help="each guest's swap disk, MiB")
    p.add_argument("--guest-overhead", type=int, default=96,
                   help="bellows' budget_guest_overhead (QEMU's own memory per guest), MiB")
    p.add_argument("--duration", type=float, default=1020, help="seconds of workload")
    p.add_argument("--time-scale", type=float, default=1.0, help="scale the workload's times")
    p.add_argument("--tb-size", type=int, default=32, help="QEMU TCG translation cache, MiB")
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()
    arms = args.arms.split(",")
    for arm in arms:
        if arm not in ALL_ARMS:
            log("unknown arm %s (%s)" % (arm, ", ".join(ALL_ARMS)))
            return 2
    if any(a.startswith("bellows") for a in arms) and not args.agent:
        log("the bellows arms need --agent")
        return 2
    if "bellows" in arms and not args.bellowsd:
        log("the bellows arm needs --bellowsd")
        return 2
    if "bellows-old" in arms and not args.bellowsd_old:
        log("the bellows-old arm needs --bellowsd-old")
        return 2
    image = guestlib.guest_image(args.source, os.path.join(args.build, "guest"),
                                 workload=args.workload, agent=args.agent)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: (log("signal %d: stopping" % signum),
                                                  STOP.set()))
    tmp = tempfile.mkdtemp(prefix="bellows-quality-")
    log("run directory %s; load average %s" % (tmp, os.getloadavg()))
    results = []
    try:
        disks = make_disks(tmp)
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as ex:
            futures = {}
            for arm in arms:
                futures[arm] = ex.submit(Arm(arm, args, image, disks, tmp).run)
                log("arm %s queued" % arm)
            for arm in arms:
                try:
                    r = futures[arm].result()
                except guestlib.GuestError as e:
                    if not STOP.is_set():
                        raise
                    log(str(e))
                    continue
                r["load_average_end"] = os.getloadavg()
                print(json.dumps(r), flush=True)
                results.append(r)
        print(table(results), flush=True)
    finally:
        if args.keep:
            log("run directory kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
