#!/usr/bin/env python3
"""bellowsctl top against a real bellowsd with simulated guests: the ncurses view driven
through tmux (send keys, read the screen with capture-pane) and the batch mode.

    top_test.py --build BUILDDIR

The view: the header with host totals, a row per guest, a pressure event shown at the next
refresh, P/M/T/N sorting, F picking, d changing the delay, h showing help, q quitting
with status 0. Batch: -b -n 3 prints three frames with every guest, --csv one row per
guest and refresh, and a dead socket gives a clear error and a non-zero status.
Every wait reads the screen or a simulated guest's output until what it waits for shows."""
import argparse
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "http"))
from surface import Surface  # noqa: E402

NAMES = ["web-1", "db", "batch", "idle"]
WAIT_S = 15


class Tmux:
    """A tmux server of our own (its own socket), one window running one command."""

    def __init__(self, command):
        self.sock = "bellows-top-%d" % os.getpid()
        self.run("new-session", "-d", "-x", "150", "-y", "30", "-s", "top", command)
        self.run("set-option", "-t", "top", "remain-on-exit", "on")

    def run(self, *args):
        return subprocess.run(["tmux", "-L", self.sock] + list(args), check=True,
                              capture_output=True, text=True).stdout

    def screen(self):
        return self.run("capture-pane", "-p", "-t", "top")

    def keys(self, *keys):
        self.run("send-keys", "-t", "top", *keys)

    def wait(self, predicate, what):
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            text = self.screen()
            if predicate(text):
                return text
            time.sleep(0.05)
        raise AssertionError("screen never showed %s; last screen:\n%s" % (what, self.screen()))

    def pane(self, fmt):
        return self.run("display-message", "-p", "-t", "top", fmt).strip()

    def close(self):
        subprocess.run(["tmux", "-L", self.sock, "kill-server"], capture_output=True)


def rows(screen):
    """Guest names in screen order (rows under the column header)."""
    lines = screen.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("NAME "):
            return [ln.split()[0] for ln in lines[i + 1:] if ln.split() and ln.split()[0] in NAMES]
    return []


def row_of(screen, name):
    for line in screen.splitlines():
        if line.startswith(name + " "):
            return line
    return ""


def test_tui(s, bellowsctl):
    # The exit status goes to a file: tmux does not always keep a dead pane's status.
    status_file = os.path.join(s.dir, "top-exit")
    t = Tmux("sh -c '%s -s %s top -d 0.3; echo $? > %s'" % (bellowsctl, s.control, status_file))
    try:
        screen = t.wait(lambda x: len(rows(x)) == len(NAMES), "a row per guest")
        assert "bellows top" in screen and "host: PSI some 10s" in screen, screen
        assert "4 guests" in screen, screen
        # Pressure shows at the next refresh, and sorts first.
        s.sim("pressure batch critical 70")
        screen = t.wait(lambda x: "critical" in row_of(x, "batch"), "batch at critical")
        t.wait(lambda x: rows(x)[:1] == ["batch"], "batch first (sorted by pressure)")
        s.expect(r"balloon batch \d+")
        t.wait(lambda x: "deflate critical" in row_of(x, "batch"), "batch's deflate and reason")
        # Sort keys.
        t.keys("N")
        t.wait(lambda x: rows(x) == sorted(NAMES), "rows sorted by name")
        t.wait(lambda x: "sort: name" in x, "sort: name in the header")
        t.keys("P")
        t.wait(lambda x: rows(x)[:1] == ["batch"] and "sort: pressure" in x, "sort by pressure")
        t.keys("F")
        t.wait(lambda x: "Sort by:" in x, "the sort field prompt")
        t.keys("N", "Enter")
        t.wait(lambda x: rows(x) == sorted(NAMES), "name picked with F")
        # Delay.
        t.keys("d")
        t.wait(lambda x: "Change delay from 0.3 to:" in x, "the delay prompt")
        t.keys("1.5", "Enter")
        t.wait(lambda x: "delay 1.5 s" in x, "the new delay")
        # Help, and back.
        t.keys("h")
        t.wait(lambda x: "bellowsctl top: keys" in x and "sort by pressure" in x, "help")
        t.keys("x")
        t.wait(lambda x: len(rows(x)) == len(NAMES), "the table again")
        # Quit.
        t.keys("q")
        deadline = time.monotonic() + WAIT_S
        while not os.path.exists(status_file) or not open(status_file).read().strip():
            assert time.monotonic() < deadline, "top did not exit on q:\n" + t.screen()
            time.sleep(0.05)
        status = open(status_file).read().strip()
        assert status == "0", "top exited with status %s" % status
    finally:
        t.close()
    print("top-tmux: table, live pressure, P/N/F sorting, d delay, h help, q quit: ok")


def test_batch(s, bellowsctl):
    out = subprocess.run([bellowsctl, "-s", s.control, "top", "-b", "-n", "3", "-d", "0.2"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    frames = [f for f in out.stdout.split("bellows top - ") if f.strip()]
    assert len(frames) == 3, out.stdout
    for f in frames:
        assert "host: PSI some 10s" in f, f
        # What the guests hold, against the budget when one is in force.
        assert re.search(r"  held \S+( of budget \S+|, no budget)  ", f), f
        names = [ln.split()[0] for ln in f.splitlines() if ln.split() and ln.split()[0] in NAMES]
        assert sorted(names) == sorted(NAMES), f
    assert "\x1b" not in out.stdout, "terminal control codes in batch mode"
    out = subprocess.run([bellowsctl, "-s", s.control, "top", "-b", "-n", "2", "-d", "0.2",
                          "--csv", "-o", "name"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("time,name,level,"), lines
    body = [ln.split(",")[1] for ln in lines[1:]]
    assert body == sorted(NAMES) * 2, body
    out = subprocess.run([bellowsctl, "-s", "/nonexistent/ctl.sock", "top", "-b", "-n", "1"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "/nonexistent/ctl.sock" in out.stderr, out
    print("top-batch: 3 frames with every guest, CSV, clear error on a dead socket: ok")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    args = ap.parse_args()
    bellowsctl = os.path.join(args.build, "ctl", "bellowsctl")
    with Surface(args.build, names=NAMES, http=False) as s:
        s.sim("report db medium 20 100")
        test_batch(s, bellowsctl)
        test_tui(s, bellowsctl)


if __name__ == "__main__":
    main()
