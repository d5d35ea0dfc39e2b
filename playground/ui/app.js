// The playground's shell: sign in (tenant or admin key), the tab bar, and the model list the views share.
// A key refused once signed in (revoked, or its tenant disabled: a 401 anywhere) signs the tab out: the
// page reloads to the sign-in form, which shows the server's reason.
import { api, ApiError, session } from "./api.js";
import { $, fillModels, showError } from "./dom.js";

const VIEWS = {
  chat: () => import("./chat.js"),
  compare: () => import("./compare.js"),
  knowledge: () => import("./knowledge.js"),
  adapters: () => import("./adapters.js"),
  "fine-tuning": () => import("./fine-tuning.js"),
  evals: () => import("./evals.js"),
  admin: () => import("./admin.js"),
};

const started = new Set();
const REFUSED = "switchyard.refused";

/** What every view may use: the model list (refreshed when adapters change; then the event "switchyard:models") and a way to switch views. */
export const shared = {
  models: [],
  async refreshModels() {
    shared.models = (await api("/v1/models")).data;
    for (const select of document.querySelectorAll("select[data-models]")) fillModels(select, shared.models);
    window.dispatchEvent(new Event("switchyard:models"));
  },
  show,
};

async function show(view) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== `view-${view}`;
  for (const tab of document.querySelectorAll("#tabs button")) tab.setAttribute("aria-current", tab.dataset.view === view ? "page" : "false");
  showError($("#app-error"), null);
  if (!started.has(view) && VIEWS[view]) {
    started.add(view);
    // Until its module has loaded and attached its handlers, the view takes no input: a file picked or a form
    // sent before then would be lost (or sent by the browser itself).
    const section = $(`#view-${view}`);
    section.inert = true;
    section.setAttribute("aria-busy", "true");
    try {
      const module = await VIEWS[view]();
      await module.start(shared);
    } catch (err) {
      started.delete(view); // the next visit starts it again
      showError($("#app-error"), err);
    } finally {
      section.inert = false;
      section.removeAttribute("aria-busy");
    }
  }
  document.body.dataset.view = view;
}

/** Which kind of key this is: a tenant key reads /v1/tenant, an admin key gets 403 there and reads /v1/admin/tenants. */
async function identify() {
  try {
    const tenant = await api("/v1/tenant");
    return { role: "tenant", label: tenant.name };
  } catch (err) {
    if (!(err instanceof ApiError) || err.code !== "wrong_key_role") throw err;
    await api("/v1/admin/tenants");
    return { role: "admin", label: "admin" };
  }
}

/** Whether an optional plane answers (the fine-tuning and evaluation views appear only then). */
async function answers(path) {
  try {
    await api(path);
    return true;
  } catch {
    return false;
  }
}

async function enter() {
  const who = await identify();
  $("#who").textContent = `Signed in: ${who.label}`;
  $("#tabs").hidden = false;
  $("#sign-out").hidden = false;
  const tenantTabs = ["chat", "compare", "knowledge", "adapters"];
  const tenant = who.role === "tenant";
  const [trainer, evals] = tenant ? await Promise.all([answers("/v1/fine_tuning/jobs?limit=1"), answers("/v1/evals/runs")]) : [false, false];
  const optional = { "fine-tuning": trainer, evals };
  for (const tab of document.querySelectorAll("#tabs button")) {
    const v = tab.dataset.view;
    tab.hidden = tenant ? v === "admin" || optional[v] === false : v !== "admin";
  }
  if (who.role === "tenant") await shared.refreshModels();
  document.body.dataset.signedIn = "true";
  await show(who.role === "admin" ? "admin" : tenantTabs[0]);
}

function refused(e) {
  if (document.body.dataset.signedIn !== "true") return; // the sign-in form shows its own error
  delete document.body.dataset.signedIn;
  session.clear();
  sessionStorage.setItem(REFUSED, e.detail);
  location.reload();
}

function signOut() {
  session.clear();
  location.reload();
}

async function main() {
  window.addEventListener("switchyard:unauthorized", refused);
  const reason = sessionStorage.getItem(REFUSED);
  sessionStorage.removeItem(REFUSED);
  if (reason) $("#sign-in-error").textContent = `Signed out: ${reason}`;
  $("#sign-in-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("#api-key");
    session.set(input.value.trim());
    input.value = "";
    try {
      showError($("#sign-in-error"), null);
      await enter();
    } catch (err) {
      session.clear();
      showError($("#sign-in-error"), err);
    }
  });
  $("#sign-out").addEventListener("click", signOut);
  for (const tab of document.querySelectorAll("#tabs button")) tab.addEventListener("click", () => show(tab.dataset.view));
  if (session.key()) {
    await enter().catch((err) => {
      session.clear();
      showError($("#sign-in-error"), err);
    });
  }
  document.body.dataset.ready = "true";
  performance.mark("switchyard:interactive"); // bench/playground.ts reads it
}

main();
