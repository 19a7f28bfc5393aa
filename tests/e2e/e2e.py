#!/usr/bin/env python3
"""bellows end-to-end tests: real guests under QEMU (TCG), the real agent inside them, the
real bellowsd on the host. One test per run, named on the command line; meson declares
each as its own test in the 'qemu' suite (tests/e2e/meson.build). docs/testing.md says
what each one proves.

usage: e2e.py --source DIR --build DIR --workload EXE [--agent EXE] [--bellowsd EXE]
              [--bellowsctl EXE] TEST
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import guestlib  # noqa: E402
from guestlib import MIB, Guest  # noqa: E402

TESTS = {}


def test(fn):
    TESTS[fn.__name__.replace("_", "-")] = fn
    return fn


class Failure(Exception):
    pass


class Skip(Exception):
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
        if args.agent and not is_static(args.agent):
            log("%s is dynamically linked, the guest cannot run it (configure with "
                "-Dstatic_agent=true)" % args.agent)
            args.agent = None
        image_dir = os.path.join(args.build, "guest")
        cmd = [os.path.join(args.source, "scripts", "guest-image"), "--workload", args.workload]
        if args.agent:
            cmd += ["--agent", args.agent]
        out = subprocess.run(cmd + [image_dir], check=True, stdout=subprocess.PIPE,
                             text=True).stdout.split()
        self.image = (out[0], out[1])

    def guest(self, name, **kw):
        g = Guest(name, os.path.join(self.tmp, name), self.image, **kw)
        self.guests.append(g)
        return g

    def need(self, *what):
        missing = [w for w in what if not getattr(self.args, w)]
        if missing:
            raise Skip("not built yet: %s" % ", ".join(missing))

    def close(self, keep):
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        for g in self.guests:
            g.stop()
        if keep:
            log("run directory kept: %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# --- infrastructure: the image, /init, the workload, QMP ballooning ---

@test
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
    g.console.wait(r"^BELLOWS OOM-KILL .*workload", 30, g.boot_mark)
    check(g.oom_kills() == 1, "expected one OOM-KILL line, saw %d" % g.oom_kills())


# --- the agent in a real guest, the test standing in for bellowsd ---

def is_type(t):
    return lambda f: f.get("type") == t


@test
def agent_channel(env):
    """bellows-agent in a real guest: hello on connect, reports at the welcome's interval,
    pressure frames from the guest kernel while a workload exhausts its memory (before the
    OOM kill), a new hello with a new boot_id when the agent restarts, and a hello again
    when the host end reconnects."""
    env.need("agent")
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
    g.console.wait(r"^BELLOWS OOM-KILL", 120, mark)
    levels = {}
    for _, f in ch.frames:
        if f.get("type") == "pressure":
            key = "%s/%s" % (f["source"], f["level"])
            levels[key] = levels.get(key, 0) + 1
    log("pressure frames until the OOM kill: %s (first one %.1fs before the host saw it)"
        % (levels, time.monotonic() - seen_at))

    # The agent restarts (guest /init respawns it): a new hello with a new boot_id.
    g.run("kill $(pidof bellows-agent)")
    g.console.wait(r"^BELLOWS AGENT-START", 30, mark)
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
    env = Env(args)
    started = time.monotonic()
    result = "FAILED"
    try:
        TESTS[args.test](env)
        result = "passed"
    except Skip as e:
        result = "skipped"
        log("SKIP: %s" % e)
    except (Failure, guestlib.GuestError) as e:
        log("FAIL: %s" % e)
    finally:
        if result == "FAILED":
            for g in env.guests:
                log("--- console of %s (last 3000 chars) ---\n%s"
                    % (g.name, g.console.text()[-3000:]))
        env.close(keep=args.keep or result == "FAILED")
    log("%s %s in %.0fs" % (args.test, result, time.monotonic() - started))
    return {"passed": 0, "skipped": 77}.get(result, 1)


if __name__ == "__main__":
    sys.exit(main())
