"""Boot and drive bellows test guests under QEMU (TCG), for scripts/launch-guests,
scripts/demo and the end-to-end tests. Python 3 standard library only.

Each guest lives in its own run directory:
  qmp.sock       QMP monitor for bellowsd
  qmp-test.sock  a second QMP monitor for observers (tests, the demo), so they never
                 take the daemon's
  channel.sock   the virtio-serial port org.bellows.pressure.0 (the agent's)
  console.sock   the serial console (a shell once "BELLOWS READY" was printed)
  console.log    everything the console printed, appended across restarts
  qemu.log       QEMU's own stderr
Everything waits on an event (a console line, a socket, a QMP event) with a deadline;
nothing sleeps a fixed time to synchronise. Console waits match anywhere in a line, never
at its start only: the console is shared (the kernel, the agent's stderr, the shell's echo
all write to it), and another writer's unfinished line may stand before our marker
("bellows-agent: signal 15: stoppingBELLOWS CMD-END 1 status=0").
"""

import base64
import json
import os
import re
import select
import socket
import subprocess
import threading
import time

PORT_NAME = "org.bellows.pressure.0"
MIB = 1024 * 1024


class GuestError(Exception):
    pass


def wait_for(predicate, timeout, what, interval=0.05):
    """Poll predicate() until it returns a true value, or raise after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise GuestError("timed out after %.0fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def guest_image(source, out_dir, workload=None, agent=None):
    """Build (or reuse) the test guest with source's scripts/guest-image: the kernel and
    initramfs in out_dir, the workload program and the agent copied in when given.
    Returns (vmlinuz, initrd) as Guest takes them."""
    cmd = [os.path.join(source, "scripts", "guest-image")]
    if workload:
        cmd += ["--workload", workload]
    if agent:
        cmd += ["--agent", agent]
    out = subprocess.run(cmd + [out_dir], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    return (out[0], out[1])


def stop_process(proc, timeout=10):
    """Stop a child process: SIGTERM, then SIGKILL after timeout seconds; reaped either way.
    Nothing to do when proc is None or has exited."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Console:
    """The guest's serial console: its log file (read incrementally) and its socket."""

    def __init__(self, log_path, sock_path):
        self.log_path = log_path
        self.sock_path = sock_path
        self.offset = 0  # where the next wait() starts reading
        self._sock = None

    def text(self, start=0):
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def mark(self):
        """Make later waits look only at what the console prints from now on."""
        try:
            self.offset = os.path.getsize(self.log_path)
        except FileNotFoundError:
            self.offset = 0
        return self.offset

    def wait(self, pattern, timeout, start=None):
        """Wait for the regex pattern after the mark; return the match. Patterns must not
        be anchored with ^ (see above): the text may share its line with another's."""
        regex = re.compile(pattern, re.M)
        begin = self.offset if start is None else start

        def find():
            m = regex.search(self.text(begin))
            return m

        m = wait_for(find, timeout, "console line /%s/ in %s" % (pattern, self.log_path))
        return m

    def count(self, pattern, start=0):
        return len(re.findall(pattern, self.text(start), re.M))

    def send(self, line):
        """Type one line into the console shell. The connection stays open (QEMU drops
        input still queued when a client hangs up); a thread drains what the console
        prints to it, since the log file already has it."""
        data = line.encode() + b"\n"
        for attempt in (1, 2):
            if self._sock is None:
                self._connect()
            try:
                self._sock.sendall(data)
                return
            except OSError:
                self.close()
                if attempt == 2:
                    raise

    def _connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(self.sock_path)
        self._sock = s
        threading.Thread(target=self._drain, args=(s,), daemon=True).start()

    @staticmethod
    def _drain(s):
        try:
            while s.recv(65536):
                pass
        except OSError:
            pass

    def close(self):
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._sock.close()
            self._sock = None


class Qmp:
    """A minimal QMP client: commands, and every event it sees kept in self.events."""

    def __init__(self, path, timeout=30):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_for(lambda: self._try_connect(path), timeout, "QMP socket %s" % path)
        self.buf = b""
        self.events = []
        greeting = self._read_message(timeout)
        if "QMP" not in greeting:
            raise GuestError("no QMP greeting on %s" % path)
        self.execute("qmp_capabilities")

    def _try_connect(self, path):
        try:
            self.sock.connect(path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False

    def _read_message(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.sock], [], [], left)[0]:
                raise GuestError("QMP: no message within %.0fs" % timeout)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise GuestError("QMP: connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, command, arguments=None, timeout=30):
        msg = {"execute": command}
        if arguments is not None:
            msg["arguments"] = arguments
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self._read_message(timeout)
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise GuestError("QMP %s: %s" % (command, reply["error"]))
            return reply.get("return")

    def poll_events(self, timeout=0):
        """Collect events that arrive within timeout seconds (0: only those already sent)."""
        deadline = time.monotonic() + timeout
        while True:
            left = max(0.0, deadline - time.monotonic())
            if b"\n" not in self.buf:
                if not select.select([self.sock], [], [], left)[0]:
                    return self.events
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise GuestError("QMP: connection closed")
                self.buf += chunk
            while b"\n" in self.buf:
                line, self.buf = self.buf.split(b"\n", 1)
                msg = json.loads(line)
                if "event" in msg:
                    self.events.append(msg)
            if left == 0:
                return self.events

    def balloon_changes(self):
        """Actual sizes (bytes) reported by BALLOON_CHANGE events so far, in order."""
        self.poll_events()
        return [e["data"]["actual"] for e in self.events if e["event"] == "BALLOON_CHANGE"]

    def actual(self):
        return self.execute("query-balloon")["actual"]

    def close(self):
        self.sock.close()


class Channel:
    """The host end of the agent's virtio-serial port: RFC 7464 frames (RS, JSON, LF) as
    docs/protocol.md defines them, decoded to dicts. Stands in for bellowsd in tests of
    the agent alone."""

    def __init__(self, path, timeout=30):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        wait_for(lambda: self._try_connect(), timeout, "channel socket %s" % path)
        self.buf = b""
        self.frames = []  # (host monotonic time, dict) for every frame received
        self.cursor = 0   # frames before this index were looked at by wait()

    def _try_connect(self):
        try:
            self.sock.connect(self.path)
            return True
        except (FileNotFoundError, ConnectionRefusedError):
            return False

    def send(self, msg):
        self.sock.sendall(b"\x1e" + json.dumps(msg, separators=(",", ":")).encode() + b"\n")

    def _read(self, timeout):
        if not select.select([self.sock], [], [], timeout)[0]:
            return
        chunk = self.sock.recv(65536)
        if not chunk:
            raise GuestError("channel %s closed by QEMU" % self.path)
        self.buf += chunk
        while b"\n" in self.buf:
            frame, self.buf = self.buf.split(b"\n", 1)
            if b"\x1e" not in frame:
                continue  # junk before the first RS
            payload = frame.rsplit(b"\x1e", 1)[1]
            self.frames.append((time.monotonic(), json.loads(payload)))

    def wait(self, predicate, timeout, what):
        """Wait for a frame f (dict) after the last one a wait() returned, with
        predicate(f) true; returns it."""
        deadline = time.monotonic() + timeout
        while True:
            while self.cursor < len(self.frames):
                f = self.frames[self.cursor][1]
                self.cursor += 1
                if predicate(f):
                    return f
            left = deadline - time.monotonic()
            if left <= 0:
                raise GuestError("timed out after %.0fs waiting for %s on %s"
                                 % (timeout, what, self.path))
            self._read(min(left, 1.0))

    def close(self):
        self.sock.close()


class Guest:
    """One QEMU guest booted from the bellows test image."""

    def __init__(self, name, rundir, image, mem_mib=512, agent=True, agent_args=None,
                 script=None, poweroff=False, swap_mib=0, qemu="qemu-system-x86_64",
                 balloon_props=""):
        self.name = name
        self.dir = os.path.abspath(rundir)
        self.image = image  # (vmlinuz, initrd)
        self.mem_mib = mem_mib
        self.agent = agent
        self.agent_args = agent_args or []
        self.script = script
        self.poweroff = poweroff
        self.swap_mib = swap_mib
        self.qemu = qemu
        self.balloon_props = balloon_props  # e.g. "deflate-on-oom=on"
        self.proc = None
        os.makedirs(self.dir, exist_ok=True)
        self.qmp_path = os.path.join(self.dir, "qmp.sock")
        self.qmp_test_path = os.path.join(self.dir, "qmp-test.sock")
        self.channel_path = os.path.join(self.dir, "channel.sock")
        self.console = Console(os.path.join(self.dir, "console.log"),
                               os.path.join(self.dir, "console.sock"))
        self._observer = None
        self._cmd_id = 0

    def kernel_args(self):
        # no_timer_check: on a loaded host TCG can be slow enough at boot for the kernel's
        # check of the timer interrupt to fail, and the guest panics ("8254 timer not
        # connected to IO-APIC"); the check proves nothing about a virtual machine.
        args = ["console=ttyS0", "quiet", "panic=-1", "no_timer_check"]
        if not self.agent:
            args.append("bellows.agent=0")
        if self.agent_args:
            args.append("bellows.agent_args=" +
                        base64.b64encode(" ".join(self.agent_args).encode()).decode())
        if self.script:
            args.append("bellows.run=" + base64.b64encode(self.script.encode()).decode())
        if self.poweroff:
            args.append("bellows.then=poweroff")
        if self.swap_mib:
            args.append("bellows.swap=1")
        return " ".join(args)

    def command_line(self):
        vmlinuz, initrd = self.image
        d = self.dir
        return [
            self.qemu, "-name", self.name, "-accel", "tcg", "-m", str(self.mem_mib),
            "-smp", "1", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
            "-kernel", vmlinuz, "-initrd", initrd, "-append", self.kernel_args(),
            "-chardev", "socket,id=con,path=%s/console.sock,server=on,wait=off,"
                        "logfile=%s/console.log,logappend=on" % (d, d),
            "-serial", "chardev:con",
            "-device", "virtio-balloon-pci,id=balloon0" + (
                "," + self.balloon_props if self.balloon_props else ""),
            "-device", "virtio-serial-pci,id=vser0",
            "-chardev", "socket,id=agent,path=%s,server=on,wait=off" % self.channel_path,
            "-device", "virtserialport,chardev=agent,name=%s" % PORT_NAME,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path,
            "-qmp", "unix:%s,server=on,wait=off" % self.qmp_test_path,
        ] + (["-drive", "if=virtio,format=raw,cache=unsafe,file=%s/swap.img" % d]
             if self.swap_mib else [])

    def start(self):
        """Start QEMU; returns at once (see wait_ready)."""
        if self.proc is not None and self.proc.poll() is None:
            raise GuestError("%s already running" % self.name)
        for p in (self.qmp_path, self.qmp_test_path, self.channel_path, self.console.sock_path):
            if os.path.exists(p):
                os.unlink(p)
        self._observer = None
        self.console.close()
        if self.swap_mib:
            with open(os.path.join(self.dir, "swap.img"), "wb") as f:
                f.truncate(self.swap_mib * MIB)  # sparse; mkswap in the guest
        self.console.mark()
        self.boot_mark = self.console.offset
        self.started_at = time.monotonic()
        log = open(os.path.join(self.dir, "qemu.log"), "ab")
        self.proc = subprocess.Popen(self.command_line(), stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, start_new_session=True)
        log.close()

    def is_ready(self):
        """True once the guest's shell is up (records boot time and the BOOTED facts);
        raises if QEMU has exited."""
        if self.proc.poll() is not None:
            raise GuestError("%s: QEMU exited with %s, see %s/qemu.log"
                             % (self.name, self.proc.returncode, self.dir))
        text = self.console.text(self.boot_mark)
        if not re.search(r"BELLOWS READY", text):
            return False
        self.boot_seconds = time.monotonic() - self.started_at
        m = re.search(r"BELLOWS BOOTED mem_total_kb=(\d+) psi=(\d) vmpressure=(\d) "
                      r"swap_kb=(\d+)", text, re.M)
        self.booted = {"mem_total_kb": int(m.group(1)), "psi": m.group(2) == "1",
                       "vmpressure": m.group(3) == "1", "swap_kb": int(m.group(4))}
        return True

    def wait_ready(self, timeout=120):
        """Wait until the guest's shell is up; returns the boot time in seconds."""
        wait_for(self.is_ready, timeout, "%s to boot" % self.name)
        return self.boot_seconds

    def observer(self):
        """The observers' QMP connection (opened on first use, after each (re)start)."""
        if self._observer is None:
            self._observer = Qmp(self.qmp_test_path)
        return self._observer

    def host_connected(self):
        """Which of the guest's host-side sockets have a client right now, from QEMU's
        own view (query-chardev): {"qmp": bool (bellowsd's monitor), "channel": bool
        (bellowsd on the agent's port), "agent_open": bool (the agent holds the port)}."""
        devs = {c["label"]: c for c in self.observer().execute("query-chardev")}
        def connected(label):
            return not devs[label]["filename"].startswith("disconnected:")
        return {"qmp": connected("compat_monitor0"), "channel": connected("agent"),
                "agent_open": devs["agent"]["frontend-open"]}

    def run(self, command, timeout=120):
        """Run a shell command in the guest through the console; returns (status, output).
        The output is what the console printed between start and end markers. Each marker
        is printed whole by one echo, with a tag of this command (a counter and a random
        nonce), and matched anywhere in a line. The shell's echo of the typed line holds
        the markers too, but never followed by the end of a line (BEGIN) or a number
        (END's status), so it never matches."""
        self._cmd_id += 1
        tag = "%d-%s" % (self._cmd_id, os.urandom(4).hex())
        start = self.console.mark()
        self.console.send("echo BELLOWS CMD-BEGIN %s; %s; echo BELLOWS CMD-END %s status=$?"
                          % (tag, command, tag))
        m = self.console.wait(r"BELLOWS CMD-END %s status=(\d+)" % tag, timeout, start)
        text = self.console.text(start)
        begin = re.search(r"BELLOWS CMD-BEGIN %s\r?$" % tag, text, re.M)
        out = text[begin.end():m.start()] if begin else ""
        return int(m.group(1)), out

    def start_background(self, command):
        """Start a shell command in the guest and return at once; its output goes to the
        console."""
        self.console.send("(%s) &" % command)

    def mem_total_kb(self):
        status, out = self.run("grep MemTotal /proc/meminfo")
        m = re.search(r"MemTotal:\s+(\d+) kB", out)
        if status != 0 or not m:
            raise GuestError("%s: cannot read MemTotal: %r" % (self.name, out))
        return int(m.group(1))

    def oom_kills(self):
        """OOM kills the guest's /init reported on the console since this guest started."""
        return self.console.count(r"BELLOWS OOM-KILL", self.boot_mark)

    def stop(self, timeout=10):
        """Stop QEMU: SIGTERM, then SIGKILL after timeout seconds."""
        if self._observer is not None:
            self._observer.close()
            self._observer = None
        self.console.close()
        stop_process(self.proc, timeout)


def boot_all(guests, timeout=180):
    """Start every guest at once, then wait for all; returns boot seconds by name."""
    for g in guests:
        g.start()
    pending = list(guests)

    def all_ready():
        for g in list(pending):
            if g.is_ready():
                pending.remove(g)
        return not pending

    wait_for(all_ready, timeout, "guests to boot")
    return {g.name: g.boot_seconds for g in guests}


def write_config(path, guests, settings=None, daemon=None, policy=None):
    """Write a bellowsd configuration for these guests (docs/configuration.md).
    settings: {guest name: {key: value}} for floor, ceiling, weight and the like;
    daemon, policy: {key: value} for the [daemon] and [policy] sections. The operator
    state goes next to the file (state_dir), never in the host's /var/lib/bellows, unless
    daemon says otherwise: runs must not see each other's pauses. A key given as None is
    left out (state_dir for a bellowsd older than it)."""
    settings = settings or {}
    daemon = dict(daemon or {})
    daemon.setdefault("state_dir", os.path.join(os.path.dirname(os.path.abspath(path)), "state"))
    daemon = {k: v for k, v in daemon.items() if v is not None}
    lines = []
    for section, keys in (("daemon", daemon), ("policy", policy)):
        if keys:
            lines.append("[%s]" % section)
            lines += ["%s = %s" % kv for kv in keys.items()]
            lines.append("")
    for g in guests:
        lines.append("[guest %s]" % g.name)
        lines.append("qmp = %s" % g.qmp_path)
        lines.append("channel = %s" % g.channel_path)
        s = {"ceiling": "%dM" % g.mem_mib}
        s.update(settings.get(g.name, {}))
        lines += ["%s = %s" % kv for kv in s.items()]
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))
