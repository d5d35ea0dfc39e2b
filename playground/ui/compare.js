// Compare: one prompt through every strategy at once (/v1/compare), one column each with time to first
// token, tokens/s, token counts, sources and (given a reference) metric scores; a word diff between any
// two columns. Blind mode shuffles the columns and hides their arms until the user picks the best one;
// each pick is stored as preference pairs (the pick against every other different answer) and feeds
// the win-rate table.
import { api } from "./api.js";
import { $, fmt, h, showError } from "./dom.js";
import { wordDiff } from "./diff.js";

let results = [];
let prompt = [];
let rated = false;

function shuffle(list) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const label = (r, i) => ($("#compare-blind").checked && !rated ? `Answer ${i + 1}` : r.strategy);

function tokensPerSecond(r) {
  const t = r.timings;
  const n = r.usage?.completion_tokens ?? 0;
  if (!t || n < 2 || t.total_ms <= t.first_token_ms) return undefined;
  return (n - 1) / ((t.total_ms - t.first_token_ms) / 1000);
}

function scoresView(scores) {
  if (!scores) return null;
  const entries = Object.entries(scores).filter(([, v]) => typeof v === "number");
  return h("dl", { class: "facts scores" }, entries.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmt(v, 3))]));
}

function column(r, i) {
  const title = h("h3", {}, label(r, i));
  if (r.error) return h("article", { class: "column", "data-arm": r.strategy }, title, h("p", { class: "error" }, r.error.message));
  const facts = [
    ["Time to first token", `${fmt(r.timings?.first_token_ms)} ms`],
    ["Tokens/s", fmt(tokensPerSecond(r))],
    ["Prompt tokens", r.usage?.prompt_tokens],
    ["Completion tokens", r.usage?.completion_tokens],
    ["Sources", (r.sources ?? []).length],
  ];
  const sources = (r.sources ?? []).map((s, rank) => h("li", {}, `#${rank + 1} ${s.title ?? s.document_id} (${fmt(s.score, 3)})`));
  const pick = $("#compare-blind").checked && !rated ? h("button", { type: "button", class: "pick", onclick: () => choose(r) }, `${label(r, i)} is best`) : null;
  return h("article", { class: "column", "data-arm": r.strategy },
    title,
    h("p", { class: "answer" }, r.content),
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v ?? "–"))])),
    sources.length ? h("ol", { class: "sources", "aria-label": "Sources" }, sources) : null,
    scoresView(r.scores),
    pick);
}

function render() {
  $("#compare-columns").replaceChildren(...results.map(column));
  const ok = results.filter((r) => !r.error);
  const options = () => ok.map((r) => h("option", { value: String(results.indexOf(r)) }, label(r, results.indexOf(r))));
  $("#diff-a").replaceChildren(...options());
  $("#diff-b").replaceChildren(...options());
  if (ok.length > 1) $("#diff-b").selectedIndex = 1;
  $("#compare-diff-box").hidden = ok.length < 2;
  renderDiff();
}

function renderDiff() {
  const a = results[Number($("#diff-a").value)];
  const b = results[Number($("#diff-b").value)];
  if (!a || !b) return $("#compare-diff").replaceChildren();
  const tag = { same: "span", del: "del", add: "ins" };
  $("#compare-diff").replaceChildren(...wordDiff(a.content, b.content).map((p) => h(tag[p.op], {}, p.text)));
}

async function choose(chosen) {
  const others = results.filter((r) => r !== chosen && !r.error && r.content !== chosen.content);
  try {
    for (const rejected of others) {
      await api("/v1/preferences", { method: "POST", json: { messages: prompt, chosen: { arm: chosen.strategy, content: chosen.content }, rejected: { arm: rejected.strategy, content: rejected.content } } });
    }
    rated = true;
    render();
    $("#compare-status").textContent = others.length ? `Stored ${others.length} preference pair(s): ${chosen.strategy} preferred.` : "All answers were the same: nothing stored.";
    await refreshWinRates();
  } catch (err) {
    showError($("#compare-error"), err);
  }
}

async function run(e) {
  e.preventDefault();
  const button = $("#compare-run");
  button.disabled = true;
  showError($("#compare-error"), null);
  prompt = [{ role: "user", content: $("#compare-prompt").value }];
  const reference = $("#compare-reference").value.trim();
  $("#compare-columns").replaceChildren(h("p", { class: "busy" }, "Running every strategy…"));
  try {
    const body = await api("/v1/compare", {
      method: "POST",
      json: { model: $("#compare-model").value || undefined, messages: prompt, max_tokens: Number($("#compare-max-tokens").value), temperature: Number($("#compare-temperature").value), reference: reference || undefined },
    });
    rated = false;
    results = $("#compare-blind").checked ? shuffle(body.results) : body.results;
    render();
  } catch (err) {
    $("#compare-columns").replaceChildren();
    showError($("#compare-error"), err);
  } finally {
    button.disabled = false;
  }
}

async function refreshWinRates() {
  const stats = (await api("/v1/preferences/stats")).data;
  $("#winrates tbody").replaceChildren(...stats.map((s) => h("tr", {}, h("th", { scope: "row" }, s.arm), h("td", {}, String(s.wins)), h("td", {}, String(s.losses)), h("td", {}, s.win_rate === null ? "–" : `${Math.round(s.win_rate * 100)}%`))));
}

/** The key is a header, so the download is fetched and handed to the browser as a blob (never a keyed URL). */
async function download() {
  const text = await api("/v1/preferences?format=jsonl");
  const url = URL.createObjectURL(new Blob([text], { type: "application/jsonl" }));
  const a = h("a", { href: url, download: "preferences.jsonl" });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export async function start() {
  $("#compare-form").addEventListener("submit", run);
  $("#diff-a").addEventListener("change", renderDiff);
  $("#diff-b").addEventListener("change", renderDiff);
  $("#compare-blind").addEventListener("change", () => results.length && render());
  $("#preferences-download").addEventListener("click", () => download().catch((err) => showError($("#compare-error"), err)));
  await refreshWinRates();
}
