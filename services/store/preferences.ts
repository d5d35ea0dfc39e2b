import { and, asc, count, eq } from "drizzle-orm";
import type { ArmRecord, PreferencePair, Preferences } from "../../ports/preferences.ts";
import { newId } from "./ids.ts";
import { preferencePairs, type PreferencePairRow } from "./schema.ts";
import type { StoreDb } from "./store-db.ts";

/** The preferences port on SQLite or D1: one row per pair, always filtered by tenant. */
export class PreferenceStore implements Preferences {
  constructor(private readonly db: StoreDb) {}

  async record(tenantId: string, pair: Pick<PreferencePair, "messages" | "chosen" | "rejected">): Promise<PreferencePair> {
    const [row] = await this.db
      .insert(preferencePairs)
      .values({
        id: newId("pref"),
        tenantId,
        messages: pair.messages,
        chosenArm: pair.chosen.arm,
        chosenContent: pair.chosen.content,
        rejectedArm: pair.rejected.arm,
        rejectedContent: pair.rejected.content,
      })
      .returning();
    return pairOf(row!);
  }

  async list(tenantId: string): Promise<PreferencePair[]> {
    const rows = await this.db.select().from(preferencePairs).where(eq(preferencePairs.tenantId, tenantId)).orderBy(asc(preferencePairs.createdAt), asc(preferencePairs.id));
    return rows.map(pairOf);
  }

  async get(tenantId: string, id: string): Promise<PreferencePair | undefined> {
    const [row] = await this.db.select().from(preferencePairs).where(this.owned(tenantId, id));
    return row && pairOf(row);
  }

  async delete(tenantId: string, id: string): Promise<boolean> {
    const deleted = await this.db.delete(preferencePairs).where(this.owned(tenantId, id)).returning({ id: preferencePairs.id });
    return deleted.length > 0;
  }

  async armRecords(tenantId: string): Promise<ArmRecord[]> {
    const mine = eq(preferencePairs.tenantId, tenantId);
    const wins = await this.db.select({ arm: preferencePairs.chosenArm, n: count() }).from(preferencePairs).where(mine).groupBy(preferencePairs.chosenArm);
    const losses = await this.db.select({ arm: preferencePairs.rejectedArm, n: count() }).from(preferencePairs).where(mine).groupBy(preferencePairs.rejectedArm);
    const byArm = new Map<string, ArmRecord>();
    const entry = (arm: string) => byArm.get(arm) ?? byArm.set(arm, { arm, wins: 0, losses: 0 }).get(arm)!;
    for (const w of wins) entry(w.arm).wins = w.n;
    for (const l of losses) entry(l.arm).losses = l.n;
    return [...byArm.values()].sort((a, b) => a.arm.localeCompare(b.arm));
  }

  private owned(tenantId: string, id: string) {
    return and(eq(preferencePairs.tenantId, tenantId), eq(preferencePairs.id, id));
  }
}

function pairOf(row: PreferencePairRow): PreferencePair {
  return {
    id: row.id,
    tenantId: row.tenantId,
    messages: row.messages,
    chosen: { arm: row.chosenArm, content: row.chosenContent },
    rejected: { arm: row.rejectedArm, content: row.rejectedContent },
    createdAt: row.createdAt,
  };
}
