/**
 * `bind ADDRESS|IFACE ... [{ except ADDRESS|IFACE ... }]` (CoreDNS plugin/bind): the
 * addresses a server block listens on. Setup-only: sets the block's `server.listenHosts`.
 * Without `bind`, a block listens on the default addresses (node-cache: the -localip list).
 */
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, errorAt, blockLines, unknownPropertyError } from '../../corefile/setup-helpers.ts';

export class BindPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = false;
  readonly name = 'bind';
  readonly addresses: string[];
  constructor(addresses: string[]) {
    this.addresses = addresses;
  }
  compose(next: Handler): Handler {
    return next;
  }
}

/** Resolves one bind argument: an IP literal, or an interface name → all its addresses. */
function resolve(tok: Token, ifaces: ReturnType<typeof networkInterfaces>): string[] {
  const text = tok.text.replace(/^\[(.*)\]$/, '$1');
  if (isIP(text)) return [text];
  const iface = ifaces[text];
  if (!iface) throw errorAt(tok, `failed to bind on ${tok.text}: not an IP address or a network interface name`);
  // Link-local IPv6 addresses need a zone to bind; CoreDNS skips them too.
  return iface.filter((a) => !(a.family === 'IPv6' && a.address.startsWith('fe80'))).map((a) => a.address);
}

export const bindSetup: PluginSetup = {
  name: 'bind',
  repeatable: true,
  setup(d: Directive, ctx: SetupContext): Plugin {
    if (d.args.length === 0) throw argCountError(d);
    const ifaces = networkInterfaces();
    const addrs: string[] = [];
    for (const tok of d.args) for (const a of resolve(tok, ifaces)) if (!addrs.includes(a)) addrs.push(a);
    const except = new Set<string>();
    for (const line of blockLines(d)) {
      if (line.name !== 'except') throw unknownPropertyError(line);
      if (line.args.length === 0) throw argCountError(line);
      for (const tok of line.args) for (const a of resolve(tok, ifaces)) except.add(a);
    }
    const result = addrs.filter((a) => !except.has(a));
    if (result.length === 0) throw errorAt(d, 'bind: no address left to listen on after except');
    ctx.server.listenHosts = result;
    return new BindPlugin(result);
  },
};
