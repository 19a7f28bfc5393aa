"""A real bellowsd with simulated guests (bellows-simguests), for the tests and the
benchmark of the operator surface: the HTTP API, promtool on /metrics, bellowsctl top.

    with Surface(build_dir, names=["web-1", "db"]) as s:
        s.sim("pressure web-1 critical 60")
        s.expect(r"balloon web-1 \\d+")
        status, headers, body = s.get("/api/v1/guests")

Everything lives in a fresh temporary directory; the daemon reads a calm host from fixture
files (tests/daemon/data/proc-calm) so that host pressure never shapes what a test sees.
Every wait is on a line of bellows-simguests' own stdout or on a socket, never a sleep."""
import http.client
import os
import queue
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time

SOURCE = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", ".."))


def terminate(proc, timeout=10):
    """SIGTERM, then SIGKILL if it has not exited within timeout seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def free_port():
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Surface:
    def __init__(self, build, names=None, guests=0, mib=1024, daemon_cfg="", policy_cfg="",
                 http=True, log_level="info", http_port=None, ceiling_mib=None):
        self.build = build
        self.names = names
        self.guests = guests
        self.mib = mib
        self.daemon_cfg = daemon_cfg
        self.policy_cfg = policy_cfg
        self.http = http
        self.log_level = log_level
        self.dir = None
        self.sim_proc = None
        self.daemon = None
        self.lines = queue.Queue()
        self.port = None
        self.http_port = http_port  # listen there, and do not wait for it (a test's taken port)
        self.ceiling_mib = ceiling_mib

    # ---- lifecycle ----

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self):
        self.dir = tempfile.mkdtemp(prefix="bellows-surface-")
        proc = os.path.join(self.dir, "proc")
        shutil.copytree(os.path.join(SOURCE, "tests", "daemon", "data", "proc-calm"), proc)
        args = [os.path.join(self.build, "tests", "http", "bellows-simguests"), "--dir", self.dir,
                "--mib", str(self.mib)]
        args += ["--names", ",".join(self.names)] if self.names else ["--guests", str(self.guests)]
        if self.ceiling_mib:
            args += ["--ceiling-mib", str(self.ceiling_mib)]
        self.sim_proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, bufsize=1)
        threading.Thread(target=self._reader, daemon=True).start()
        self.expect(r"^ready \d+")
        self.port = self.http_port or (free_port() if self.http else None)
        self.control = os.path.join(self.dir, "control.sock")
        with open(os.path.join(self.dir, "guests.conf")) as f:
            guests_conf = f.read()
        with open(os.path.join(self.dir, "bellowsd.conf"), "w") as f:
            f.write("[daemon]\ncontrol_socket = %s\nproc_dir = %s\nstate_dir = %s\nlog_level = %s\n"
                    % (self.control, proc, os.path.join(self.dir, "state"), self.log_level))
            f.write("http_listen = %s\n" % ("127.0.0.1:%d" % self.port if self.port else "off"))
            f.write(self.daemon_cfg)
            if self.policy_cfg:
                f.write("\n[policy]\n" + self.policy_cfg)
            f.write("\n" + guests_conf)
        self.log_path = os.path.join(self.dir, "bellowsd.log")
        self.log = open(self.log_path, "w")
        self.daemon = subprocess.Popen(
            [os.path.join(self.build, "host-daemon", "bellowsd"), "--config",
             os.path.join(self.dir, "bellowsd.conf")], stdout=self.log, stderr=subprocess.STDOUT)
        self.sim("wait")
        self.expect(r"^welcomed \d+", timeout=30)
        if self.http and not self.http_port:
            self.wait_http()

    def stop(self):
        if self.daemon and self.daemon.poll() is None:
            terminate(self.daemon)
        if self.sim_proc and self.sim_proc.poll() is None:
            try:
                self.sim_proc.stdin.write("quit\n")
                self.sim_proc.stdin.close()
                self.sim_proc.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.sim_proc.kill()
                self.sim_proc.wait()
        if getattr(self, "log", None):
            self.log.close()
        if self.dir and not os.environ.get("BELLOWS_KEEP"):
            shutil.rmtree(self.dir, ignore_errors=True)

    def daemon_log(self):
        with open(self.log_path) as f:
            return f.read()

    # ---- simulated guests ----

    def _reader(self):
        for line in self.sim_proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def sim(self, command):
        self.sim_proc.stdin.write(command + "\n")
        self.sim_proc.stdin.flush()

    def expect(self, pattern, timeout=10):
        """The next line of bellows-simguests matching pattern (earlier ones are skipped)."""
        deadline = time.monotonic() + timeout
        rx = re.compile(pattern)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line matching %r from bellows-simguests" % pattern)
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError("bellows-simguests exited waiting for %r" % pattern)
            if line.startswith("error"):
                raise RuntimeError("bellows-simguests: " + line)
            m = rx.search(line)
            if m:
                return m

    # ---- HTTP ----

    def wait_http(self, timeout=10):
        deadline = time.monotonic() + timeout
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if self.daemon.poll() is not None:
                    raise RuntimeError("bellowsd exited:\n" + self.daemon_log())
                if time.monotonic() > deadline:
                    raise TimeoutError("bellowsd does not listen on port %d:\n%s"
                                       % (self.port, self.daemon_log()))
                time.sleep(0.05)

    def get(self, path, method="GET", headers=None, body=None, timeout=10):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            r = c.getresponse()
            return r.status, dict(r.getheaders()), r.read()
        finally:
            c.close()

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.port, path)
