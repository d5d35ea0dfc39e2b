// Compare: one prompt through every strategy at once, streamed (/v1/compare with stream: true) into one
// column each as the tokens arrive, with time to first token, tokens/s, token counts, sources and (given a
// reference) metric scores; a word diff between any two columns once they are done. Stop aborts the
// stream, which cancels every strategy on the server.
// Blind mode shuffles the columns and hides their arms until the user picks the best one. The order is
// decided on the stream's first event (the list of strategies), before any token arrives. Each pick is
// stored as preference pairs (the pick against every other different answer) and feeds the win-rate table.
// While streaming, the facts are the page's own (first token and tokens/s as this tab saw them, pieces of
// text as tokens); each strategy's final event replaces them with the server's.
import { api, streamEvents } from "./api.js";
import { $, fmt, h, showError } from "./dom.js";
import { wordDiff } from "./diff.js";

/** The arms in display order: { strategy, content, state: streaming|done|error|stopped, usage, timings, sources, scores, error, live }. */
let arms = [];
let prompt = [];
let rated = false;
let blind = false;
let controller;

function shuffle(list) {
  const a = [...list];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

const hidden = () => blind && !rated;
const label = (arm, i) => (hidden() ? `Answer ${i + 1}` : arm.strategy);
/** Every arm answered or failed: only then can the answers be rated (never partial ones). */
const finished = () => arms.length > 0 && arms.every((a) => a.state === "done" || a.state === "error");

function tokensPerSecond(arm) {
  if (!arm.timings) {
    const { first, last, pieces } = arm.live;
    return pieces < 2 || last <= first ? undefined : (pieces - 1) / ((last - first) / 1000);
  }
  const t = arm.timings;
  const n = arm.usage?.completion_tokens ?? 0;
  if (!t || n < 2 || t.total_ms <= t.first_token_ms) return undefined;
  return (n - 1) / ((t.total_ms - t.first_token_ms) / 1000);
}

function factsView(arm) {
  const facts = [
    ["Time to first token", `${fmt(arm.timings ? arm.timings.first_token_ms : arm.live.first - arm.live.sent)} ms`],
    ["Tokens/s", fmt(tokensPerSecond(arm))],
    ["Prompt tokens", arm.usage?.prompt_tokens],
    ["Completion tokens", arm.usage?.completion_tokens ?? arm.live.pieces],
    ["Sources", arm.sources?.length],
  ];
  return h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v ?? "–"))]));
}

function scoresView(scores) {
  if (!scores) return null;
  const entries = Object.entries(scores).filter(([, v]) => typeof v === "number");
  return h("dl", { class: "facts scores" }, entries.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, fmt(v, 3))]));
}

/** An arm's column; its answer and facts elements are kept on the arm so tokens update them in place. */
function column(arm, i) {
  const title = h("h3", {}, label(arm, i));
  const attrs = { class: "column", "data-arm": arm.strategy, "data-state": arm.state };
  if (arm.error) return h("article", attrs, title, h("p", { class: "error" }, arm.error.message));
  arm.answer = h("p", { class: "answer" }, arm.content);
  arm.facts = factsView(arm);
  const sources = (arm.sources ?? []).map((s, rank) => h("li", {}, `#${rank + 1} ${s.title ?? s.document_id} (${fmt(s.score, 3)})`));
  const pick = hidden() && finished() && !controller ? h("button", { type: "button", class: "pick", onclick: () => choose(arm) }, `${label(arm, i)} is best`) : null;
  return h("article", attrs,
    title,
    arm.answer,
    arm.facts,
    sources.length ? h("ol", { class: "sources", "aria-label": "Sources" }, sources) : null,
    scoresView(arm.scores),
    pick);
}

function render() {
  $("#compare-columns").replaceChildren(...arms.map(column));
  const ok = arms.filter((a) => a.state === "done");
  const options = () => ok.map((a) => h("option", { value: String(arms.indexOf(a)) }, label(a, arms.indexOf(a))));
  $("#diff-a").replaceChildren(...options());
  $("#diff-b").replaceChildren(...options());
  if (ok.length > 1) $("#diff-b").selectedIndex = 1;
  $("#compare-diff-box").hidden = ok.length < 2 || controller !== undefined;
  renderDiff();
}

function renderDiff() {
  const a = arms[Number($("#diff-a").value)];
  const b = arms[Number($("#diff-b").value)];
  if (!a || !b) return $("#compare-diff").replaceChildren();
  const tag = { same: "span", del: "del", add: "ins" };
  $("#compare-diff").replaceChildren(...wordDiff(a.content, b.content).map((p) => h(tag[p.op], {}, p.text)));
}

/**
 * One stream event into its arm (`stream.byIndex`: the arms by their index in the server's list, which
 * the display order may shuffle): text in place; a final or error event re-renders that column.
 */
function apply(event, stream) {
  if (event.object === "compare.start") {
    const order = event.strategies.map((strategy, index) => ({ strategy, index }));
    arms = (blind ? shuffle(order) : order).map(({ strategy, index }) => {
      const arm = { strategy, content: "", state: "streaming", live: { sent: stream.sent, first: undefined, last: undefined, pieces: 0 } };
      stream.byIndex.set(index, arm);
      return arm;
    });
    return render();
  }
  if (!event.object && event.error) throw new Error(event.error.message); // the stream itself failed
  const arm = stream.byIndex.get(event.index);
  if (!arm) return;
  if (event.object === "compare.chunk") {
    const now = performance.now();
    arm.live.first ??= now;
    arm.live.last = now;
    arm.live.pieces++;
    arm.content += event.delta.content;
    arm.answer.append(event.delta.content);
    const facts = factsView(arm);
    arm.facts.replaceWith(facts);
    arm.facts = facts;
    return;
  }
  if (event.object === "compare.done") {
    Object.assign(arm, { state: "done", usage: event.usage, timings: event.switchyard.timings, sources: event.switchyard.sources, scores: event.scores });
  } else if (event.object === "compare.error") {
    Object.assign(arm, { state: "error", error: event.error, content: null });
  }
  const i = arms.indexOf(arm);
  $("#compare-columns").children[i]?.replaceWith(column(arm, i));
}

async function choose(chosen) {
  const others = arms.filter((a) => a !== chosen && a.state === "done" && a.content !== chosen.content);
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

function requestBody() {
  const reference = $("#compare-reference").value.trim();
  return {
    model: $("#compare-model").value || undefined,
    messages: prompt,
    max_tokens: Number($("#compare-max-tokens").value),
    temperature: Number($("#compare-temperature").value),
    reference: reference || undefined,
    stream: true,
  };
}

async function run(e) {
  e.preventDefault();
  if (controller) return;
  controller = new AbortController();
  setBusy(true);
  showError($("#compare-error"), null);
  $("#compare-status").textContent = "";
  prompt = [{ role: "user", content: $("#compare-prompt").value }];
  blind = $("#compare-blind").checked;
  rated = false;
  arms = [];
  const stream = { sent: performance.now(), byIndex: new Map() };
  const columns = $("#compare-columns");
  columns.dataset.state = "streaming";
  columns.setAttribute("aria-busy", "true"); // the live region is read once the answers are in, not per token
  columns.replaceChildren(h("p", { class: "busy" }, "Running every strategy…"));
  try {
    for await (const event of streamEvents("/v1/compare", requestBody(), controller.signal)) apply(event, stream);
    columns.dataset.state = "done";
  } catch (err) {
    const stopped = err.name === "AbortError";
    for (const arm of arms) if (arm.state === "streaming") arm.state = "stopped";
    columns.dataset.state = stopped ? "stopped" : "error";
    if (stopped) $("#compare-status").textContent = "Stopped.";
    else showError($("#compare-error"), err);
  } finally {
    controller = undefined;
    columns.removeAttribute("aria-busy");
    setBusy(false);
  }
  if (arms.length) render();
  else columns.replaceChildren();
}

function setBusy(busy) {
  $("#compare-run").disabled = busy;
  $("#compare-stop").disabled = !busy;
  $(busy ? "#compare-stop" : "#compare-run").focus();
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
  $("#compare-stop").addEventListener("click", () => controller?.abort());
  $("#diff-a").addEventListener("change", renderDiff);
  $("#diff-b").addEventListener("change", renderDiff);
  $("#preferences-download").addEventListener("click", () => download().catch((err) => showError($("#compare-error"), err)));
  await refreshWinRates();
}
