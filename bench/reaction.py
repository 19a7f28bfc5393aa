#!/usr/bin/env python3
"""Reaction benchmark: how fast a real guest in trouble gets memory.

One real guest (QEMU TCG) with bellows-agent, one bellowsd. The daemon's two sockets go
through timestamping proxies (bench/proxy.py), so every time below is read on the host's
CLOCK_MONOTONIC except the first, the agent's:

  wake      the agent woke on the kernel's notification: the frame's mono_ns, a guest
            CLOCK_MONOTONIC time, mapped to the host clock (below)
  frame_rx  the frame reached the host end of the virtio-serial chardev (channel proxy)
  cmd       the daemon's `balloon` command left for QEMU (QMP proxy)
  change    QEMU's BALLOON_CHANGE event for the move (QMP proxy)

Guest and host clocks are related just before each repetition: over the serial console the
guest prints its CLOCK_MONOTONIC (the "now at N nsecs" line of /proc/timer_list, read by
shell builtins, no fork); the offset is taken at the midpoint of the round trip with the
shortest of several, and its uncertainty is half that round trip (reported).

One repetition: a freshly booted guest, its balloon put at --start MiB through a second QMP
monitor and left to settle for --settle seconds; then a fresh bellowsd starts and connects;
then a workload allocates --mib MiB at once. The first deflate the daemon sends after that
is the reaction; the frame it answers is the last one received before it.

usage: reaction.py --source DIR --build DIR --workload EXE --agent EXE --bellowsd EXE
                   [--reps N] [--keep]
Prints one JSON object per repetition and a summary object (min/median/max) on stdout.
"""

import argparse
import json
import os
import re
import select
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
sys.path.insert(0, HERE)
import guestlib  # noqa: E402
from guestlib import MIB, Guest  # noqa: E402
from proxy import ChannelProxy, QmpProxy  # noqa: E402

SYNC_CMD = b'{ read a; read a; read a; echo "SYNC-$a"; } < /proc/timer_list\n'
SYNC_RE = re.compile(rb"SYNC-now at (\d+) nsecs")


def log(msg):
    print("reaction: %s" % msg, file=sys.stderr, flush=True)


def clock_offset(g, rounds=12):
    """Host minus guest CLOCK_MONOTONIC, in ns, and its uncertainty (half the round trip of
    the best of `rounds` console round trips)."""
    g.console.close()  # take the console socket for ourselves for a moment
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(g.console.sock_path)
    best = None
    try:
        for _ in range(rounds):
            buf = b""
            t1 = time.monotonic_ns()
            s.sendall(SYNC_CMD)
            deadline = time.monotonic() + 10
            m = None
            while m is None and time.monotonic() < deadline:
                if select.select([s], [], [], 0.5)[0]:
                    buf += s.recv(65536)
                    m = SYNC_RE.search(buf)
            t2 = time.monotonic_ns()
            if m is None:
                continue
            rtt = t2 - t1
            if best is None or rtt < best[1]:
                best = ((t1 + t2) // 2 - int(m.group(1)), rtt)
    finally:
        s.close()
    if best is None:
        raise guestlib.GuestError("no clock reading from the guest console")
    return best[0], best[1] // 2


def ms(ns):
    return None if ns is None else round(ns / 1e6, 3)


def summary(reps, key):
    vals = [r[key] for r in reps if r.get(key) is not None]
    if not vals:
        return None
    return {"n": len(vals), "min": min(vals), "median": round(statistics.median(vals), 3),
            "max": max(vals)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--agent", required=True)
    p.add_argument("--bellowsd", required=True)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--mem", type=int, default=512, help="guest size (ceiling), MiB")
    p.add_argument("--start", type=int, default=200, help="balloon before each rep, MiB")
    p.add_argument("--mib", type=int, default=260, help="allocation of each rep, MiB")
    p.add_argument("--settle", type=float, default=8.0)
    p.add_argument("--keep", action="store_true")
    args = p.parse_args()

    image = guestlib.guest_image(args.source, os.path.join(args.build, "guest"),
                                 workload=args.workload, agent=args.agent)
    tmp = tempfile.mkdtemp(prefix="bellows-reaction-")
    reps = []
    oom_kills = 0
    try:
        for i in range(args.reps):
            rep, kills = one_rep(i, args, image, os.path.join(tmp, "rep%d" % i))
            oom_kills += kills
            rep["oom_kills"] = kills
            reps.append(rep)
            print(json.dumps(rep), flush=True)
        keys = ["wake_to_rx_ms", "rx_to_cmd_ms", "wake_to_cmd_ms", "cmd_to_change_ms",
                "wake_to_change_ms", "trigger_to_cmd_ms", "clock_uncertainty_ms"]
        print(json.dumps({"bench": "reaction", "summary": {k: summary(reps, k) for k in keys},
                          "reps": len(reps), "failed": sum(1 for r in reps if "error" in r),
                          "oom_kills": oom_kills}), flush=True)
    finally:
        if args.keep:
            log("run directory kept: %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


def one_rep(i, args, image, rundir):
    """A fresh guest and a fresh bellowsd: the balloon is put at --start before the daemon
    starts, so nothing it did before can shape this repetition."""
    g = Guest("react", os.path.join(rundir, "guest"), image, mem_mib=args.mem)
    daemon = chan = qmp = None
    rep = {"bench": "reaction", "rep": i}
    try:
        g.start()
        rep["boot_s"] = round(g.wait_ready(), 1)
        obs = g.observer()
        obs.execute("balloon", {"value": args.start * MIB})
        guestlib.wait_for(lambda: obs.actual() <= (args.start + 1) * MIB, 60,
                          "balloon at %d MiB" % args.start, interval=0.2)
        time.sleep(args.settle)  # the inflation's own reclaim passes before the daemon looks
        chan = ChannelProxy(os.path.join(rundir, "chan-proxy.sock"), g.channel_path)
        qmp = QmpProxy(os.path.join(rundir, "qmp-proxy.sock"), g.qmp_path)
        conf = os.path.join(rundir, "bellowsd.conf")
        with open(conf, "w") as f:
            f.write("[daemon]\ncontrol_socket = %s\nstate_dir = %s\nlog_level = debug\n\n"
                    "[guest react]\nqmp = %s\nchannel = %s\nfloor = 128M\nceiling = %dM\n"
                    % (os.path.join(rundir, "ctl.sock"), os.path.join(rundir, "state"),
                       qmp.listen_path, chan.listen_path, args.mem))
        dlog = open(os.path.join(rundir, "bellowsd.log"), "w")
        daemon = subprocess.Popen([args.bellowsd, "--config", conf], stdout=dlog,
                                  stderr=subprocess.STDOUT)
        dlog.close()
        guestlib.wait_for(lambda: qmp.queries > 0 and any(
            m.get("type") == "hello" for _, m in chan.snapshot()), 60, "bellowsd to connect")
        time.sleep(2)  # frames the agent queued before the daemon came are handled first
        rep["moves_before_trigger"] = len(qmp.snapshot()[0])
        offset, uncertainty = clock_offset(g)
        rep["clock_uncertainty_ms"] = ms(uncertainty)
        n_frames = len(chan.snapshot())
        n_cmds = len(qmp.snapshot()[0])
        actual_before = obs.actual()
        rep["balloon_before_mib"] = actual_before // MIB
        mark = g.console.mark()
        t_trigger = time.monotonic_ns()
        g.start_background("workload alloc --mib %d --rate 0 --hold 3" % args.mib)

        def reacted():
            cmds = qmp.snapshot()[0][n_cmds:]
            return [c for c in cmds if c[1] and c[1] > actual_before] or None

        try:
            cmds = guestlib.wait_for(reacted, 60, "a deflate", interval=0.005)
        except guestlib.GuestError:
            rep["error"] = "no deflate within 60 s"
            return rep, g.oom_kills()
        t_cmd, target = cmds[0]
        frames = [f for f in chan.snapshot()[n_frames:]
                  if f[1].get("type") in ("pressure", "report") and f[0] <= t_cmd]
        cause = frames[-1] if frames else None
        guestlib.wait_for(lambda: [c for c in qmp.snapshot()[1] if c[0] > t_cmd], 30,
                          "BALLOON_CHANGE", interval=0.005)
        t_change = [c for c in qmp.snapshot()[1] if c[0] > t_cmd][0][0]
        rep.update({"target_mib": target // MIB, "trigger_to_cmd_ms": ms(t_cmd - t_trigger),
                    "cmd_to_change_ms": ms(t_change - t_cmd)})
        if cause:
            t_rx, msg = cause
            wake_host = msg["mono_ns"] + offset
            rep.update({"frame": msg["type"], "level": msg.get("level"),
                        "source": msg.get("source"),
                        "frames_before_cmd": len(frames),
                        "wake_to_rx_ms": ms(t_rx - wake_host),
                        "rx_to_cmd_ms": ms(t_cmd - t_rx),
                        "wake_to_cmd_ms": ms(t_cmd - wake_host),
                        "wake_to_change_ms": ms(t_change - wake_host)})
        g.console.wait(r"workload: (done|allocation failed)|OOM-KILL", 120, mark)
        return rep, g.oom_kills()
    finally:
        guestlib.stop_process(daemon)
        for px in (chan, qmp):
            if px:
                px.stop()
        g.stop()


if __name__ == "__main__":
    sys.exit(main())
