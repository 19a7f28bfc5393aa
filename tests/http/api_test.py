#!/usr/bin/env python3
"""bellowsd's HTTP surface against a real bellowsd with simulated guests:

  api        /api/v1/... answers the control socket's views (same guests, same fields),
             the history, the host; clear JSON errors (404, 400, 405); the dashboard's
             files with ETag and a Content-Security-Policy;
  events     the event stream: a tick every second, a pressure event and the move it
             causes, each right away;
  metrics    /metrics from the running daemon passes the real `promtool check metrics`
             with no finding, and counts what happened (moves by action and reason,
             frames by outcome, the guests' info);
  reload     SIGHUP with a new http_listen: it waits for a restart, the surface stays;
  off        http_listen = off: nothing listens, the daemon runs;
  busy-port  the port is taken: the daemon says so and goes on, its control socket works.

    api_test.py --build BUILDDIR [--promtool PATH] [CHECK...]"""
import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from surface import Surface  # noqa: E402

NAMES = ["web-1", "db", "idle"]


def control(s, request):
    """One request on the control socket, its reply as JSON."""
    with socket.socket(socket.AF_UNIX) as c:
        c.connect(s.control)
        c.sendall((json.dumps(request) + "\n").encode())
        data = b""
        while not data.endswith(b"\n"):
            chunk = c.recv(65536)
            assert chunk, "control socket closed"
            data += chunk
    return json.loads(data)


def get_json(s, path, status=200):
    st, headers, body = s.get(path)
    assert st == status, (path, st, body)
    assert headers["Content-Type"] == "application/json", headers
    return json.loads(body)


def shape(value):
    """The keys of a JSON value, recursively (values that change with time left out)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__ if value is not None else None


def check_api(s):
    s.sim("pressure web-1 critical 60")
    s.expect(r"^balloon web-1 \d+")
    listed = get_json(s, "/api/v1/guests")
    ctl = control(s, {"cmd": "list"})
    assert ctl.pop("ok") is True
    assert sorted(g["name"] for g in listed["guests"]) == sorted(NAMES), listed
    # The same view as the control socket's: same keys everywhere, same settings.
    assert shape(listed)["guests"][0].keys() == shape(ctl)["guests"][0].keys()
    for a, b in zip(sorted(listed["guests"], key=lambda g: g["name"]),
                    sorted(ctl["guests"], key=lambda g: g["name"])):
        for key in ("name", "floor", "ceiling", "weight", "source", "balloon", "channel"):
            assert a[key] == b[key], (key, a[key], b[key])
    assert listed["dry_run"] is False and listed["host"]["mem_total"] > 0

    one = get_json(s, "/api/v1/guests/web-1")
    shown = control(s, {"cmd": "show", "name": "web-1"})["guest"]
    assert one.keys() == shown.keys() and "decisions" in one, one.keys()
    assert one["decisions"][0]["action"] == "deflate", one["decisions"]
    assert one["decisions"][0]["reason"] == "critical", one["decisions"]
    assert one["mem_total"] > 0 and one["mem_available"] > 0, one
    # show's "sizing": the policy's reading of the guest (docs/control.md). Just given
    # memory on a critical event, it may not be inflated for the cooldown; bellowsctl show
    # says so in words.
    z = one["sizing"]
    assert set(z) == {"used", "overhead", "need", "working_set", "stall", "flips", "hurt",
                      "inflate_wait_ms", "stuck"}, z
    assert 0 < z["inflate_wait_ms"] <= 200000 and z["stuck"] is None, z
    assert z["need"] is None or z["need"] >= z["used"], z
    text = subprocess.run([os.path.join(s.build, "ctl", "bellowsctl"), "--socket", s.control,
                           "show", "web-1"], stdout=subprocess.PIPE, text=True, timeout=10,
                          check=True).stdout
    assert "\nsizing: " in text and "\ngiven memory: no inflate for " in text, text

    # History: one sample a second, the move with its reason; `since` filters.
    deadline = time.monotonic() + 10
    while len(get_json(s, "/api/v1/guests/web-1/history")["t"]) < 2:
        assert time.monotonic() < deadline, "no history after 10 s"
        time.sleep(0.1)
    h = get_json(s, "/api/v1/guests/web-1/history")
    n = len(h["t"])
    for key in ("actual", "target", "used", "psi_some", "level"):
        assert len(h[key]) == n, (key, h)
    assert h["decisions"][0]["reason"] == "critical", h["decisions"]
    assert all(t2 >= t1 for t1, t2 in zip(h["t"], h["t"][1:])), h["t"]
    later = get_json(s, "/api/v1/guests/web-1/history?since=%d" % h["t"][-1])
    assert later["t"] and later["t"][0] >= h["t"][-1], later
    future = get_json(s, "/api/v1/guests/web-1/history?since=4000000000")
    assert future["t"] == [] and future["decisions"] == [], future
    host = get_json(s, "/api/v1/host")
    assert host["mem_total"] > 0 and host["pressure"] is False, host
    # The budget in force (null while none is) and what the guests hold against it.
    assert "budget" in host and host["held"] >= 0, host
    # bellowsctl list says the same on its host line.
    out = subprocess.run([os.path.join(s.build, "ctl", "bellowsctl"), "--socket", s.control,
                          "list"], stdout=subprocess.PIPE, text=True, timeout=10, check=True)
    first = out.stdout.splitlines()[0]
    held = host["held"]
    want = "held %.2fG" % (held / 2**30) if held >= 2**30 else "held %.0fM" % (held / 2**20)
    assert first.startswith("host: ") and want in first, (first, host)
    assert ("of budget " if host["budget"] is not None else "no budget") in first, first
    hh = get_json(s, "/api/v1/host/history")
    assert len(hh["t"]) >= 1 and hh["available"][0] > 0, hh
    assert len(hh["budget"]) == len(hh["held"]) == len(hh["t"]), hh
    index = get_json(s, "/api/v1")
    assert "/api/v1/events" in index["endpoints"] and "/metrics" in index["endpoints"], index

    # Errors: clear, JSON, right status.
    err = get_json(s, "/api/v1/guests/nobody", 404)
    assert "nobody" in err["error"], err
    err = get_json(s, "/api/v1/guests/bad%20name", 404)
    err = get_json(s, "/api/v1/nothing", 404)
    assert "no such path" in err["error"], err
    err = get_json(s, "/api/v1/guests/web-1/history?since=yesterday", 400)
    assert "since" in err["error"], err
    st, headers, body = s.get("/api/v1/guests", method="POST", body=b"{}")
    assert st == 405 and headers["Allow"] == "GET, HEAD", (st, headers)
    assert "read-only" in json.loads(body)["error"], body
    st, headers, body = s.get("/no-such-file.js")
    assert st == 404 and json.loads(body)["error"], body

    # The dashboard: its page, with an ETag that revalidates, and a CSP.
    st, headers, body = s.get("/")
    assert st == 200 and headers["Content-Type"].startswith("text/html"), headers
    assert b"app.js" in body and "default-src 'self'" in headers["Content-Security-Policy"]
    st, _, body = s.get("/", headers={"If-None-Match": headers["ETag"]})
    assert st == 304 and body == b"", st
    st, headers, body = s.get("/vendor/uPlot.iife.min.js")
    assert st == 200 and headers["Content-Type"].startswith("text/javascript") and len(body) > 40000
    st, headers, body = s.get("/vendor/uPlot.LICENSE")
    assert st == 200 and b"MIT License" in body
    print("api: views as the control socket's, history, host, errors, dashboard files: ok")


def read_events(resp, want, timeout):
    """Events (name, data) from an open stream until want(name, data) says stop."""
    deadline = time.monotonic() + timeout
    name, data, seen = None, [], []
    while time.monotonic() < deadline:
        line = resp.readline().decode()
        if line == "":
            raise AssertionError("the stream ended")
        line = line.rstrip("\r\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            ev = (name, json.loads("\n".join(data)))
            seen.append(ev)
            if want(*ev):
                return ev, seen
            name, data = None, []
    raise AssertionError("no such event within %s s; saw %s" % (timeout, [e[0] for e in seen]))


def check_events(s):
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10)
    c.request("GET", "/api/v1/events")
    resp = c.getresponse()
    assert resp.status == 200 and resp.getheader("Content-Type") == "text/event-stream"
    assert resp.readline().startswith(b"retry: ")
    (_, tick), _ = read_events(resp, lambda n, d: n == "tick", 3)
    assert sorted(g["name"] for g in tick["guests"]) == sorted(NAMES), tick
    assert tick["host"]["total"] > 0 and isinstance(tick["t"], int), tick
    t0 = time.monotonic()
    s.sim("pressure db critical 65")
    (_, p), _ = read_events(resp, lambda n, d: n == "pressure" and d["guest"] == "db", 2)
    took = time.monotonic() - t0
    assert p["level"] == "critical" and p["psi_some"] == 65, p
    assert took < 1, "the pressure event took %.3f s" % took
    (_, d), _ = read_events(resp, lambda n, d: n == "decision" and d["guest"] == "db", 5)
    assert d["action"] == "deflate" and d["reason"] == "critical", d
    assert d["to"] > d["from"] and d["result"] in ("pending", "done"), d
    c.close()
    print("events: tick, pressure event after %.0f ms, the deflate it caused with its reason: ok"
          % (took * 1000))


def check_metrics(s, promtool):
    s.sim("pressure idle critical 70")
    s.expect(r"^balloon idle \d+")
    # The move is counted once its notice came back: read until it shows.
    deadline = time.monotonic() + 10
    while True:
        st, headers, body = s.get("/metrics")
        assert st == 200 and headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        text = body.decode()
        if 'bellows_guest_moves_total{guest="idle",action="deflate",reason="critical"} 1' in text:
            break
        assert time.monotonic() < deadline, text
        time.sleep(0.1)
    r = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    findings = (r.stdout + r.stderr).decode().strip()
    assert r.returncode == 0 and not findings, "promtool: exit %d\n%s" % (r.returncode, findings)
    families = [ln.split()[2] for ln in text.splitlines() if ln.startswith("# TYPE ")]
    samples = [ln for ln in text.splitlines() if ln and not ln.startswith("#")]

    def value(series):
        for ln in samples:
            if ln.startswith(series + " "):
                return float(ln.split()[-1])
        raise AssertionError("no sample " + series)
    assert value('bellows_guest_moves_total{guest="idle",action="inflate",reason="quiet"}') == 0
    assert value('bellows_guest_frames_total{guest="idle",outcome="accepted"}') >= 1
    assert value('bellows_guest_balloon_actual_bytes{guest="idle"}') > 1024 * 2**20
    assert value('bellows_guest_pressure_level{guest="idle"}') == 3
    # The policy's sizing: a working set for every guest, at least its floor (docs/control.md).
    assert value('bellows_guest_working_set_bytes{guest="idle"}') >= 256 * 2**20
    assert value('bellows_guest_channel_connected{guest="db"}') == 1
    assert value('bellows_guest_backend_connected{guest="db"}') == 1
    assert value('bellows_guests') == len(NAMES)
    assert value('bellows_decision_rounds_total') >= 1
    assert value('bellows_build_info{version="0.1.0"}') == 1
    assert value('bellows_history_bytes') > 0
    assert any(ln.startswith('bellows_guest_info{guest="idle",backend="qmp",source="file"')
               for ln in samples), text
    assert value('bellows_host_memory_total_bytes') > 0
    # What the guests hold: their balloon sizes summed. The budget and where it comes from
    # (proc_dir's meminfo here), both or neither.
    actual = sum(float(ln.split()[-1]) for ln in samples
                 if ln.startswith("bellows_guest_balloon_actual_bytes{"))
    assert value('bellows_host_guests_held_bytes') == actual, text
    has_budget = any(ln.startswith("bellows_host_budget_bytes ") for ln in samples)
    has_info = any(ln == 'bellows_host_budget_info{source="meminfo"} 1' for ln in samples)
    assert has_budget == has_info, text
    print("metrics: promtool check metrics: no finding (%d families, %d samples); counts: ok; "
          "held %d MiB, budget %s" % (len(families), len(samples), actual / 2**20,
                                      "%d MiB" % (value('bellows_host_budget_bytes') / 2**20)
                                      if has_budget else "none"))


def check_reload(s):
    """SIGHUP with a new http_listen: said to take effect at the next restart, and the
    surface stays where it is."""
    conf = os.path.join(s.dir, "bellowsd.conf")
    text = open(conf).read()
    open(conf, "w").write(text.replace("http_listen = 127.0.0.1:%d" % s.port,
                                       "http_listen = 127.0.0.1:%d" % (s.port + 1)))
    s.daemon.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while "take effect at the next restart" not in s.daemon_log():
        assert time.monotonic() < deadline, s.daemon_log()[-2000:]
        time.sleep(0.05)
    assert get_json(s, "/api/v1/guests")["guests"], "the surface moved or stopped"
    print("reload: a new http_listen waits for the next restart, the surface stays: ok")


def check_off(build):
    with Surface(build, names=["solo"], http=False) as s:
        st = control(s, {"cmd": "list"})
        assert st["ok"] and len(st["guests"]) == 1
        assert "http: off" in s.daemon_log(), s.daemon_log()
    print("off: http_listen = off serves nothing, the daemon runs: ok")


def check_busy_port(build):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with Surface(build, names=["solo"], http_port=port) as s:
            log = s.daemon_log()
            assert "cannot listen on 127.0.0.1:%d" % port in log, log
            assert "goes on without" in log, log
            assert control(s, {"cmd": "list"})["ok"]
            assert s.daemon.poll() is None
    print("busy-port: the daemon says it cannot listen and goes on: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--promtool", default="promtool")
    ap.add_argument("checks", nargs="*", default=["api", "events", "metrics", "off", "busy-port"])
    args = ap.parse_args()
    live = [c for c in args.checks if c in ("api", "events", "metrics")]
    if live:
        with Surface(args.build, names=NAMES) as s:
            s.sim("auto on")
            if "api" in live:
                check_api(s)
            if "events" in live:
                check_events(s)
            if "metrics" in live:
                check_metrics(s, args.promtool)
            check_reload(s)
    if "off" in args.checks:
        check_off(args.build)
    if "busy-port" in args.checks:
        check_busy_port(args.build)


if __name__ == "__main__":
    main()
