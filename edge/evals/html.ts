/**
 * The report as one self-contained HTML page: inline CSS and SVG charts, no script, no external
 * resource (its CSP forbids any), so it opens offline and can be mailed around. Every text that comes
 * from a tenant (answers, references, names) is escaped.
 */
import type { ArmReport, EvalReport } from "./report.ts";

const esc = (s: unknown) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const fmt = (x: number | null | undefined, digits = 3) => (x === null || x === undefined || Number.isNaN(x) ? "–" : x.toFixed(digits));
const COLORS = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];

export function reportHtml(report: EvalReport): string {
  const metrics = [...new Set(report.arms.flatMap((a) => Object.keys(a.metrics)))];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Evaluation ${esc(report.run.id)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{border:1px solid #eee;padding:.5em}pre{white-space:pre-wrap;margin:0}
.err{color:#b00}.sig{font-weight:600}.legend span{display:inline-block;margin-right:1em}
</style></head><body>
<h1>Evaluation report</h1>
<p>Run <code>${esc(report.run.id)}</code> (${esc(report.run.status)}, ${report.run.done}/${report.run.total} results) over dataset
<code>${esc(report.dataset.name)}</code> (${report.dataset.items} items).</p>
<h2>Findings</h2>
${report.findings.length ? `<ul>${report.findings.map((f) => `<li class="sig">${esc(f)}</li>`).join("")}</ul>` : "<p>No significant difference between arms (paired sign-flip test, p &lt; 0.05, interval excluding 0).</p>"}
<h2>Arms</h2>
<div class="legend">${report.arms.map((a) => `<span data-arm="${esc(a.label)}"><svg width="12" height="12"><rect width="12" height="12" fill="${color(a.index)}"/></svg> ${esc(a.label)}</span>`).join("")}</div>
${armTable(report.arms, metrics)}
<div class="charts">${metrics.map((m) => chart(m, report.arms)).join("")}</div>
<h2>Pairwise comparisons</h2>
${comparisonTable(report)}
<h2>Items</h2>
${report.items.map((item) => itemBlock(report, item)).join("\n")}
<h2>Reproducibility</h2>
<pre>${esc(JSON.stringify(report.reproducibility, null, 2))}</pre>
</body></html>
`;
}

const color = (i: number) => COLORS[i % COLORS.length]!;

function armTable(arms: ArmReport[], metrics: string[]): string {
  const head = `<tr><th>arm</th><th>passed</th><th>failed</th><th>errored</th>${metrics.map((m) => `<th>${esc(m)}</th>`).join("")}<th>TTFT p50/p90 ms</th><th>total p50/p90 ms</th><th>completion tokens p50</th></tr>`;
  const rows = arms.map((a) => {
    const cells = metrics.map((m) => {
      const s = a.metrics[m];
      return `<td>${s ? `${fmt(s.mean)} [${fmt(s.low)}, ${fmt(s.high)}]` : "–"}</td>`;
    });
    const c = a.result_counts;
    return `<tr><td>${esc(a.label)}</td><td>${c.passed}</td><td>${c.failed}</td><td class="${c.errored ? "err" : ""}">${c.errored}${Object.keys(a.errors).length ? ` (${esc(Object.keys(a.errors).join(", "))})` : ""}</td>${cells.join("")}<td>${fmt(a.latency_ms.ttft.p50, 1)}/${fmt(a.latency_ms.ttft.p90, 1)}</td><td>${fmt(a.latency_ms.total.p50, 1)}/${fmt(a.latency_ms.total.p90, 1)}</td><td>${fmt(a.tokens.completion.p50, 0)}</td></tr>`;
  });
  return `<table>${head}${rows.join("")}</table>`;
}

/** A bar per arm (the mean) with its 95% interval as a whisker; the y axis is 0–1. */
function chart(metric: string, arms: ArmReport[]): string {
  const [w, h, pad] = [60 * arms.length + 40, 160, 20];
  const y = (v: number) => h - pad - Math.max(0, Math.min(1, v)) * (h - 2 * pad);
  const bars = arms.map((a, i) => {
    const s = a.metrics[metric];
    if (!s) return "";
    const x = 30 + i * 60;
    return `<rect x="${x}" y="${y(s.mean)}" width="40" height="${h - pad - y(s.mean)}" fill="${color(a.index)}"><title>${esc(a.label)}: ${fmt(s.mean)} [${fmt(s.low)}, ${fmt(s.high)}]</title></rect>
<line x1="${x + 20}" x2="${x + 20}" y1="${y(s.low)}" y2="${y(s.high)}" stroke="#000"/><line x1="${x + 14}" x2="${x + 26}" y1="${y(s.low)}" y2="${y(s.low)}" stroke="#000"/><line x1="${x + 14}" x2="${x + 26}" y1="${y(s.high)}" y2="${y(s.high)}" stroke="#000"/>`;
  });
  return `<div class="chart"><div>${esc(metric)}</div><svg role="img" aria-label="${esc(metric)} by arm" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">
<line x1="25" x2="${w}" y1="${h - pad}" y2="${h - pad}" stroke="#888"/><text x="0" y="${y(1) + 4}" font-size="10">1</text><text x="0" y="${h - pad + 4}" font-size="10">0</text>${bars.join("")}</svg></div>`;
}

function comparisonTable(report: EvalReport): string {
  if (report.comparisons.length === 0) return "<p>Fewer than two arms with scores.</p>";
  const rows = report.comparisons.map(
    (c) => `<tr class="${c.significant ? "sig" : ""}"><td>${esc(c.a)} − ${esc(c.b)}</td><td>${esc(c.metric)}</td><td>${c.n}</td><td>${fmt(c.difference.mean)} [${fmt(c.difference.low)}, ${fmt(c.difference.high)}]</td><td>${fmt(c.p, 4)}</td><td>${c.significant ? "yes" : "no"}</td></tr>`,
  );
  return `<table><tr><th>pair (a − b)</th><th>metric</th><th>n</th><th>difference [95% CI]</th><th>p (paired sign-flip)</th><th>significant</th></tr>${rows.join("")}</table>`;
}

function itemBlock(report: EvalReport, item: EvalReport["items"][number]): string {
  const question = item.messages.filter((m) => m.role === "user").at(-1)?.content ?? "";
  const cells = item.results.map((r, a) => {
    if (!r) return "<td>not run</td>";
    if (r.error) return `<td class="err">${esc(r.error.code)}: ${esc(r.error.message)}</td>`;
    const scores = Object.entries(r.scores).map(([k, v]) => `${esc(k)} ${fmt(v)}`).join(", ");
    const sources = r.sources.length ? `<br><small>sources: ${esc(r.sources.map((s) => s.title).join(", "))}</small>` : "";
    return `<td data-arm="${esc(report.arms[a]?.label)}"><pre>${esc(r.answer ?? "")}</pre><small>${scores}</small>${sources}</td>`;
  });
  return `<details><summary>#${item.index + 1} (line ${item.line}): ${esc(question.slice(0, 120))}</summary>
<table><tr><th>reference</th>${report.arms.map((a) => `<th>${esc(a.label)}</th>`).join("")}</tr><tr><td><pre>${esc(item.reference)}</pre></td>${cells.join("")}</tr></table></details>`;
}
