import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createChatTemplate, loadChatTemplate, renderFallbackChat } from "../../../services/model/chat-template.ts";
import type { ChatMessage } from "../../../ports/index.ts";
import { findSharedModel } from "../../helpers/model-fixtures.ts";

// Real-world templates, verbatim from the models' tokenizer_config.json.
const QWEN2_TEMPLATE =
  "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA3_TEMPLATE =
  "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}";
const MISTRAL_TEMPLATE =
  "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}";

const conversation: ChatMessage[] = [
  { role: "user", content: "Hi there " },
  { role: "assistant", content: "Hello!" },
  { role: "user", content: "Tell me a story." },
];

describe("chat template", () => {
  it("renders the Qwen2 ChatML template with and without a generation prompt", () => {
    const template = createChatTemplate({ chat_template: QWEN2_TEMPLATE, eos_token: "<|im_end|>" });
    expect(template.source).toBe("model");
    expect(template.encodeWithSpecialTokens).toBe(false);
    const messages: ChatMessage[] = [{ role: "user", content: "Hi" }];
    expect(template.render(messages)).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
    );
    expect(template.render(messages, { addGenerationPrompt: false })).toBe(
      "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    );
  });

  it("renders the Llama-3 template with bos_token given as an added-token object", () => {
    const template = createChatTemplate({
      chat_template: LLAMA3_TEMPLATE,
      bos_token: { content: "<|begin_of_text|>", special: true },
      eos_token: "<|eot_id|>",
    });
    expect(template.render([{ role: "system", content: "Be brief." }, ...conversation])).toBe(
      "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\nHello!<|eot_id|>" +
        "<|start_header_id|>user<|end_header_id|>\n\nTell me a story.<|eot_id|>" +
        "<|start_header_id|>assistant<|end_header_id|>\n\n",
    );
  });

  it("picks the default of a list of named templates and surfaces raise_exception", () => {
    const template = createChatTemplate({
      chat_template: [
        { name: "tool_use", template: "TOOLS" },
        { name: "default", template: MISTRAL_TEMPLATE },
      ],
      bos_token: "<s>",
      eos_token: "</s>",
    });
    expect(template.render(conversation)).toBe("<s>[INST] Hi there  [/INST]Hello!</s>[INST] Tell me a story. [/INST]");
    expect(() => template.render([{ role: "assistant", content: "x" }])).toThrow(/Conversation roles must alternate/);
  });

  it("uses the documented fallback for stories260k, which has no template", async () => {
    const template = await loadChatTemplate(findSharedModel("stories260k"));
    expect(template.source).toBe("fallback");
    expect(template.encodeWithSpecialTokens).toBe(true);
    const messages: ChatMessage[] = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
    expect(template.render(messages)).toBe("System: Be brief.\n\nUser: Hi\n\nAssistant:");
    expect(renderFallbackChat(messages, false)).toBe("System: Be brief.\n\nUser: Hi");
  });

  it("reads chat_template.jinja and reports a template that does not parse", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sy-chat-"));
    writeFileSync(join(dir, "tokenizer_config.json"), JSON.stringify({ eos_token: "<|im_end|>" }));
    writeFileSync(join(dir, "chat_template.jinja"), QWEN2_TEMPLATE);
    expect((await loadChatTemplate(dir)).render([{ role: "system", content: "S" }])).toBe("<|im_start|>system\nS<|im_end|>\n<|im_start|>assistant\n");
    expect(() => createChatTemplate({ chat_template: "{% for x in %}" })).toThrow(/chat_template does not parse/);
  });
});
