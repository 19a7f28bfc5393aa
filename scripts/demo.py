#!/usr/bin/env python3
"""The body of scripts/demo (which installs and builds first): three real guests, bellowsd,
a live view for about a minute, a summary; everything started is stopped at the end
(with --stay, only when asked: Ctrl-C). bellowsd serves its dashboard meanwhile; its
address is printed in every frame and in the summary.
Each guest has 64 MiB of swap, as real guests do: the kernel then reclaims before it
runs out, and its PSI stall figures move (without swap they stay 0 until the OOM kill).

  idle    512 MiB, nothing runs: bellowsd takes memory back step by step, down to its floor
  grower  ballooned down to 224 MiB, then a program whose demand grows to 360 MiB:
          the guest's kernel reports pressure and bellowsd gives memory back at once
  bursty  ballooned down to 320 MiB, then 200 MiB bursts every few seconds: bellowsd
          deflates once and holds (hysteresis), no back-and-forth
While grower and bursty are still quiet (their first burst fits), bellowsd takes a step or
two from them as well: the one reversal the summary counts for each is that, then the
deflate when their kernel says it hurts.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, HERE)
import guestlib  # noqa: E402
from guestlib import MIB  # noqa: E402

# name, memory (MiB), balloon size set before bellowsd starts (MiB), what it runs and when
SWAP_MIB = 64
GUESTS = [
    ("idle", 512, 512, None),
    ("grower", 512, 224, (5, "workload alloc --mib 360 --rate 12 --hold 10")),
    ("bursty", 512, 320, (8, "workload alloc --mib 200 --hold 2 --repeat 6 --pause 5")),
]
FLOOR = "192M"
# Quicker than the production defaults so a minute shows every kind of move.
POLICY = {
    "quiet_ms": "10s",
    "inflate_interval_ms": "2s",
    "inflate_step_bytes": "32M",
    "deflate_cooldown_ms": "30s",
}


def dashboard_port(wanted=8466):
    """bellowsd's default port when it is free here, else one the kernel finds free."""
    for port in (wanted, 0):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    return wanted


def programs(build):
    paths = {
        "agent": os.path.join(build, "guest-agent", "bellows-agent"),
        "workload": os.path.join(build, "tests", "workload", "workload"),
        "bellowsd": os.path.join(build, "host-daemon", "bellowsd"),
        "bellowsctl": os.path.join(build, "ctl", "bellowsctl"),
    }
    missing = [p for p in paths.values() if not os.access(p, os.X_OK)]
    if missing:
        sys.exit("demo: not built: %s" % ", ".join(missing))
    return paths


def last_line(text, prefix):
    lines = [l.strip() for l in text.splitlines() if l.startswith(prefix)]
    return lines[-1] if lines else ""


def ctl(prog, control, *args):
    return subprocess.run([prog["bellowsctl"], "--socket", control] + list(args),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout


def decisions(prog, control):
    """{guest name: "action (reason)"} of bellowsd's latest decision round, holds included."""
    try:
        guests = json.loads(ctl(prog, control, "--json", "list"))["guests"]
    except (ValueError, KeyError, TypeError):
        return {}
    out = {}
    for g in guests:
        d = g.get("last_decision")
        out[g["name"]] = "%s (%s)" % (d["action"], d["reason"]) if d else "-"
    return out


def plateaus(sizes):
    """The sizes a balloon stopped at, in order. BALLOON_CHANGE also reports where a move
    had got to when QEMU sent it (at most one a second): a MiB or two past the size the
    move started from, left out here."""
    path = []
    for s in sizes:
        if not path or abs(s - path[-1]) > 2 * MIB:
            path.append(s)
    return [s // MIB for s in path]


def workload_state(g):
    text = g.console.text(g.boot_mark)
    done = last_line(text, "workload: done")
    if done:
        return done
    now = last_line(text, "workload:")
    return "still running: " + now if now else "no workload"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", required=True)
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("--stay", action="store_true",
                   help="after the summary, keep the guests and bellowsd running (and the "
                        "dashboard live) until Ctrl-C")
    args = p.parse_args()
    prog = programs(args.build)

    image = guestlib.guest_image(os.path.join(HERE, ".."), os.path.join(args.build, "guest"),
                                 workload=prog["workload"], agent=prog["agent"])
    rundir = tempfile.mkdtemp(prefix="bellows-demo-")
    guests = [guestlib.Guest(n, os.path.join(rundir, n), image, mem_mib=m, swap_mib=SWAP_MIB)
              for n, m, _, _ in GUESTS]
    daemon = None
    tty = sys.stdout.isatty()
    try:
        print("demo: booting %d guests under QEMU (TCG, no KVM)..." % len(guests), flush=True)
        times = guestlib.boot_all(guests)
        for g in guests:
            print("demo: %s up in %.1fs" % (g.name, times[g.name]))
        for g, (_, _, start_mib, _) in zip(guests, GUESTS):
            if start_mib != g.mem_mib:
                qmp = g.observer()
                qmp.execute("balloon", {"value": start_mib * MIB})
                # Until QEMU reports the exact size: BALLOON_CHANGE is rate-limited to one a
                # second, and a late one would otherwise be counted as bellowsd's.
                guestlib.wait_for(lambda: start_mib * MIB in qmp.balloon_changes(), 60,
                                  "%s balloon at %d MiB" % (g.name, start_mib))
            g.observer().balloon_changes()  # from here on, events are the daemon's
            g.observer().events.clear()

        config = os.path.join(rundir, "bellowsd.conf")
        control = os.path.join(rundir, "control.sock")
        port = dashboard_port()
        url = "http://127.0.0.1:%d/" % port
        guestlib.write_config(config, guests, settings={g.name: {"floor": FLOOR} for g in guests},
                              daemon={"control_socket": control,
                                      "http_listen": "127.0.0.1:%d" % port}, policy=POLICY)
        daemon_log = open(os.path.join(rundir, "bellowsd.log"), "w")
        daemon = subprocess.Popen([prog["bellowsd"], "--config", config],
                                  stdout=daemon_log, stderr=subprocess.STDOUT)
        guestlib.wait_for(lambda: os.path.exists(control) or daemon.poll() is not None, 30,
                          "bellowsd's control socket")
        if daemon.poll() is not None:
            sys.exit("demo: bellowsd exited (%s), see %s" % (daemon.returncode, daemon_log.name))

        started = time.monotonic()
        pending = {g.name: (g, spec) for g, (_, _, _, spec) in zip(guests, GUESTS) if spec}
        while time.monotonic() - started < args.seconds:
            t = time.monotonic() - started
            for name, (g, (at, command)) in list(pending.items()):
                if t >= at:
                    g.start_background(command)
                    del pending[name]
            view = ctl(prog, control, "list")
            why = decisions(prog, control)
            frame = ["bellows demo  t=%3.0fs of %ds   (bellowsctl list, every second)" % (t, args.seconds),
                     "dashboard: %s   (open it in a browser: live pressure, balloons, decisions)" % url,
                     "", view.rstrip(), "",
                     "bellowsd's latest decision (holds too) and what runs inside each guest:"]
            for g in guests:
                text = g.console.text(g.boot_mark)
                frame.append("  %-7s %-22s %s%s" % (g.name, why.get(g.name, "-"),
                                                    last_line(text, "workload:") or "idle",
                                                    "   OOM kills: %d" % g.oom_kills()
                                                    if g.oom_kills() else ""))
            if tty:
                sys.stdout.write("\033[H\033[2J")
            print("\n".join(frame), flush=True)
            if daemon.poll() is not None:
                sys.exit("demo: bellowsd exited (%s), see %s" % (daemon.returncode, daemon_log.name))
            # One frame a second; the daemon acts on its own events, not on this loop.
            time.sleep(max(0.0, started + t + 1.0 - time.monotonic()))

        print("\nsummary after %ds:" % args.seconds)
        for g, (_, mem, start_mib, _) in zip(guests, GUESTS):
            changes = g.observer().balloon_changes()
            sizes = [start_mib * MIB] + changes
            moves = [b - a for a, b in zip(sizes, sizes[1:]) if b != a]
            ups = sum(1 for m in moves if m > 0)
            downs = sum(1 for m in moves if m < 0)
            reversals = sum(1 for a, b in zip(moves, moves[1:]) if (a > 0) != (b > 0))
            print("  %-7s balloon %3d -> %3d MiB, by way of %s MiB\n"
                  "          BALLOON_CHANGE: %d giving, %d taking, %d reversals; OOM kills: %d\n"
                  "          %s"
                  % (g.name, start_mib, g.observer().actual() // MIB,
                     " ".join(map(str, plateaus(sizes))), ups, downs, reversals, g.oom_kills(),
                     workload_state(g)))
        print("\nwhere to look:\n"
              "  dashboard   %s\n"
              "  metrics     %smetrics   (Prometheus text format)\n"
              "  JSON API    %sapi/v1/guests\n"
              "  terminal    %s --socket %s top"
              % (url, url, url, prog["bellowsctl"], control))
        if args.keep:
            print("  bellowsd log: %s" % daemon_log.name)
        if args.stay:
            print("\ndemo: still running (--stay): the guests idle, bellowsd keeps managing "
                  "them and the dashboard stays live at %s\ndemo: Ctrl-C stops everything"
                  % url, flush=True)
            stop = []
            signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
            try:
                while not stop and daemon.poll() is None:
                    time.sleep(0.5)
            except KeyboardInterrupt:
                pass
            print("demo: stopping")
        return 0
    except guestlib.GuestError as e:
        print("demo: %s" % e, file=sys.stderr)
        return 1
    finally:
        guestlib.stop_process(daemon)
        for g in guests:
            g.stop()
        if args.keep:
            print("demo: run directory kept: %s" % rundir)
        else:
            shutil.rmtree(rundir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
