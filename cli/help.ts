/** Help text for `switchyard COMMAND --help`: each subcommand declares its usage and options. */

export interface OptionHelp {
  /** The flag as typed, with its value: `--max-tokens N`. */
  flag: string;
  text: string;
}

export interface CommandHelp {
  /** The synopsis after `switchyard`: `generate --prompt TEXT [options]`. */
  usage: string;
  summary: string;
  options: OptionHelp[];
}

export const wantsHelp = (argv: string[]) => argv.includes("--help") || argv.includes("-h");

export function formatHelp(help: CommandHelp): string {
  const width = Math.max(...help.options.map((o) => o.flag.length), "-h, --help".length) + 2;
  const lines = [...help.options, { flag: "-h, --help", text: "show this help" }].map((o) => `  ${o.flag.padEnd(width)}${o.text}`);
  return `usage: switchyard ${help.usage}\n\n${help.summary}\n\noptions:\n${lines.join("\n")}\n`;
}
