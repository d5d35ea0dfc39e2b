// Fine-tuning (shown when the trainer plane answers): upload a JSONL training file (its invalid lines
// listed one by one), start a job, and watch its training and validation loss by step in a uPlot chart
// that gains points as the job's `metrics` events arrive; a finished job's model opens in chat.
import { api, upload } from "./api.js";
import { $, h, showError } from "./dom.js";

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

/** Every event of the job, oldest first (the API pages newest first, 100 at a time). */
async function allEvents(jobId) {
  const events = [];
  let after;
  for (;;) {
    const page = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?limit=100${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    events.push(...page.data);
    if (!page.has_more || page.data.length === 0) return events.reverse();
    after = page.data.at(-1).id;
  }
}

function series(events) {
  const byStep = new Map();
  for (const e of events) if (e.type === "metrics" && typeof e.data.step === "number") byStep.set(e.data.step, e.data);
  const steps = [...byStep.keys()].sort((a, b) => a - b);
  return [steps, steps.map((s) => byStep.get(s).train_loss ?? null), steps.map((s) => byStep.get(s).valid_loss ?? null)];
}

async function watch(jobId) {
  clearTimeout(watching?.timer);
  await loadScript("/ui/vendor/uPlot.iife.min.js");
  $("#ft-watch").hidden = false;
  $("#ft-watch-job").textContent = jobId;
  const box = $("#ft-chart");
  box.replaceChildren();
  const width = Math.min(720, box.parentElement.clientWidth || 360);
  const opts = {
    width, height: 260,
    scales: { x: { time: false } },
    axes: [{ label: "step" }, { label: "loss" }],
    series: [{ label: "step" }, { label: "training loss", stroke: "#2563eb", width: 2 }, { label: "validation loss", stroke: "#dc2626", width: 2, spanGaps: true }],
  };
  const chart = new window.uPlot(opts, [[], [], []], box);
  const state = { jobId, chart, timer: undefined };
  watching = state;
  const done = (status) => ["succeeded", "failed", "cancelled"].includes(status);
  const tick = async () => {
    if (watching !== state) return;
    try {
      // The job before its events: once it reads as finished, the events read after it are all there.
      const job = await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}`);
      const events = await allEvents(jobId);
      const data = series(events);
      chart.setData(data);
      box.dataset.points = String(data[0].length);
      box.dataset.validationPoints = String(data[2].filter((v) => v !== null).length);
      // The checkpoint is published when the job ends: ask for it then, not on every poll.
      const best = done(job.status) ? (await api(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/checkpoints`)).data[0] : undefined;
      $("#ft-points").textContent = `${job.status}: ${data[0].length} step(s) plotted${best ? `; best checkpoint at step ${best.step_number}` : ""}`;
      if (done(job.status)) return void (await refreshJobs());
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
