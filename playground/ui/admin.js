// Admin (an admin key): tenants with their status and limits, create, disable or enable, and each
// tenant's keys (issue: the new key is shown once; revoke).
import { api } from "./api.js";
import { $, h, newestOnly, showError } from "./dom.js";

let selected;
const loadTenants = newestOnly(() => api("/v1/admin/tenants"));
const loadKeys = newestOnly((tenantId) => api(`/v1/admin/tenants/${tenantId}/keys`));

async function refresh() {
  const answer = await loadTenants();
  if (!answer) return;
  const tenants = answer.data;
  $("#tenants tbody").replaceChildren(...tenants.map((t) =>
    h("tr", { "data-tenant": t.id },
      h("th", { scope: "row" }, t.name),
      h("td", {}, t.id),
      h("td", {}, t.disabled ? "disabled" : "active"),
      h("td", {}, Object.keys(t.limits).length ? JSON.stringify(t.limits) : "defaults"),
      h("td", {},
        h("button", { type: "button", onclick: () => showKeys(t), "aria-label": `Keys of ${t.name}` }, "Keys"),
        h("button", { type: "button", onclick: () => setDisabled(t, !t.disabled) }, t.disabled ? "Enable" : "Disable")))));
}

async function setDisabled(t, disabled) {
  await api(`/v1/admin/tenants/${t.id}`, { method: "PATCH", json: { disabled } }).catch((err) => showError($("#admin-error"), err));
  await refresh();
}

async function showKeys(t) {
  selected = t;
  $("#tenant-keys").hidden = false;
  $("#tenant-keys-name").textContent = t.name;
  $("#new-key").textContent = "";
  const answer = await loadKeys(t.id);
  if (!answer) return; // another tenant's keys were asked for since
  const keys = answer.data;
  $("#key-list").replaceChildren(...keys.map((k) =>
    h("li", {}, `${k.name || "key"} ${k.prefix}… ${k.revoked ? "(revoked)" : ""}`,
      k.revoked ? null : h("button", { type: "button", onclick: () => revoke(k.id), "aria-label": `Revoke ${k.prefix}` }, "Revoke"))));
}

async function revoke(id) {
  await api(`/v1/admin/keys/${id}`, { method: "DELETE" });
  await showKeys(selected);
}

export async function start() {
  $("#tenant-create").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      await api("/v1/admin/tenants", { method: "POST", json: { name: $("#tenant-name").value } });
      e.target.reset();
      await refresh();
    } catch (err) {
      showError($("#admin-error"), err);
    }
  });
  $("#key-issue").addEventListener("click", async () => {
    const issued = await api(`/v1/admin/tenants/${selected.id}/keys`, { method: "POST", json: { name: "playground" } });
    await showKeys(selected);
    $("#new-key").textContent = `New key (shown once): ${issued.key}`;
  });
  await refresh();
}
