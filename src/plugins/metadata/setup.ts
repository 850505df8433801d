/**
 * `metadata [ZONES...]` (CoreDNS plugin/metadata/setup.go): no block, no other line. ZONES
 * default to the server block's zones; each is normalised (a reverse CIDR becomes its
 * in-addr.arpa/ip6.arpa zone as CoreDNS's OriginsFromArgsOrServerBlock does for plain names;
 * node-local-dns takes names only).
 */
import type { PluginSetup } from '../../plugin.ts';
import { argCountError, errorAt } from '../../corefile/setup-helpers.ts';
import { canonicalName } from '../../wire/name.ts';
import { MetadataPlugin, PLUGIN_NAME } from './metadata.ts';

export const metadataSetup: PluginSetup = {
  name: PLUGIN_NAME,
  setup(d, ctx) {
    const first = d.block?.[0];
    // Caddy: anything in a block after `metadata` is an argument error at its first word.
    if (first !== undefined) argCountError({ text: first.name, file: first.file, line: first.line, quoted: false });
    let zones = ctx.zones;
    if (d.args.length > 0) {
      zones = d.args.map((t) => {
        try {
          return canonicalName(t.text);
        } catch {
          return errorAt(t, `unable to normalize '${t.text}'`);
        }
      });
    }
    return new MetadataPlugin([...zones]);
  },
};
