"""The dashboard's one page. It holds no data: its script fetches `/api/snapshot` and puts every value in place
with `textContent` (never `innerHTML`), so stored ids, payloads and errors always show as text."""

from __future__ import annotations

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>redis-timers dashboard</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: baseline; }
  header h1 { font-size: 18px; margin: 0; }
  header .meta { color: #aab3c5; font-size: 12px; }
  main { padding: 16px 20px; display: grid; gap: 16px; grid-template-columns: 1fr 1fr; }
  section { background: #fff; border-radius: 6px; padding: 12px 16px; box-shadow: 0 1px 2px #0002; min-width: 0; }
  section.wide { grid-column: 1 / -1; }
  h2 { font-size: 15px; margin: 0 0 8px; }
  .cards { display: flex; gap: 12px; flex-wrap: wrap; }
  .card { background: #eef1f6; border-radius: 6px; padding: 8px 14px; min-width: 90px; }
  .card .value { font-size: 24px; font-weight: 600; }
  .card .label { font-size: 12px; color: #566; }
  table { border-collapse: collapse; width: 100%; font-size: 13px; }
  th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #e3e6eb; vertical-align: top; }
  td { overflow-wrap: anywhere; white-space: pre-wrap; }
  th { color: #566; font-weight: 600; }
  .bars { display: flex; align-items: flex-end; gap: 2px; height: 120px; border-bottom: 1px solid #ccd; }
  .bar { flex: 1; background: #4c7bd9; min-height: 0; position: relative; }
  .bar.overdue { background: #d9534c; }
  .axis { display: flex; gap: 2px; font-size: 10px; color: #778; }
  .axis span { flex: 1; text-align: center; overflow: hidden; }
  .error { color: #b00020; }
  .pager button { margin-right: 6px; }
  #status.error { font-weight: 600; }
</style>
</head>
<body>
<header><h1>redis-timers</h1><span class="meta">read-only &middot; server time <span id="server-time">-</span>
  &middot; <span id="status">loading</span></span></header>
<main>
  <section class="wide"><h2>Totals</h2><div class="cards" id="totals"></div></section>
  <section><h2>Due in the next hour</h2><div id="histogram-next_hour"></div></section>
  <section><h2>Due in the next day</h2><div id="histogram-next_day"></div></section>
  <section class="wide"><h2>Topics</h2><table id="topics"></table></section>
  <section class="wide"><h2>Running now</h2><table id="running"></table>
    <div class="pager"><button id="running-first">first page</button><button id="running-next">next page</button></div>
  </section>
  <section class="wide"><h2>Dead letters (<span id="dead-count">0</span>)</h2><table id="dead"></table>
    <div class="pager"><button id="dead-first">first page</button><button id="dead-next">next page</button></div>
  </section>
</main>
<script>
"use strict";
const REFRESH_MS = __REFRESH_MS__;
const STATS = ["pending", "due_now", "overdue", "running", "dead"];
const cursors = { running: null, dead: null };
let latest = null;

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  return node;
}

function fillTable(table, headers, rows) {
  const head = el("tr");
  headers.forEach((header) => head.appendChild(el("th", header)));
  const body = rows.map((cells, index) => {
    const row = el("tr", null, { "data-row": String(index) });
    cells.forEach((cell) => row.appendChild(el("td", cell === null ? "-" : cell)));
    return row;
  });
  table.replaceChildren(head, ...body);
}

function drawHistogram(container, histogram) {
  const counts = [histogram.overdue, ...histogram.counts];
  const largest = Math.max(1, ...counts);
  const bars = el("div", null, { class: "bars" });
  const axis = el("div", null, { class: "axis" });
  counts.forEach((count, index) => {
    const bar = el("div", null, { class: index === 0 ? "bar overdue" : "bar", title: String(count) });
    bar.style.height = (100 * count / largest) + "%";
    bars.appendChild(bar);
    const minutes = Math.round((index - 1) * histogram.bucket_seconds / 60);
    const label = minutes >= 60 ? Math.round(minutes / 60) + "h" : minutes + "m";
    axis.appendChild(el("span", index === 0 ? "late" : label));
  });
  const total = histogram.counts.reduce((sum, count) => sum + count, 0);
  const summary = el("div", null, { class: "summary" });
  summary.appendChild(el("span", total, { "data-histogram-total": "" }));
  summary.appendChild(document.createTextNode(" due, "));
  summary.appendChild(el("span", histogram.overdue, { "data-histogram-overdue": "" }));
  summary.appendChild(document.createTextNode(" overdue"));
  container.replaceChildren(summary, bars, axis);
}

function render(data) {
  latest = data;
  document.getElementById("server-time").textContent = data.server_time;
  const totals = document.getElementById("totals");
  totals.replaceChildren(...STATS.map((name) => {
    const card = el("div", null, { class: "card" });
    card.appendChild(el("div", data.totals[name], { class: "value", id: "total-" + name }));
    card.appendChild(el("div", name.replace("_", " "), { class: "label" }));
    return card;
  }));
  fillTable(document.getElementById("topics"),
    ["topic", "pending", "due now", "overdue", "running", "dead", "next due", "oldest overdue"],
    Object.entries(data.topics).map(([topic, stats]) =>
      [topic, ...STATS.map((name) => stats[name]), stats.next_due_at, stats.oldest_overdue_at]));
  for (const name of ["next_hour", "next_day"]) {
    drawHistogram(document.getElementById("histogram-" + name), data.histograms[name]);
  }
  fillTable(document.getElementById("running"),
    ["topic", "id", "due at", "attempts", "lease expires", "last error"],
    data.running.timers.map((timer) =>
      [timer.topic, timer.timer_id, timer.due_at, timer.attempts, timer.lease_expires_at, timer.last_error]));
  document.getElementById("dead-count").textContent = data.dead.count;
  fillTable(document.getElementById("dead"),
    ["topic", "id", "failed at", "attempts", "error", "payload"],
    data.dead.dead_letters.map((letter) =>
      [letter.topic, letter.timer_id, letter.failed_at, letter.attempts, letter.error, letter.payload]));
  document.getElementById("running-next").disabled = data.running.cursor === null;
  document.getElementById("dead-next").disabled = data.dead.cursor === null;
}

async function refresh() {
  const status = document.getElementById("status");
  const query = new URLSearchParams();
  for (const [name, cursor] of Object.entries(cursors)) if (cursor !== null) query.set(name + "_cursor", cursor);
  try {
    const response = await fetch("/api/snapshot?" + query.toString(), { cache: "no-store" });
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    render(data);
    status.textContent = "updated " + new Date().toLocaleTimeString();
    status.className = "";
  } catch (error) {
    status.textContent = "error: " + error.message;
    status.className = "error";
  }
}

for (const name of Object.keys(cursors)) {
  document.getElementById(name + "-first").addEventListener("click", () => { cursors[name] = null; refresh(); });
  document.getElementById(name + "-next").addEventListener("click", () => {
    if (latest && latest[name].cursor !== null) { cursors[name] = latest[name].cursor; refresh(); }
  });
}
refresh();
setInterval(refresh, REFRESH_MS);
</script>
</body>
</html>
"""
