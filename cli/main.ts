import { formatHelp, wantsHelp, type CommandHelp } from "./help.ts";

/** The `switchyard` command: one subcommand per module, loaded only when asked for; each declares its own help. */
type Command = (argv: string[]) => Promise<number>;
interface CommandModule {
  run: Command;
  help: CommandHelp;
}

const COMMANDS: Record<string, { summary: string; load: () => Promise<CommandModule> }> = {
  start: {
    summary: "run the whole platform in this process",
    load: async () => {
      const m = await import("./start.ts");
      return { run: m.startCommand, help: m.START_HELP };
    },
  },
  serve: {
    summary: "run one plane alone (`serve trainer`: the fine-tuning worker)",
    load: async () => {
      const m = await import("./serve.ts");
      return { run: m.serveCommand, help: m.SERVE_HELP };
    },
  },
  generate: {
    summary: "stream a completion from a model to stdout",
    load: async () => {
      const m = await import("./generate.ts");
      return { run: m.generateCommand, help: m.GENERATE_HELP };
    },
  },
  ingest: {
    summary: "add files or folders to a tenant's knowledge base",
    load: async () => {
      const m = await import("./ingest.ts");
      return { run: m.ingestCommand, help: m.INGEST_HELP };
    },
  },
  train: {
    summary: "fine-tune a LoRA adapter on a running server and follow its progress",
    load: async () => {
      const m = await import("./train.ts");
      return { run: m.trainCommand, help: m.TRAIN_HELP };
    },
  },
  eval: {
    summary: "evaluate strategies over a test set on a running server: progress bar, report table, HTML report",
    load: async () => {
      const m = await import("./eval.ts");
      return { run: m.evalCommand, help: m.EVAL_HELP };
    },
  },
  jobs: {
    summary: "list, show (with events) or cancel fine-tuning jobs on a running server",
    load: async () => {
      const m = await import("./jobs.ts");
      return { run: m.jobsCommand, help: m.JOBS_HELP };
    },
  },
};

function overview(): string {
  const list = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`).join("\n");
  return `usage: switchyard <command> [options]\n\ncommands:\n${list}\n\nRun 'switchyard <command> --help' for a command's options.\n`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "help" && rest[0] && COMMANDS[rest[0]]) return main([rest[0], "--help"]);
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    (name === undefined ? process.stderr : process.stdout).write(overview());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`unknown command: ${name}\n${overview()}`);
    return 2;
  }
  const loaded = await command.load();
  if (wantsHelp(rest)) {
    process.stdout.write(formatHelp(loaded.help));
    return 0;
  }
  return loaded.run(rest);
}
