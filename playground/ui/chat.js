// Chat: streams /v1/chat/completions (SSE) into the conversation; Stop aborts the fetch, which the
// server sees as a cancelled stream (its engine drops the sequence). The last answer's `switchyard`
// object (strategy, adapter, sources with scores and ranks, timings) and token usage are shown.
import { streamEvents } from "./api.js";
import { $, fmt, h, showError } from "./dom.js";

export const STRATEGIES = ["prompt", "rag", "adapter", "rag+adapter"];

let messages = [];
let controller;

function numberField(id) {
  const v = $(id).value;
  return v === "" ? undefined : Number(v);
}

function requestBody() {
  const strategy = $("#chat-strategy").value || undefined;
  return {
    model: $("#chat-model").value || undefined,
    strategy,
    messages,
    stream: true,
    stream_options: { include_usage: true },
    temperature: numberField("#chat-temperature"),
    top_p: numberField("#chat-top-p"),
    max_tokens: numberField("#chat-max-tokens"),
    seed: numberField("#chat-seed"),
  };
}

function bubble(role, text) {
  const content = h("div", { class: "content" }, text);
  const item = h("li", { class: `msg ${role}` }, h("span", { class: "role" }, role), content);
  $("#chat-log").append(item);
  return { item, content };
}

export function metaView(extension, usage) {
  const t = extension?.timings ?? {};
  const rows = [
    ["Strategy", extension?.strategy ?? "–"],
    ["Adapter", extension?.adapter ?? "none"],
    ["Retrieval", `${fmt(t.retrieval_ms)} ms`],
    ["Queued", `${fmt(t.queued_ms)} ms`],
    ["First token", `${fmt(t.first_token_ms)} ms`],
    ["Total", `${fmt(t.total_ms)} ms`],
    ["Prompt tokens", usage?.prompt_tokens ?? "–"],
    ["Completion tokens", usage?.completion_tokens ?? "–"],
  ];
  const facts = h("dl", { class: "facts" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
  const sources = extension?.sources ?? [];
  const table = sources.length
    ? h("table", { class: "sources" },
        h("caption", {}, `Sources (${sources.length}${extension.sources_dropped ? `, ${extension.sources_dropped} dropped to fit` : ""})`),
        h("thead", {}, h("tr", {}, ["Rank", "Title", "Score", "Section"].map((c) => h("th", { scope: "col" }, c)))),
        h("tbody", {}, sources.map((s, i) => h("tr", {}, h("td", {}, String(i + 1)), h("td", {}, s.title ?? s.document_id), h("td", {}, fmt(s.score, 3)), h("td", {}, (s.heading_path ?? []).join(" › "))))))
    : h("p", {}, "No sources.");
  return h("div", {}, facts, table);
}

async function send(e) {
  e.preventDefault();
  const input = $("#chat-input");
  const text = input.value.trim();
  if (!text || controller) return;
  input.value = "";
  messages.push({ role: "user", content: text });
  bubble("user", text);
  const answer = bubble("assistant", "");
  answer.item.dataset.state = "streaming";
  controller = new AbortController();
  setBusy(true);
  showError($("#chat-error"), null);
  let extension;
  let usage;
  try {
    for await (const chunk of streamEvents("/v1/chat/completions", requestBody(), controller.signal)) {
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) answer.content.textContent += delta;
      if (chunk.switchyard) extension = chunk.switchyard;
      if (chunk.usage) usage = chunk.usage;
      if (chunk.error) throw new Error(chunk.error.message);
    }
    answer.item.dataset.state = "done";
  } catch (err) {
    answer.item.dataset.state = err.name === "AbortError" ? "stopped" : "error";
    if (err.name !== "AbortError") showError($("#chat-error"), err);
  } finally {
    controller = undefined;
    setBusy(false);
  }
  messages.push({ role: "assistant", content: answer.content.textContent });
  $("#chat-meta").replaceChildren(metaView(extension, usage));
}

function setBusy(busy) {
  $("#chat-send").disabled = busy;
  $("#chat-stop").disabled = !busy;
  if (busy) $("#chat-stop").focus();
  else $("#chat-input").focus();
}

export async function start() {
  $("#chat-strategy").replaceChildren(h("option", { value: "" }, "tenant default"), ...STRATEGIES.map((s) => h("option", { value: s }, s)));
  $("#chat-form").addEventListener("submit", send);
  $("#chat-input").addEventListener("keydown", (e) => {
    if (e.key !== "Enter" || e.shiftKey) return;
    e.preventDefault();
    $("#chat-form").requestSubmit();
  });
  $("#chat-stop").addEventListener("click", () => controller?.abort());
  $("#chat-clear").addEventListener("click", () => {
    messages = [];
    $("#chat-log").replaceChildren();
  });
}

/** Opens the chat view on a model (the fine-tuning view's "chat with the result"). */
export function useModel(model) {
  const select = $("#chat-model");
  if (![...select.options].some((o) => o.value === model)) select.append(h("option", { value: model }, `${model} (adapter)`));
  select.value = model;
}
