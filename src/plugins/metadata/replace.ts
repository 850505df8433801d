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
