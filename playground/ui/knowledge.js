// Knowledge: upload documents (picker or drag and drop, with upload progress), the list with each
// document's ingestion status (polled while any is still processing), delete, and one search run in
// the three modes side by side (dense, bm25, hybrid) with each hit's rank and score.
import { api, upload } from "./api.js";
import { $, fmt, h, newestOnly, showError } from "./dom.js";

let poll;
// An older answer arriving after a newer one (opening the tab, then an upload) would put back a stale list and stop polling.
const listDocuments = newestOnly(() => api("/v1/knowledge/documents"));

async function refresh() {
  const answer = await listDocuments();
  if (!answer) return;
  const docs = answer.data;
  $("#documents tbody").replaceChildren(...docs.map((d) =>
    h("tr", { "data-status": d.status },
      h("th", { scope: "row" }, d.title),
      h("td", {}, d.status === "ready" || d.status === "failed" ? d.status : `${d.status} ${Math.round((d.progress ?? 0) * 100)}%`, d.error ? ` – ${d.error}` : ""),
      h("td", {}, String(d.chunk_count ?? 0)),
      h("td", {}, h("button", { type: "button", "aria-label": `Delete ${d.title}`, onclick: () => remove(d.id) }, "Delete")))));
  clearTimeout(poll);
  if (docs.some((d) => d.status !== "ready" && d.status !== "failed")) poll = setTimeout(() => refresh().catch((err) => showError($("#knowledge-error"), err)), 1000);
}

async function remove(id) {
  await api(`/v1/knowledge/documents/${encodeURIComponent(id)}`, { method: "DELETE" }).catch((err) => showError($("#knowledge-error"), err));
  await refresh();
}

async function send(files) {
  const bar = $("#knowledge-progress");
  showError($("#knowledge-error"), null);
  for (const file of files) {
    const form = new FormData();
    form.append("file", file);
    bar.hidden = false;
    bar.value = 0;
    try {
      await upload("/v1/knowledge/documents", form, (f) => (bar.value = Math.round(f * 100)));
    } catch (err) {
      showError($("#knowledge-error"), err);
    }
  }
  bar.hidden = true;
  await refresh();
}

async function search(e) {
  e.preventDefault();
  const query = $("#knowledge-query").value;
  const k = Number($("#knowledge-k").value);
  const modes = ["dense", "bm25", "hybrid"];
  try {
    const answers = await Promise.all(modes.map((mode) => api("/v1/knowledge/search", { method: "POST", json: { query, k, mode } })));
    $("#search-results").replaceChildren(...answers.map((a, i) =>
      h("article", { class: "column", "data-mode": modes[i] }, h("h3", {}, modes[i]),
        a.data.length ? h("ol", {}, a.data.map((hit, rank) => h("li", {}, h("strong", {}, `#${rank + 1} ${hit.title}`), ` score ${fmt(hit.score, 3)}`, h("p", { class: "snippet" }, hit.text.slice(0, 240))))) : h("p", {}, "No hits."))));
  } catch (err) {
    showError($("#knowledge-error"), err);
  }
}

export async function start() {
  $("#knowledge-file").addEventListener("change", (e) => send([...e.target.files]).then(() => (e.target.value = "")));
  const drop = $("#knowledge-drop");
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    send([...e.dataTransfer.files]);
  });
  $("#knowledge-upload").addEventListener("submit", (e) => e.preventDefault());
  $("#knowledge-search").addEventListener("submit", search);
  await refresh();
}
