import { Hono } from "hono";
import { z } from "zod";
import type { ArmRecord, PreferencePair, Preferences } from "../../ports/preferences.ts";
import type { AppEnv } from "../env.ts";
import { notFound } from "../errors.ts";
import { describe, jsonBody, queryParams } from "../middleware/body.ts";
import { STRATEGIES } from "../tenant-settings.ts";

/**
 * Preference pairs from the playground's blind compare, mounted at /v1/preferences: the prompt, the
 * answer the user chose and the one they did not, each with its arm (strategy). The download is
 * OpenAI's DPO training format, one pair a line; the stats are each arm's wins, losses and win rate.
 */

const Message = z.object({ role: z.enum(["system", "developer", "user", "assistant"]), content: z.string().max(100_000) });
const Answer = z.object({ arm: z.enum(STRATEGIES), content: z.string().max(100_000) });

export const PreferenceRequest = z
  .object({
    messages: z.array(Message).min(1).max(64),
    chosen: Answer,
    rejected: Answer,
  })
  .refine((p) => p.chosen.arm !== p.rejected.arm, { message: "chosen and rejected must come from different arms", path: ["rejected", "arm"] });

const ListQuery = z.object({ format: z.enum(["json", "jsonl"]).default("json") });

export function preferenceJson(p: PreferencePair) {
  return { id: p.id, object: "preference", created_at: Math.floor(p.createdAt / 1000), messages: p.messages, chosen: p.chosen, rejected: p.rejected };
}

/** One line of OpenAI's DPO file: the prompt as `input`, the chosen answer preferred. */
export function dpoLine(p: PreferencePair): string {
  return JSON.stringify({
    input: { messages: p.messages },
    preferred_output: [{ role: "assistant", content: p.chosen.content }],
    non_preferred_output: [{ role: "assistant", content: p.rejected.content }],
  });
}

export function armStatsJson(r: ArmRecord) {
  const rated = r.wins + r.losses;
  return { arm: r.arm, wins: r.wins, losses: r.losses, rated, win_rate: rated === 0 ? null : r.wins / rated };
}

export function preferenceRoutes(preferences: Preferences): Hono<AppEnv> {
  const app = new Hono<AppEnv>();
  const tags = ["preferences"];
  const missing = (id: string) => notFound(`No preference pair with id '${id}'.`, "id");

  app.post("/", describe({ summary: "Store a preference pair: the prompt's messages, the chosen answer and the rejected one, each with its arm.", tags }), jsonBody(PreferenceRequest), async (c) => {
    const pair = await preferences.record(c.get("tenant").id, c.req.valid("json"));
    return c.json(preferenceJson(pair), 201);
  });

  app.get("/", describe({ summary: "The caller's preference pairs, oldest first; `format=jsonl` downloads them in OpenAI's DPO file format.", tags }), queryParams(ListQuery), async (c) => {
    const pairs = await preferences.list(c.get("tenant").id);
    if (c.req.valid("query").format === "jsonl") {
      const body = pairs.map((p) => `${dpoLine(p)}\n`).join("");
      return c.body(body, 200, { "content-type": "application/jsonl; charset=utf-8", "content-disposition": 'attachment; filename="preferences.jsonl"' });
    }
    return c.json({ object: "list", data: pairs.map(preferenceJson) });
  });

  app.get("/stats", describe({ summary: "Each arm's wins, losses and win rate over the caller's preference pairs.", tags }), async (c) =>
    c.json({ object: "list", data: (await preferences.armRecords(c.get("tenant").id)).map(armStatsJson) }),
  );

  app.get("/:id", describe({ summary: "One preference pair.", tags }), async (c) => {
    const pair = await preferences.get(c.get("tenant").id, c.req.param("id"));
    if (!pair) throw missing(c.req.param("id"));
    return c.json(preferenceJson(pair));
  });

  app.delete("/:id", describe({ summary: "Delete a preference pair.", tags }), async (c) => {
    const id = c.req.param("id");
    if (!(await preferences.delete(c.get("tenant").id, id))) throw missing(id);
    return c.json({ id, object: "preference.deleted", deleted: true });
  });

  return app;
}
