/**
 * Chat prompt rendering with the model's own Jinja `chat_template` (tokenizer_config.json, or a
 * `chat_template.jinja` file next to it) through `@huggingface/jinja`, or a plain fallback.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Template } from "@huggingface/jinja";
import type { ChatMessage } from "../../ports/index.ts";

export interface ChatTemplate {
  render(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): string;
  /** "model" when the model ships a template, "fallback" otherwise. */
  source: "model" | "fallback";
  /**
   * Whether to encode the rendered text with the tokenizer's special tokens (BOS). A model template
   * writes them itself (as transformers' apply_chat_template assumes); the fallback does not.
   */
  encodeWithSpecialTokens: boolean;
}

const FALLBACK_ROLE_NAMES: Record<ChatMessage["role"], string> = { system: "System", user: "User", assistant: "Assistant" };

/**
 * The fallback for models without a chat template (such as base models like stories260k):
 * each turn as "Role: content", turns separated by a blank line, and with a generation prompt a
 * final "Assistant:" for the model to continue, e.g.
 * "System: Be brief.\n\nUser: Hi\n\nAssistant:".
 */
export function renderFallbackChat(messages: ChatMessage[], addGenerationPrompt = true): string {
  const turns = messages.map((m) => `${FALLBACK_ROLE_NAMES[m.role]}: ${m.content}`);
  if (addGenerationPrompt) turns.push("Assistant:");
  return turns.join("\n\n");
}

export const fallbackChatTemplate: ChatTemplate = {
  render: (messages, options) => renderFallbackChat(messages, options?.addGenerationPrompt ?? true),
  source: "fallback",
  encodeWithSpecialTokens: true,
};

type TemplateField = string | { name: string; template: string }[] | undefined;

function tokenText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value && typeof value === "object" && typeof (value as { content?: unknown }).content === "string") {
    return (value as { content: string }).content;
  }
  return "";
}

function pickTemplate(field: TemplateField): string | undefined {
  if (typeof field === "string") return field;
  if (Array.isArray(field)) return (field.find((t) => t.name === "default") ?? field[0])?.template;
  return undefined;
}

/** A chat template from tokenizer_config.json fields (`chat_template`, `bos_token`, `eos_token`). */
export function createChatTemplate(config: { chat_template?: TemplateField; bos_token?: unknown; eos_token?: unknown }): ChatTemplate {
  const source = pickTemplate(config.chat_template);
  if (!source) return fallbackChatTemplate;
  let template: Template;
  try {
    template = new Template(source);
  } catch (error) {
    throw new Error(`chat_template does not parse: ${(error as Error).message}`);
  }
  const tokens = { bos_token: tokenText(config.bos_token), eos_token: tokenText(config.eos_token) };
  return {
    source: "model",
    encodeWithSpecialTokens: false,
    render: (messages, options) =>
      template.render({ messages, ...tokens, add_generation_prompt: options?.addGenerationPrompt ?? true }),
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

/** The model folder's chat template, or the documented fallback when it has none. */
export async function loadChatTemplate(dir: string): Promise<ChatTemplate> {
  const configText = await readOptional(join(dir, "tokenizer_config.json"));
  let config: Parameters<typeof createChatTemplate>[0] = {};
  try {
    if (configText !== undefined) config = JSON.parse(configText);
  } catch (error) {
    throw new Error(`${join(dir, "tokenizer_config.json")}: invalid JSON (${(error as Error).message})`);
  }
  const jinjaFile = await readOptional(join(dir, "chat_template.jinja"));
  return createChatTemplate({ ...config, chat_template: config.chat_template ?? jinjaFile });
}
