/* bellows dashboard: the guest table, per-guest plots (pressure, balloon size, decisions
 * marked with their reasons), the host plot and the decision log, kept live by bellowsd's
 * event stream (/api/v1/events). Endpoints and event formats: docs/operations.md. */
"use strict";

const LEVELS = ["none", "low", "medium", "critical"];
const WINDOW_S = 3600;   /* what the plots show */
const MAX_PLOTS = 24;    /* guest plots drawn at once: the first rows of the table */
const MAX_LOG = 200;     /* decision log entries kept */
const MIB = 1024 * 1024;

const state = {
  guests: new Map(),     /* name -> guest */
  host: null,            /* latest host reading (view) */
  hostHist: emptyHostHist(),
  sort: { key: "level", dir: -1 },
  filter: "",
  dryRun: false,
  log: [],               /* decisions, newest first */
};

function emptyHist() {
  return { t: [], actual: [], target: [], used: [], psi: [], level: [], decisions: [] };
}
function emptyHostHist() {
  return { t: [], available: [], total: [], budget: [], held: [], psi: [], pressure: [] };
}

/* ---- formatting ---- */

function fmtBytes(b) {
  if (b === null || b === undefined) return "–";
  if (b >= 1024 * MIB) return (b / 1024 / MIB).toFixed(2) + " GiB";
  return Math.round(b / MIB) + " MiB";
}
function fmtMiB(v) {
  if (v === null || v === undefined) return "–";
  return v >= 1024 ? (v / 1024).toFixed(2) + " GiB" : Math.round(v) + " MiB";
}
function fmtPct(p) {
  return p === null || p === undefined ? "–" : p.toFixed(p < 10 ? 2 : 1) + " %";
}
function fmtAge(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return s + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  return (s / 3600).toFixed(1) + " h ago";
}
function fmtTime(ms) {
  return new Date(ms).toLocaleTimeString([], { hour12: false });
}
function mib(b) {
  return b === null || b === undefined ? null : b / MIB;
}
function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function levelIndex(l) {
  const i = typeof l === "number" ? l : LEVELS.indexOf(l);
  return i < 0 ? 0 : i;
}

/* ---- fetching ---- */

async function getJSON(path) {
  const r = await fetch(path, { cache: "no-store" });
  if (!r.ok) throw new Error(path + ": HTTP " + r.status);
  return r.json();
}

/* A guest as the API's view shows it (docs/control.md), normalised for the page. */
function fromView(v, old) {
  const g = old || { name: v.name, hist: emptyHist(), histLoaded: false, plot: null, card: null };
  g.level = levelIndex(v.level);
  g.psi = v.psi_some_avg10 ?? null;
  g.available = v.mem_available ?? null;
  g.total = v.mem_total ?? null;
  g.used = g.total !== null && g.available !== null ? g.total - g.available : null;
  g.floor = v.floor;
  g.ceiling = v.ceiling;
  g.weight = v.weight;
  g.paused = !!v.paused;
  g.actual = v.balloon ? v.balloon.actual : null;
  g.target = v.balloon ? v.balloon.target : null;
  g.channelUp = !!(v.channel && v.channel.connected);
  g.backendUp = !!((v.qmp && v.qmp.ready) || (v.libvirt && v.libvirt.connected) ||
                   (v.balloon && v.balloon.ready));
  const m = v.last_move;
  if (m && (!g.last || g.last.seq !== m.seq || g.last.result !== m.result))
    g.last = { seq: m.seq, t: Date.parse(m.time), action: m.action, reason: m.reason,
               from: m.from, to: m.to, result: m.result, error: m.error };
  return g;
}

async function loadGuests() {
  const list = await getJSON("api/v1/guests");
  state.dryRun = !!list.dry_run;
  if (list.host) setHost(list.host);
  const seen = new Set();
  for (const v of list.guests) {
    seen.add(v.name);
    state.guests.set(v.name, fromView(v, state.guests.get(v.name)));
  }
  for (const [name, g] of state.guests) {
    if (!seen.has(name)) {
      if (g.plot) g.plot.destroy();
      if (g.card) g.card.remove();
      state.guests.delete(name);
    }
  }
  render();
}

async function loadHistory(g) {
  const h = await getJSON("api/v1/guests/" + encodeURIComponent(g.name) + "/history");
  g.hist = {
    t: h.t, actual: h.actual.map(mib), target: h.target.map(mib), used: h.used.map(mib),
    psi: h.psi_some, level: h.level,
    decisions: h.decisions.map(d => ({ seq: d.seq, t: d.t, action: d.action, reason: d.reason,
                                       from: d.from, to: d.to, result: d.result })),
  };
  g.histLoaded = true;
  /* The decision log starts with the moves the history holds. */
  for (const d of h.decisions) addToLog({ guest: g.name, seq: d.seq, t: d.t, action: d.action,
                                          reason: d.reason, from: d.from, to: d.to, result: d.result });
  renderLog();
  drawGuest(g);
}

async function loadHostHistory() {
  const h = await getJSON("api/v1/host/history");
  state.hostHist = {
    t: h.t, available: h.available.map(mib), total: h.total.map(mib),
    budget: h.budget.map(mib), held: (h.held || h.t.map(() => null)).map(mib),
    psi: h.psi_some, pressure: h.pressure,
  };
  drawHost();
}

/* ---- the host ---- */

function setHost(h) {
  state.host = h;
  document.getElementById("host-psi").textContent = fmtPct(h.psi_some_avg10 ?? h.psi_some);
  const avail = h.mem_available ?? h.available, total = h.mem_total ?? h.total;
  document.getElementById("host-avail").textContent = fmtBytes(avail) + " of " + fmtBytes(total);
  setBudget(h.budget, h.held);
  const st = document.getElementById("host-state");
  st.textContent = h.pressure ? "under pressure" : "calm";
  st.className = h.pressure ? "lvl-3" : "lvl-0";
}

/* What the guests hold against the host budget: "3.00 GiB of 12.00 GiB" and a bar, or
 * "3.00 GiB, no budget" while none is in force (off, or not computed yet). */
function setBudget(budget, held) {
  const known = v => v !== null && v !== undefined;
  const dd = document.getElementById("host-budget");
  const bar = document.getElementById("host-budget-bar");
  if (!known(budget)) {
    dd.textContent = known(held) ? fmtBytes(held) + ", no budget" : "–";
    bar.hidden = true;
    return;
  }
  dd.textContent = (known(held) ? fmtBytes(held) : "–") + " of " + fmtBytes(budget);
  const fill = bar.querySelector(".held");
  const share = known(held) && budget > 0 ? held / budget : 0;
  fill.style.width = Math.max(0, Math.min(100, share * 100)) + "%";
  fill.classList.toggle("over", share > 1);
  bar.hidden = false;
}

/* ---- the table ---- */

function sortValue(g, key) {
  switch (key) {
    case "name": return g.name;
    case "level": return g.level * 1000 + (g.psi || 0);
    case "psi": return g.psi ?? -1;
    case "actual": return g.actual ?? -1;
    case "used": return g.used ?? -1;
    case "decision": return g.last ? g.last.t : 0;
    case "links": return (g.channelUp ? 2 : 0) + (g.backendUp ? 1 : 0);
  }
  return 0;
}

function matches(g, f) {
  if (!f) return true;
  const text = [g.name, LEVELS[g.level], g.last ? g.last.reason : "", g.last ? g.last.action : "",
                g.paused ? "paused" : ""].join(" ").toLowerCase();
  return f.split(/\s+/).every(word => text.includes(word));
}

function visibleGuests() {
  const { key, dir } = state.sort;
  return [...state.guests.values()]
    .filter(g => matches(g, state.filter))
    .sort((a, b) => {
      const x = sortValue(a, key), y = sortValue(b, key);
      if (x < y) return -dir;
      if (x > y) return dir;
      return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
    });
}

/* The balloon against its floor and ceiling: a bar from 0 to the ceiling, the floor a
 * tick, the used memory a grey fill, the balloon's size the blue fill's end. */
function balloonCell(g) {
  const td = el("td", "balloon");
  const bar = el("div", "bar");
  const max = g.ceiling || 1;
  const pct = v => Math.max(0, Math.min(100, (v / max) * 100)) + "%";
  if (g.actual !== null) {
    const a = el("div", "actual");
    a.style.width = pct(g.actual);
    bar.appendChild(a);
  }
  if (g.used !== null) {
    const u = el("div", "used");
    u.style.width = pct(g.used);
    bar.appendChild(u);
  }
  const f = el("div", "floor");
  f.style.left = pct(g.floor);
  bar.appendChild(f);
  if (g.target !== null && g.target !== g.actual) {
    const t = el("div", "target");
    t.style.left = pct(g.target);
    bar.appendChild(t);
  }
  td.appendChild(bar);
  td.appendChild(el("span", "bar-text",
    fmtBytes(g.floor) + " · " + fmtBytes(g.actual) + " · " + fmtBytes(g.ceiling)));
  td.title = "floor " + fmtBytes(g.floor) + ", balloon " + fmtBytes(g.actual) +
    (g.target !== null ? ", target " + fmtBytes(g.target) : "") + ", ceiling " + fmtBytes(g.ceiling) +
    ", used " + fmtBytes(g.used);
  return td;
}

function decisionText(d) {
  if (!d) return "–";
  return d.action + " (" + d.reason + ") " + fmtBytes(d.from) + " → " + fmtBytes(d.to);
}

function renderTable() {
  const rows = visibleGuests();
  const tbody = document.querySelector("#guests tbody");
  const frag = document.createDocumentFragment();
  const now = Date.now();
  for (const g of rows) {
    const tr = el("tr");
    tr.dataset.guest = g.name;
    tr.className = "lvl-row-" + g.level + (g.flash && now - g.flash < 1500 ? " flash" : "");
    const name = el("td", "name", g.name);
    if (g.paused) name.appendChild(el("span", "badge warn", "paused"));
    tr.appendChild(name);
    const lvl = el("td", "level");
    lvl.appendChild(el("span", "lvl lvl-" + g.level, LEVELS[g.level]));
    tr.appendChild(lvl);
    tr.appendChild(el("td", "num psi", fmtPct(g.psi)));
    tr.appendChild(balloonCell(g));
    tr.appendChild(el("td", "num", fmtBytes(g.used)));
    const dec = el("td", "decision");
    if (g.last) {
      dec.appendChild(el("span", "act act-" + g.last.action, g.last.action));
      dec.appendChild(el("span", "reason", g.last.reason));
      dec.appendChild(el("span", "age", fmtAge(now - g.last.t)));
      dec.title = decisionText(g.last) + ", " + g.last.result + (g.last.error ? ": " + g.last.error : "");
    } else {
      dec.textContent = "–";
    }
    tr.appendChild(dec);
    const links = el("td", "links");
    links.appendChild(el("span", g.channelUp ? "up" : "down", "agent"));
    links.appendChild(el("span", g.backendUp ? "up" : "down", "balloon"));
    tr.appendChild(links);
    frag.appendChild(tr);
  }
  tbody.replaceChildren(frag);
  document.getElementById("shown").textContent =
    rows.length === state.guests.size ? "" : rows.length + " of " + state.guests.size + " shown";
  document.getElementById("guest-count").textContent = String(state.guests.size);
  document.getElementById("dryrun").hidden = !state.dryRun;
  for (const th of document.querySelectorAll("#guests th")) {
    th.classList.toggle("sorted", th.dataset.key === state.sort.key);
    th.dataset.dir = state.sort.dir > 0 ? "asc" : "desc";
  }
  return rows;
}

/* ---- plots ---- */

const COLORS = {
  actual: "#4f9cff", target: "#4f9cff", used: "#9aa4b2", psi: "#ff6b6b",
  limit: "#6b7280", deflate: "#3ccf6e", inflate: "#c792ea",
  level: ["transparent", "rgba(240,196,25,0.30)", "rgba(255,140,0,0.40)", "rgba(230,57,70,0.50)"],
};

function plotSize(container) {
  const w = Math.max(280, container.clientWidth - 4);
  const h = Math.round(Math.min(360, Math.max(160, w * 0.36)));
  return { width: w, height: h };
}

/* Pressure levels as a band along the bottom, one colour per level. */
function drawLevels(u, times, levels) {
  const ctx = u.ctx, b = u.bbox;
  const band = Math.max(6, Math.round(b.height * 0.06));
  ctx.save();
  for (let i = 0; i < times.length; i++) {
    const l = levels[i];
    if (!l) continue;
    const x0 = Math.max(b.left, u.valToPos(times[i], "x", true));
    const x1 = Math.min(b.left + b.width, u.valToPos(times[i] + 1, "x", true));
    if (x1 <= x0) continue;
    ctx.fillStyle = COLORS.level[l];
    ctx.fillRect(x0, b.top + b.height - band, Math.max(1, x1 - x0), band);
  }
  ctx.restore();
}

/* A triangle per move, at its time and target: up for a deflate (memory given), down for
 * an inflate (memory taken). */
function drawDecisions(u, decisions) {
  const ctx = u.ctx, r = 6 * uPlot.pxRatio;
  ctx.save();
  for (const d of decisions) {
    const x = u.valToPos(d.t / 1000, "x", true);
    const y = u.valToPos(d.to / MIB, "mem", true);
    if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
    ctx.fillStyle = d.action === "deflate" ? COLORS.deflate : COLORS.inflate;
    ctx.beginPath();
    if (d.action === "deflate") {
      ctx.moveTo(x, y - r); ctx.lineTo(x + r, y + r); ctx.lineTo(x - r, y + r);
    } else {
      ctx.moveTo(x, y + r); ctx.lineTo(x + r, y - r); ctx.lineTo(x - r, y - r);
    }
    ctx.closePath();
    ctx.fill();
  }
  ctx.restore();
}

/* The decision under the cursor, if any, in a tooltip with its reason. */
function decisionTooltip(u, decisions, guest) {
  const tip = document.getElementById("tooltip");
  const left = u.cursor.left, top = u.cursor.top;
  if (left === undefined || left < 0) {
    if (tip.dataset.owner === guest) tip.hidden = true;
    return;
  }
  let best = null, bestDist = 10;
  for (const d of decisions) {
    const x = u.valToPos(d.t / 1000, "x"), y = u.valToPos(d.to / MIB, "mem");
    const dist = Math.hypot(x - left, y - top);
    if (dist < bestDist) { best = d; bestDist = dist; }
  }
  if (!best) {
    if (tip.dataset.owner === guest) tip.hidden = true;
    return;
  }
  const rect = u.over.getBoundingClientRect();
  tip.dataset.owner = guest;
  tip.textContent = fmtTime(best.t) + "  " + best.action + " because " + best.reason + ": " +
    fmtBytes(best.from) + " → " + fmtBytes(best.to) + " (" + best.result + ")";
  tip.style.left = (rect.left + window.scrollX + left + 12) + "px";
  tip.style.top = (rect.top + window.scrollY + top + 12) + "px";
  tip.hidden = false;
}

/* Axis text follows the page's font size, so that a wall display reads as a laptop does
 * (uPlot draws axes on a canvas, in pixels). */
function rootPx() {
  return parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
}
function axisStyle(extra) {
  const px = Math.round(rootPx() * 0.8);
  return Object.assign({
    font: px + "px system-ui, sans-serif", labelFont: "bold " + px + "px system-ui, sans-serif",
    stroke: "#c9d1d9", grid: { stroke: "#2a303b", width: 1 }, ticks: { stroke: "#2a303b", width: 1 },
    labelSize: px + 6,
  }, extra);
}
/* Memory ticks at powers of two of MiB (256 MiB, 1 GiB, 4 GiB ...), not at 1000s. */
const MEM_INCRS = [];
for (let v = 1; v <= 1 << 24; v *= 2) MEM_INCRS.push(v);
function memAxis(label) {
  return axisStyle({ scale: "mem", label, incrs: MEM_INCRS,
                     values: (u, vals) => vals.map(v => fmtMiB(v)), size: Math.round(rootPx() * 5) });
}
function psiAxis() {
  return axisStyle({ scale: "psi", side: 1, label: "PSI %", grid: { show: false },
                     size: Math.round(rootPx() * 3.5) });
}

function guestPlotData(g) {
  const h = g.hist, n = h.t.length;
  return [h.t, h.psi, h.actual, h.target, h.used,
          new Array(n).fill(g.floor / MIB), new Array(n).fill(g.ceiling / MIB)];
}

/* Lines without a dot per sample: one a second is too dense for dots. */
function noPoints(series) {
  return series.map((s, i) => (i === 0 ? s : Object.assign({ points: { show: false } }, s)));
}

function makeGuestPlot(g, container) {
  const opts = {
    ...plotSize(container),
    scales: {
      x: { time: true },
      psi: { range: (u, min, max) => [0, Math.max(10, Math.ceil((max || 0) * 1.1))] },
      mem: { range: (u, min, max) => [0, Math.max(max || 0, g.ceiling / MIB) * 1.05] },
    },
    axes: [axisStyle({ size: Math.round(rootPx() * 3.4) }), memAxis("memory"), psiAxis()],
    series: [
      { },
      { label: "PSI some 10 s", scale: "psi", stroke: COLORS.psi, width: 1.5, value: (u, v) => fmtPct(v) },
      { label: "balloon", scale: "mem", stroke: COLORS.actual, width: 2, value: (u, v) => fmtMiB(v) },
      { label: "target", scale: "mem", stroke: COLORS.target, width: 1, dash: [6, 4], value: (u, v) => fmtMiB(v) },
      { label: "used", scale: "mem", stroke: COLORS.used, fill: "rgba(154,164,178,0.15)", width: 1, value: (u, v) => fmtMiB(v) },
      { label: "floor", scale: "mem", stroke: COLORS.limit, width: 1, dash: [2, 3], value: (u, v) => fmtMiB(v) },
      { label: "ceiling", scale: "mem", stroke: COLORS.limit, width: 1, dash: [2, 3], value: (u, v) => fmtMiB(v) },
    ],
    hooks: {
      drawClear: [u => drawLevels(u, g.hist.t, g.hist.level)],
      draw: [u => drawDecisions(u, g.hist.decisions)],
      setCursor: [u => decisionTooltip(u, g.hist.decisions, g.name)],
    },
  };
  opts.series = noPoints(opts.series);
  return new uPlot(opts, guestPlotData(g), container);
}

function ensureCard(g) {
  if (g.card) return g.card;
  const card = el("section", "card");
  card.dataset.guest = g.name;
  const h = el("h2");
  h.appendChild(el("span", "card-name", g.name));
  h.appendChild(el("span", "lvl"));
  h.appendChild(el("span", "card-last"));
  card.appendChild(h);
  card.appendChild(el("div", "plot"));
  g.card = card;
  return card;
}

function updateCardTitle(g) {
  const lvl = g.card.querySelector("h2 .lvl");
  lvl.className = "lvl lvl-" + g.level;
  lvl.textContent = LEVELS[g.level];
  g.card.querySelector(".card-last").textContent = g.last
    ? "last: " + g.last.action + " (" + g.last.reason + ") " + fmtAge(Date.now() - g.last.t) : "";
}

function drawGuest(g) {
  if (!g.card || !g.histLoaded) return;
  updateCardTitle(g);
  const container = g.card.querySelector(".plot");
  if (!g.plot) g.plot = makeGuestPlot(g, container);
  else g.plot.setData(guestPlotData(g));
}

/* The first MAX_PLOTS guests of the table get a card, in table order. */
function renderPlots(rows) {
  const grid = document.getElementById("plots");
  const want = rows.slice(0, MAX_PLOTS);
  const wanted = new Set(want.map(g => g.name));
  for (const g of state.guests.values()) {
    if (!wanted.has(g.name) && g.card) {
      if (g.plot) g.plot.destroy();
      g.plot = null;
      g.card.remove();
      g.card = null;
    }
  }
  want.forEach((g, i) => {
    const card = ensureCard(g);
    if (grid.children[i] !== card) grid.insertBefore(card, grid.children[i] || null);
    if (!g.histLoaded && !g.loading) {
      g.loading = true;
      loadHistory(g).catch(e => console.warn(e)).finally(() => { g.loading = false; });
    } else {
      drawGuest(g);
    }
  });
}

let hostPlot = null;
function drawHost() {
  const h = state.hostHist;
  const data = [h.t, h.psi, h.available, h.budget, h.held];
  if (hostPlot) { hostPlot.setData(data); return; }
  const container = document.querySelector("#hostplot .plot");
  hostPlot = new uPlot({
    ...plotSize(container),
    height: Math.max(140, Math.round(plotSize(container).height * 0.6)),
    scales: { x: { time: true }, psi: { range: (u, min, max) => [0, Math.max(10, Math.ceil((max || 0) * 1.1))] },
              mem: { range: (u, min, max) => [0, (max || 1) * 1.05] } },
    axes: [axisStyle({ size: Math.round(rootPx() * 3.4) }), memAxis("memory"), psiAxis()],
    series: noPoints([
      { },
      { label: "host PSI some 10 s", scale: "psi", stroke: COLORS.psi, width: 1.5, value: (u, v) => fmtPct(v) },
      { label: "available", scale: "mem", stroke: COLORS.deflate, width: 2, value: (u, v) => fmtMiB(v) },
      { label: "budget", scale: "mem", stroke: COLORS.limit, width: 1, dash: [6, 4], value: (u, v) => fmtMiB(v) },
      { label: "guests hold", scale: "mem", stroke: COLORS.actual, width: 1.5, value: (u, v) => fmtMiB(v) },
    ]),
    hooks: { drawClear: [u => drawLevels(u, h.t, h.pressure.map(p => (p ? 3 : 0)))] },
  }, data, container);
}

/* ---- decision log ---- */

function renderLog() {
  const ol = document.getElementById("decision-log");
  const frag = document.createDocumentFragment();
  for (const d of state.log) {
    const li = el("li");
    li.dataset.guest = d.guest;
    li.appendChild(el("time", "", fmtTime(d.t)));
    li.appendChild(el("span", "name", d.guest));
    li.appendChild(el("span", "act act-" + d.action, d.action));
    li.appendChild(el("span", "reason", d.reason));
    li.appendChild(el("span", "sizes", fmtBytes(d.from) + " → " + fmtBytes(d.to)));
    li.appendChild(el("span", "result result-" + d.result, d.result + (d.error ? ": " + d.error : "")));
    frag.appendChild(li);
  }
  ol.replaceChildren(frag);
}

/* ---- live events ---- */

function trim(h) {
  const cut = h.t.length ? h.t[h.t.length - 1] - WINDOW_S : 0;
  let i = 0;
  while (i < h.t.length && h.t[i] < cut) i++;
  if (i > 0) for (const k of Object.keys(h)) if (Array.isArray(h[k]) && k !== "decisions") h[k].splice(0, i);
  if (h.decisions) while (h.decisions.length && h.decisions[0].t < cut * 1000) h.decisions.shift();
}

function onTick(ev) {
  const tick = JSON.parse(ev.data);
  for (const s of tick.guests) {
    const g = state.guests.get(s.name);
    if (!g) continue;
    g.level = s.level; g.psi = s.psi_some; g.actual = s.actual; g.target = s.target; g.used = s.used;
    if (g.histLoaded && (!g.hist.t.length || g.hist.t[g.hist.t.length - 1] < tick.t)) {
      const h = g.hist;
      h.t.push(tick.t); h.psi.push(s.psi_some); h.actual.push(mib(s.actual));
      h.target.push(mib(s.target)); h.used.push(mib(s.used)); h.level.push(s.level);
      trim(h);
    }
  }
  if (tick.host) {
    setHost(tick.host);
    const h = state.hostHist;
    if (!h.t.length || h.t[h.t.length - 1] < tick.t) {
      h.t.push(tick.t); h.psi.push(tick.host.psi_some); h.available.push(mib(tick.host.available));
      h.total.push(mib(tick.host.total)); h.budget.push(mib(tick.host.budget));
      h.held.push(mib(tick.host.held));
      h.pressure.push(tick.host.pressure ? 1 : 0);
      trim(h);
      if (hostPlot) hostPlot.setData([h.t, h.psi, h.available, h.budget, h.held]);
    }
  }
  render();
}

function onPressure(ev) {
  const p = JSON.parse(ev.data);
  const g = state.guests.get(p.guest);
  if (!g) return;
  const l = levelIndex(p.level);
  if (l > g.level) g.level = l;
  if (p.psi_some !== undefined && p.psi_some !== null) g.psi = p.psi_some;
  g.flash = Date.now();
  renderTable();
}

/* Add or update a move in the log (newest first, at most MAX_LOG). */
function addToLog(entry) {
  const old = state.log.find(e => e.guest === entry.guest && e.seq === entry.seq);
  if (old) {
    Object.assign(old, entry);
    return old;
  }
  state.log.push(entry);
  state.log.sort((a, b) => b.t - a.t);
  state.log.length = Math.min(state.log.length, MAX_LOG);
  return entry;
}

function onDecision(ev) {
  const d = JSON.parse(ev.data);
  const g = state.guests.get(d.guest);
  const entry = addToLog({ guest: d.guest, seq: d.seq, t: d.t, action: d.action, reason: d.reason,
                           from: d.from, to: d.to, result: d.result, error: d.error });
  if (g) {
    g.last = entry;
    const hd = g.hist.decisions.find(e => e.seq === d.seq);
    if (hd) hd.result = d.result;
    else g.hist.decisions.push({ seq: d.seq, t: d.t, action: d.action, reason: d.reason,
                                 from: d.from, to: d.to, result: d.result });
    drawGuest(g);
  }
  renderLog();
  renderTable();
}

let source = null;
function connect() {
  const live = document.getElementById("live");
  source = new EventSource("api/v1/events");
  source.addEventListener("open", () => {
    live.textContent = "live";
    live.className = "badge on";
    /* After a reconnect, whatever was missed comes from the history. */
    refreshAll();
  });
  source.addEventListener("error", () => {
    live.textContent = "reconnecting";
    live.className = "badge off";
  });
  source.addEventListener("tick", onTick);
  source.addEventListener("pressure", onPressure);
  source.addEventListener("decision", onDecision);
  source.addEventListener("guests", () => loadGuests().catch(e => console.warn(e)));
}

let refreshing = false;
async function refreshAll() {
  if (refreshing) return;
  refreshing = true;
  try {
    for (const g of state.guests.values()) g.histLoaded = false;
    await loadGuests();
    await loadHostHistory();
  } catch (e) {
    console.warn(e);
  } finally {
    refreshing = false;
  }
}

/* ---- page ---- */

function render() {
  const rows = renderTable();
  renderPlots(rows);
}

function setup() {
  document.querySelector("#guests thead").addEventListener("click", e => {
    const th = e.target.closest("th");
    if (!th) return;
    const key = th.dataset.key;
    state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : key === "name" ? 1 : -1 };
    render();
  });
  document.getElementById("filter").addEventListener("input", e => {
    state.filter = e.target.value.trim().toLowerCase();
    render();
  });
  document.querySelector("#guests tbody").addEventListener("click", e => {
    const tr = e.target.closest("tr");
    const g = tr && state.guests.get(tr.dataset.guest);
    if (g && g.card) g.card.scrollIntoView({ behavior: "smooth", block: "center" });
  });
  let resizeTimer = null, fontPx = rootPx();
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (rootPx() !== fontPx) {
        /* Axis fonts are baked into each plot: draw them again at the new size. */
        fontPx = rootPx();
        for (const g of state.guests.values()) if (g.plot) { g.plot.destroy(); g.plot = null; drawGuest(g); }
        if (hostPlot) { hostPlot.destroy(); hostPlot = null; drawHost(); }
        return;
      }
      for (const g of state.guests.values())
        if (g.plot) g.plot.setSize(plotSize(g.card.querySelector(".plot")));
      if (hostPlot) {
        const c = document.querySelector("#hostplot .plot"), s = plotSize(c);
        hostPlot.setSize({ width: s.width, height: Math.max(140, Math.round(s.height * 0.6)) });
      }
    }, 150);
  });
  /* Ages ("12 s ago") move on even when nothing happens. */
  setInterval(renderTable, 5000);
  connect();
}

setup();
