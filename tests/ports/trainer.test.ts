/** The trainer port's contract against StoreTrainer on SQLite, trained by the job runner with the stand-in training loop. */
import { openTestJobs } from "../trainer/jobs/helpers.ts";
import { CONTRACT_TENANTS, describeTrainerContract } from "./trainer.contract.ts";

describeTrainerContract("StoreTrainer on SQLite", async () => {
  const t = await openTestJobs(CONTRACT_TENANTS);
  return {
    trainer: t.trainer,
    base: "stories260k",
    upload: (tenantId) => t.upload(tenantId),
    run: async () => void (await t.drain()),
    close: t.close,
  };
});
