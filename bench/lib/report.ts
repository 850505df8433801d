/**
 * Aggregation (medians over repetitions, ratios between servers) and rendering (terminal table,
 * Markdown summary).
 */
import type { CellRun, Rss10kResult, StartupResult, WorkloadDef } from './harness.ts';
import { footprintMarkdown, footprintText, type FootprintResult } from './footprint.ts';
import type { WorkloadId } from './options.ts';
import type { ServerName } from './servers.ts';
import { median, ratio } from './stats.ts';

export interface CellSummary {
  server: ServerName;
  workload: WorkloadId;
  status: 'ok' | 'error' | 'n/a';
  /** Repetitions that produced numbers / that were attempted. */
  okReps: number;
  reps: number;
  note?: string;
  error?: string;
  qps?: number;
  avgLatencyMs?: number;
  p50Ms?: number;
  p99Ms?: number;
  lost?: number;
  lostPct?: number;
  unexpectedPct?: number;
  cpuPct?: number;
  cpuUsPerQuery?: number;
  peakRssKb?: number;
  otherCpuPct?: number;
}

export interface RatioRow {
  workload: WorkloadId;
  a: ServerName;
  b: ServerName;
  /** a's median divided by b's median. QPS above 1 favours a; the others below 1 favour a. */
  qps: number;
  p50Ms: number;
  p99Ms: number;
  cpuUsPerQuery: number;
  peakRssKb: number;
}

const METRICS = ['qps', 'avgLatencyMs', 'p50Ms', 'p99Ms', 'lost', 'lostPct', 'unexpectedPct', 'cpuPct', 'cpuUsPerQuery', 'peakRssKb', 'otherCpuPct'] as const;

export function summarize(
  runs: readonly CellRun[],
  servers: readonly ServerName[],
  workloads: readonly WorkloadDef[],
  unsupported: (s: ServerName, w: WorkloadDef) => string | null,
): CellSummary[] {
  const out: CellSummary[] = [];
  for (const w of workloads) {
    for (const s of servers) {
      const why = unsupported(s, w);
      if (why !== null) {
        out.push({ server: s, workload: w.id, status: 'n/a', okReps: 0, reps: 0, note: why });
        continue;
      }
      const mine = runs.filter((r) => r.server === s && r.workload === w.id);
      const ok = mine.filter((r) => r.status === 'ok');
      const row: CellSummary = { server: s, workload: w.id, status: ok.length > 0 ? 'ok' : 'error', okReps: ok.length, reps: mine.length };
      if (ok.length === 0) {
        row.error = mine.find((r) => r.error !== undefined)?.error ?? 'not run';
        // An answered-but-wrong run still carries numbers worth seeing next to the error.
        const src = mine.filter((r) => r.qps !== undefined);
        for (const m of METRICS) if (src.length > 0) row[m] = median(src.map((r) => r[m] ?? NaN));
      } else {
        for (const m of METRICS) row[m] = median(ok.map((r) => r[m] ?? NaN));
        const notes: string[] = [];
        if (ok.length < mine.length)
          notes.push(`${mine.length - ok.length} of ${mine.length} reps failed: ${mine.find((r) => r.status === 'error')!.error!.split('\n')[0]}`);
        if (ok.some((r) => r.fileExhausted === true)) notes.push('ran out of unique names before the time limit (shorter run)');
        if (notes.length > 0) row.note = notes.join('; ');
      }
      out.push(row);
    }
  }
  return out;
}

export function ratios(summary: readonly CellSummary[], servers: readonly ServerName[], workloads: readonly WorkloadDef[]): RatioRow[] {
  const out: RatioRow[] = [];
  for (const w of workloads) {
    const ok = servers
      .map((s) => summary.find((r) => r.server === s && r.workload === w.id))
      .filter((r): r is CellSummary => r !== undefined && r.status === 'ok');
    for (let i = 0; i < ok.length; i++) {
      for (let j = i + 1; j < ok.length; j++) {
        const a = ok[i]!;
        const b = ok[j]!;
        out.push({
          workload: w.id,
          a: a.server,
          b: b.server,
          qps: ratio(a.qps ?? NaN, b.qps ?? NaN),
          p50Ms: ratio(a.p50Ms ?? NaN, b.p50Ms ?? NaN),
          p99Ms: ratio(a.p99Ms ?? NaN, b.p99Ms ?? NaN),
          cpuUsPerQuery: ratio(a.cpuUsPerQuery ?? NaN, b.cpuUsPerQuery ?? NaN),
          peakRssKb: ratio(a.peakRssKb ?? NaN, b.peakRssKb ?? NaN),
        });
      }
    }
  }
  return out;
}

// ---------- formatting ----------

function fmt(v: number | undefined, digits: number): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
const mib = (kb: number | undefined): string => (kb === undefined ? '—' : fmt(kb / 1024, 1));
const x = (v: number): string => (Number.isFinite(v) ? `×${v.toFixed(2)}` : '—');

interface Table {
  head: string[];
  rows: string[][];
  /** Columns to right-align. */
  numeric: boolean[];
}

function textTable(t: Table): string {
  const w = t.head.map((h, i) => Math.max(h.length, ...t.rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (t.numeric[i] ? c.padStart(w[i]!) : c.padEnd(w[i]!)))
      .join('  ')
      .trimEnd();
  return [line(t.head), w.map((n) => '-'.repeat(n)).join('  '), ...t.rows.map(line)].join('\n');
}

function mdTable(t: Table): string {
  const esc = (s: string): string => s.replaceAll('|', '\\|');
  return [
    `| ${t.head.map(esc).join(' | ')} |`,
    `|${t.numeric.map((n) => (n ? '---:' : ':---')).join('|')}|`,
    ...t.rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
  ].join('\n');
}

function workloadTable(rows: readonly CellSummary[]): Table {
  return {
    head: ['server', 'QPS', 'avg ms', 'p50 ms', 'p99 ms', 'lost', 'bad rcode %', 'CPU %', 'CPU µs/query', 'peak RSS MiB', 'other CPU %', 'reps', 'status'],
    numeric: [false, true, true, true, true, true, true, true, true, true, true, true, false],
    rows: rows.map((r) => [
      r.server,
      fmt(r.qps, 0),
      fmt(r.avgLatencyMs, 3),
      fmt(r.p50Ms, 3),
      fmt(r.p99Ms, 3),
      r.lost === undefined ? '—' : `${fmt(r.lost, 0)} (${fmt(r.lostPct, 2)}%)`,
      fmt(r.unexpectedPct, 2),
      fmt(r.cpuPct, 0),
      fmt(r.cpuUsPerQuery, 2),
      mib(r.peakRssKb),
      fmt(r.otherCpuPct, 0),
      r.status === 'n/a' ? '—' : `${r.okReps}/${r.reps}`,
      r.status === 'ok' ? (r.note === undefined ? 'ok' : `ok (${r.note})`) : r.status === 'n/a' ? `n/a: ${r.note}` : `ERROR: ${firstLine(r.error)}`,
    ]),
  };
}

function ratioTable(rows: readonly RatioRow[]): Table {
  return {
    head: ['a / b', 'QPS', 'p50', 'p99', 'CPU/query', 'peak RSS'],
    numeric: [false, true, true, true, true, true],
    rows: rows.map((r) => [`${r.a} / ${r.b}`, x(r.qps), x(r.p50Ms), x(r.p99Ms), x(r.cpuUsPerQuery), x(r.peakRssKb)]),
  };
}

function startupTable(st: readonly StartupResult[], rss: readonly Rss10kResult[], servers: readonly ServerName[]): Table {
  return {
    head: ['server', 'start-up ms (median)', 'samples', 'RSS idle MiB', `RSS with 10k entries MiB`, 'bytes/entry', 'status'],
    numeric: [false, true, false, true, true, true, false],
    // A reference that is not a DNS server (node-echo) takes no part in these experiments.
    rows: servers
      .filter((s) => st.some((r) => r.server === s) || rss.some((r) => r.server === s))
      .map((s) => {
        const a = st.find((r) => r.server === s);
        const b = rss.find((r) => r.server === s);
        const errs = [...new Set([a?.error, b?.error].filter((e) => e !== undefined).map(firstLine))];
        const notes = [...errs];
        if (s === 'dnsmasq' && errs.length === 0) notes.push('dnsmasq allocates its whole cache at start-up');
        return [
          s,
          fmt(a?.medianMs, 1),
          a === undefined ? '—' : a.samplesMs.map((v) => v.toFixed(0)).join(' '),
          mib(b?.idleRssKb),
          mib(b?.rssKb),
          fmt(b?.bytesPerEntry, 0),
          errs.length > 0
            ? `ERROR: ${errs.join('; ')}`
            : `ok${b?.warmLost ? ` (${b.warmLost} warm queries lost)` : ''}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`,
        ];
      }),
  };
}

function firstLine(s: string | undefined): string {
  return (s ?? '').split('\n')[0]!;
}

export interface ReportInput {
  summary: CellSummary[];
  ratios: RatioRow[];
  workloads: WorkloadDef[];
  servers: ServerName[];
  startup: StartupResult[];
  rss10k: Rss10kResult[];
  /** node-local-dns with the stock-shaped Corefile (footprint.ts); absent without extras. */
  footprint?: FootprintResult;
  headline: string;
}

/** Threshold of `other CPU %` above which the figures are flagged as disturbed. */
export const DISTURBED_OTHER_CPU_PCT = 10;

/** A warning when other processes used noticeable CPU during the runs, else null. */
export function disturbance(summary: readonly CellSummary[]): string | null {
  const others = summary.map((s) => s.otherCpuPct).filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (others.length === 0) return null;
  const worst = Math.max(...others);
  if (worst <= DISTURBED_OTHER_CPU_PCT) return null;
  const n = others.filter((v) => v > DISTURBED_OTHER_CPU_PCT).length;
  return (
    `WARNING: the machine was busy: in ${n} of ${others.length} cells other processes used more than ` +
    `${DISTURBED_OTHER_CPU_PCT}% of a core (worst ${worst.toFixed(0)}%). Those figures measure contention, not the servers; re-run on an idle machine.`
  );
}

export function renderText(r: ReportInput): string {
  const parts: string[] = [];
  for (const w of r.workloads) {
    parts.push(`\n== ${w.id}: ${w.title}`);
    parts.push(textTable(workloadTable(r.summary.filter((s) => s.workload === w.id))));
    const rr = r.ratios.filter((q) => q.workload === w.id);
    if (rr.length > 0) parts.push('', textTable(ratioTable(rr)));
  }
  if (r.startup.length > 0 || r.rss10k.length > 0) {
    parts.push('\n== start-up (spawn → first correct answer) and memory with 10,000 cached names');
    parts.push(textTable(startupTable(r.startup, r.rss10k, r.servers)));
  }
  if (r.footprint !== undefined) {
    parts.push('\n== footprint: node-local-dns with the stock-shaped Corefile (VmRSS)');
    parts.push(footprintText(r.footprint));
  }
  const errors = r.summary.filter((s) => s.status === 'error');
  if (errors.length > 0) {
    parts.push('\n== errors');
    for (const e of errors) parts.push(`${e.server} / ${e.workload}:\n  ${(e.error ?? '').split('\n').join('\n  ')}`);
  }
  parts.push(`\nHeadline: ${r.headline}`);
  const warn = disturbance(r.summary);
  if (warn !== null) parts.push(warn);
  return parts.join('\n');
}

export interface MarkdownInput extends ReportInput {
  machine: Record<string, string | number>;
  versions: Record<string, string>;
  method: string[];
  configs: Record<string, string>;
  jsonPath: string;
  startedAt: string;
  command: string;
}

export function renderMarkdown(r: MarkdownInput): string {
  const out: string[] = [
    '# node-local-dns benchmark results',
    '',
    `Generated by \`${r.command}\` on ${r.startedAt}. Raw data: \`${r.jsonPath}\`.`,
    '',
    `**Headline:** ${r.headline}`,
    '',
    ...(disturbance(r.summary) === null ? [] : [`> ${disturbance(r.summary)}`, '']),
    '## Machine',
    '',
    ...Object.entries(r.machine).map(([k, v]) => `- ${k}: ${v}`),
    '',
    '## Versions',
    '',
    ...Object.entries(r.versions).map(([k, v]) => `- ${k}: ${v}`),
    '',
    '## Method',
    '',
    ...r.method.map((m) => `- ${m}`),
    '',
    '## Results',
    '',
    'Medians over repetitions. Ratios are a / b of those medians: QPS above 1 favours a; latency,',
    'CPU per query and RSS below 1 favour a.',
  ];
  for (const w of r.workloads) {
    out.push('', `### ${w.id}: ${w.title}`, '', mdTable(workloadTable(r.summary.filter((s) => s.workload === w.id))));
    const rr = r.ratios.filter((q) => q.workload === w.id);
    if (rr.length > 0) out.push('', mdTable(ratioTable(rr)));
  }
  if (r.startup.length > 0 || r.rss10k.length > 0) {
    out.push('', '### Start-up time and memory with 10,000 cached names', '', mdTable(startupTable(r.startup, r.rss10k, r.servers)));
  }
  if (r.footprint !== undefined) {
    out.push('', '### Footprint: node-local-dns with the stock-shaped Corefile', '', footprintMarkdown(r.footprint));
  }
  const errors = r.summary.filter((s) => s.status === 'error');
  if (errors.length > 0) {
    out.push('', '## Errors', '');
    for (const e of errors) out.push(`- **${e.server} / ${e.workload}**:`, '', '```', e.error ?? '', '```');
  }
  out.push('', '## Configurations', '');
  for (const [k, v] of Object.entries(r.configs)) out.push(`<details><summary>${k}</summary>`, '', '```', v.trimEnd(), '```', '', '</details>', '');
  return out.join('\n') + '\n';
}
