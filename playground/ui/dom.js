// Small DOM helpers: elements built with textContent only (answers and file names are never parsed as HTML).
export const $ = (selector, root = document) => root.querySelector(selector);

/** h("td", { class: "x" }, "text", child) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) if (child !== undefined && child !== null) el.append(child);
  return el;
}

/**
 * `load` such that only the newest call's answer counts: a call overtaken by a later one before its answer came
 * resolves to undefined, and the caller skips it, so a slow answer never puts back a stale list (or one tenant's
 * keys under another's name).
 */
export function newestOnly(load) {
  let calls = 0;
  return async (...args) => {
    const mine = ++calls;
    const answer = await load(...args);
    return mine === calls ? answer : undefined;
  };
}

export function showError(el, err) {
  el.textContent = err ? (err.message ?? String(err)) : "";
}

export const fmt = (n, digits = 1) => (typeof n === "number" && Number.isFinite(n) ? n.toFixed(digits) : "–");

/** Fills a <select> with the models the caller may use (base first), keeping the current choice. */
export function fillModels(select, models) {
  const current = select.value;
  select.replaceChildren(...models.map((m) => h("option", { value: m.id }, m.parent ? `${m.id} (adapter)` : `${m.id} (base)`)));
  if (models.some((m) => m.id === current)) select.value = current;
}
