/**
 * `dns64 [PREFIX]` or `dns64 [PREFIX] { prefix PREFIX; translate_all; allow_ipv4 }`
 * (CoreDNS plugin/dns64). PREFIX is an IPv6 CIDR of length 32, 40, 48, 56, 64 or 96
 * (RFC 6052 §2.2); the default is the well-known prefix 64:ff9b::/96.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { excerpt } from '../../corefile/errors.ts';
import { parseCidr, type Ipv6Prefix } from '../../wire/dns64.ts';
import { dns64Handler, type Dns64Options } from './dns64.ts';
import { collectDns64Global } from './metrics.ts';

const DNS64_DEFAULT_PREFIX = '64:ff9b::/96';

class Dns64Plugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = 'dns64';
  readonly options: Dns64Options;
  constructor(options: Dns64Options) {
    this.options = options;
  }
  compose(next: Handler): Handler {
    return dns64Handler(this.options, next);
  }
}

/** CoreDNS parsePrefix: an IPv6 CIDR whose length is a multiple of 8 in 32..96. */
function parsePrefix(t: Token): Ipv6Prefix {
  const p = parseCidr(t.text);
  if (p === null) return errorAt(t, `invalid CIDR address: ${excerpt(t.text)}`);
  if (p.bytes.length !== 16) errorAt(t, `invalid netmask ${p.bytes.length * 8} IPv6 address: ${JSON.stringify(p.text)}`);
  if (p.length % 8 !== 0 || p.length < 32 || p.length > 96) errorAt(t, `invalid prefix length ${JSON.stringify(p.text)}`);
  return { bytes: p.bytes, length: p.length };
}

export function parseDns64(d: Directive): Dns64Options {
  const opts: Dns64Options = {
    prefix: parsePrefix({ text: DNS64_DEFAULT_PREFIX, file: d.file, line: d.line, quoted: false }),
    translateAll: false,
    allowIpv4: false,
  };
  if (d.args.length > 1) argCountError(d.args[d.args.length - 1]!);
  if (d.args.length === 1) {
    opts.prefix = parsePrefix(d.args[0]!);
    // CoreDNS: with a PREFIX argument the block is not read (its options have no effect).
    return opts;
  }
  for (const line of blockLines(d)) {
    // CoreDNS reads a block word by word: a word left over on a line is read as the next property.
    const extra = line.args[line.name === 'prefix' ? 1 : 0];
    switch (line.name) {
      case 'prefix':
        if (line.args.length === 0) argCountError(line);
        opts.prefix = parsePrefix(line.args[0]!);
        break;
      case 'translate_all':
        opts.translateAll = true;
        break;
      case 'allow_ipv4':
        opts.allowIpv4 = true;
        break;
      default:
        errorAt(line, `unknown property '${excerpt(line.name)}'`);
    }
    if (extra !== undefined) errorAt(extra, `unknown property '${excerpt(extra.text)}'`);
  }
  return opts;
}

export const dns64Setup: PluginSetup = {
  name: 'dns64',
  setup(d: Directive, _ctx: SetupContext): Plugin {
    return new Dns64Plugin(parseDns64(d));
  },
  collectGlobal: collectDns64Global,
};
