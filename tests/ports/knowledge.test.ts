/** The Knowledge port's contract against the in-process knowledge base (SQLite, hnswlib, the hashing embedder). */
import { openTestKb } from "../services/retrieval/helpers.ts";
import { knowledgeContract } from "./knowledge.contract.ts";

knowledgeContract("in-process knowledge base", async () => {
  const t = await openTestKb();
  return { knowledge: t.kb, tenants: ["acme", "globex"], close: () => t.cleanup() };
});
