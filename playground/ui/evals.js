// Evaluations (shown when /v1/evals answers): upload a JSONL test set (its invalid lines listed one by
// one), start a run over the arms chosen, follow its progress (the run polled every second, its newest
// event shown), and read a finished run's report: one chart per arm of every metric's mean with its 95%
// bootstrap interval, the pairwise comparisons (the report's sentences for the significant ones), and
// each item's answers from every arm side by side. The HTML report is fetched with the key (a header)
// and handed to the browser as a blob download: the key never goes in a URL.
import { api, upload } from "./api.js";
import { STRATEGIES } from "./chat.js";
import { $, fmt, h, showError } from "./dom.js";

let shared;
let following;

const runPath = (id, rest = "") => `/v1/evals/runs/${encodeURIComponent(id)}${rest}`;
const finished = (status) => ["succeeded", "failed", "cancelled"].includes(status);
const armLabel = (arm) => (arm.adapter ? `${arm.strategy}:${arm.adapter}` : arm.strategy);
const progressText = (run) => `${run.status}: ${run.progress.done}/${run.progress.total} (${run.progress.percent}%)`;

async function refreshDatasets() {
  const sets = (await api("/v1/evals/datasets")).data;
  $("#eval-dataset").replaceChildren(...sets.map((d) => h("option", { value: d.id }, d.name)));
}

function fillArms() {
  $("#eval-arms").append(...STRATEGIES.map((s) =>
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "arm", value: s, checked: s === "prompt" || s === "rag" }), ` ${s}`)));
}

/** The adapters the adapter arms may name (the tenant default first), kept in step with the model list. */
function fillAdapters() {
  const select = $("#eval-adapter");
  const current = select.value;
  const adapters = shared.models.filter((m) => m.parent);
  select.replaceChildren(h("option", { value: "" }, "tenant default"), ...adapters.map((m) => h("option", { value: m.id }, m.id)));
  if (adapters.some((m) => m.id === current)) select.value = current;
}

async function refreshRuns() {
  const runs = (await api("/v1/evals/runs")).data;
  $("#eval-runs tbody").replaceChildren(...runs.map((r) =>
    h("tr", { "data-run": r.id, "data-status": r.status },
      h("th", { scope: "row" }, r.id),
      h("td", {}, r.arms.map(armLabel).join(", ")),
      h("td", { class: "status" }, r.status),
      h("td", { class: "progress" }, `${r.progress.done}/${r.progress.total}`),
      h("td", {},
        h("button", { type: "button", "aria-label": `Open run ${r.id}`, onclick: () => follow(r.id) }, "Open"),
        finished(r.status) ? null : h("button", { type: "button", "aria-label": `Cancel run ${r.id}`, onclick: () => cancel(r.id) }, "Cancel")))));
}

/** The API's message names up to five bad lines ("...: line 2: reason; line 5: reason; ..."): one list item each. */
function lineErrors(message) {
  const m = /^(.*?): (line \d+: .*)$/s.exec(message);
  if (!m) return [message];
  return [`${m[1]}:`, ...m[2].replace(/\.$/, "").split(/; (?=line \d+: |\.\.\.$)/)];
}

async function uploadDataset(e) {
  e.preventDefault();
  const list = $("#eval-file-errors");
  list.replaceChildren();
  const form = new FormData();
  const name = $("#eval-dataset-name").value.trim();
  if (name) form.append("name", name);
  form.append("file", $("#eval-file").files[0]);
  try {
    const dataset = await upload("/v1/evals/datasets", form);
    e.target.reset();
    await refreshDatasets();
    $("#eval-dataset").value = dataset.id;
  } catch (err) {
    list.replaceChildren(...lineErrors(err.message).map((line) => h("li", {}, line)));
  }
}

function chosenArms() {
  const adapter = $("#eval-adapter").value || undefined;
  const sampling = { max_tokens: Number($("#eval-max-tokens").value), temperature: Number($("#eval-temperature").value) };
  return [...document.querySelectorAll('#eval-arms input[name="arm"]:checked')].map((box) =>
    ({ strategy: box.value, ...(adapter && box.value.includes("adapter") ? { adapter } : {}), sampling }));
}

async function startRun(e) {
  e.preventDefault();
  showError($("#eval-error"), null);
  try {
    const arms = chosenArms();
    if (arms.length === 0) throw new Error("Choose at least one arm.");
    const run = await api("/v1/evals/runs", { method: "POST", json: { dataset: $("#eval-dataset").value, arms } });
    await refreshRuns();
    await follow(run.id);
  } catch (err) {
    showError($("#eval-error"), err);
  }
}

async function cancel(id) {
  await api(runPath(id, "/cancel"), { method: "POST" }).catch((err) => showError($("#eval-error"), err));
  await refreshRuns();
}

/** Shows a run: its progress, polled until it ends, then its report. */
async function follow(runId) {
  clearTimeout(following?.timer);
  const state = { runId, timer: undefined, after: undefined };
  following = state;
  $("#eval-run").hidden = false;
  $("#eval-report").hidden = true;
  $("#eval-run-id").textContent = runId;
  $("#eval-last-event").textContent = "";
  const tick = async () => {
    if (following !== state) return;
    try {
      const run = await api(runPath(runId));
      const events = (await api(runPath(runId, `/events${state.after === undefined ? "" : `?after=${state.after}`}`))).data;
      if (following !== state) return;
      if (events.length > 0) {
        state.after = events.at(-1).id;
        $("#eval-last-event").textContent = events.at(-1).message;
      }
      $("#eval-progress").value = run.progress.percent;
      $("#eval-status").textContent = progressText(run);
      const row = $(`#eval-runs tr[data-run="${CSS.escape(runId)}"]`);
      if (row) {
        row.dataset.status = run.status;
        row.querySelector(".status").textContent = run.status;
        row.querySelector(".progress").textContent = `${run.progress.done}/${run.progress.total}`;
      }
      if (finished(run.status)) {
        await refreshRuns();
        return void (await showReport(runId));
      }
    } catch (err) {
      $("#eval-status").textContent = `Could not read the run (${err.message}); retrying.`;
    }
    state.timer = setTimeout(tick, 1000);
  };
  await tick();
}

const SVG = "http://www.w3.org/2000/svg";
function svgEl(tag, attrs = {}, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/**
 * One arm's metrics as horizontal bars (the mean) with whiskers (the 95% interval), on a 0..1 scale
 * (every metric is a fraction; a wider interval widens the scale). Inline SVG: uPlot draws series on
 * a shared x, not bars with error bars.
 */
function armChart(arm) {
  const metrics = Object.entries(arm.metrics);
  const row = 22;
  const left = 100;
  const bars = 150;
  const max = Math.max(1, ...metrics.map(([, m]) => m.high));
  const x = (v) => left + (bars * Math.max(0, v)) / max;
  const svg = svgEl("svg", { viewBox: `0 0 380 ${Math.max(1, metrics.length) * row + 4}`, width: "100%", role: "img", "aria-label": `${arm.label}: ${metrics.map(([k, m]) => `${k} ${fmt(m.mean, 3)} (95% ${fmt(m.low, 3)} to ${fmt(m.high, 3)})`).join("; ") || "no scores"}` });
  metrics.forEach(([name, m], i) => {
    const y = i * row + 4;
    const mid = y + row / 2 - 2;
    svg.append(
      svgEl("text", { x: left - 6, y: mid + 4, "text-anchor": "end", "font-size": 11, fill: "currentColor" }, name),
      svgEl("rect", { x: left, y: y + 3, width: Math.max(0.5, x(m.mean) - left), height: row - 10, fill: "#93c5fd", "data-metric": name }),
      svgEl("line", { x1: x(m.low), x2: x(m.high), y1: mid, y2: mid, stroke: "currentColor", "stroke-width": 1.5 }),
      svgEl("line", { x1: x(m.low), x2: x(m.low), y1: mid - 5, y2: mid + 5, stroke: "currentColor", "stroke-width": 1.5 }),
      svgEl("line", { x1: x(m.high), x2: x(m.high), y1: mid - 5, y2: mid + 5, stroke: "currentColor", "stroke-width": 1.5 }),
      svgEl("text", { x: left + bars + 6, y: mid + 4, "font-size": 11, fill: "currentColor" }, `${fmt(m.mean, 2)} [${fmt(m.low, 2)}, ${fmt(m.high, 2)}]`),
    );
  });
  const c = arm.result_counts;
  const errors = Object.entries(arm.errors).map(([code, n]) => `${n} ${code}`).join(", ");
  return h("figure", { class: "column chart", "data-arm": arm.label },
    h("figcaption", {}, h("strong", {}, arm.label), ` ${c.total} item(s): ${c.passed} passed, ${c.failed} failed, ${c.errored} errored${errors ? ` (${errors})` : ""}`),
    svg,
    h("p", { class: "hint" }, `latency p50 ${fmt(arm.latency_ms.total.p50, 0)} ms, time to first token p50 ${fmt(arm.latency_ms.ttft.p50, 0)} ms`));
}

function showComparisons(report) {
  const findings = report.findings.length
    ? report.findings.map((f) => h("li", { class: "finding" }, f))
    : [h("li", {}, `No significant difference in ${report.comparisons.length} comparison(s) (p < 0.05 with a 95% interval excluding 0).`)];
  const table = h("table", {},
    h("thead", {}, h("tr", {}, ["Arms (a − b)", "Metric", "Difference [95%]", "p", "Items"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, report.comparisons.map((c) => h("tr", {},
      h("td", {}, `${c.a} − ${c.b}`), h("td", {}, c.metric),
      h("td", {}, `${fmt(c.difference.mean, 3)} [${fmt(c.difference.low, 3)}, ${fmt(c.difference.high, 3)}]`),
      h("td", {}, fmt(c.p, 3)), h("td", {}, String(c.n))))));
  $("#eval-findings").replaceChildren(...findings, h("li", {}, h("details", {}, h("summary", {}, "Every comparison"), table)));
}

function itemPrompt(item) {
  const user = item.messages.findLast((m) => m.role === "user");
  return user ? user.content : "";
}

/** One item: its prompt and reference, then each arm's answer, scores and figures side by side. */
function showItem(report, index) {
  const item = report.items[index];
  const columns = report.arms.map((arm, a) => {
    const r = item.results[a];
    const body = !r
      ? [h("p", {}, "Not run.")]
      : [
          r.error ? h("p", { class: "error" }, `${r.error.code}: ${r.error.message}`) : h("p", { class: "answer" }, r.answer ?? ""),
          h("dl", { class: "facts" },
            Object.entries(r.scores).flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmt(v, 3))]),
            h("dt", {}, "Passed"), h("dd", {}, r.passed === null ? "–" : r.passed ? "yes" : "no"),
            h("dt", {}, "Latency"), h("dd", {}, `${fmt(r.totalMs, 0)} ms`),
            h("dt", {}, "Tokens"), h("dd", {}, `${r.promptTokens} + ${r.completionTokens}`),
            h("dt", {}, "Sources"), h("dd", {}, String(r.sources.length))),
        ];
    return h("article", { class: "column", "data-arm": arm.label }, h("h5", {}, arm.label), ...body);
  });
  $("#eval-item-view").replaceChildren(
    h("dl", { class: "facts" }, h("dt", {}, "Prompt"), h("dd", {}, itemPrompt(item)), h("dt", {}, "Reference"), h("dd", {}, item.reference)),
    h("div", { class: "columns", "aria-label": `Answers to line ${item.line}` }, columns));
}

async function showReport(runId) {
  const report = await api(runPath(runId, "/report"));
  if (following?.runId !== runId) return;
  $("#eval-charts").replaceChildren(...report.arms.map(armChart));
  showComparisons(report);
  const select = $("#eval-item");
  select.replaceChildren(...report.items.map((item, i) => h("option", { value: String(i) }, `Line ${item.line}: ${itemPrompt(item).slice(0, 60)}`)));
  select.onchange = () => showItem(report, Number(select.value));
  if (report.items.length > 0) showItem(report, 0);
  $("#eval-html").onclick = () => downloadHtml(runId).catch((err) => showError($("#eval-error"), err));
  $("#eval-report").hidden = false;
}

/** The key is a header, so the page is fetched and handed to the browser as a blob (never a keyed URL). */
async function downloadHtml(runId) {
  const html = await api(runPath(runId, "/report.html"));
  const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
  const a = h("a", { href: url, download: `${runId}-report.html` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function start(s) {
  shared = s;
  fillArms();
  fillAdapters();
  window.addEventListener("switchyard:models", fillAdapters);
  $("#eval-upload").addEventListener("submit", uploadDataset);
  $("#eval-start").addEventListener("submit", startRun);
  await Promise.all([refreshDatasets(), refreshRuns()]);
}
