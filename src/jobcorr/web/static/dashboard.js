// The jobcorr dashboard: fetches the figure for the chosen range, draws it with Plotly,
// and explains a clicked moment. Text from the API is only ever set with textContent.
"use strict";

const state = { range: 3600, from: null, to: null, timer: null, explanation: null };
const chart = document.getElementById("chart");
const statusLine = document.getElementById("status");

function say(text, isError = false) {
  statusLine.textContent = text;
  statusLine.classList.toggle("error", isError);
}

function currentRange() {
  if (state.from !== null) return [state.from, state.to];
  const now = Date.now() / 1000;
  return [now - state.range, now];
}

async function getJSON(path) {
  const response = await fetch(path);
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function draw() {
  const [from, to] = currentRange();
  const width = Math.max(300, Math.min(4000, Math.round(chart.clientWidth || 1200)));
  try {
    const figure = await getJSON(`/api/figure?from=${from}&to=${to}&width=${width}`);
    if (state.explanation) figure.layout.title = { text: state.explanation, x: 0.01, font: { size: 14 } };
    await Plotly.react(chart, figure.data, figure.layout, { responsive: true, displaylogo: false });
    chart.dataset.traces = String(figure.data.length);
    say(`${new Date(from * 1000).toLocaleString()} – ${new Date(to * 1000).toLocaleString()}`);
  } catch (error) {
    say(`could not load the dashboard: ${error.message}`, true);
  }
}

const PANEL_METRIC = { y: "memory", y4: "gc", y5: "cpu", y6: "logs" };

async function explainAt(at, metric) {
  const [from, to] = currentRange();
  const window = Math.max(30, Math.min(3600, (to - from) / 20));
  try {
    const answer = await getJSON(`/api/explain?at=${at}&metric=${metric}&window=${Math.round(window)}s`);
    show(answer);
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
  state.explanation = answer.conclusion;
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
  Plotly.relayout(chart, { title: { text: answer.conclusion, x: 0.01, font: { size: 14 } } });
}


function attachClicks() {
  chart.on("plotly_click", (event) => {
    const spike = event.points.find((p) => p.data.meta && p.data.meta.spike);
    if (spike) {
      const [metric, at] = spike.customdata;
      explainAt(at, metric);
      return;
    }
    const point = event.points[0];
    if (!point) return;
    const axis = point.data.yaxis || "y";
    const at = typeof point.x === "number" ? point.x / 1000 : Date.parse(point.x) / 1000;
    explainAt(at, PANEL_METRIC[axis] || "memory");
  });
}

function choose(button) {
  document.querySelectorAll("#ranges button[data-range]").forEach((b) => b.classList.remove("active"));
  button.classList.add("active");
  state.range = Number(button.dataset.range);
  state.from = state.to = null;
  draw();
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
document.getElementById("download").addEventListener("click", () => {
  Plotly.downloadImage(chart, { format: "png", width: 1400, height: 1300, filename: "jobcorr-explain" });
});

function schedule(on) {
  clearInterval(state.timer);
  if (on) state.timer = setInterval(() => { if (state.from === null) draw(); }, 15000);
}

draw().then(attachClicks);
schedule(true);
