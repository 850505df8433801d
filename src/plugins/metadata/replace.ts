/**
 * Reading a query's metadata (CoreDNS's metadata.ValueFunc and the replacer's `{/label}`
 * placeholder). For plugins that print metadata: log formats, dnstap's `extra`.
 */
import type { Request } from '../../server/request.ts';

/** What CoreDNS's replacer prints for a label that has no value (replacer.EmptyValue). */
export const EMPTY_VALUE = '-';

/**
 * The value of `label` for this query, or `-` when the block has no `metadata` or no plugin
 * set that label. A value function that throws counts as no value.
 */
export function metadataValue(req: Request, label: string): string {
  const md = req.metadata;
  if (md === null) return EMPTY_VALUE;
  const fn = md.get(label);
  if (fn === undefined) return EMPTY_VALUE;
  try {
    return fn();
  } catch {
    return EMPTY_VALUE;
  }
}

/** Sets a label's value function, if the query carries metadata (CoreDNS's metadata.SetValueFunc). */
export function setMetadata(req: Request, label: string, fn: () => string): void {
  const md = req.metadata;
  if (md !== null) md.set(label, fn);
}

/** Matches `{/label}` placeholders; the label is everything up to the closing brace. */
export const METADATA_PLACEHOLDER = /\{\/([^{}]+)\}/g;

/**
 * Compiles a format string's `{/label}` placeholders: returns a function that expands them
 * for a query and leaves the rest of the text as it is. Text without placeholders costs
 * nothing per query.
 */
export function compileMetadataFormat(format: string): (req: Request) => string {
  const parts: (string | { label: string })[] = [];
  let last = 0;
  for (const m of format.matchAll(METADATA_PLACEHOLDER)) {
    if (m.index > last) parts.push(format.slice(last, m.index));
    parts.push({ label: m[1]! });
    last = m.index + m[0].length;
  }
  if (last < format.length) parts.push(format.slice(last));
  if (parts.every((p) => typeof p === 'string')) return () => format;
  return (req) => {
    let s = '';
    for (const p of parts) s += typeof p === 'string' ? p : metadataValue(req, p.label);
    return s;
  };
}
