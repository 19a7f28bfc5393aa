"""Hostile and heavy HTTP clients for bellowsd's surface, all on 127.0.0.1 and bounded in
number and time (used by robustness_test.py and bench/http-load):

  idle        N connections that send nothing
  slow        N connections sending a request line one byte every `interval` seconds
  oversized   requests with headers far past the per-connection memory limit
  unknown     requests for paths that do not exist
  stuck       an event-stream client that never reads
  scrapers    /metrics and /api/v1/guests fetched in a loop
  readers     event-stream clients that read everything

Each runs in its own thread and stops when stop() is called; counts what it saw."""
import http.client
import random
import resource
import socket
import threading
import time


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))


class Load:
    def __init__(self, port):
        self.port = port
        self.stop_event = threading.Event()
        self.threads = []
        self.lock = threading.Lock()
        self.counts = {}
        self.socks = []

    def count(self, key, n=1):
        with self.lock:
            self.counts[key] = self.counts.get(key, 0) + n

    def connect(self, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s

    def spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        t.start()
        self.threads.append(t)

    def stop(self):
        self.stop_event.set()
        for t in self.threads:
            t.join(timeout=10)
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []

    # ---- the clients ----

    def idle(self, n):
        """n connections that never send a byte (connect() completes in the kernel's
        listen queue even when bellowsd holds its limit)."""
        raise_fd_limit(n + 256)
        for _ in range(n):
            try:
                s = self.connect()
                self.socks.append(s)
                self.count("idle_connected")
            except OSError:
                self.count("idle_refused")

    def slow(self, n, interval=0.2):
        raise_fd_limit(len(self.socks) + n + 256)
        socks = []
        for _ in range(n):
            try:
                s = self.connect()
                s.setblocking(False)
                socks.append(s)
            except OSError:
                self.count("slow_refused")
        self.socks += socks
        text = b"GET /api/v1/guests HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 4096

        def drip():
            i = 0
            while not self.stop_event.wait(interval):
                for s in socks:
                    try:
                        s.send(text[i % len(text):i % len(text) + 1])
                    except BlockingIOError:
                        pass
                    except OSError:
                        self.count("slow_closed_by_server")
                        socks.remove(s)
                i += 1
        self.spawn(drip)

    def _request(self, path, headers=None, timeout=30):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            body = r.read()
            return r.status, body
        finally:
            c.close()

    def oversized(self, n, size=64 * 1024):
        def run():
            for _ in range(n):
                if self.stop_event.is_set():
                    return
                try:
                    st, _ = self._request("/api/v1/guests", {"X-Big": "b" * size})
                    self.count("oversized_%d" % st)
                except (OSError, http.client.HTTPException):
                    self.count("oversized_closed")
        self.spawn(run)

    def unknown(self, n):
        def run():
            for _ in range(n):
                if self.stop_event.is_set():
                    return
                path = "/%08x/%s" % (random.getrandbits(32), "x" * random.randint(1, 200))
                try:
                    st, body = self._request(path)
                    self.count("unknown_%d" % st)
                    if st == 404 and body.startswith(b'{"error":'):
                        self.count("unknown_json_error")
                except (OSError, http.client.HTTPException):
                    self.count("unknown_failed")
        self.spawn(run)

    def stuck(self):
        """An event-stream client with a tiny receive buffer that never reads."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", self.port))
        s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
        self.socks.append(s)

    def scrapers(self, n, pause=0.1):
        def run():
            while not self.stop_event.is_set():
                for path in ("/metrics", "/api/v1/guests"):
                    try:
                        st, body = self._request(path)
                        self.count("scrape_%d" % st)
                        self.count("scrape_bytes", len(body))
                    except (OSError, http.client.HTTPException):
                        self.count("scrape_failed")
                self.stop_event.wait(pause)
        for _ in range(n):
            self.spawn(run)

    def readers(self, n):
        def run():
            try:
                s = self.connect(timeout=2)
                s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: x\r\n\r\n")
                while not self.stop_event.is_set():
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        continue
                    if not data:
                        self.count("reader_closed")
                        return
                    self.count("reader_bytes", len(data))
                s.close()
            except OSError:
                self.count("reader_failed")
        for _ in range(n):
            self.spawn(run)


def proc_status(pid):
    """VmRSS and VmHWM (peak) of a process, in KiB; its CPU time in seconds."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1])
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = 100.0
    out["cpu_s"] = (int(fields[11]) + int(fields[12])) / tick
    return out


def probes(surface, names, settle=0.0):
    """A critical pressure event to each guest in turn; the time until bellowsd's balloon
    command reached its QMP monitor (simguests' own clock), in ms."""
    lat = []
    for name in names:
        surface.sim("probe " + name)
        m = surface.expect(r"^latency %s (\d+)" % name, timeout=30)
        lat.append(int(m.group(1)) / 1000.0)
        if settle:
            time.sleep(settle)
    return lat


def percentile(values, p):
    v = sorted(values)
    if not v:
        return float("nan")
    k = min(len(v) - 1, max(0, int(round(p / 100.0 * (len(v) - 1)))))
    return v[k]


def main():
    """Run one kind of load in a process of its own until SIGTERM, reniced, so that the
    clients neither hold the measuring process' interpreter lock nor take the daemon's
    CPU on a small machine (in production they run elsewhere):

        httpload.py --port P --mode dashboard|attack [--nice 19]"""
    import argparse
    import os
    import signal
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--mode", choices=("dashboard", "attack"), required=True)
    ap.add_argument("--nice", type=int, default=19)
    args = ap.parse_args()
    os.nice(args.nice)
    load = Load(args.port)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    load.readers(4)
    load.scrapers(2, pause=0.5)
    if args.mode == "attack":
        load.stuck()
        load.idle(600)
        load.slow(400)
        load.oversized(20)
        load.unknown(200)
    print("running", flush=True)
    done.wait()
    load.stop()
    print("counts %s" % dict(sorted(load.counts.items())), flush=True)


if __name__ == "__main__":
    main()
