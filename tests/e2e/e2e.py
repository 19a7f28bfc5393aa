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


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    print("e2e: %s" % message, flush=True)


class Env:
    """What a test gets: paths to the built programs, the image, a temp dir, cleanup."""

    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bellows-e2e-")
        self.guests = []
        self.procs = []
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
            log("SKIP: not built yet: %s" % ", ".join(missing))
            sys.exit(77)

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
    ok = False
    started = time.monotonic()
    try:
        TESTS[args.test](env)
        ok = True
    except (Failure, guestlib.GuestError) as e:
        log("FAIL: %s" % e)
    finally:
        for g in env.guests:
            if not ok:
                log("--- console of %s (last 3000 chars) ---\n%s" % (g.name, g.console.text()[-3000:]))
        env.close(keep=args.keep or not ok)
    log("%s %s in %.0fs" % (args.test, "passed" if ok else "FAILED", time.monotonic() - started))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
