"""Timestamping unix socket proxies for the reaction benchmark.

bellowsd is pointed at the proxies' sockets instead of QEMU's; each proxy connects to
QEMU's socket when the daemon connects, forwards every byte both ways, and notes the host
CLOCK_MONOTONIC time (time.monotonic_ns) at which it saw:
  ChannelProxy  each protocol frame the agent sent (guest -> daemon), decoded;
  QmpProxy      each `balloon` command the daemon sent, and each BALLOON_CHANGE event
                QEMU sent back.
One thread per proxy, select() on its sockets; the note is taken right after the read that
completed the frame or line, before forwarding it.
"""

import json
import os
import select
import socket
import threading
import time


class _Proxy:
    def __init__(self, listen_path, upstream_path):
        self.listen_path = listen_path
        self.upstream_path = upstream_path
        self.lock = threading.Lock()
        self.connects = 0
        if os.path.exists(listen_path):
            os.unlink(listen_path)
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(listen_path)
        self.server.listen(4)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def stop(self):
        self.stopping = True
        self.server.close()

    def _run(self):
        while not self.stopping:
            try:
                down, _ = self.server.accept()
            except OSError:
                return
            try:
                up = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                up.connect(self.upstream_path)
            except OSError:
                down.close()
                continue
            with self.lock:
                self.connects += 1
            self._pump(down, up)
            down.close()
            up.close()

    def _pump(self, down, up):
        bufs = {down: b"", up: b""}
        while not self.stopping:
            r, _, _ = select.select([down, up], [], [], 0.5)
            for s in r:
                data = s.recv(65536)
                now = time.monotonic_ns()
                if not data:
                    return
                other = up if s is down else down
                bufs[s] = self._scan(bufs[s] + data, s is down, now)
                other.sendall(data)

    def _scan(self, buf, from_daemon, now):
        return b""


class ChannelProxy(_Proxy):
    """Notes every frame from the guest: (host ns, decoded JSON object)."""

    def __init__(self, listen_path, upstream_path):
        self.frames = []
        super().__init__(listen_path, upstream_path)

    def _scan(self, buf, from_daemon, now):
        if from_daemon:
            return b""
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            start = line.rfind(b"\x1e")
            if start < 0:
                continue
            try:
                msg = json.loads(line[start + 1:])
            except ValueError:
                continue
            with self.lock:
                self.frames.append((now, msg))
        return buf

    def snapshot(self):
        with self.lock:
            return list(self.frames)


class QmpProxy(_Proxy):
    """Notes balloon commands from the daemon and BALLOON_CHANGE events from QEMU."""

    def __init__(self, listen_path, upstream_path):
        self.commands = []  # (host ns, target bytes)
        self.changes = []   # (host ns, actual bytes)
        self.queries = 0
        super().__init__(listen_path, upstream_path)

    def _scan(self, buf, from_daemon, now):
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self.lock:
                if from_daemon and msg.get("execute") == "balloon":
                    self.commands.append((now, msg.get("arguments", {}).get("value")))
                elif from_daemon and msg.get("execute") == "query-balloon":
                    self.queries += 1
                elif not from_daemon and msg.get("event") == "BALLOON_CHANGE":
                    self.changes.append((now, msg["data"]["actual"]))
        return buf

    def snapshot(self):
        with self.lock:
            return list(self.commands), list(self.changes)
