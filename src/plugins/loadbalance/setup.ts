/**
 * `loadbalance [round_robin | weighted WEIGHTFILE] { reload DURATION | prefer CIDR... }`
 * (CoreDNS plugin/loadbalance, setup.go): round_robin (the default policy) shuffles the A, AAAA
 * and MX records of NOERROR responses, CNAMEs first; `prefer` then puts addresses inside the
 * listed subnets first. `weighted` moves one address, chosen by the weights of WEIGHTFILE, to
 * the top (weighted.ts); its block takes `reload` only (as in CoreDNS, the block belongs to it).
 */
import path from 'node:path';
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { errorAt, blockLines, unknownPropertyError, durationArgMs } from '../../corefile/setup-helpers.ts';
import type { Subnet } from '../../wire/shuffle.ts';
import { LoadBalanceHandler } from './loadbalance.ts';
import { WeightFile } from './weighted.ts';
import { ipBytes } from '../../wire/ip.ts';

export class LoadBalancePlugin implements Plugin {
  readonly name = 'loadbalance';
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly prefer: readonly Subnet[];
  /** The weighted policy's file, or null for round_robin. */
  readonly weights: WeightFile | null;
  constructor(prefer: readonly Subnet[], weights: WeightFile | null = null) {
    this.prefer = prefer;
    this.weights = weights;
  }
  compose(next: Handler): Handler {
    return new LoadBalanceHandler(next, this.prefer, this.weights);
  }
  async start(): Promise<void> {
    if (this.weights !== null) await this.weights.start();
  }
  stop(): void {
    this.weights?.stop();
  }
}

/** Go's net.ParseCIDR: ADDRESS/BITS with BITS decimal within the address length; else null. */
export function parseCidr(text: string): Subnet | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const bytes = ipBytes(text.slice(0, slash));
  const mask = text.slice(slash + 1);
  if (bytes === null || !/^[0-9]{1,3}$/.test(mask)) return null;
  const bits = Number(mask);
  if (bits > bytes.length * 8) return null;
  // Go keeps an IPv4-mapped IPv6 prefix as 16 bytes; so do we (it then matches AAAA records only).
  return { bytes, bits };
}

function prefer(line: Directive): Subnet[] {
  const out: Subnet[] = [];
  for (const t of line.args) {
    const s = parseCidr(t.text);
    if (s === null) errorAt(t, `invalid CIDR ${JSON.stringify(t.text)}: invalid CIDR address: ${t.text}`);
    out.push(s);
  }
  return out;
}

export const loadbalanceSetup: PluginSetup = {
  name: 'loadbalance',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const args = d.args;
    if (args.length > 0) {
      const policy: Token = args[0]!;
      if (policy.text === 'weighted') return weighted(d, ctx);
      if (policy.text !== 'round_robin') errorAt(policy, `unknown policy: ${policy.text}`);
      if (args.length > 1) errorAt(args[args.length - 1]!, `unknown property for ${policy.text}`);
    }
    const subnets: Subnet[] = [];
    for (const line of blockLines(d)) {
      if (line.name !== 'prefer') unknownPropertyError(line);
      if (line.block !== null) errorAt(line, `unknown property '{'`);
      subnets.push(...prefer(line));
    }
    return new LoadBalancePlugin(subnets);
  },
};

/** `weighted WEIGHTFILE { reload DURATION }` with CoreDNS's texts. */
function weighted(d: Directive, ctx: SetupContext): Plugin {
  const args = d.args;
  if (args.length < 2) errorAt(args[0]!, 'missing weight file argument');
  if (args.length > 2) errorAt(args[args.length - 1]!, 'unexpected argument(s)');
  // CoreDNS joins a relative path to the `root` plugin's directory; there is no root here: the
  // working directory.
  const file = path.resolve(args[1]!.text);
  let reloadMs = 30_000;
  for (const line of blockLines(d)) {
    if (line.name !== 'reload') unknownPropertyError(line);
    if (line.args.length < 1) errorAt(line, 'reload duration value is missing');
    if (line.args.length > 1) errorAt(line.args[line.args.length - 1]!, 'unexpected argument');
    const t = line.args[0]!;
    try {
      reloadMs = durationArgMs(t);
    } catch {
      errorAt(t, `invalid reload duration '${t.text}'`);
    }
    if (reloadMs < 0) errorAt(t, `invalid reload duration '${t.text}'`);
  }
  return new LoadBalancePlugin([], new WeightFile(file, reloadMs, ctx.log));
}
