/**
 * The Prometheus text exposition (format 0.0.4) of merged snapshots, written directly: one
 * block per family (`# HELP`, `# TYPE`, samples sorted by label values, label names sorted,
 * histograms as cumulative `_bucket{le}` lines then `_sum` and `_count`), blocks in the given
 * order separated by a blank line. Help texts escape `\` and newline; label values also `"`;
 * values print as JavaScript's shortest form, NaN and ±Inf as `NaN`, `+Inf`, `-Inf`.
 */
import type { FamilySnapshot } from './snapshot.ts';
import { leLabel } from './labels.ts';

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function escapeLabelValue(s: string): string {
  return escapeHelp(s).replace(/"/g, '\\"');
}

export function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** `a="x",b="y"` (no braces), in the order of the object's keys. */
function labelPairs(labels: Record<string, string>): string {
  let out = '';
  for (const k in labels) out += `${out === '' ? '' : ','}${k}="${escapeLabelValue(labels[k]!)}"`;
  return out;
}

/** client_golang's order: by label names then values, pair by pair (labels are name-sorted). */
function compareLabels(a: Record<string, string>, b: Record<string, string>): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    if (ka[i] !== kb[i]) return ka[i]! < kb[i]! ? -1 : 1;
    const va = a[ka[i]!]!;
    const vb = b[kb[i]!]!;
    if (va !== vb) return va < vb ? -1 : 1;
  }
  return ka.length - kb.length;
}

/** One family's block, without a trailing newline. */
export function formatFamily(f: FamilySnapshot): string {
  let out = `# HELP ${f.name} ${escapeHelp(f.help)}\n# TYPE ${f.name} ${f.type}`;
  const samples = [...f.samples].sort((a, b) => compareLabels(a.labels, b.labels));
  if (f.type !== 'histogram') {
    for (const s of samples) {
      const pairs = labelPairs(s.labels);
      out += `\n${f.name}${pairs === '' ? '' : `{${pairs}}`} ${formatValue(s.value)}`;
    }
    return out;
  }
  const bounds = f.bounds ?? [];
  for (const s of samples) {
    const pairs = labelPairs(s.labels);
    const bucket = `\n${f.name}_bucket{${pairs === '' ? '' : `${pairs},`}le="`;
    const braces = pairs === '' ? '' : `{${pairs}}`;
    let cum = 0;
    for (let i = 0; i < bounds.length; i++) {
      cum += s.buckets?.[i] ?? 0;
      out += `${bucket}${leLabel(bounds[i]!)}"} ${formatValue(cum)}`;
    }
    out += `${bucket}+Inf"} ${formatValue(s.value)}`;
    out += `\n${f.name}_sum${braces} ${formatValue(s.sum ?? 0)}\n${f.name}_count${braces} ${formatValue(s.value)}`;
  }
  return out;
}
