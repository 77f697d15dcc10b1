// The Energy view: reads energy/data once a second and draws the numbers, the GPU table and the charts.
// Only points newer than the ones already here are fetched (?since=N), so a long test costs the same per second.
"use strict";

const POLL_MS = 1000;
const COLORS = ["#2563eb", "#db2777", "#ea580c", "#7c3aed", "#0891b2", "#65a30d", "#9333ea", "#ca8a04"];
const SUM_COLOR = "#111827";
let startedAt = null;
let points = [];

function fmt(value, digits) {
  if (value === null || value === undefined) return "—";
  const abs = Math.abs(value);
  const d = digits !== undefined ? digits : abs >= 100 || abs === 0 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 4;
  return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

const UNITS = { watts_total: " W", energy_joules: " J", joules_per_output_token: " J", joules_per_prompt_token: " J",
  joules_per_request: " J", output_throughput: " tok/s", median_ttft_ms: " ms", p99_ttft_ms: " ms",
  median_itl_ms: " ms", p99_itl_ms: " ms", completed: "" };

function setCard(key, value, sub, note) {
  const card = document.querySelector(`.card[data-key="${key}"]`);
  const el = card.querySelector(".value");
  el.dataset.value = value === null || value === undefined ? "" : String(value);
  el.classList.toggle("note", Boolean(note) && (value === null || value === undefined));
  el.textContent = (value === null || value === undefined) && note ? note
    : fmt(value, key === "completed" ? 0 : undefined) + (value === null || value === undefined ? "" : UNITS[key]);
  card.querySelector(".sub").textContent = (value === null || value === undefined) && note ? "" : sub;
}

function renderNumbers(d) {
  const final = d.final;
  const figures = final || d.totals || {};
  const last = points.length ? points[points.length - 1] : null;
  setCard("watts_total", last ? last.watts_total : null, "last second");
  for (const key of Object.keys(UNITS)) {
    if (key === "watts_total") continue;
    const estimated = !final && key.endsWith("_ms");
    const sub = final ? "results.json" : estimated ? "so far, ≈ from histogram" : "so far";
    const note = key === "joules_per_prompt_token" ? d.prompt_token_note : null;
    setCard(key, figures[key], sub, note);
  }
}

function renderGpus(gpus) {
  const body = document.querySelector("#gpus tbody");
  body.replaceChildren(...gpus.map((g) => {
    const tr = document.createElement("tr");
    tr.dataset.gpu = g.key;
    const mhz = (hz) => (hz === null ? "—" : fmt(hz / 1e6, 0) + " MHz");
    const sm = mhz(g.sm_clock_hertz) + (g.max_sm_clock_hertz ? ` of ${mhz(g.max_sm_clock_hertz)}` : "");
    const watts = (w) => (w === null ? "—" : fmt(w, 0) + " W");
    const cells = [g.key, g.role || "—", g.name || "—", watts(g.power_watts), sm, mhz(g.memory_clock_hertz),
      watts(g.power_limit_watts)];
    for (const text of cells) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const reasons = document.createElement("td");
    reasons.className = "reasons";
    if (!g.throttle_reasons.length) reasons.textContent = "none";
    for (const r of g.throttle_reasons) {
      const badge = document.createElement("span");
      badge.className = "badge active";
      badge.textContent = r;
      reasons.appendChild(badge);
    }
    tr.appendChild(reasons);
    return tr;
  }));
}

function svgEl(name, attrs, text) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// A line chart of series [{name, color, values}] over x = seconds since the test started.
function drawChart(id, xs, series, unit) {
  const svg = document.getElementById(id);
  const width = svg.clientWidth || 420, height = svg.clientHeight || 190;
  const left = 46, right = 8, top = 18, bottom = 18;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.replaceChildren();
  const ys = series.flatMap((s) => s.values.filter((v) => v !== null && v !== undefined));
  if (!ys.length) {
    svg.appendChild(svgEl("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "empty" },
      "no data yet"));
    return;
  }
  const x0 = xs[0], x1 = Math.max(xs[xs.length - 1], x0 + 1);
  const y0 = Math.min(0, ...ys), y1 = Math.max(...ys) * 1.08 || 1;
  const px = (x) => left + ((x - x0) / (x1 - x0)) * (width - left - right);
  const py = (y) => top + (1 - (y - y0) / (y1 - y0)) * (height - top - bottom);
  for (const frac of [0, 0.5, 1]) {
    const y = y0 + frac * (y1 - y0);
    svg.appendChild(svgEl("line", { x1: left, x2: width - right, y1: py(y), y2: py(y), class: "axis" }));
    const digits = y1 >= 100 ? 0 : y1 >= 10 ? 1 : 2;
    svg.appendChild(svgEl("text", { x: left - 4, y: py(y) + 3, "text-anchor": "end" }, fmt(y, digits) + unit));
  }
  svg.appendChild(svgEl("text", { x: left, y: height - 4 }, `${fmt(x0, 0)} s`));
  svg.appendChild(svgEl("text", { x: width - right, y: height - 4, "text-anchor": "end" }, `${fmt(x1, 0)} s`));
  let legendX = left;
  for (const s of series) {
    const path = [];
    s.values.forEach((v, i) => {
      if (v === null || v === undefined) return;
      path.push(`${path.length ? "L" : "M"}${px(xs[i]).toFixed(1)},${py(v).toFixed(1)}`);
    });
    svg.appendChild(svgEl("path", { d: path.join(""), fill: "none", stroke: s.color, "stroke-width": 1.6 }));
    svg.appendChild(svgEl("rect", { x: legendX, y: 4, width: 10, height: 3, fill: s.color }));
    svg.appendChild(svgEl("text", { x: legendX + 13, y: 9 }, s.name));
    legendX += 20 + 6 * s.name.length;
  }
}

function renderCharts(gpus) {
  const xs = points.map((p) => p.t);
  const col = (key) => points.map((p) => p[key]);
  const labels = Object.fromEntries(gpus.map((g) => [g.key, g.role ? `${g.key} (${g.role})` : g.key]));
  const keys = [...new Set(points.flatMap((p) => Object.keys(p.watts)))];
  const watts = keys.map((k, i) => ({ name: labels[k] || k, color: COLORS[i % COLORS.length],
    values: points.map((p) => (k in p.watts ? p.watts[k] : null)) }));
  if (keys.length > 1) watts.push({ name: "sum", color: SUM_COLOR, values: col("watts_total") });
  drawChart("chart-watts", xs, watts, " W");
  drawChart("chart-jpt", xs, [{ name: "J/token", color: COLORS[0], values: col("joules_per_output_token") }], " J");
  drawChart("chart-tps", xs, [{ name: "tokens/s", color: COLORS[5], values: col("output_throughput") }], "");
  drawChart("chart-ttft", xs, [{ name: "p50", color: COLORS[0], values: col("median_ttft_ms") },
    { name: "p99", color: COLORS[1], values: col("p99_ttft_ms") }], " ms");
  drawChart("chart-itl", xs, [{ name: "p50", color: COLORS[0], values: col("median_itl_ms") },
    { name: "p99", color: COLORS[1], values: col("p99_itl_ms") }], " ms");
}

function render(d) {
  const state = document.getElementById("state");
  state.textContent = d.running ? "running" : d.started_at ? "stopped" : "waiting for a test";
  state.classList.toggle("running", d.running);
  document.getElementById("elapsed").textContent = points.length
    ? `${fmt(points[points.length - 1].t, 0)} s of test` : "";
  for (const el of document.querySelectorAll(".energy")) el.hidden = !d.energy_configured;
  const notice = document.getElementById("notice");
  notice.hidden = d.energy_configured;
  notice.textContent = d.start_exporter || "";
  const problems = [...Object.entries(d.exporter_errors).map(([u, e]) => `${u}: ${e}`), ...d.warnings];
  if (d.final && d.final.energy_error) problems.push(`results.json: ${d.final.energy_error}`);
  const errors = document.getElementById("errors");
  errors.hidden = !problems.length;
  errors.textContent = problems.join(" · ");
  const downloads = document.getElementById("downloads");
  downloads.replaceChildren(...d.downloads.map((f) => {
    const a = document.createElement("a");
    a.href = f.href;
    a.textContent = `Download ${f.name}`;
    a.className = "download";
    return a;
  }));
  renderNumbers(d);
  renderGpus(d.gpus);
  renderCharts(d.gpus);
}

async function poll() {
  try {
    const response = await fetch(`energy/data?since=${points.length}`, { credentials: "include" });
    if (response.ok) {
      const d = await response.json();
      if (d.started_at !== startedAt) {
        startedAt = d.started_at;
        points = [];
        if (d.points_from !== 0) return;  // a new test: fetch it from its first point
      }
      points = points.concat(d.points);
      render(d);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || 0) + 1);
    }
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
