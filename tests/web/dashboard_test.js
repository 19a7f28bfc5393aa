/* The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
 * playwright-core) against a real bellowsd whose guests are simulated by
 * bellows-simguests (fake QMP monitors and agent chardevs, as tests/daemon does):
 *
 *   - the page lists every guest, and each guest's plot has data;
 *   - a pressure event sent by a guest's "agent" shows on the page within a second;
 *   - the move bellowsd makes for it shows with its reason: in the table, in the decision
 *     log, and on hover over its marker in the guest's plot;
 *   - sorting and filtering the table work;
 *   - nothing is loaded from anywhere but bellowsd, and the page logs no error;
 *   - screenshots at laptop and wall-display sizes are saved under the build directory.
 *
 *   node dashboard_test.js --build BUILDDIR --out DIR        (tests/web/run sets NODE_PATH)
 * Prints one line per check; exits non-zero on the first failure. */
"use strict";

const { chromium } = require("playwright-core");
const { spawn } = require("child_process");
const fs = require("fs");
const net = require("net");
const os = require("os");
const path = require("path");

const NAMES = ["web-1", "db", "idle", "batch"];
const WAIT_MS = 15000;
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
  "--disable-background-networking", "--disable-component-update", "--disable-sync",
  "--no-first-run"];
const SOURCE = path.resolve(__dirname, "..", "..");

function arg(name) {
  const i = process.argv.indexOf(name);
  if (i < 0 || i + 1 >= process.argv.length) throw new Error("missing " + name);
  return process.argv[i + 1];
}

function ok(what) {
  console.log("ok - " + what);
}

/* ---- bellowsd and its simulated guests ---- */

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const port = s.address().port;
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

/* bellows-simguests: commands on stdin, answers line by line on stdout. */
class Guests {
  constructor(build, dir) {
    this.lines = [];
    this.waiters = [];
    this.proc = spawn(path.join(build, "tests", "http", "bellows-simguests"),
      ["--dir", dir, "--names", NAMES.join(","), "--mib", "1024"], { stdio: ["pipe", "pipe", "inherit"] });
    let buf = "";
    this.proc.stdout.on("data", chunk => {
      buf += chunk;
      let nl;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.lines.push(line);
        this.waiters = this.waiters.filter(w => !w(line));
      }
    });
  }
  send(cmd) {
    this.proc.stdin.write(cmd + "\n");
  }
  /* The next line matching re (from now on), within WAIT_MS. */
  expect(re, what) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("bellows-simguests never said " + what)), WAIT_MS);
      this.waiters.push(line => {
        if (line.startsWith("error")) {
          clearTimeout(timer);
          reject(new Error("bellows-simguests: " + line));
          return true;
        }
        const m = line.match(re);
        if (!m) return false;
        clearTimeout(timer);
        resolve(m);
        return true;
      });
    });
  }
  quit() {
    try { this.send("quit"); this.proc.stdin.end(); } catch (e) { /* gone already */ }
  }
}

async function startDaemon(build, dir, port) {
  const proc = path.join(dir, "proc");
  fs.cpSync(path.join(SOURCE, "tests", "daemon", "data", "proc-calm"), proc, { recursive: true });
  const conf = path.join(dir, "bellowsd.conf");
  fs.writeFileSync(conf, "[daemon]\ncontrol_socket = " + path.join(dir, "control.sock") +
    "\nproc_dir = " + proc + "\nstate_dir = " + path.join(dir, "state") +
    "\nhttp_listen = 127.0.0.1:" + port + "\n\n" +
    fs.readFileSync(path.join(dir, "guests.conf"), "utf8"));
  const log = fs.openSync(path.join(dir, "bellowsd.log"), "w");
  return spawn(path.join(build, "host-daemon", "bellowsd"), ["--config", conf],
    { stdio: ["ignore", log, log] });
}

async function getJSON(base, p) {
  const r = await fetch(base + p);
  if (!r.ok) throw new Error(p + ": HTTP " + r.status);
  return r.json();
}

/* Poll a condition of the daemon's API until it holds (a wait on state, not a sleep). */
async function until(what, fn) {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > deadline) throw new Error("never: " + what);
    await new Promise(r => setTimeout(r, 50));
  }
}

/* ---- the checks ---- */

async function rowNames(page) {
  return page.$$eval("#guests tbody tr", trs => trs.map(tr => tr.dataset.guest));
}

async function checkPage(page, base, guests, out) {
  await page.goto(base + "/");
  await page.waitForFunction(() => document.getElementById("live").textContent === "live",
    null, { timeout: WAIT_MS });
  ok("the event stream is live");

  await page.waitForFunction(n => document.querySelectorAll("#guests tbody tr").length === n,
    NAMES.length, { timeout: WAIT_MS });
  const names = await rowNames(page);
  if ([...names].sort().join() !== [...NAMES].sort().join())
    throw new Error("table lists " + names + ", expected " + NAMES);
  ok("the table lists every guest: " + names.join(", "));

  /* Each guest's plot: a canvas drawn from at least 3 seconds of samples. */
  await page.waitForFunction(n => {
    const cards = [...document.querySelectorAll("#plots .card")];
    return cards.length === n && cards.every(c => {
      const g = state.guests.get(c.dataset.guest);
      return c.querySelector("canvas") && g && g.plot && g.plot.data[0].length >= 3 &&
        g.plot.data[2].some(v => v !== null);
    });
  }, NAMES.length, { timeout: WAIT_MS });
  const points = await page.evaluate(() => [...state.guests.values()].map(g => g.name + ":" + g.plot.data[0].length));
  ok("every guest's plot has data (" + points.join(" ") + " samples)");
  await page.waitForFunction(() => state.hostHist.t.length >= 2 && document.querySelector("#hostplot canvas"),
    null, { timeout: WAIT_MS });
  ok("the host plot has data");

  /* The host budget (computed from proc-calm's meminfo once the guests' sizes are known):
   * the header says what the guests hold of it, with a bar; the host plot draws both. */
  await until("a host budget in /api/v1/host", async () => (await getJSON(base, "/api/v1/host")).budget);
  await page.waitForFunction(() => {
    const t = document.getElementById("host-budget").textContent;
    const h = state.hostHist;
    return / of \d/.test(t) && !document.getElementById("host-budget-bar").hidden &&
      hostPlot && hostPlot.series.length === 5 &&
      h.budget.some(v => v !== null) && h.held.some(v => v !== null && v > 0);
  }, null, { timeout: WAIT_MS });
  const budgetText = await page.$eval("#host-budget", e => e.textContent);
  ok("the header shows what the guests hold of the budget (" + budgetText + "), the host plot both");

  /* A pressure event, live within a second. */
  const before = await page.$eval('tr[data-guest="idle"] .lvl', e => e.textContent);
  if (before !== "none") throw new Error("idle starts at " + before);
  const balloon = guests.expect(/^balloon idle \d+/, "a balloon command to idle");
  const sent = Date.now();
  guests.send("pressure idle critical 70");
  await page.waitForFunction(() => {
    const e = document.querySelector('tr[data-guest="idle"] .lvl');
    return e && e.textContent === "critical";
  }, null, { timeout: 1000, polling: "raf" });
  const shown = Date.now() - sent;
  ok("idle's critical pressure event showed on the page " + shown + " ms after it was sent");

  /* bellowsd deflates it; the move and its reason show. */
  await balloon;
  await page.waitForFunction(() => {
    const row = document.querySelector('tr[data-guest="idle"] td.decision');
    return row && row.textContent.includes("deflate") && row.textContent.includes("critical");
  }, null, { timeout: WAIT_MS });
  ok("the table shows idle's last decision: deflate (critical)");
  await page.waitForFunction(() => [...document.querySelectorAll("#decision-log li")].some(li =>
    li.dataset.guest === "idle" && li.querySelector(".reason").textContent === "critical"),
    null, { timeout: WAIT_MS });
  ok("the decision log shows idle's deflate and its reason");

  /* Hovering the move's marker in idle's plot says why (once a tick has carried the plot's
   * time axis past the move). */
  await page.waitForFunction(() => {
    const g = state.guests.get("idle"), d = g.hist.decisions[g.hist.decisions.length - 1];
    const t = g.plot.data[0];
    return d && t.length && t[t.length - 1] >= d.t / 1000;
  }, null, { timeout: WAIT_MS });
  /* The plot moves with every tick (early on, when it spans a few seconds, by many pixels),
   * and the page may lay out again: the marker is looked up and hovered again until the
   * tooltip shows, not hovered once where it was a tick ago. */
  const hoverUntil = Date.now() + WAIT_MS;
  for (let tries = 1; ; tries++) {
    await page.locator('.card[data-guest="idle"]').scrollIntoViewIfNeeded();
    const spot = await page.evaluate(() => {
      const g = state.guests.get("idle");
      const d = g.hist.decisions[g.hist.decisions.length - 1];
      const u = g.plot, r = u.over.getBoundingClientRect();
      return { x: r.left + u.valToPos(d.t / 1000, "x"), y: r.top + u.valToPos(d.to / 1048576, "mem") };
    });
    await page.mouse.move(0, 0);
    await page.mouse.move(spot.x, spot.y);
    const shown = await page.waitForFunction(() => {
      const t = document.getElementById("tooltip");
      return !t.hidden && t.textContent.includes("deflate because critical");
    }, null, { timeout: 500 }).then(() => true, () => false);
    if (shown)
      break;
    if (Date.now() > hoverUntil)
      throw new Error("hovering idle's marker never showed its reason (" + tries + " tries)");
  }
  ok("hovering the marker shows: " + await page.$eval("#tooltip", t => t.textContent));
  await page.mouse.move(0, 0);

  /* Sort by name; filter. */
  await page.click('#guests th[data-key="name"]');
  const sorted = await rowNames(page);
  if (sorted.join() !== [...NAMES].sort().join()) throw new Error("sorted by name: " + sorted);
  await page.click('#guests th[data-key="name"]');
  const reversed = await rowNames(page);
  if (reversed.join() !== [...NAMES].sort().reverse().join()) throw new Error("reversed: " + reversed);
  ok("clicking the guest column sorts by name, again reverses");
  await page.fill("#filter", "critical");
  await page.waitForFunction(() => document.querySelectorAll("#guests tbody tr").length === 1);
  const filtered = await rowNames(page);
  if (filtered.join() !== "idle") throw new Error("filter 'critical' shows " + filtered);
  await page.fill("#filter", "");
  await page.waitForFunction(n => document.querySelectorAll("#guests tbody tr").length === n, NAMES.length);
  ok("filtering by 'critical' shows idle alone");

  /* Screenshots: a laptop, then a wall display. */
  await page.click('#guests th[data-key="level"]');
  await page.evaluate(() => window.scrollTo(0, 0));
  const laptop = path.join(out, "dashboard-laptop.png");
  await page.screenshot({ path: laptop, fullPage: true });
  await page.setViewportSize({ width: 2560, height: 1440 });
  await page.waitForFunction(() => {
    const c = document.querySelector("#plots .card canvas");
    return c && c.getBoundingClientRect().width > 700;
  }, null, { timeout: WAIT_MS });
  const fontPx = await page.evaluate(() => parseFloat(getComputedStyle(document.documentElement).fontSize));
  if (fontPx < 18) throw new Error("wall display: the text stays at " + fontPx + " px");
  const wall = path.join(out, "dashboard-wall.png");
  await page.screenshot({ path: wall });
  ok("screenshots: " + laptop + " (1366x768, full page), " + wall + " (2560x1440, text " + fontPx + " px)");
}

async function main() {
  const build = path.resolve(arg("--build"));
  const out = path.resolve(arg("--out"));
  fs.mkdirSync(out, { recursive: true });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bellows-web-"));
  const port = await freePort();
  const base = "http://127.0.0.1:" + port;
  const guests = new Guests(build, dir);
  let daemon = null, browser = null;
  const problems = [];
  try {
    await guests.expect(/^ready \d+/, "ready");
    daemon = await startDaemon(build, dir, port);
    daemon.on("exit", code => { if (code) problems.push("bellowsd exited with " + code); });
    guests.send("wait");
    await guests.expect(/^welcomed \d+/, "every guest welcomed");
    guests.send("auto on");
    await until("bellowsd serves its API", async () => {
      try { return (await getJSON(base, "/api/v1/guests")).guests.length === NAMES.length; } catch (e) { return false; }
    });
    await until("3 s of history for every guest", async () => {
      for (const n of NAMES)
        if ((await getJSON(base, "/api/v1/guests/" + n + "/history")).t.length < 3) return false;
      return true;
    });

    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await context.newPage();
    page.on("console", m => { if (m.type() === "error") problems.push("console: " + m.text()); });
    page.on("pageerror", e => problems.push("page error: " + e.message));
    page.on("request", r => {
      if (!r.url().startsWith(base + "/") && !r.url().startsWith("data:"))
        problems.push("loaded from elsewhere: " + r.url());
    });
    page.on("response", r => { if (r.status() >= 400) problems.push("HTTP " + r.status() + " " + r.url()); });
    await checkPage(page, base, guests, out);
    if (problems.length) throw new Error(problems.join("\n"));
    ok("only bellowsd was asked for anything, and the page logged no error");
  } finally {
    if (browser) await browser.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill("SIGTERM");
      await new Promise(r => daemon.once("exit", r));
    }
    guests.quit();
    if (problems.length) {
      console.error(fs.readFileSync(path.join(dir, "bellowsd.log"), "utf8").split("\n").slice(-30).join("\n"));
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().then(() => console.log("dashboard: all checks passed"), e => {
  console.error("not ok - " + e.message);
  process.exit(1);
});
