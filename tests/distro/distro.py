#!/usr/bin/env python3
"""bellows in a real distribution guest: a stock Debian system (scripts/distro-image:
debootstrap, systemd, udev, cgroup v2 only, Debian's own kernel and initramfs) booted under
QEMU (TCG), the packages built by scripts/build-packages installed into it with dpkg -i, and
the real bellowsd of this build on the host. One scenario per run, named on the command
line; meson declares each as its own test in the 'distro' suite. docs/testing.md says what
each proves.

  distro.py --source DIR --build DIR --workload EXE --bellowsd EXE --bellowsctl EXE
            [--debs DIR] [--keep] agent|packages

Nothing here reads the serial console to synchronise: commands run through the QEMU guest
agent (qemu-ga, its own virtio-serial port, JSON replies matched by id), the agent's frames
are read from the channel between QEMU and bellowsd (a tap the test puts in between), and
balloon moves from QEMU's own events on a monitor of the test's. The console is only
logged, for people reading a failure.
"""

import argparse
import base64
import glob
import json
import os
import random
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.join(HERE, "..", "..", "scripts"))
import guestlib  # noqa: E402
from guestlib import MIB, GuestError, Qmp, stop_process, wait_for  # noqa: E402

PORT_NAME = guestlib.PORT_NAME
QGA_PORT = "org.qemu.guest_agent.0"
TESTS = {}


class Failure(Exception):
    pass


def check(cond, message):
    if not cond:
        raise Failure(message)


def log(message):
    print("distro: %s" % message, flush=True)


def test(fn):
    TESTS[fn.__name__] = fn
    return fn


# --- the QEMU guest agent: the test's command channel into the guest ---

class GuestAgent:
    """A client of qemu-ga on its chardev socket. Replies are matched to requests through
    guest-sync ids, so a reply left over from before a reboot is never taken for another."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def _connect(self):
        if self.sock is None:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.connect(self.path)
            self.sock = s
            self.buf = b""

    def _send(self, msg):
        self._connect()
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def _read(self, deadline):
        """The next JSON reply, or None at the deadline."""
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                return None
            chunk = self.sock.recv(65536)
            if not chunk:
                raise GuestError("qemu-ga socket closed by QEMU")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        line = line.strip(b"\xff").strip()  # 0xff: guest-sync-delimited's marker
        if not line:
            return self._read(deadline)
        try:
            return json.loads(line)
        except ValueError:
            return self._read(deadline)

    def sync(self, timeout):
        """Wait until qemu-ga answers (it starts with the guest's udev), dropping anything
        older. Returns the seconds it took."""
        start = time.monotonic()
        deadline = start + timeout
        while time.monotonic() < deadline:
            ident = random.randrange(1, 2 ** 31)
            self._send({"execute": "guest-sync", "arguments": {"id": ident}})
            attempt = min(deadline, time.monotonic() + 5)
            while True:
                r = self._read(attempt)
                if r is None:
                    break
                if r.get("return") == ident:
                    return time.monotonic() - start
        raise GuestError("qemu-ga did not answer within %.0fs" % timeout)

    def call(self, command, arguments=None, timeout=60):
        msg = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self._send(msg)
        r = self._read(time.monotonic() + timeout)
        if r is None:
            raise GuestError("qemu-ga: no reply to %s within %.0fs" % (command, timeout))
        if "error" in r:
            raise GuestError("qemu-ga %s: %s" % (command, r["error"]))
        return r.get("return")

    def run(self, command, timeout=300):
        """Run a shell command in the guest: (exit status, stdout, stderr)."""
        pid = self.call("guest-exec", {"path": "/bin/sh", "arg": ["-c", command],
                                       "capture-output": True})["pid"]
        deadline = time.monotonic() + timeout
        while True:
            st = self.call("guest-exec-status", {"pid": pid})
            if st["exited"]:
                out = base64.b64decode(st.get("out-data", "")).decode("utf-8", "replace")
                err = base64.b64decode(st.get("err-data", "")).decode("utf-8", "replace")
                return st.get("exitcode", -st.get("signal", 0) or -1), out, err
            if time.monotonic() > deadline:
                raise GuestError("guest command did not finish in %.0fs: %s" % (timeout, command))
            time.sleep(0.2)

    def ok(self, command, timeout=300):
        """Run a command that must succeed; returns its stdout."""
        status, out, err = self.run(command, timeout)
        if status != 0:
            raise Failure("guest command failed (%s): %s\nstdout: %s\nstderr: %s"
                          % (status, command, out.strip(), err.strip()))
        return out

    def reboot(self):
        """systemctl reboot, started and not waited for (qemu-ga goes down with the rest).
        Not guest-shutdown: qemu-ga runs "shutdown -r +0 MESSAGE" for it, which systemd
        hands to logind, and a minimal system has no logind."""
        self.call("guest-exec", {"path": "/bin/systemctl", "arg": ["reboot"]})

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --- the channel between QEMU and bellowsd, watched ---

class ChannelTap(threading.Thread):
    """bellowsd connects here instead of to QEMU's chardev socket; each connection is
    passed through to QEMU's, byte for byte both ways, and the agent's frames (RS, JSON,
    LF: docs/protocol.md) are decoded on the way, so the test sees every hello, pressure
    message and report the real bellowsd gets, without being a party to it."""

    def __init__(self, listen_path, qemu_path):
        super().__init__(daemon=True)
        self.listen_path = listen_path
        self.qemu_path = qemu_path
        self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.lsock.bind(listen_path)
        self.lsock.listen(1)
        self.cond = threading.Condition()
        self.frames = []  # (host monotonic time, dict) from the agent, in order
        self.connections = 0
        self.stopped = False

    def run(self):
        while not self.stopped:
            try:
                if not select.select([self.lsock], [], [], 0.5)[0]:
                    continue
                client, _ = self.lsock.accept()
            except (OSError, ValueError):
                return  # stop() closed the listening socket
            upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                upstream.connect(self.qemu_path)
            except OSError:
                client.close()
                upstream.close()
                continue
            with self.cond:
                self.connections += 1
            self._pump(client, upstream)
            client.close()
            upstream.close()

    def _pump(self, client, upstream):
        buf = b""
        while not self.stopped:
            ready = select.select([client, upstream], [], [], 0.5)[0]
            for s in ready:
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    return
                (upstream if s is client else client).sendall(data)
                if s is upstream:
                    buf += data
                    while b"\n" in buf:
                        frame, buf = buf.split(b"\n", 1)
                        if b"\x1e" not in frame:
                            continue
                        try:
                            msg = json.loads(frame.rsplit(b"\x1e", 1)[1])
                        except ValueError:
                            continue
                        with self.cond:
                            self.frames.append((time.monotonic(), msg))
                            self.cond.notify_all()

    def mark(self):
        with self.cond:
            return len(self.frames)

    def wait(self, predicate, timeout, what, start=0):
        """The first frame at index >= start with predicate(frame): (index, frame)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            i = start
            while True:
                while i < len(self.frames):
                    if predicate(self.frames[i][1]):
                        return i, self.frames[i][1]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise Failure("timed out after %.0fs waiting for %s from the agent"
                                  % (timeout, what))
                self.cond.wait(left)

    def since(self, start):
        with self.cond:
            return [f for _, f in self.frames[start:]]

    def stop(self):
        self.stopped = True
        self.lsock.close()


def is_type(t):
    return lambda f: f.get("type") == t


def kernel_boot_id(hello):
    """The kernel's boot id part of an agent's boot_id ("<kernel boot id>-<random>")."""
    return hello["boot_id"].rsplit("-", 1)[0]


# --- the guest ---

class DistroGuest:
    """QEMU with the distribution image: its own disk (a copy of the base image with the
    packages and the workload in /root), a swap disk, the balloon, the agent's port and
    qemu-ga's port, bellowsd's monitor and one for the test."""

    def __init__(self, rundir, image, mem_mib, append=""):
        self.dir = rundir
        self.vmlinuz, self.initrd, self.disk = image
        self.mem_mib = mem_mib
        self.append = append
        self.proc = None
        p = lambda name: os.path.join(rundir, name)
        self.qmp_path, self.qmp_test_path = p("qmp.sock"), p("qmp-test.sock")
        self.channel_path, self.qga_path = p("channel.sock"), p("qga.sock")
        self.console_path = p("console.log")
        self.swap_path = p("swap.img")
        self.qga = GuestAgent(self.qga_path)
        self._observer = None

    def command_line(self):
        return [
            "qemu-system-x86_64", "-name", "distro", "-accel", "tcg", "-m", str(self.mem_mib),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", self.vmlinuz, "-initrd", self.initrd,
            "-append", "console=ttyS0 root=/dev/vda rw quiet " + self.append,
            "-drive", "if=virtio,format=raw,cache=unsafe,file=" + self.disk,
            "-drive", "if=virtio,format=raw,cache=unsafe,file=" + self.swap_path,
            "-chardev", "file,id=con,path=" + self.console_path, "-serial", "chardev:con",
            "-device", "virtio-balloon-pci,id=balloon0",
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=agent,path=%s,server=on,wait=off" % self.channel_path,
            "-device", "virtserialport,chardev=agent,name=" + PORT_NAME,
            "-chardev", "socket,id=qga,path=%s,server=on,wait=off" % self.qga_path,
            "-device", "virtserialport,chardev=qga,name=" + QGA_PORT,
            "-chardev", "socket,id=qmp0,path=%s,server=on,wait=off" % self.qmp_path,
            "-mon", "chardev=qmp0,mode=control",
            "-chardev", "socket,id=qmp1,path=%s,server=on,wait=off" % self.qmp_test_path,
            "-mon", "chardev=qmp1,mode=control",
        ]

    def start(self):
        with open(self.swap_path, "wb") as f:
            f.truncate(256 * MIB)  # sparse; mkswap in the guest
        self.started_at = time.monotonic()
        qlog = open(os.path.join(self.dir, "qemu.log"), "ab")
        self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                     stdout=qlog, stderr=qlog, start_new_session=True)
        qlog.close()
        wait_for(lambda: self._alive() and os.path.exists(self.qga_path), 30, "QEMU to start")

    def _alive(self):
        if self.proc.poll() is not None:
            raise GuestError("QEMU exited with %s, see %s/qemu.log"
                             % (self.proc.returncode, self.dir))
        return True

    def wait_booted(self, timeout=600):
        """Until qemu-ga answers and systemd says the boot is over; returns seconds."""
        self.qga.sync(timeout)
        left = max(30, timeout - (time.monotonic() - self.started_at))
        # is-system-running --wait returns once the boot job queue is empty.
        status, out, _ = self.qga.run("systemctl is-system-running --wait", timeout=left)
        return time.monotonic() - self.started_at, out.strip()

    def observer(self):
        if self._observer is None:
            self._observer = Qmp(self.qmp_test_path)
        return self._observer

    def chardev_connected(self, label):
        for c in self.observer().execute("query-chardev"):
            if c["label"] == label:
                return not c["filename"].startswith("disconnected:")
        return False

    def stop(self):
        self.qga.close()
        if self._observer is not None:
            self._observer.close()
            self._observer = None
        stop_process(self.proc)


def balloon_down(env, g, size_mib):
    """Balloon the guest down to size_mib through the test's monitor while bellowsd runs.
    Returns the size in bytes it settles at: size_mib when QEMU reports it (BALLOON_CHANGE
    is rate-limited to one a second), or the target of the deflate bellowsd made on the way
    once it is done (its buffer rule gives memory back when what the guest uses needs more
    than size_mib: a CI run's stock guest got 439 MiB back at 396, and the test waited for
    384 until it timed out; or a pressure step, if the guest stalls on the way). Then
    forgets the events."""
    qmp = g.observer()

    def decisions():
        return env.ctl("show", "distro")["guest"].get("decisions") or []

    made = decisions()
    before = made[0]["seq"] if made else 0
    qmp.execute("balloon", {"value": size_mib * MIB})
    settled = {}

    def there():
        if size_mib * MIB in qmp.balloon_changes():
            settled["bytes"] = size_mib * MIB
            return True
        given = [d for d in decisions() if d["seq"] > before]
        if given and given[0]["action"] == "deflate" and given[0]["result"] == "done":
            settled["bytes"] = given[0]["to"]
            return True
        return False

    wait_for(there, 60, "the balloon at %d MiB, or bellowsd's deflate on the way" % size_mib,
             interval=0.5)
    qmp.poll_events(0)
    qmp.events.clear()
    return settled["bytes"]


# --- the environment of one scenario ---

class Env:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bellows-distro-")
        self.guest = None
        self.tap = None
        self.daemon = None
        self.daemon_log = os.path.join(self.tmp, "bellowsd.log")
        self.control = os.path.join(self.tmp, "control.sock")
        debs = glob.glob(os.path.join(args.debs, "bellows-agent_*.deb"))
        debsd = glob.glob(os.path.join(args.debs, "bellowsd_*.deb"))
        self.agent_deb, self.bellowsd_deb = sorted(debs)[-1], sorted(debsd)[-1]
        started = time.monotonic()
        out = subprocess.run(
            [os.path.join(args.source, "scripts", "distro-image"),
             "--include-deps-of", self.bellowsd_deb, os.path.join(args.build, "distro-guest")],
            check=True, stdout=subprocess.PIPE, text=True).stdout.split()
        self.image_seconds = time.monotonic() - started
        self.vmlinuz, self.initrd, self.base = out
        log("image ready in %.1fs: %s" % (self.image_seconds, self.base))

    def make_disk(self):
        """The guest's own disk: a copy of the base image (sparse), with the packages and
        the workload written into /root by debugfs (nothing is mounted)."""
        disk = os.path.join(self.tmp, "disk.img")
        subprocess.run(["cp", "--sparse=always", self.base, disk], check=True)
        cmds = "cd /root\nwrite %s bellows-agent.deb\nwrite %s bellowsd.deb\nwrite %s workload\n" % (
            self.agent_deb, self.bellowsd_deb, self.args.workload)
        r = subprocess.run(["debugfs", "-w", "-f", "-", disk], input=cmds, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        check(r.returncode == 0 and "rror" not in r.stdout, "debugfs: %s" % r.stdout)
        return disk

    def boot(self, mem_mib=1024, append=""):
        disk = self.make_disk()
        self.guest = DistroGuest(self.tmp, (self.vmlinuz, self.initrd, disk), mem_mib, append)
        self.guest.start()
        seconds, state = self.guest.wait_booted()
        log("guest booted in %.1fs (systemd: %s)" % (seconds, state))
        return self.guest

    def start_daemon(self, floor="256M", policy=None):
        """The real bellowsd of this build, on the guest's QMP socket and, through the tap,
        its channel. Waits until QEMU shows both connected."""
        g = self.guest
        tap_path = os.path.join(self.tmp, "tap.sock")
        self.tap = ChannelTap(tap_path, g.channel_path)
        self.tap.start()
        host = calm_host(self.tmp)
        policy = policy or {}
        # state_dir in the run directory: never the host's /var/lib/bellows, whose state
        # another run left (a reversal backoff learned there blocked this run's inflate).
        lines = ["[daemon]", "control_socket = " + self.control, "log_level = debug",
                 "proc_dir = " + host, "state_dir = " + os.path.join(self.tmp, "state"), ""]
        if policy:
            lines += ["[policy]"] + ["%s = %s" % kv for kv in policy.items()] + [""]
        lines += ["[guest distro]", "qmp = " + g.qmp_path, "channel = " + tap_path,
                  "floor = " + floor, "ceiling = %dM" % g.mem_mib, ""]
        config = os.path.join(self.tmp, "bellowsd.conf")
        with open(config, "w") as f:
            f.write("\n".join(lines))
        out = open(self.daemon_log, "a")
        self.daemon = subprocess.Popen([self.args.bellowsd, "--config", config], stdout=out,
                                       stderr=subprocess.STDOUT)
        out.close()

        def connected():
            if self.daemon.poll() is not None:
                raise Failure("bellowsd exited with %s" % self.daemon.returncode)
            return g.chardev_connected("qmp0") and g.chardev_connected("agent")
        wait_for(connected, 120, "bellowsd to connect to the guest's QMP and channel")

    def ctl(self, *args):
        r = subprocess.run([self.args.bellowsctl, "--socket", self.control, "--json"] +
                           list(args), stdout=subprocess.PIPE, text=True, timeout=10)
        check(r.returncode == 0, "bellowsctl %s failed (%d)" % (" ".join(args), r.returncode))
        return json.loads(r.stdout)

    def close(self, keep):
        stop_process(self.daemon)
        if self.tap is not None:
            self.tap.stop()
        if self.guest is not None:
            self.guest.stop()
        if keep:
            log("run directory kept: %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def calm_host(tmp):
    """A /proc for bellowsd's host readings that says the host is at ease: these tests are
    about the guest, and the machine running them is shared (tests/e2e does the same)."""
    root = os.path.join(tmp, "host-proc")
    os.makedirs(os.path.join(root, "pressure"), exist_ok=True)
    with open(os.path.join(root, "pressure", "memory"), "w") as f:
        f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"
                "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n")
    with open(os.path.join(root, "meminfo"), "w") as f:
        f.write("MemTotal:       16777216 kB\nMemFree:        12582912 kB\n"
                "MemAvailable:   12582912 kB\n")
    return root


def check_stock_system(qga, psi):
    """What makes this a modern distribution guest and not the busybox one: systemd as
    PID 1, udev, cgroup v2 only (no v1 memory controller, so no vmpressure), PSI as asked."""
    pid1 = qga.ok("readlink /proc/1/exe").strip()
    check(pid1.endswith("/systemd"), "PID 1 is %s, not systemd" % pid1)
    check(qga.run("systemctl is-active systemd-udevd")[1].strip() == "active", "no udevd")
    mounts = qga.ok("cat /proc/self/mountinfo")
    fstypes = {l.split(" - ")[1].split()[0] for l in mounts.splitlines() if " - " in l}
    check("cgroup2" in fstypes and "cgroup" not in fstypes,
          "not cgroup v2 only: file systems %s" % sorted(fstypes))
    has_psi = qga.run("test -r /proc/pressure/memory")[0] == 0
    check(has_psi == psi, "PSI %s, wanted %s" % (has_psi, psi))
    log("stock system: PID 1 %s, udevd active, cgroup v2 only, PSI %s, kernel %s"
        % (pid1, "on" if psi else "off", qga.ok("uname -r").strip()))


def unit_prop(qga, unit, prop):
    return qga.ok("systemctl show -p %s --value %s" % (prop, unit)).strip()


def verify_units(qga):
    """systemd-analyze verify on both installed units, on the real systemd of the guest:
    exit 0 and not a word (it prints warnings and still exits 0)."""
    status, out, err = qga.run("systemd-analyze verify bellows-agent.service bellowsd.service")
    check(status == 0 and not (out + err).strip(),
          "systemd-analyze verify: status %d: %s %s" % (status, out.strip(), err.strip()))
    log("systemd-analyze verify: both units clean")


def install_agent(env, qga):
    """dpkg -i of bellows-agent; systemd starts it (the package's postinst) and the host
    gets its hello. Returns (tap index of the hello, hello)."""
    mark = env.tap.mark()
    out = qga.ok("dpkg -i /root/bellows-agent.deb 2>&1")
    log("dpkg -i bellows-agent: %s" % out.strip().splitlines()[-1])
    i, hello = env.tap.wait(is_type("hello"), 120, "a hello after dpkg -i", mark)
    check(unit_prop(qga, "bellows-agent", "ActiveState") == "active", "agent not active")
    check(qga.run("systemctl is-enabled bellows-agent")[1].strip() == "enabled",
          "agent unit not enabled")
    return i, hello


# --- scenarios ---

@test
def agent(env):
    """The agent package in a stock Debian guest with PSI: dpkg -i starts it under systemd,
    udev names its port, its hello names PSI as its source; a fast allocation in the guest
    gets a deflate from bellowsd; after a crash systemd restarts it (a new hello); after a
    reboot it starts by itself and says hello with the new kernel boot id."""
    g = env.boot()
    qga = g.qga
    check_stock_system(qga, psi=True)
    env.start_daemon(policy={"quiet_ms": "10min"})

    i, hello = install_agent(env, qga)
    log("hello: %s" % hello)
    check(hello["sources"] == ["psi"], "hello sources %s, wanted [\"psi\"]" % hello["sources"])
    link = qga.ok("readlink -f /dev/virtio-ports/%s" % PORT_NAME).strip()
    check(re.fullmatch(r"/dev/vport\d+p\d+", link), "udev link: %r" % link)
    journal = qga.ok("journalctl -b -u bellows-agent --no-pager -o cat")
    check("port /dev/virtio-ports/%s open" % PORT_NAME in journal,
          "the agent did not open the port by its udev name:\n%s" % journal)
    # Real root with CAP_SYS_RESOURCE (the unit's bounding set): 1 s windows are kept.
    check('psi: medium trigger "some 70000 1000000"' in journal,
          "PSI triggers not registered with 1 s windows:\n%s" % journal)
    log("udev: /dev/virtio-ports/%s -> %s; the agent opened it by that name" % (PORT_NAME, link))
    verify_units_agent_only(qga)

    # A fast allocation: a guest ballooned down to 384 MiB asks for 400 MiB at once and
    # holds it. bellowsd leaves the guest alone (paused) until its kernel's pressure reaches
    # bellowsd's end of the channel: managed, its buffer rule could read a report in the
    # middle of the allocation and give the guest memory before it stalled (a fresh
    # machine: 384 to 871 MiB, no PSI frame, a failure). Then bellowsd manages it again and
    # must deflate while the memory is held.
    # Paused before the balloon goes down too: a CI-like run saw a buffer step 384 to
    # 864 MiB right after the test's own balloon command, before the allocation.
    qga.ok("mkswap /dev/vdb >/dev/null && swapon /dev/vdb")
    env.ctl("pause", "distro")
    start = balloon_down(env, g, 384)
    check(start == 384 * MIB, "the paused guest's balloon settled at %d MiB" % (start // MIB))
    mark = env.tap.mark()
    qga.ok("systemd-run --unit=bellows-alloc --collect /root/workload alloc --mib 400 --hold 120")
    env.tap.wait(is_type("pressure"), 300, "a pressure frame during the allocation", mark)
    env.ctl("resume", "distro")

    def deflated():
        return max([start] + g.observer().balloon_changes()) > start + MIB
    wait_for(deflated, 120, "bellowsd's deflate while the guest holds 400 MiB", interval=0.5)
    qga.run("systemctl stop bellows-alloc")
    sizes = [start] + g.observer().balloon_changes()
    pressure = [f for f in env.tap.since(mark) if f.get("type") == "pressure"]
    levels = sorted({"%s/%s" % (f["source"], f["level"]) for f in pressure})
    log("pressure frames %d (%s); balloon (MiB) %s"
        % (len(pressure), ", ".join(levels), [s // MIB for s in sizes]))
    check(all(f["source"] == "psi" for f in pressure), "a pressure frame not from PSI")
    last = env.ctl("show", "distro")["guest"]["decisions"][0]
    log("bellowsd's last move: %s %d -> %d MiB (%s)"
        % (last["action"], last["from"] // MIB, last["to"] // MIB, last["reason"]))
    check(last["action"] == "deflate", "bellowsd's last move is not a deflate: %s" % last)

    # A crash: systemd restarts the agent (Restart=always), which says hello again.
    pid = unit_prop(qga, "bellows-agent", "MainPID")
    mark = env.tap.mark()
    qga.ok("kill -SEGV %s" % pid)
    _, hello2 = env.tap.wait(is_type("hello"), 120, "a hello after the crash", mark)
    new_pid = unit_prop(qga, "bellows-agent", "MainPID")
    restarts = unit_prop(qga, "bellows-agent", "NRestarts")
    log("after SIGSEGV: pid %s -> %s, NRestarts %s, boot_id %s" % (pid, new_pid, restarts,
                                                                   hello2["boot_id"]))
    check(new_pid not in ("0", pid) and restarts == "1", "not restarted once by systemd")
    check(hello2["boot_id"] != hello["boot_id"] and
          kernel_boot_id(hello2) == kernel_boot_id(hello),
          "restarted agent: boot_id %s after %s (same kernel, new agent run expected)"
          % (hello2["boot_id"], hello["boot_id"]))

    # A reboot: the agent starts by itself at boot and says hello with the new boot id.
    mark = env.tap.mark()
    connects = env.tap.connections
    qga.reboot()
    rebooted = time.monotonic()
    _, hello3 = env.tap.wait(is_type("hello"), 600, "a hello after the reboot", mark)
    log("after the reboot (%.1fs): hello boot_id %s" % (time.monotonic() - rebooted,
                                                       hello3["boot_id"]))
    check(kernel_boot_id(hello3) != kernel_boot_id(hello2), "the kernel boot id did not change")
    check(hello3["sources"] == ["psi"], "sources after the reboot: %s" % hello3["sources"])
    check(env.tap.connections == connects, "bellowsd's channel was reconnected by the reboot")
    qga.sync(300)
    check(unit_prop(qga, "bellows-agent", "ActiveState") == "active", "agent not active")
    check(unit_prop(qga, "bellows-agent", "NRestarts") == "0", "agent restarted after reboot")
    env.tap.wait(is_type("report"), 120, "a report after the reboot", mark)
    log_line = "says hello (protocol 1, boot %s)" % hello3["boot_id"]
    with open(env.daemon_log) as f:
        check(log_line in f.read(), "bellowsd did not log the new hello: %s" % log_line)


def verify_units_agent_only(qga):
    status, out, err = qga.run("systemd-analyze verify bellows-agent.service")
    check(status == 0 and not (out + err).strip(),
          "systemd-analyze verify bellows-agent.service: %d %s %s" % (status, out, err))
    log("systemd-analyze verify bellows-agent.service: clean")


SNAPSHOT = ("find / -xdev \\( -path /proc -o -path /sys -o -path /dev -o -path /run "
            "-o -path /tmp -o -path /var/tmp \\) -prune -o -print | LC_ALL=C sort")
# Left changed by any dpkg run or by the passing of time, whatever the package: dpkg's
# state and logs, debconf's cache, the pages man formatted and cached when
# systemd-analyze verify looked the units' Documentation= up, and /var/backups, where
# dpkg's daily dpkg-db-backup.timer copies dpkg's state (a run across midnight UTC saw
# dpkg.status.0 and its siblings appear there between install and purge).
VOLATILE = re.compile(r"^/var/(lib/dpkg|log|cache/debconf|cache/man|backups)(/|$)")


@test
def packages(env):
    """Both packages in a guest booted with psi=0 (and cgroup v2 only: no pressure source
    at all): the agent runs reports-only instead of being restarted for ever; bellowsd's
    package installs without starting the daemon (no configuration yet), starts once
    configured, passes systemd-analyze verify; remove and purge leave the system as it was."""
    g = env.boot(append="psi=0")
    qga = g.qga
    check_stock_system(qga, psi=False)
    env.start_daemon()
    before = set(qga.ok(SNAPSHOT).splitlines())

    # The agent with no source: reports-only, not a restart loop.
    i, hello = install_agent(env, qga)
    log("hello: %s" % hello)
    check(hello["sources"] == [], "hello sources %s, wanted none" % hello["sources"])
    env.tap.wait(is_type("report"), 120, "a report", i + 1)
    j, _ = env.tap.wait(is_type("report"), 120, "a second report", i + 1)
    env.tap.wait(is_type("report"), 120, "a third report", j + 1)
    hellos = [f for f in env.tap.since(i) if f.get("type") == "hello"]
    restarts = unit_prop(qga, "bellows-agent", "NRestarts")
    journal = qga.ok("journalctl -b -u bellows-agent --no-pager -o cat")
    log("reports-only: %d hello(s) since install, NRestarts %s; the journal says: %s"
        % (len(hellos), restarts, [l for l in journal.splitlines() if "source" in l]))
    check(len(hellos) == 1 and restarts == "0", "the agent restarted")
    check("running reports-only" in journal, "no reports-only line in the journal")
    shown = env.ctl("show", "distro")["guest"]
    check(shown["mem_available"], "bellowsd has no memory figure from the reports: %s" % shown)

    # What the alternative looks like: the same agent told to use PSI (a runtime drop-in)
    # exits 1 at every start; systemd restarts it each second until its start limit.
    dropin = "/run/systemd/system/bellows-agent.service.d"
    qga.ok("mkdir -p %s && printf '[Service]\\nExecStart=\\nExecStart=/usr/sbin/bellows-agent "
           "--sources psi\\n' > %s/sources.conf && systemctl daemon-reload && "
           "systemctl restart bellows-agent" % (dropin, dropin))
    # Between restarts the unit is "activating (auto-restart)"; failed means given up.
    wait_for(lambda: unit_prop(qga, "bellows-agent", "ActiveState") == "failed", 120,
             "systemd to give up on an agent that exits at once", interval=1)
    gave_up = qga.ok("journalctl -b -u bellows-agent --no-pager -o cat | "
                     "grep -c 'Start request repeated too quickly'").strip()
    restarts = unit_prop(qga, "bellows-agent", "NRestarts")
    log("with --sources psi on this kernel: exit status %s, %s restarts, then failed "
        "(\"Start request repeated too quickly\")"
        % (unit_prop(qga, "bellows-agent", "ExecMainStatus"), restarts))
    check(gave_up == "1" and restarts == "5", "not the start limit: %s restarts" % restarts)
    mark = env.tap.mark()
    qga.ok("rm -r %s && systemctl daemon-reload && systemctl reset-failed bellows-agent && "
           "systemctl start bellows-agent" % dropin)
    _, again = env.tap.wait(is_type("hello"), 120, "a hello from the agent started again", mark)
    check(again["sources"] == [], "sources %s after the drop-in went" % again["sources"])

    # bellowsd's package: enabled, not started without a configuration.
    out = qga.ok("dpkg -i /root/bellowsd.deb 2>&1")
    log("dpkg -i bellowsd: %s" % out.strip().splitlines()[-1])
    check(qga.run("systemctl is-enabled bellowsd")[1].strip() == "enabled", "not enabled")
    state = {p: unit_prop(qga, "bellowsd", p)
             for p in ("ActiveState", "ConditionResult", "ConditionTimestamp")}
    log("bellowsd after install, before a configuration: %s" % state)
    check(state["ActiveState"] == "inactive" and state["ConditionResult"] == "no"
          and state["ConditionTimestamp"], "the unit was not skipped for want of a configuration")
    verify_units(qga)
    # Configured: it starts, serves bellowsctl on its RuntimeDirectory socket, reloads.
    qga.ok("mkdir -p /etc/bellows && printf '[daemon]\\nlog_level = info\\n' "
           "> /etc/bellows/bellowsd.conf && systemctl start bellowsd")
    listed = json.loads(qga.ok("bellowsctl --json list"))
    check(listed.get("ok") is True, "bellowsctl list in the guest: %s" % listed)
    qga.ok("systemctl reload bellowsd")
    check(unit_prop(qga, "bellowsd", "ActiveState") == "active", "bellowsd not active")
    journal = qga.ok("journalctl -b -u bellowsd --no-pager -o cat")
    check("SIGHUP: reloading /etc/bellows/bellowsd.conf" in journal,
          "systemctl reload did not reach bellowsd:\n%s" % journal)
    hook = "/etc/libvirt/hooks/qemu.d/bellows"
    qga.ok("%s dom started begin - </dev/null" % hook)
    log("bellowsd started with a configuration, bellowsctl answered, systemctl reload reached "
        "it and it stayed active, the hook ran")

    # Remove keeps the conffile (the hook) only; purge removes it.
    qga.ok("dpkg -r bellowsd bellows-agent 2>&1")
    for unit in ("bellowsd", "bellows-agent"):
        check(unit_prop(qga, unit, "ActiveState") == "inactive", "%s still running" % unit)
    check(qga.run("test -e %s" % hook)[0] == 0, "remove took the conffile")
    check(qga.run("pgrep -x 'bellowsd|bellows-agent'")[0] != 0, "a bellows process is left")
    qga.ok("rm /etc/bellows/bellowsd.conf")  # the operator's own file
    qga.ok("dpkg -P bellowsd bellows-agent 2>&1")
    after = set(qga.ok(SNAPSHOT).splitlines())
    added = sorted(p for p in after - before if not VOLATILE.match(p))
    gone = sorted(p for p in before - after if not VOLATILE.match(p))
    log("after purge: %d paths added, %d gone (outside dpkg's own state and logs)"
        % (len(added), len(gone)))
    check(not added and not gone, "purge left the system changed: added %s, gone %s"
          % (added, gone))
    _, units, _ = qga.run("systemctl list-unit-files 'bellows*' --no-legend")
    check(not units.strip(), "units left after purge: %s" % units)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--source", required=True)
    p.add_argument("--build", required=True)
    p.add_argument("--workload", required=True)
    p.add_argument("--bellowsd", required=True)
    p.add_argument("--bellowsctl", required=True)
    p.add_argument("--debs", help="folder of the .deb files (default: SOURCE/build/deb, "
                   "or $BELLOWS_DEBS)")
    p.add_argument("--keep", action="store_true", help="keep the run directory")
    p.add_argument("test", choices=sorted(TESTS))
    args = p.parse_args()
    args.debs = args.debs or os.environ.get("BELLOWS_DEBS") or \
        os.path.join(args.source, "build", "deb")
    if os.geteuid() != 0:
        log("SKIP: needs root (debootstrap, and dpkg in the image build)")
        return 77
    missing = [n for n in ("bellows-agent_*.deb", "bellowsd_*.deb")
               if not glob.glob(os.path.join(args.debs, n))]
    if missing:
        log("SKIP: no %s in %s: build the packages first (scripts/build-packages)"
            % (" or ".join(missing), args.debs))
        return 77
    env = Env(args)
    started = time.monotonic()
    result = "FAILED"
    try:
        TESTS[args.test](env)
        result = "passed"
    except (Failure, GuestError, subprocess.CalledProcessError) as e:
        log("FAIL: %s" % e)
    finally:
        if result == "FAILED":
            if env.guest is not None and os.path.exists(env.guest.console_path):
                with open(env.guest.console_path, errors="replace") as f:
                    log("--- console (last 3000 chars) ---\n%s" % f.read()[-3000:])
            if os.path.exists(env.daemon_log):
                with open(env.daemon_log) as f:
                    log("--- bellowsd log (last 40 lines) ---\n%s" % "".join(f.readlines()[-40:]))
        env.close(keep=args.keep or result == "FAILED")
    log("%s %s in %.0fs (image %.0fs)" % (args.test, result, time.monotonic() - started,
                                          env.image_seconds))
    return 0 if result == "passed" else 1


if __name__ == "__main__":
    sys.exit(main())
