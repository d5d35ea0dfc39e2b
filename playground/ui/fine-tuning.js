// Fine-tuning (shown when the trainer plane answers): upload a JSONL training file (its invalid lines
// listed one by one), start a job, and watch its training and validation loss by step in a uPlot chart
// filled from the job's metrics columns (`/jobs/:id/metrics`, polled while it runs). A finished job's
// chart marks the best checkpoint and an early stop, and shows its base-vs-adapter result; its model
// opens in chat with one click.
import { api, upload } from "./api.js";
import { $, fmt, h, showError } from "./dom.js";

let shared;
let watching;

function loadScript(src) {
  return new Promise((resolve, reject) => {
    if (window.uPlot) return resolve();
    document.head.append(h("link", { rel: "stylesheet", href: "/ui/vendor/uPlot.min.css" }));
    const s = h("script", { src });
    s.onload = resolve;
    s.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(s);
  });
}

async function refreshFiles() {
  const files = (await api("/v1/files?purpose=fine-tune")).data;
  const options = () => files.map((f) => h("option", { value: f.id }, `${f.filename} (${f.example_count ?? "?"} examples)`));
  $("#ft-training-file").replaceChildren(...options());
  $("#ft-validation-file").replaceChildren(h("option", { value: "" }, "none"), ...options());
}

async function refreshJobs() {
  const jobs = (await api("/v1/fine_tuning/jobs")).data;
  $("#ft-jobs tbody").replaceChildren(...jobs.map((j) =>
    h("tr", { "data-job": j.id, "data-status": j.status },
      h("th", { scope: "row" }, j.id),
      h("td", {}, j.status),
      h("td", {}, j.fine_tuned_model ?? "–"),
      h("td", {},
        h("button", { type: "button", onclick: () => watch(j.id), "aria-label": `Watch the loss of ${j.id}` }, "Loss chart"),
        j.fine_tuned_model ? h("button", { type: "button", onclick: () => chatWith(j.fine_tuned_model) }, "Chat with it") : null))));
  return jobs;
}

async function chatWith(model) {
  await shared.refreshModels();
  await shared.show("chat");
  (await import("./chat.js")).useModel(model);
}

async function uploadFile(e) {
  e.preventDefault();
  const list = $("#ft-file-errors");
  list.replaceChildren();
  const form = new FormData();
  form.append("purpose", "fine-tune");
  form.append("file", $("#ft-file").files[0]);
  try {
    await upload("/v1/files", form);
    e.target.reset();
    await refreshFiles();
  } catch (err) {
    list.replaceChildren(...err.message.split("\n").map((line) => h("li", {}, line)));
  }
}

async function startJob(e) {
  e.preventDefault();
  showError($("#ft-error"), null);
  try {
    const suffix = $("#ft-suffix").value || undefined;
    const validation = $("#ft-validation-file").value || undefined;
    const json = { model: shared.models[0]?.id, training_file: $("#ft-training-file").value, validation_file: validation, suffix, hyperparameters: { n_epochs: Number($("#ft-epochs").value) } };
    const job = await api("/v1/fine_tuning/jobs", { method: "POST", json });
    await refreshJobs();
    await watch(job.id);
  } catch (err) {
    showError($("#ft-error"), err);
  }
}

const jobPath = (jobId, rest = "") => `/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}${rest}`;
const finished = (status) => ["succeeded", "failed", "cancelled"].includes(status);

/**
 * Where the finished job's markers go: the best checkpoint is the one the job's model names (the runner
 * publishes the best last, so `fine_tuned_model` is it), else the result's best step; an early stop is
 * the runner's event with `early_stopping_step` (among the newest events: it precedes only the publish
 * and completion messages).
 */
async function markers(job) {
  const [checkpoints, events] = await Promise.all([api(jobPath(job.id, "/checkpoints?limit=100")), api(jobPath(job.id, "/events?limit=20"))]);
  const best = checkpoints.data.find((c) => c.fine_tuned_model_checkpoint === job.fine_tuned_model)?.step_number ?? job.switchyard?.result?.best_step;
  const stop = events.data.find((e) => typeof e.data?.early_stopping_step === "number")?.data.early_stopping_step;
  return { best, stop };
}

/** A uPlot plugin drawing a dashed vertical line, with its label, at each marker's step. */
function markerPlugin(state) {
  const draw = (u) => {
    const { ctx } = u;
    const lines = [["best checkpoint", state.markers.best, "#16a34a"], ["early stop", state.markers.stop, "#9333ea"]];
    const px = window.uPlot.pxRatio; // the canvas counts device pixels
    ctx.save();
    ctx.setLineDash([6 * px, 4 * px]);
    ctx.lineWidth = 2 * px;
    ctx.font = `${12 * px}px system-ui, sans-serif`;
    lines.forEach(([label, step, color], i) => {
      if (typeof step !== "number") return;
      const x = u.valToPos(step, "x", true);
      ctx.strokeStyle = ctx.fillStyle = color;
      ctx.beginPath();
      ctx.moveTo(x, u.bbox.top);
      ctx.lineTo(x, u.bbox.top + u.bbox.height);
      ctx.stroke();
      // The label beside its line, on the left of it where the right would leave the plot.
      const text = `${label} (step ${step})`;
      const fitsRight = x + 4 * px + ctx.measureText(text).width <= u.bbox.left + u.bbox.width;
      ctx.textAlign = fitsRight ? "left" : "right";
      ctx.fillText(text, fitsRight ? x + 4 * px : x - 4 * px, u.bbox.top + (14 + 16 * i) * px);
    });
    ctx.restore();
  };
  return { hooks: { draw } };
}

const RESULT_ROWS = [["Loss", "loss", 4, false], ["Perplexity", "perplexity", 2, false], ["Token accuracy", "token_accuracy", 3, true], ["ROUGE-L", "rouge_l", 3, true], ["Exact match", "exact_match", 3, true]];
// A DPO job's result compares the reference (the base, or the adapter it continued) with the adapter.
const PREFERENCE_ROWS = [["DPO loss", "loss", 4, false], ["Reward accuracy", "reward_accuracy", 3, true], ["Answers leaning to the chosen", "leans_chosen", 0, true]];

/** Base (or reference) and adapter columns of a job's result, whichever method made it. */
function resultTable(result) {
  if (result.method !== "dpo") {
    return { caption: `Base model vs adapter (best step ${result.best_step}) on ${result.validation_examples} validation example(s), ${result.answered_examples} answered greedily`, rows: RESULT_ROWS, base: result.base, adapter: result.adapter };
  }
  const margin = `mean margin ${fmt(result.mean_margin, 3)}, positive on ${fmt(100 * result.preferred_share, 0)}% of pairs`;
  return {
    caption: `Reference vs adapter (best step ${result.best_step}) on ${result.validation_pairs} validation pair(s), ${result.answered_pairs} answered greedily: ${margin}`,
    rows: PREFERENCE_ROWS,
    base: { ...result.reference, leans_chosen: result.base_leans_chosen },
    adapter: { ...result.adapter, leans_chosen: result.adapter_leans_chosen },
  };
}

/** The job's base-vs-adapter result (validation set) as a table; hidden when the job has none. */
function showResult(result) {
  const box = $("#ft-result");
  box.hidden = !result;
  if (!result) return;
  const table = resultTable(result);
  $("#ft-result-caption").textContent = table.caption;
  $("#ft-result tbody").replaceChildren(...table.rows.map(([label, key, digits, higherIsBetter]) => {
    const base = table.base[key];
    const adapter = table.adapter[key];
    const better = typeof base === "number" && typeof adapter === "number" && adapter !== base ? (adapter > base) === higherIsBetter : null;
    return h("tr", { "data-metric": key },
      h("th", { scope: "row" }, label),
      h("td", {}, fmt(base, digits)),
      h("td", {}, fmt(adapter, digits)),
      h("td", {}, better === null ? "–" : better ? "better" : "worse"));
  }));
}

async function watch(jobId) {
  clearTimeout(watching?.timer);
  await loadScript("/ui/vendor/uPlot.iife.min.js");
  $("#ft-watch").hidden = false;
  $("#ft-watch-job").textContent = jobId;
  showResult(null);
  const box = $("#ft-chart");
  box.replaceChildren();
  for (const key of ["points", "validationPoints", "bestStep", "earlyStopStep"]) delete box.dataset[key];
  const state = { jobId, chart: undefined, timer: undefined, markers: {} };
  const width = Math.min(720, box.parentElement.clientWidth || 360);
  const opts = {
    width, height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "step" }, { label: "loss" }],
    series: [{ label: "step" }, { label: "training loss", stroke: "#2563eb", width: 2 }, { label: "validation loss", stroke: "#dc2626", width: 2, spanGaps: true }],
    plugins: [markerPlugin(state)],
  };
  state.chart = new window.uPlot(opts, [[], [], []], box);
  watching = state;
  const tick = async () => {
    if (watching !== state) return;
    try {
      // The job before its metrics: once it reads as finished, the metrics read after it are all there.
      const job = await api(jobPath(jobId));
      const m = await api(jobPath(jobId, "/metrics"));
      if (finished(job.status)) state.markers = await markers(job);
      if (watching !== state) return;
      state.chart.setData([m.step, m.train_loss, m.valid_loss]);
      box.dataset.points = String(m.step.length);
      box.dataset.validationPoints = String(m.valid_loss.filter((v) => v !== null).length);
      const { best, stop } = state.markers;
      if (typeof best === "number") box.dataset.bestStep = String(best);
      if (typeof stop === "number") box.dataset.earlyStopStep = String(stop);
      const said = [typeof best === "number" ? `best checkpoint at step ${best}` : "", typeof stop === "number" ? `stopped early after step ${stop}` : ""].filter(Boolean);
      $("#ft-points").textContent = `${job.status}: ${m.step.length} step(s) plotted${said.length ? `; ${said.join("; ")}` : ""}`;
      if (finished(job.status)) {
        showResult(job.switchyard?.result ?? null);
        return void (await refreshJobs());
      }
    } catch (err) {
      $("#ft-points").textContent = `Could not read the job (${err.message}); retrying.`;
    }
    state.timer = setTimeout(tick, 1000);
  };
  await tick();
}

export async function start(s) {
  shared = s;
  $("#ft-upload").addEventListener("submit", uploadFile);
  $("#ft-start").addEventListener("submit", startJob);
  await Promise.all([refreshFiles(), refreshJobs()]);
}
