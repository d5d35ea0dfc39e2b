/** The `switchyard` command: one subcommand per module, loaded only when asked for. */
type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  start: { summary: "run the whole platform in this process", load: async () => (await import("./start.ts")).startCommand },
  generate: { summary: "stream a completion from a model to stdout", load: async () => (await import("./generate.ts")).generateCommand },
  ingest: { summary: "add files or folders to a tenant's knowledge base", load: async () => (await import("./ingest.ts")).ingestCommand },
};

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const command = name ? COMMANDS[name] : undefined;
  if (!command) {
    const list = Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(10)} ${c.summary}`).join("\n");
    process.stderr.write(`${name && name !== "help" && name !== "--help" ? `unknown command: ${name}\n` : ""}usage: switchyard <command> [options]\n\n${list}\n`);
    return name && name !== "help" && name !== "--help" ? 2 : 0;
  }
  return (await command.load())(rest);
}
