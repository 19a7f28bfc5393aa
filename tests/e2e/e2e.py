#!/usr/bin/env python3
"""bellows end-to-end tests: real guests under QEMU (TCG), the real agent inside them, the
real bellowsd on the host. One test per run, named on the command line; meson declares
each as its own test in the 'qemu' suite (tests/e2e/meson.build). docs/testing.md says
what each one proves.

usage: e2e.py --source DIR --build DIR --workload EXE [--agent EXE] [--bellowsd EXE]
              [--bellowsctl EXE] TEST
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
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import guestlib  # noqa: E402
from guestlib import MIB, Guest, stop_process  # noqa: E402

TESTS = {}


def test(*needs):
    """Register a scenario; needs: the programs it cannot run without."""
    def register(fn):
        fn.needs = needs
        TESTS[fn.__name__.replace("_", "-")] = fn
        return fn
    return register


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    print("e2e: %s" % message, flush=True)


def is_static(path):
    """True for an executable that needs no dynamic loader (no PT_INTERP)."""
    return subprocess.run(["ldd", path], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0


class Env:
    """What a test gets: paths to the built programs, the image, a temp dir, cleanup."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bellows-e2e-")
        self.guests = []
        self.procs = []
        self.daemon = None
        self.daemon_log = None
        self.image = guestlib.guest_image(args.source, os.path.join(args.build, "guest"),
                                          workload=args.workload, agent=args.agent)

    def guest(self, name, **kw):
        g = Guest(name, os.path.join(self.tmp, name), self.image, **kw)
        self.guests.append(g)
        return g

    def close(self, keep):
        for p in self.procs:
            stop_process(p)
        for g in self.guests:
            g.stop()
        if keep:
            log("run directory kept: %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- infrastructure: the image, /init, the workload, QMP ballooning ---

@test()
def guest_boot(env):
    """The image boots, the virtio drivers bind, PSI and vmpressure exist, a QMP balloon
    command changes the guest's MemTotal, the workload runs, and an OOM kill is reported."""
    g = env.guest("boot", mem_mib=256, agent=False)
    g.start()
    seconds = g.wait_ready()
    log("booted in %.1fs: %s" % (seconds, g.booted))
    check(g.booted["psi"], "no /proc/pressure/memory in the guest")
    check(g.booted["vmpressure"], "no cgroup v1 memory.pressure_level in the guest")
    status, out = g.run("cat /sys/class/virtio-ports/*/name")
    check(guestlib.PORT_NAME in out, "virtio port %s not found: %r" % (guestlib.PORT_NAME, out))

    qmp = g.observer()
    check(qmp.actual() == 256 * MIB, "balloon actual is not the VM size at boot")
    before = g.mem_total_kb()
    qmp.execute("balloon", {"value": 160 * MIB})
    guestlib.wait_for(lambda: 160 * MIB in qmp.balloon_changes(), 30, "BALLOON_CHANGE to 160M")
    after = guestlib.wait_for(lambda: (lambda kb: kb if kb < before - 80 * 1024 else 0)(
        g.mem_total_kb()), 30, "MemTotal to fall")
    log("balloon 256M -> 160M: MemTotal %d kB -> %d kB" % (before, after))

    status, out = g.run("workload alloc --mib 40 --hold 0.2")
    check(status == 0 and "workload: done" in out, "workload failed: %d %r" % (status, out))
    check(g.oom_kills() == 0, "unexpected OOM kill")

    status, out = g.run("workload alloc --mib 200", timeout=180)
    log("workload of 200 MiB in a 160 MiB guest: status %d" % status)
    check(status == 137, "a workload larger than the guest was not killed (status %d)" % status)
    g.console.wait(r"BELLOWS OOM-KILL .*workload", 30, g.boot_mark)
    check(g.oom_kills() == 1, "expected one OOM-KILL line, saw %d" % g.oom_kills())


# --- the agent in a real guest, the test standing in for bellowsd ---

def is_type(t):
    return lambda f: f.get("type") == t


@test("agent")
def agent_channel(env):
    """bellows-agent in a real guest: hello on connect, reports at the welcome's interval,
    pressure frames from the guest kernel while a workload exhausts its memory (before the
    OOM kill), a new hello with a new boot_id when the agent restarts, and a hello again
    when the host end reconnects."""
    g = env.guest("agent", mem_mib=256)
    g.start()
    log("booted in %.1fs" % g.wait_ready())
    ch = guestlib.Channel(g.channel_path)
    hello = ch.wait(is_type("hello"), 30, "hello")
    log("hello: %s" % hello)
    check(set(hello["sources"]) == {"vmpressure", "psi"},
          "agent runs sources %s, wanted vmpressure and psi" % hello["sources"])
    ch.send({"v": 1, "type": "welcome", "report_interval_ms": 1000, "levels": []})
    # The first report may still be on the agent's own schedule; time the next two.
    ch.wait(is_type("report"), 15, "a report")
    r1 = ch.wait(is_type("report"), 15, "a second report")
    r2 = ch.wait(is_type("report"), 15, "a third report")
    check(r2["seq"] > r1["seq"], "report seq did not increase")
    gap = (r2["mono_ns"] - r1["mono_ns"]) / 1e9
    check(0.5 <= gap <= 2.5, "reports %.1fs apart, the welcome asked for 1s" % gap)

    # 400 MiB in a 256 MiB guest without swap: the kernel reclaims, stalls, then kills.
    mark = g.console.mark()
    g.start_background("workload alloc --mib 400 --rate 40")
    p = ch.wait(lambda f: f.get("type") == "pressure" and f["level"] in ("medium", "critical"),
                60, "a medium or critical pressure frame")
    seen_at = time.monotonic()
    log("pressure: level %s source %s, MemAvailable %d kB" % (p["level"], p["source"],
                                                              p["mem"]["mem_available_kb"]))
    check(p["mem"]["mem_available_kb"] < 64 * 1024,
          "pressure frame's snapshot says %d kB available" % p["mem"]["mem_available_kb"])
    g.console.wait(r"BELLOWS OOM-KILL", 120, mark)
    levels = {}
    for _, f in ch.frames:
        if f.get("type") == "pressure":
            key = "%s/%s" % (f["source"], f["level"])
            levels[key] = levels.get(key, 0) + 1
    log("pressure frames until the OOM kill: %s (the host had the first %.1fs before the kill)"
        % (levels, time.monotonic() - seen_at))

    # The agent restarts (guest /init respawns it): a new hello with a new boot_id.
    g.run("kill $(pidof bellows-agent)")
    g.console.wait(r"BELLOWS AGENT-START", 30, mark)
    hello2 = ch.wait(is_type("hello"), 30, "hello after the agent restarted")
    check(hello2["boot_id"] != hello["boot_id"], "restarted agent kept its boot_id")
    ch.send({"v": 1, "type": "welcome", "report_interval_ms": 1000, "levels": []})
    ch.wait(is_type("report"), 15, "a report from the restarted agent")

    # The host end goes away and comes back (a daemon restart): hello again, same run.
    # The gap stands for a daemon restart. A virtio port cannot show the guest a hang-up
    # that is over before the agent runs again (the port's POLLHUP is already clear), so
    # an instant reconnect may get reports without a new hello; bellowsd copes with that.
    ch.close()
    time.sleep(2)
    ch = guestlib.Channel(g.channel_path)
    hello3 = ch.wait(is_type("hello"), 30, "hello after the host reconnected")
    check(hello3["boot_id"] == hello2["boot_id"], "boot_id changed without an agent restart")
    ch.close()


# --- bellowsd against real guests ---

# Guest of 512 MiB ballooned down to 160 MiB (about 128 MiB MemTotal, 100 MiB free) with
# 64 MiB of swap, then asked for 200 MiB at 20 MiB/s: more than memory and swap together,
# so it fits only if bellowsd gives memory back. Swap is what real guests have and what
# makes the kernel's pressure signals come early: without it (nothing to reclaim) the
# kernel says critical only with 5-8 MiB left, and whether a 1-2 s round trip under TCG
# beats the OOM killer is luck (measured: lost always at 20 MiB/s, sometimes at 5-8).
GROW_MEM, GROW_START, GROW_FLOOR, GROW_SWAP = 512, 160, "128M", 64
GROW_COMMAND = "workload alloc --mib 200 --rate 20 --hold 1"


def moves(sizes):
    """The non-zero steps between consecutive balloon sizes."""
    return [b - a for a, b in zip(sizes, sizes[1:]) if b != a]


def reversals(sizes):
    """How often the balloon changed direction: the thrash count."""
    m = moves(sizes)
    return sum(1 for a, b in zip(m, m[1:]) if (a > 0) != (b > 0))


def mib(sizes):
    return [s // MIB for s in sizes]


def managed_guest(env, name, mem_mib, start_mib=None, swap_mib=GROW_SWAP, **kw):
    """Boot a guest and, when start_mib is given, balloon it there before bellowsd starts
    (the memory the host took back earlier). Observer events are cleared afterwards, so
    every BALLOON_CHANGE the test sees later comes from bellowsd."""
    g = env.guest(name, mem_mib=mem_mib, swap_mib=swap_mib, **kw)
    g.start()
    log("%s booted in %.1fs" % (name, g.wait_ready()))
    balloon_to(g, start_mib)
    return g


def balloon_to(g, size_mib):
    """Balloon the guest to size_mib through the observers' monitor; return once QEMU has
    reported that exact size in a BALLOON_CHANGE (they are rate-limited to one a second,
    so a late one would otherwise look like a later move), then forget the events."""
    qmp = g.observer()
    if size_mib is not None and size_mib != g.mem_mib:
        qmp.execute("balloon", {"value": size_mib * MIB})
        guestlib.wait_for(lambda: size_mib * MIB in qmp.balloon_changes(), 60,
                          "%s's balloon at %d MiB" % (g.name, size_mib))
    qmp.poll_events(0)
    qmp.events.clear()


def calm_host(env):
    """A /proc for bellowsd's host readings that says the host has plenty of memory and no
    pressure. These tests are about guest pressure; the machine running them is shared
    (other tests, other guests) and its real PSI would make bellowsd reclaim at random."""
    root = os.path.join(env.tmp, "host-proc")
    os.makedirs(os.path.join(root, "pressure"), exist_ok=True)
    with open(os.path.join(root, "pressure", "memory"), "w") as f:
        f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    with open(os.path.join(root, "meminfo"), "w") as f:
        f.write("MemTotal:       16777216 kB\nMemFree:        12582912 kB\n"
                "MemAvailable:   12582912 kB\n")
    return root


def start_daemon(env, guests, floors, policy=None, dry_run=False, extra=None):
    """Write the configuration and start bellowsd; wait until QEMU shows it connected to
    every guest's QMP socket and channel, and bellowsd has each agent's hello (the agent
    retries its port every 2 s at most: a workload started before that ran unwatched).
    Returns the process."""
    config = os.path.join(env.tmp, "bellowsd.conf")
    env.control = os.path.join(env.tmp, "control.sock")
    daemon = {"control_socket": env.control, "log_level": "debug",
              "dry_run": "true" if dry_run else "false", "proc_dir": calm_host(env)}
    daemon.update(extra or {})
    guestlib.write_config(config, guests, settings={g.name: {"floor": floors[g.name]}
                                                    for g in guests},
                          daemon=daemon, policy=policy)
    env.daemon_log = os.path.join(env.tmp, "bellowsd.log")
    out = open(env.daemon_log, "a")
    proc = subprocess.Popen([env.args.bellowsd, "--config", config], stdout=out,
                            stderr=subprocess.STDOUT)
    out.close()
    env.procs.append(proc)
    env.daemon = proc
    for g in guests:
        wait_daemon_connected(env, g)
        wait_agent_hello(env, g)
    return proc


def wait_agent_hello(env, g, timeout=30):
    if not env.args.bellowsctl:
        return
    guestlib.wait_for(lambda: ctl_guest(env, g.name)["agent"], timeout,
                      "the agent's hello in %s" % g.name)


def wait_daemon_connected(env, g, timeout=30):
    def connected():
        if env.daemon.poll() is not None:
            raise Failure("bellowsd exited with %s" % env.daemon.returncode)
        c = g.host_connected()
        return c["qmp"] and c["channel"]
    guestlib.wait_for(connected, timeout, "bellowsd to connect to %s" % g.name)


def ctl_guest(env, name):
    """The guest's entry in `bellowsctl --json list` (docs/control.md), or None when
    bellowsctl is not built."""
    if not env.args.bellowsctl:
        return None
    out = subprocess.run([env.args.bellowsctl, "--socket", env.control, "--json", "list"],
                         stdout=subprocess.PIPE, text=True, timeout=10)
    check(out.returncode == 0, "bellowsctl list failed (%d)" % out.returncode)
    for entry in json.loads(out.stdout)["guests"]:
        if entry["name"] == name:
            return entry
    raise Failure("bellowsctl list has no guest %s" % name)


def ctl_show(env, name):
    """The guest as `bellowsctl --json show` gives it (docs/control.md), or None when
    bellowsctl is not built."""
    if not env.args.bellowsctl:
        return None
    out = subprocess.run([env.args.bellowsctl, "--socket", env.control, "--json", "show", name],
                         stdout=subprocess.PIPE, text=True, timeout=10)
    check(out.returncode == 0, "bellowsctl show %s failed (%d)" % (name, out.returncode))
    return json.loads(out.stdout)["guest"]


def ctl_moves(env, name):
    """The guest's recent moves as bellowsd recorded them, oldest first, or None when
    bellowsctl is not built."""
    shown = ctl_show(env, name)
    return None if shown is None else list(reversed(shown["decisions"]))


def run_workload(g, command, timeout):
    """Run the workload in the guest; returns (exit status, 'workload: done' line or '')."""
    status, out = g.run(command, timeout=timeout)
    # Anywhere in a line: another writer's unfinished line may stand before it.
    done = re.findall(r"workload: done.*", out)
    return status, (done[-1].strip() if done else "")


def worst_mib_ms(done_line):
    m = re.search(r"worst_mib_ms=(\d+)", done_line)
    return int(m.group(1)) if m else None


def grow_under(env, dry_run):
    g = managed_guest(env, "grow", GROW_MEM, GROW_START)
    start_daemon(env, [g], {"grow": GROW_FLOOR}, dry_run=dry_run)
    status, done = run_workload(g, GROW_COMMAND, timeout=180)
    sizes = [GROW_START * MIB] + g.observer().balloon_changes()
    log("%s: workload status %d, %s; balloon (MiB) %s; OOM kills %d"
        % ("advisory" if dry_run else "active", status, done or "not done", mib(sizes),
           g.oom_kills()))
    return g, status, done, sizes


@test("agent", "bellowsd")
def pressure_deflate(env):
    """(1) A guest ballooned down runs a workload that needs more than the balloon leaves
    it: the agent reports the guest kernel's pressure, bellowsd deflates, and the workload
    finishes with no OOM kill."""
    g, status, done, sizes = grow_under(env, dry_run=False)
    check(max(sizes) >= GROW_START * MIB + 64 * MIB,
          "bellowsd did not deflate: balloon sizes %s MiB" % mib(sizes))
    check(status == 0 and done, "workload did not finish (status %d)" % status)
    check(g.oom_kills() == 0, "the guest OOM-killed %d processes" % g.oom_kills())
    check(all(m > 0 for m in moves(sizes)), "balloon moved down under pressure: %s" % mib(sizes))
    c = ctl_guest(env, "grow")
    if c is not None:
        log("bellowsctl: counters %s, last move %s" % (c["counters"], c["last_move"]))
        check(c["counters"]["pressure_events"] > 0, "bellowsd counted no pressure event")
        check(c["last_move"] and c["last_move"]["action"] == "deflate",
              "bellowsd's last move is not a deflate: %s" % c["last_move"])


@test("agent", "bellowsd")
def pressure_advisory(env):
    """(1, advisory) The same run with bellowsd --dry-run: no balloon moves, and the guest
    shows what the active run prevented: an OOM kill, or at least a long stall."""
    g, status, done, sizes = grow_under(env, dry_run=True)
    check(not moves(sizes), "advisory mode moved the balloon: %s MiB" % mib(sizes))
    stall = worst_mib_ms(done)
    check(status == 137 or g.oom_kills() > 0 or (stall is not None and stall >= 500),
          "advisory run shows neither an OOM kill nor a stall (status %d, %s)" % (status, done))
    c = ctl_guest(env, "grow")
    if c is not None:
        log("bellowsctl: last move %s" % c["last_move"])
        check(c["last_move"] and c["last_move"]["action"] == "deflate"
              and c["last_move"]["result"] == "advisory",
              "advisory mode did not record the deflate it would have made: %s" % c["last_move"])


@test("agent", "bellowsd")
def idle_inflate(env):
    """(2) An idle guest is inflated step by step toward its floor, and never below it."""
    floor = 256
    g = managed_guest(env, "idle", 512)
    policy = {"quiet_ms": "3s", "inflate_interval_ms": "2s", "inflate_step_bytes": "32M"}
    start_daemon(env, [g], {"idle": "%dM" % floor}, policy=policy)
    qmp = g.observer()
    guestlib.wait_for(lambda: qmp.actual() <= (floor + 1) * MIB, 120,
                      "the balloon to reach the floor (now %d MiB)" % (qmp.actual() // MIB))
    # Stay and watch: three more inflate intervals must not take it lower.
    qmp.poll_events(6)
    sizes = [512 * MIB] + qmp.balloon_changes()
    log("balloon (MiB): %s" % mib(sizes))
    check(min(sizes) >= floor * MIB, "balloon went below the floor: %s" % mib(sizes))
    check(all(m < 0 for m in moves(sizes)), "an idle guest's balloon moved up: %s" % mib(sizes))
    plateaus = sorted(set(s // MIB for s in sizes), reverse=True)
    check(len(plateaus) >= 4, "not step by step: sizes %s" % plateaus)
    check(qmp.actual() >= floor * MIB, "actual below the floor at the end")


@test("agent", "bellowsd", "bellowsctl")
def autodeflate_inflate(env):
    """(2b) A guest whose balloon deflates on its own under OOM (QEMU's deflate-on-oom,
    libvirt's autodeflate) counts the balloon's pages as used: its MemTotal stays whole.
    bellowsd sees that and walks it down to what it uses, as any idle guest, instead of
    stopping where its MemTotal - MemAvailable, grown by the balloon, meets the balloon
    (about 300 MiB of this 512 MiB guest). Then the walked-down guest runs short, and is
    served as any other: its kernel's pressure gets it memory, with no OOM kill, and
    nothing is taken back while it holds what it took."""
    g = managed_guest(env, "autodeflate", 512, balloon_props="deflate-on-oom=on")
    policy = {"quiet_ms": "3s", "inflate_interval_ms": "2s", "inflate_step_bytes": "32M"}
    start_daemon(env, [g], {"autodeflate": "64M"}, policy=policy)
    qmp = g.observer()
    # The walk ends where the guest's need stops it (`at-floor`: its floor or what it uses
    # with its buffer), under 200 MiB; then three more inflate intervals must neither take
    # nor give. (The walk may rest on the way: the guest is told from a snapshot taken
    # while the balloon is still, which a walk with a step every 2 s does not leave.)
    def walked():
        last = ctl_guest(env, g.name)["last_decision"] or {}
        return last.get("reason") == "at-floor" and qmp.actual() <= 200 * MIB
    guestlib.wait_for(walked, 180, "the walk to end under 200 MiB", interval=0.5)
    qmp.poll_events(6)
    sizes = [512 * MIB] + qmp.balloon_changes()
    entry = ctl_guest(env, g.name)
    log("balloon (MiB): %s; MemTotal %d MiB, MemAvailable %d MiB; counted as used: %s"
        % (mib(sizes), entry["mem_total"] // MIB, entry["mem_available"] // MIB,
           entry["balloon_counted_as_used"]))
    check(entry["balloon_counted_as_used"], "bellowsd did not see the balloon counted as used")
    check(entry["mem_total"] > qmp.actual(),
          "the guest's MemTotal shrank with the balloon: not a deflate-on-oom guest")
    check(all(m < 0 for m in moves(sizes)), "the balloon moved up: %s" % mib(sizes))
    check(min(sizes) >= 64 * MIB, "below the floor: %s" % mib(sizes))
    shown = subprocess.run([env.args.bellowsctl, "--socket", env.control, "show", g.name],
                           stdout=subprocess.PIPE, text=True, timeout=10).stdout
    check("balloon: counted as used in the guest" in shown,
          "bellowsctl show does not say so:\n%s" % shown)
    # show's sizing agrees with where the walk ended: at what the guest needs with its
    # buffer (or its floor), within the dead band (16 MiB) and what MemAvailable moved
    # since (docs/control.md, "SIZING"). Read the usual way (MemTotal 470, MemAvailable
    # about 21 MiB) it would be about 540 MiB.
    z = ctl_show(env, g.name)["sizing"]
    log("sizing: %s" % z)
    check(z["used"] is not None and z["need"] is not None, "show has no need: %s" % z)
    check(abs(qmp.actual() - max(z["need"], 64 * MIB)) <= 24 * MIB,
          "the walk did not end at its need: %d MiB, need %d MiB"
          % (qmp.actual() // MIB, z["need"] // MIB))

    # Running short: 250 MiB at 50 MiB/s where about 96 MiB are left. The guest's driver
    # deflates on its own at OOM (measured without bellowsd: 96 -> 265 MiB, no OOM kill),
    # so what is checked is bellowsd's part: it gives on the kernel's pressure, and its
    # reading of this guest's use (actual - MemAvailable) takes nothing back meanwhile.
    before = ctl_moves(env, g.name)
    seen = before[-1]["seq"] if before else 0
    start = qmp.actual()
    qmp.poll_events(0)
    qmp.events.clear()
    status, done = run_workload(g, "workload alloc --mib 250 --rate 50 --hold 5", timeout=150)
    sizes = [start] + qmp.balloon_changes()
    ours = [m for m in ctl_moves(env, g.name) if m["seq"] > seen]
    log("running short: workload status %d, %s; balloon (MiB) %s; OOM kills %d; "
        "bellowsd's moves %s" % (status, done or "not done", mib(sizes), g.oom_kills(),
                                 [(m["action"], m["reason"], m["to"] // MIB) for m in ours]))
    check(status == 0 and done, "the workload did not finish (status %d)" % status)
    check(g.oom_kills() == 0, "the guest OOM-killed %d processes" % g.oom_kills())
    check(any(m["action"] == "deflate" and m["reason"] in ("critical", "medium") for m in ours),
          "bellowsd gave nothing on the guest's pressure")
    check(not any(m["action"] == "inflate" for m in ours),
          "bellowsd took memory from the guest while it ran short")
    check(all(m > 0 for m in moves(sizes)),
          "the balloon moved down while the guest ran short: %s" % mib(sizes))


@test("agent", "bellowsd")
def burst_no_thrash(env):
    """(3) Sudden bursts of memory demand, separated by quiet gaps longer than quiet_ms:
    the burst of pressure events the guest kernel gives is answered by fewer deflates than
    events (not one per event), and the balloon does not go back and forth (zero
    reversals in BALLOON_CHANGE from the first deflate on)."""
    g = managed_guest(env, "burst", GROW_MEM, GROW_START)
    # Quick inflates are allowed in principle (quiet 3 s, a step every 2 s), so only the
    # policy's hysteresis (deflate cooldown, flip backoff) stands between the gaps and thrash.
    policy = {"quiet_ms": "3s", "inflate_interval_ms": "2s", "inflate_step_bytes": "32M",
              "deflate_cooldown_ms": "60s"}
    start_daemon(env, [g], {"burst": GROW_FLOOR}, policy=policy)
    # Each burst touches 150 MiB as fast as it can: with about 100 MiB free and 64 MiB of
    # swap it fits even before bellowsd answers, but the kernel reclaims hard for it and
    # says so many times. (Paced at 20 MiB/s the first burst often squeezed out a single
    # event, after bellowsd's first quiet inflate: no burst of events to speak of.)
    status, done = run_workload(g, "workload alloc --mib 150 --hold 1 --repeat 3 --pause 5",
                                timeout=240)
    g.observer().poll_events(4)
    sizes = [GROW_START * MIB] + g.observer().balloon_changes()
    first_up = next(i for i, (a, b) in enumerate(zip(sizes, sizes[1:])) if b > a) \
        if max(sizes) > sizes[0] else None
    log("bursts: status %d, %s; balloon (MiB) %s; OOM kills %d"
        % (status, done or "not done", mib(sizes), g.oom_kills()))
    check(first_up is not None, "bellowsd never deflated for the bursts: %s" % mib(sizes))
    after = sizes[first_up:]
    check(reversals(after) == 0, "balloon thrashed: %d reversals in %s MiB"
          % (reversals(after), mib(after)))
    check(status == 0 and g.oom_kills() == 0, "bursts were OOM-killed (status %d)" % status)
    c = ctl_guest(env, "burst")
    if c is not None:
        log("bellowsctl: counters %s" % c["counters"])
        # bellowsd's own record of its moves: BALLOON_CHANGE also reports where a move had
        # got to when QEMU sent it, so its steps are not the daemon's moves.
        made = ctl_moves(env, "burst")
        log("bellowsd's moves: %s" % ", ".join("%s %d->%d MiB (%s)" % (
            m["action"], m["from"] // MIB, m["to"] // MIB, m["reason"]) for m in made))
        deflates = sum(1 for m in made if m["action"] == "deflate")
        check(c["counters"]["pressure_events"] > deflates,
              "not fewer deflates (%d) than pressure events (%d): one deflate per event, "
              "or no burst to speak of" % (deflates, c["counters"]["pressure_events"]))


@test("agent", "bellowsd")
def qemu_restart(env):
    """(4) QEMU restarts under bellowsd: the daemon reconnects to the new QMP socket and
    channel, does not move the new balloon from what it knew of the old one (no blind
    move), and then manages the guest again (deflates it under pressure)."""
    g = managed_guest(env, "restart", GROW_MEM, GROW_START)
    start_daemon(env, [g], {"restart": GROW_FLOOR})
    # Give the first incarnation memory, so bellowsd has a target it could wrongly reuse.
    status, _ = run_workload(g, GROW_COMMAND, timeout=180)
    before = g.observer().balloon_changes()
    log("first run: status %d, balloon (MiB) %s" % (status, mib([GROW_START * MIB] + before)))
    check(before and max(before) > GROW_START * MIB, "no deflate before the restart")

    g.stop()
    g.start()
    log("QEMU restarted, guest up in %.1fs" % g.wait_ready())
    wait_daemon_connected(env, g, timeout=60)
    qmp = g.observer()
    qmp.poll_events(8)
    after = qmp.balloon_changes()
    log("after the restart: actual %d MiB, BALLOON_CHANGE %s" % (qmp.actual() // MIB, mib(after)))
    check(not after, "bellowsd moved the fresh balloon without cause: %s MiB" % mib(after))
    check(qmp.actual() == GROW_MEM * MIB, "the new guest is not at its full size")
    c = ctl_guest(env, "restart")
    if c is not None:
        log("bellowsctl: balloon %s, counters %s" % (c["balloon"], c["counters"]))
        check(c["counters"]["qmp_connects"] >= 2 and c["counters"]["channel_connects"] >= 2,
              "bellowsd did not count the reconnects")
        check(c["balloon"]["actual"] == GROW_MEM * MIB,
              "bellowsd still believes the old balloon size: %s" % c["balloon"])

    balloon_to(g, GROW_START)
    status, done = run_workload(g, GROW_COMMAND, timeout=180)
    sizes = [GROW_START * MIB] + qmp.balloon_changes()
    log("second run: status %d, %s; balloon (MiB) %s" % (status, done, mib(sizes)))
    check(max(sizes) >= GROW_START * MIB + 64 * MIB, "no deflate after the restart: %s" % mib(sizes))
    check(status == 0 and g.oom_kills() == 0, "workload failed after the restart")


@test("agent", "bellowsd")
def agent_restart(env):
    """(5) The agent restarts inside a managed guest: bellowsd answers its new hello (the
    agent logs the welcome), keeps the channel, and acts on the new agent's pressure."""
    g = managed_guest(env, "agentrs", GROW_MEM, GROW_START)
    mark = g.boot_mark
    start_daemon(env, [g], {"agentrs": GROW_FLOOR})
    g.console.wait(r"bellows-agent: welcome", 30, mark)
    mark = g.console.mark()
    g.run("kill $(pidof bellows-agent)")
    g.console.wait(r"BELLOWS AGENT-START", 30, mark)
    g.console.wait(r"bellows-agent: welcome", 30, mark)
    check(g.host_connected()["channel"], "bellowsd's channel dropped with the agent")
    c = ctl_guest(env, "agentrs")
    if c is not None:
        check(c["counters"]["channel_connects"] == 1,
              "the host end reconnected: %d connects" % c["counters"]["channel_connects"])
    status, done = run_workload(g, GROW_COMMAND, timeout=180)
    sizes = [GROW_START * MIB] + g.observer().balloon_changes()
    log("after the agent restart: status %d, %s; balloon (MiB) %s" % (status, done, mib(sizes)))
    check(max(sizes) >= GROW_START * MIB + 64 * MIB, "no deflate after the agent restarted")
    check(status == 0 and g.oom_kills() == 0, "workload failed after the agent restarted")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--agent")
    p.add_argument("--bellowsd")
    p.add_argument("--bellowsctl")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("test", choices=sorted(TESTS))
    args = p.parse_args()
    if args.agent and not is_static(args.agent):
        log("%s is dynamically linked, the guest cannot run it (configure with "
            "-Dstatic_agent=true)" % args.agent)
        args.agent = None
    missing = [w for w in TESTS[args.test].needs if not getattr(args, w)]
    if missing:
        log("SKIP: not built yet: %s" % ", ".join(missing))
        return 77
    env = Env(args)
    started = time.monotonic()
    result = "FAILED"
    try:
        TESTS[args.test](env)
        result = "passed"
    except (Failure, guestlib.GuestError) as e:
        log("FAIL: %s" % e)
    finally:
        if result == "FAILED":
            for g in env.guests:
                log("--- console of %s (last 3000 chars) ---\n%s"
                    % (g.name, g.console.text()[-3000:]))
            if env.daemon_log:
                with open(env.daemon_log) as f:
                    log("--- bellowsd log (last 60 lines) ---\n%s" % "".join(f.readlines()[-60:]))
        env.close(keep=args.keep or result == "FAILED")
    log("%s %s in %.0fs" % (args.test, result, time.monotonic() - started))
    return 0 if result == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
