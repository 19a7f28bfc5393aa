#!/usr/bin/env python3
"""The Grafana dashboard's queries against real data. A real Prometheus server scrapes a
real bellowsd with simulated guests every second; one guest's critical pressure makes a
move. Then every variable and every panel query of the dashboard is asked of that
Prometheus as Grafana would ask it: $instance and $guest take the values the variables'
own label_values() queries return, $__rate_interval is 15 s (four 1 s scrapes and more).

  - each variable has values: the instance scraped; every simulated guest;
  - each query evaluates without error and returns data, except a filter that a healthy
    host leaves empty ("links down": `... == 0`), whose series must be there without it;
  - the budget panel shows the daemon's own numbers: its budget and what the guests hold
    equal /api/v1/host's at the same scrape (the daemon's host is calm and constant).

    prometheus_test.py --build BUILDDIR --prometheus PATH --dashboard JSON"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "http"))
from surface import Surface, free_port, terminate  # noqa: E402

NAMES = ["web-1", "db", "idle"]
RATE_INTERVAL = "15s"


def fail(msg):
    print("prometheus: " + msg, file=sys.stderr)
    sys.exit(1)


class Prometheus:
    """A Prometheus server in a temporary directory, scraping one target every second."""

    def __init__(self, exe, target):
        self.dir = tempfile.mkdtemp(prefix="bellows-prometheus-")
        self.port = free_port()
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: bellows\n    static_configs:\n"
                    "      - targets: ['%s']\n" % target)
        self.log = open(os.path.join(self.dir, "prometheus.log"), "w")
        self.proc = subprocess.Popen(
            [exe, "--config.file=" + conf, "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port],
            stdout=self.log, stderr=subprocess.STDOUT)

    def stop(self):
        terminate(self.proc)
        self.log.close()
        if os.environ.get("BELLOWS_KEEP"):
            print("prometheus: kept %s" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def api(self, path, **params):
        url = "http://127.0.0.1:%d%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                return json.load(r)
        except urllib.error.HTTPError as e:
            return json.load(e)  # the API's error object: {"status": "error", ...}

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port,
                                        timeout=10) as r:
                return r.status == 200
        except urllib.error.HTTPError:
            return False  # 503 while it starts

    def query(self, expr):
        """The instant vector of expr, or fail with Prometheus's own error."""
        r = self.api("/api/v1/query", query=expr)
        if r.get("status") != "success":
            fail("query %r: %s: %s" % (expr, r.get("errorType"), r.get("error")))
        return r["data"]["result"]

    def wait(self, what, check, timeout=60):
        """Ask again until check() is true: Prometheus has no event to wait on; it scrapes
        every second, so each look is one scrape apart at most."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():
                    return
            except OSError:
                pass  # not listening yet
            if self.proc.poll() is not None:
                fail("prometheus exited waiting for %s: see %s" % (what, self.log.name))
            if time.monotonic() > deadline:
                fail("timed out waiting for %s" % what)
            time.sleep(0.2)


def regex_literal(value):
    """A variable's value inside =~"..." as Grafana writes it: regex-escaped, then each
    backslash doubled for the PromQL string."""
    return re.escape(value).replace("\\", "\\\\")


def label_values(prom, definition):
    """Grafana's label_values(metric{...}, label) through Prometheus's series API."""
    m = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", definition)
    if not m:
        fail("variable query %r is not label_values(selector, label)" % definition)
    r = prom.api("/api/v1/series", **{"match[]": m.group(1)})
    if r.get("status") != "success":
        fail("series %r: %s" % (m.group(1), r.get("error")))
    return sorted({s[m.group(2)] for s in r["data"] if m.group(2) in s})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--prometheus", required=True)
    ap.add_argument("--dashboard", required=True)
    args = ap.parse_args()
    dashboard = json.load(open(args.dashboard))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}

    with Surface(args.build, names=NAMES) as s:
        prom = Prometheus(args.prometheus, "127.0.0.1:%d" % s.port)
        try:
            instance = "127.0.0.1:%d" % s.port
            prom.wait("prometheus to be ready", prom.ready)
            prom.wait("the first scrape of bellowsd",
                      lambda: any(r["value"][1] == "1" for r in prom.query("up")))
            # A move to count: critical pressure on one guest.
            s.sim("pressure web-1 critical 60")
            s.expect(r"^balloon web-1 \d+")
            prom.wait("web-1's move in Prometheus", lambda: prom.query(
                'bellows_guest_moves_total{guest="web-1",action="deflate"} > 0'))
            # Enough samples after the move for a rate over RATE_INTERVAL.
            prom.wait("%s of samples" % RATE_INTERVAL, lambda: any(
                float(r["value"][1]) >= 15 for r in
                prom.query("count_over_time(bellows_build_info[1m])")))

            # The variables, resolved as Grafana resolves them.
            instances = label_values(prom, variables["instance"]["definition"])
            if instances != [instance]:
                fail("$instance has %r, not the one bellowsd scraped (%s)" % (instances, instance))
            guest_def = variables["guest"]["definition"].replace("$instance", instance)
            guests = label_values(prom, guest_def)
            if guests != sorted(NAMES):
                fail("$guest has %r, not the simulated guests %r" % (guests, sorted(NAMES)))
            print("variables: instance %s, guest %s" % (instance, guests))

            asked = 0
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    expr = (target["expr"].replace("$__rate_interval", RATE_INTERVAL)
                            .replace("$instance", regex_literal(instance)).replace("$guest", "web-1"))
                    result = prom.query(expr)
                    asked += 1
                    if result:
                        continue
                    # A filter a healthy host leaves empty: its series must be there.
                    unfiltered = re.sub(r"\s*==\s*0\s*$", "", expr)
                    if unfiltered != expr and prom.query(unfiltered):
                        continue
                    fail("panel %r: %s returns no data" % (panel["title"], expr))
            print("%d queries of %d panels return data" % (asked, len(dashboard["panels"])))

            # The budget panel: the daemon's budget and what the guests hold, as its API
            # says (both change only with a move: the next scrape after one agrees).
            panel = [p for p in dashboard["panels"] if "budget" in p["title"]]
            if len(panel) != 1:
                fail("no single budget panel: %r" % [p["title"] for p in panel])
            exprs = {t["legendFormat"]: t["expr"].replace("$instance", regex_literal(instance))
                     for t in panel[0]["targets"]}
            seen = {}

            def agrees():
                host = json.loads(s.get("/api/v1/host")[2])
                for name, key in (("budget", "budget"), ("guests hold", "held")):
                    result = prom.query(exprs[name])
                    seen[name] = int(float(result[0]["value"][1])) if result else None
                    if host.get(key) is None or seen[name] != host[key]:
                        return False
                return True
            prom.wait("the budget panel at /api/v1/host's budget and held", agrees, timeout=30)
            print("budget panel: budget %d MiB, guests hold %d MiB, as /api/v1/host says"
                  % (seen["budget"] >> 20, seen["guests hold"] >> 20))
        finally:
            prom.stop()


if __name__ == "__main__":
    main()
