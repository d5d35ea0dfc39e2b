// Adapters: the caller's and public adapters, upload a PEFT archive or folder (progress shown), make one the
// tenant's default, delete. Every change refreshes the model pickers of chat and compare.
import { api, upload } from "./api.js";
import { $, h, newestOnly, showError } from "./dom.js";

let shared;

const loadAdapters = newestOnly(() => Promise.all([api("/v1/adapters"), api("/v1/tenant")]));

async function refresh() {
  const answer = await loadAdapters();
  if (!answer) return;
  const [adapters, tenant] = answer;
  const defaultId = tenant.settings?.defaultAdapter;
  $("#adapters tbody").replaceChildren(...adapters.data.map((a) =>
    h("tr", { "data-name": a.name },
      h("th", { scope: "row" }, a.name, a.id === defaultId ? " (default)" : ""),
      h("td", {}, String(a.version)),
      h("td", {}, String(a.rank)),
      h("td", {}, a.public ? "public" : "this tenant"),
      h("td", {},
        a.public ? null : h("button", { type: "button", "aria-label": `Make ${a.name}@${a.version} the default`, onclick: () => act(`/v1/adapters/${a.id}/default`, "POST") }, "Set default"),
        a.public ? null : h("button", { type: "button", "aria-label": `Delete ${a.name}@${a.version}`, onclick: () => act(`/v1/adapters/${a.id}`, "DELETE") }, "Delete")))));
  await shared.refreshModels();
}

async function act(path, method) {
  showError($("#adapter-error"), null);
  await api(path, { method }).catch((err) => showError($("#adapter-error"), err));
  await refresh();
}

/** The adapter's part of the form: the archive, else the chosen folder's two PEFT files (the API takes either). */
function appendAdapter(form) {
  const archive = $("#adapter-file").files[0];
  if (archive) return form.append("file", archive);
  const inFolder = (name) => [...$("#adapter-folder").files].find((f) => f.name === name);
  const config = inFolder("adapter_config.json");
  const model = inFolder("adapter_model.safetensors");
  if (!config || !model) throw new Error("Choose a PEFT archive, or a folder holding adapter_config.json and adapter_model.safetensors.");
  form.append("adapter_config", config, config.name);
  form.append("adapter_model", model, model.name);
}

async function send(e) {
  e.preventDefault();
  const bar = $("#adapter-progress");
  showError($("#adapter-error"), null);
  try {
    const form = new FormData();
    form.append("name", $("#adapter-name").value);
    appendAdapter(form);
    bar.hidden = false;
    await upload("/v1/adapters", form, (f) => (bar.value = Math.round(f * 100)));
    e.target.reset();
  } catch (err) {
    showError($("#adapter-error"), err);
  }
  bar.hidden = true;
  await refresh();
}

export async function start(s) {
  shared = s;
  $("#adapter-upload").addEventListener("submit", send);
  await refresh();
}
