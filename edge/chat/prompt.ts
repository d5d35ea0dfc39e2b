import type { ChatMessage, SearchHit } from "../../ports/index.ts";
import type { Strategy, TenantSettings } from "../tenant-settings.ts";
import type { GenerationBody } from "./schema.ts";
import { usesRetrieval } from "./strategy.ts";

type RequestMessage = GenerationBody["messages"][number];

/** OpenAI messages to plain chat messages: text parts joined, `developer` read as `system`. */
export function normalizeMessages(messages: RequestMessage[]): ChatMessage[] {
  return messages.map((m) => ({
    role: m.role === "developer" ? "system" : m.role,
    content: typeof m.content === "string" ? m.content : (m.content ?? []).map((p) => p.text).join(""),
  }));
}

/** The text retrieval searches for: the last user turn. */
export function retrievalQuery(messages: ChatMessage[]): string {
  return messages.findLast((m) => m.role === "user")?.content ?? "";
}

/** One retrieved chunk as the model sees it, numbered for citations. */
export function formatSource(hit: SearchHit, n: number): string {
  const where = [hit.title, ...hit.headingPath].filter(Boolean).join(" > ");
  return `[${n}] ${where}\n${hit.text.trim()}`;
}

/**
 * The conversation a strategy sends to the model:
 * - every strategy: the tenant's system prompt first, then the caller's system messages;
 * - `prompt`: the tenant's few-shot examples before the conversation;
 * - `rag`, `rag+adapter`: the retrieved chunks in the system message, numbered for citations.
 */
export function buildMessages(strategy: Strategy, settings: TenantSettings, messages: ChatMessage[], sources: SearchHit[]): ChatMessage[] {
  const system = [settings.systemPrompt, ...messages.filter((m) => m.role === "system").map((m) => m.content)].filter(
    (s): s is string => !!s,
  );
  if (usesRetrieval(strategy) && sources.length > 0) {
    system.push(`Answer using the context below; cite it as [n].\n\nContext:\n${sources.map((h, i) => formatSource(h, i + 1)).join("\n\n")}`);
  }
  const fewShot: ChatMessage[] =
    strategy === "prompt"
      ? settings.fewShot.flatMap((ex) => [
          { role: "user", content: ex.user },
          { role: "assistant", content: ex.assistant },
        ])
      : [];
  const conversation = messages.filter((m) => m.role !== "system");
  return [...(system.length > 0 ? [{ role: "system" as const, content: system.join("\n\n") }] : []), ...fewShot, ...conversation];
}
