/** Counts of what the reliability suites saw, printed as a table at the end of each file. */
export type Outcome = number | "timeout" | "network-error";

const classOf = (o: Outcome) => (typeof o === "number" ? `${Math.floor(o / 100)}xx` : o);
const COLUMNS = ["2xx", "3xx", "4xx", "5xx", "timeout", "network-error"];

export class Tally {
  private readonly rows = new Map<string, Map<string, number>>();
  private readonly statuses = new Map<number, number>();

  record(row: string, outcome: Outcome): void {
    const counts = this.rows.get(row) ?? new Map<string, number>();
    counts.set(classOf(outcome), (counts.get(classOf(outcome)) ?? 0) + 1);
    this.rows.set(row, counts);
    if (typeof outcome === "number") this.statuses.set(outcome, (this.statuses.get(outcome) ?? 0) + 1);
  }

  get total(): number {
    let n = 0;
    for (const counts of this.rows.values()) for (const c of counts.values()) n += c;
    return n;
  }

  /** A fixed-width table: one row per group, one column per status class, and the distinct statuses seen. */
  table(title: string): string {
    const width = Math.max(10, ...[...this.rows.keys()].map((k) => k.length));
    const line = (name: string, cells: Array<string | number>) => `${name.padEnd(width)} ${cells.map((c) => String(c).padStart(8)).join(" ")}`;
    const total = new Map<string, number>();
    const body = [...this.rows].map(([name, counts]) => {
      for (const [k, v] of counts) total.set(k, (total.get(k) ?? 0) + v);
      return line(name, [...COLUMNS.map((c) => counts.get(c) ?? 0), sum(counts)]);
    });
    const statuses = [...this.statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}:${n}`).join(" ");
    return [
      `${title}`,
      line("", [...COLUMNS.map((c) => c.slice(0, 8)), "cases"]),
      ...body,
      line("total", [...COLUMNS.map((c) => total.get(c) ?? 0), sum(total)]),
      `statuses: ${statuses}`,
    ].join("\n");
  }
}

const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
