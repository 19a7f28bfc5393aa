#!/usr/bin/env python3
"""The Grafana dashboard and its provisioning file, checked for what Grafana's file
provisioning needs and for agreement with what bellowsd exports (Grafana itself is not in
Debian, so it is checked structurally, and its queries by the real promtool):

  - a fixed uid; a `ds` data source variable and every panel and query using it (file
    provisioning never resolves __inputs or ${DS_...}); an `instance` and a `guest`
    variable from label_values() of bellowsd's own metrics; unique panel ids; panels on
    the 24-column grid;
  - every metric a query names is one bellowsd exports (the exposition of test-metrics
    --print, which writes every family);
  - every query is valid PromQL: promtool check rules on a rules file made of them;
  - the provisioning YAML: apiVersion 1, one file provider with a path.

    check_grafana.py --dashboard JSON --provisioning YAML --promtool P --exposition PROG [ARGS]"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import yaml


def fail(msg):
    print("grafana: " + msg, file=sys.stderr)
    sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--provisioning", required=True)
    ap.add_argument("--promtool", required=True)
    ap.add_argument("--exposition", required=True, help="a program printing /metrics text")
    ap.add_argument("exposition_args", nargs=argparse.REMAINDER, help="its arguments")
    args = ap.parse_args()

    text = open(args.dashboard).read()
    d = json.loads(text)
    if d.get("uid") != "bellows-overview":
        fail("uid is %r, not the fixed bellows-overview" % d.get("uid"))
    if "__inputs" in d or "${DS_" in text:
        fail("__inputs or ${DS_...}: file provisioning never resolves them")
    variables = {v["name"]: v for v in d["templating"]["list"]}
    ds = variables.get("ds")
    if not ds or ds["type"] != "datasource" or ds["query"] != "prometheus":
        fail("no `ds` variable of type datasource for prometheus")
    for name in ("instance", "guest"):
        v = variables.get(name)
        if not v or v["type"] != "query" or "label_values(" not in v["definition"]:
            fail("no `%s` variable from label_values()" % name)

    extra = args.exposition_args[1:] if args.exposition_args[:1] == ["--"] else args.exposition_args
    exposition = subprocess.run([args.exposition] + extra, capture_output=True,
                                text=True, check=True).stdout
    exported = set(re.findall(r"^# TYPE (\w+) ", exposition, re.M))
    if len(exported) < 20:
        fail("the exposition has only %d families" % len(exported))

    exprs = [v["definition"] for v in variables.values() if v["type"] == "query"]
    ids = set()
    panels = d["panels"]
    for p in panels:
        if p["id"] in ids:
            fail("panel id %d twice" % p["id"])
        ids.add(p["id"])
        g = p["gridPos"]
        if g["x"] < 0 or g["x"] + g["w"] > 24:
            fail("panel %r leaves the 24-column grid" % p["title"])
        if p["type"] == "row":
            continue
        if p["type"] not in ("timeseries", "stat"):
            fail("panel %r is a %s" % (p["title"], p["type"]))
        if p["datasource"] != {"type": "prometheus", "uid": "${ds}"}:
            fail("panel %r does not use ${ds}" % p["title"])
        if not p["targets"]:
            fail("panel %r has no query" % p["title"])
        for t in p["targets"]:
            if t["datasource"]["uid"] != "${ds}":
                fail("a query of %r does not use ${ds}" % p["title"])
            exprs.append(t["expr"])
    for e in exprs:
        for metric in re.findall(r"\bbellows_\w+", e):
            if metric not in exported:
                fail("%r names %s, which bellowsd does not export" % (e, metric))

    # Grafana's variables replaced as Grafana would, then promtool parses every query.
    rules = {"groups": [{"name": "bellows-dashboard", "rules": []}]}
    for i, e in enumerate(exprs):
        q = e.replace("$__rate_interval", "5m").replace("$instance", ".*").replace("$guest", ".*")
        q = re.sub(r"^label_values\((.*), *\w+\)$", r"\1", q)
        rules["groups"][0]["rules"].append({"record": "bellows:dashboard_query_%d" % i, "expr": q})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump(rules, f)
        rules_path = f.name
    r = subprocess.run([args.promtool, "check", "rules", rules_path], capture_output=True, text=True)
    os.unlink(rules_path)
    if r.returncode != 0:
        fail("promtool check rules:\n" + r.stdout + r.stderr)

    prov = yaml.safe_load(open(args.provisioning))
    if prov.get("apiVersion") != 1:
        fail("provisioning: apiVersion is not 1")
    providers = prov.get("providers") or []
    if len(providers) != 1 or providers[0].get("type") != "file" or \
            not providers[0].get("options", {}).get("path"):
        fail("provisioning: not one file provider with options.path")
    print("grafana: uid %s, %d panels, %d queries naming %d of bellowsd's families, all valid "
          "PromQL; provisioning: ok" % (d["uid"], len([p for p in panels if p["type"] != "row"]),
                                        len(exprs),
                                        len({m for e in exprs for m in re.findall(r"\bbellows_\w+", e)})))


if __name__ == "__main__":
    main()
