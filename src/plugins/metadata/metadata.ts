/**
 * The metadata plugin (CoreDNS plugin/metadata): with `metadata` in a block, every query of
 * the block carries a label -> value-function map (`req.metadata`) that plugins fill
 * (`req.metadata?.set(label, fn)`: CoreDNS's metadata.SetValueFunc) and that plugins printing
 * metadata read (`{/label}` in log formats and in dnstap's `extra`; see metadataValue).
 *
 * As in CoreDNS, the map exists for every query of the block; ZONES only restricts which
 * queries the metadata *providers* (plugins that add labels up front: kubernetes, geoip,
 * view in CoreDNS) are asked about. node-local-dns has no such provider, so ZONES is parsed
 * and kept but changes nothing today.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';

export const PLUGIN_NAME = 'metadata';

export class MetadataPlugin implements Plugin, Handler {
  readonly name = PLUGIN_NAME;
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  /** Normalised zones (lower case, fully qualified). */
  readonly zones: string[];
  private next: Handler | null = null;

  constructor(zones: string[]) {
    this.zones = zones;
  }

  compose(next: Handler): Handler {
    this.next = next;
    return this;
  }

  serve(req: Request): void {
    if (req.metadata === null) req.metadata = new Map();
    this.next!.serve(req);
  }
}
