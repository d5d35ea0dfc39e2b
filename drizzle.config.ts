import { defineConfig } from "drizzle-kit";

export default defineConfig({
  dialect: "sqlite",
  schema: "./services/store/schema.ts",
  out: "./services/store/migrations",
});
