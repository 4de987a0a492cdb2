// The jobcorr dashboard: fetches the panels' columns for the chosen range, draws them with
// uPlot (stacked, one shared time axis and crosshair), and explains a clicked moment.
// `/?at=<unix seconds>&metric=<memory|cpu>` opens the explanation of that moment.
// Text from the API is only ever set with textContent.
"use strict";

const SYNC_KEY = "jobcorr";
const AXIS_WIDTH = 130; // px for the left axis of every panel, so the plots line up
const RIGHT_AXIS_WIDTH = 70; // px for the per-second axis of the volume panel
const PANEL_HEIGHT = 150;
const LANE_HEIGHT = 26;
const REFRESH_MS = 15000;
const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
  "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
const SPIKE_COLOUR = "#d62728";

const SPIKE_METRICS = ["memory", "cpu"];
const state = { range: "fit", from: null, to: null, timer: null, charts: [], data: null, spikes: [] };
const chart = document.getElementById("chart");
const statusLine = document.getElementById("status");

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function rangeQuery() {
  if (state.from !== null) return `from=${state.from}&to=${state.to}`;
  if (state.range === "fit") return "to=now";
  return `from=${Date.now() / 1000 - state.range}&to=now`;
}

// --- number formats ------------------------------------------------------------------

const SI = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];

function si(value, unit = "") {
  if (value === null || value === undefined) return "-";
  for (const [size, prefix] of SI) {
    if (Math.abs(value) >= size) return `${(value / size).toPrecision(3)} ${prefix}${unit}`;
  }
  return `${Number(value.toPrecision(3))} ${unit}`.trim();
}

// --- panels ----------------------------------------------------------------------------

function baseOptions(title, width, height, data, extra = {}) {
  return {
    title: undefined,
    width,
    height,
    padding: [8, extra.rightAxis ? 0 : RIGHT_AXIS_WIDTH, 0, 0],
    cursor: { sync: { key: SYNC_KEY, setSeries: false }, drag: { x: false, y: false } },
    scales: { x: { time: true, range: () => [data.from, data.to] } },
    legend: { show: true, live: true },
    ...extra.options,
  };
}

function lineSeries(label, colour, unit) {
  return { label, stroke: colour, width: 1.5, spanGaps: true, points: { show: false },
    value: (u, v) => si(v, unit) };
}

function leftAxis(unit) {
  return { size: AXIS_WIDTH, values: (u, splits) => splits.map((v) => si(v, unit)) };
}

function zeroBased(limit) {
  return (u, min, max) => {
    const top = max > 0 ? max * 1.15 : 1;
    return [0, limit !== undefined && max > limit / 2 ? Math.max(top, limit * 1.1) : top];
  };
}

function drawLimit(u, limit) {
  if (limit === undefined) return;
  const [, top] = [u.scales.y.min, u.scales.y.max];
  if (limit > top) return;
  const y = u.valToPos(limit, "y", true);
  const { ctx, bbox } = u;
  ctx.save();
  ctx.strokeStyle = SPIKE_COLOUR;
  ctx.setLineDash([6, 4]);
  ctx.beginPath();
  ctx.moveTo(bbox.left, y);
  ctx.lineTo(bbox.left + bbox.width, y);
  ctx.stroke();
  ctx.restore();
}

function drawSpikes(u, metric) {
  const { ctx } = u;
  const ratio = uPlot.pxRatio;
  u.over.querySelectorAll("button.spike").forEach((b) => b.remove());
  for (const spike of state.spikes) {
    if (spike.metric !== metric || spike.at < u.scales.x.min || spike.at > u.scales.x.max) continue;
    const x = u.valToPos(spike.at, "x", true);
    const y = Math.max(u.bbox.top, u.valToPos(spike.peak, "y", true));
    ctx.save();
    ctx.fillStyle = SPIKE_COLOUR;
    ctx.beginPath();
    ctx.moveTo(x - 7 * ratio, y - 12 * ratio);
    ctx.lineTo(x + 7 * ratio, y - 12 * ratio);
    ctx.lineTo(x, y);
    ctx.closePath();
    ctx.fill();
    ctx.restore();
    const button = document.createElement("button");
    button.className = "spike";
    button.dataset.metric = metric;
    button.dataset.at = String(spike.at);
    button.title = `spike${spike.job ? `: ${spike.job}` : ""} (click to explain)`;
    button.setAttribute("aria-label", button.title);
    button.style.left = `${u.valToPos(spike.at, "x")}px`;
    button.style.top = `${Math.max(0, u.valToPos(spike.peak, "y"))}px`;
    button.addEventListener("click", (event) => {
      event.stopPropagation();
      explainAt(spike.at, metric);
    });
    u.over.appendChild(button);
  }
}

function metricPanel(data, metric, title, unit, colour, width) {
  const series = data.series[metric];
  const limit = data.limits[metric];
  const options = baseOptions(title, width, PANEL_HEIGHT, data, {
    options: {
      series: [{}, lineSeries(title, colour, unit)],
      scales: { x: { time: true, range: () => [data.from, data.to] }, y: { range: zeroBased(limit) } },
      axes: [{}, leftAxis(unit)],
      hooks: { draw: [(u) => { drawLimit(u, limit); drawSpikes(u, metric); }] },
    },
  });
  return { title, metric, options, columns: [series.t, series.v], points: series.t.length };
}

function volumePanel(data, width) {
  const volumes = data.volumes;
  const tables = volumes.map((v) => [v.t, v.v]);
  const columns = tables.length ? uPlot.join(tables) : [[], []];
  const series = [{}, ...volumes.map((v, i) => ({
    ...lineSeries(v.name, PALETTE[i % PALETTE.length], v.per_second ? "/s" : ""),
    scale: v.per_second ? "rate" : "y",
  }))];
  if (!volumes.length) series.push(lineSeries("no volumes", "#999", ""));
  const options = baseOptions("Job Volume", width, PANEL_HEIGHT, data, {
    rightAxis: true,
    options: {
      series,
      scales: { x: { time: true, range: () => [data.from, data.to] }, y: { range: zeroBased() },
        rate: { range: zeroBased() } },
      axes: [{}, leftAxis(""), { scale: "rate", side: 1, size: RIGHT_AXIS_WIDTH, grid: { show: false },
        values: (u, splits) => splits.map((v) => si(v, "/s")) }],
    },
  });
  const points = volumes.reduce((sum, v) => sum + v.t.length, 0);
  return { title: "Job Volume", metric: "memory", options, columns, points };
}

function runAt(runs, jobs, u, left, top) {
  const at = u.posToVal(left, "x");
  const lane = Math.round(u.posToVal(top, "y"));
  for (let i = 0; i < runs.job.length; i++) {
    const end = runs.end[i] ?? u.scales.x.max;
    if (jobs[lane] === runs.job[i] && runs.start[i] <= at && at <= end) return i;
  }
  return -1;
}

function jobsPanel(data, width) {
  const runs = data.runs;
  const jobs = [...new Set(runs.job)].sort();
  const colours = Object.fromEntries(jobs.map((job, i) => [job, PALETTE[i % PALETTE.length]]));
  const draw = (u) => {
    const { ctx, bbox } = u;
    const minWidth = 2 * uPlot.pxRatio; // a short run stays visible
    const lane = Math.abs(u.valToPos(0, "y", true) - u.valToPos(1, "y", true));
    for (let i = 0; i < runs.job.length; i++) {
      const x0 = Math.max(bbox.left, u.valToPos(runs.start[i], "x", true));
      const x1 = Math.min(bbox.left + bbox.width, u.valToPos(runs.end[i] ?? data.to, "x", true));
      if (x1 < bbox.left || x0 > bbox.left + bbox.width) continue;
      const y = u.valToPos(jobs.indexOf(runs.job[i]), "y", true);
      ctx.fillStyle = colours[runs.job[i]];
      ctx.globalAlpha = runs.end[i] === null ? 0.45 : 0.9;
      ctx.fillRect(x0, y - lane * 0.3, Math.max(minWidth, x1 - x0), lane * 0.6);
    }
    ctx.globalAlpha = 1;
  };
  const options = baseOptions("Active Background Jobs", width, Math.max(80, jobs.length * LANE_HEIGHT + 40), data, {
    options: {
      series: [{}],
      legend: { show: false },
      scales: { x: { time: true, range: () => [data.from, data.to] },
        y: { auto: false, range: [-0.5, Math.max(0.5, jobs.length - 0.5)] } },
      axes: [{}, { size: AXIS_WIDTH, splits: () => jobs.map((_, i) => i),
        values: (u, splits) => splits.map((i) => jobs[i] ?? "") }],
      hooks: {
        draw: [draw],
        setCursor: [(u) => {
          const i = runAt(runs, jobs, u, u.cursor.left, u.cursor.top);
          u.over.title = i < 0 ? "" : `${runs.id[i]}: ${runs.status[i]}, processed ${runs.processed[i] || "-"}`;
        }],
      },
    },
  });
  return { title: "Active Background Jobs", metric: "memory", options, columns: [[data.from, data.to]],
    points: runs.job.length };
}

function render(data) {
  state.charts.forEach((c) => c.u.destroy());
  chart.replaceChildren();
  const width = Math.max(300, chart.clientWidth || 1200);
  const panels = [
    metricPanel(data, "memory", "Memory", "B", PALETTE[0], width),
    jobsPanel(data, width),
    volumePanel(data, width),
    metricPanel(data, "gc", "GC Activity", "/s", PALETTE[2], width),
    metricPanel(data, "cpu", "CPU (cores)", "", PALETTE[3], width),
    metricPanel(data, "logs", "Log volume (records/s)", "/s", PALETTE[4], width),
  ];
  state.charts = panels.map((panel) => {
    const box = document.createElement("section");
    box.className = "panel";
    box.dataset.metric = panel.metric;
    box.dataset.points = String(panel.points);
    const heading = document.createElement("h3");
    heading.textContent = panel.title;
    box.appendChild(heading);
    chart.appendChild(box);
    const u = new uPlot(panel.options, panel.columns, box);
    u.over.addEventListener("click", () => {
      if (u.cursor.left === null || u.cursor.left < 0) return;
      explainAt(u.posToVal(u.cursor.left, "x"), panel.metric);
    });
    return { title: panel.title, u };
  });
  chart.dataset.from = String(data.from);
  chart.dataset.to = String(data.to);
  chart.dataset.drawn = String(panels.reduce((sum, p) => sum + p.points, 0));
}

// Spike markers come after the first chart: finding spikes reads the whole range again.
async function loadSpikes(data) {
  const found = await Promise.all(SPIKE_METRICS.map((metric) =>
    getJSON(`/api/spikes?from=${data.from}&to=${data.to}&metric=${metric}`)));
  const seen = new Set(); // one marker per peak, however many spikes share it
  state.spikes = found.flatMap((answer) => answer.spikes).map((spike) => ({
    metric: spike.metric, at: Date.parse(spike.peak_at) / 1000, peak: spike.peak, job: spike.top_job,
  })).filter((spike) => !seen.has(`${spike.metric}@${spike.at}`) && seen.add(`${spike.metric}@${spike.at}`));
  state.charts.forEach((c) => c.u.redraw(false));
  chart.dataset.spikes = String(state.spikes.length);
}

async function draw() {
  const width = Math.max(300, Math.min(4000, Math.round(chart.clientWidth || 1200)));
  try {
    const data = await getJSON(`/api/panels?${rangeQuery()}&width=${width}`);
    state.data = data;
    render(data);
    say(`${new Date(data.from * 1000).toLocaleString()} – ${new Date(data.to * 1000).toLocaleString()}`);
    await loadSpikes(data);
  } catch (error) {
    say(`could not load the dashboard: ${error.message}`, true);
  }
}

// --- explanations ----------------------------------------------------------------------

async function explainAt(at, metric, window) {
  let span = 600;
  if (state.data) span = state.data.to - state.data.from;
  const seconds = window || `${Math.round(Math.max(30, Math.min(3600, span / 20)))}s`;
  try {
    show(await getJSON(`/api/explain?at=${at}&metric=${metric}&window=${encodeURIComponent(seconds)}`));
  } catch (error) {
    say(`could not explain that moment: ${error.message}`, true);
  }
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
}

function show(answer) {
  document.getElementById("explanation").hidden = false;
  document.getElementById("conclusion").textContent = answer.conclusion;
  document.getElementById("headline").textContent = answer.conclusion;
  const spike = answer.spike;
  document.getElementById("spike").textContent = spike
    ? `rose from ${spike.baseline_text} at ${spike.rise_start} to ${spike.peak_text} at ${spike.peak_at} (${spike.reason})`
    : "no spike at that moment: the window's highest point is explained";
  const body = document.querySelector("#evidence tbody");
  body.replaceChildren();
  for (const candidate of answer.candidates) {
    const row = document.createElement("tr");
    cell(row, candidate.job);
    cell(row, candidate.confidence.toFixed(2));
    cell(row, `${Math.round(candidate.coverage * 100)}%`);
    cell(row, candidate.lift === null ? "-" : `${Math.round(candidate.lift * 100)}%`);
    cell(row, candidate.runs.map((run) => run.run_id).join(", "));
    cell(row, Object.entries(candidate.volumes).map(([name, n]) => `${n} ${name}`).join(", ") || "-");
    body.appendChild(row);
  }
}

// --- PNG export: the panels' canvases stacked under the explanation ----------------------

function downloadPng() {
  const ratio = uPlot.pxRatio;
  const titleHeight = 36 * ratio;
  const headingHeight = 20 * ratio;
  const canvases = state.charts.map((c) => c.u.ctx.canvas);
  const width = Math.max(...canvases.map((c) => c.width));
  const height = titleHeight + canvases.reduce((sum, c) => sum + c.height + headingHeight, 0);
  const out = document.createElement("canvas");
  out.width = width;
  out.height = height;
  const ctx = out.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = "#222";
  ctx.font = `600 ${15 * ratio}px system-ui, sans-serif`;
  ctx.fillText(document.getElementById("headline").textContent || "jobcorr", 10 * ratio, 24 * ratio);
  let y = titleHeight;
  state.charts.forEach((c, i) => {
    ctx.font = `600 ${12 * ratio}px system-ui, sans-serif`;
    ctx.fillText(c.title, 10 * ratio, y + 15 * ratio);
    y += headingHeight;
    ctx.drawImage(canvases[i], 0, y);
    y += canvases[i].height;
  });
  out.toBlob((blob) => {
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "jobcorr-explain.png";
    link.click();
  });
}

// --- controls --------------------------------------------------------------------------

function choose(button) {
  document.querySelectorAll("#ranges button[data-range]").forEach((b) => b.classList.remove("active"));
  button.classList.add("active");
  state.range = button.dataset.range === "fit" ? "fit" : Number(button.dataset.range);
  state.from = state.to = null;
  draw();
}

function schedule(on) {
  clearInterval(state.timer);
  if (on) state.timer = setInterval(() => { if (state.from === null) draw(); }, REFRESH_MS);
}

document.querySelectorAll("#ranges button[data-range]").forEach((button) => {
  button.addEventListener("click", () => choose(button));
});
document.getElementById("apply").addEventListener("click", () => {
  const from = Date.parse(document.getElementById("from").value) / 1000;
  const to = Date.parse(document.getElementById("to").value) / 1000;
  if (!(from < to)) { say("choose a 'from' before 'to'", true); return; }
  state.from = from; state.to = to;
  document.querySelectorAll("#ranges button[data-range]").forEach((b) => b.classList.remove("active"));
  draw();
});
document.getElementById("refresh").addEventListener("change", (event) => schedule(event.target.checked));
document.getElementById("download").addEventListener("click", downloadPng);

// `/?at=<unix seconds>&metric=<memory|cpu>[&window=5m]`: the explanation of that moment,
// with the panels around it (Grafana's "Explain this moment" links here).
async function openMoment(params) {
  const at = Number(params.get("at"));
  if (!Number.isFinite(at)) {
    say("at= must be unix seconds, like /?at=1764412345&metric=memory", true);
    return draw();
  }
  const metric = params.get("metric") || "memory";
  const window = params.get("window") || "5m";
  try {
    const answer = await getJSON(`/api/explain?at=${at}&metric=${encodeURIComponent(metric)}&window=${encodeURIComponent(window)}`);
    const span = Math.max(600, answer.window_seconds * 4);
    const moment = Date.parse(answer.moment) / 1000;
    state.from = moment - span / 2;
    state.to = moment + span / 2;
    document.getElementById("refresh").checked = false;
    document.querySelectorAll("#ranges button[data-range]").forEach((b) => b.classList.remove("active"));
    await draw();
    show(answer);
  } catch (error) {
    say(`could not explain that moment: ${error.message}`, true);
    await draw();
  }
}

const params = new URLSearchParams(location.search);
(params.has("at") ? openMoment(params) : draw()).then(() => {
  document.body.dataset.ready = "yes";
  schedule(document.getElementById("refresh").checked);
});
