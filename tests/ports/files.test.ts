/** The files port's contract against StoreFiles on SQLite, a temp folder and a word-count stand-in for the model's tokenizer. */
import { openTestFiles } from "../services/files/helpers.ts";
import { CONTRACT_CONTEXT, CONTRACT_LIMITS, CONTRACT_TENANTS, describeFilesContract } from "./files.contract.ts";

describeFilesContract("StoreFiles on SQLite", async () => {
  const t = await openTestFiles({ tenants: CONTRACT_TENANTS, limits: CONTRACT_LIMITS, contextLength: CONTRACT_CONTEXT });
  return { files: t.files, close: t.close };
});
