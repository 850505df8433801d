/**
 * `bufsize [SIZE]` (CoreDNS plugin/bufsize): a query that carries an OPT record advertising a
 * UDP payload size above SIZE (default 1232, 512..4096) is lowered to SIZE before it goes down
 * the chain, so `forward` asks upstream for at most SIZE bytes; the client's answer is also
 * cut to SIZE over UDP (CoreDNS's scrub writer reads the same, rewritten, request). Queries
 * without EDNS and sizes at or below SIZE are untouched; it never raises a size.
 *
 * Before `cache` in the order, so it runs on every query: one bounds-checked read and at most
 * one two-byte write into the request, no allocation.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { Proto } from '../../server/request.ts';
import type { Directive } from '../../corefile/types.ts';
import { argCountError, noBlock } from '../../corefile/setup-helpers.ts';
import { clampOptUdpSize } from '../../wire/edns-size.ts';

/** DNS flag day 2020's value, CoreDNS's default. */
const DEFAULT_BUFSIZE = 1232;
const MIN_BUFSIZE = 512;
const MAX_BUFSIZE = 4096;

class BufsizeHandler implements Handler {
  private readonly next: Handler;
  private readonly size: number;
  constructor(next: Handler, size: number) {
    this.next = next;
    this.size = size;
  }
  serve(req: Request): void {
    if (req.optOffset >= 0) {
      const now = clampOptUdpSize(req.msg, req.msgLen, req.optOffset, this.size);
      // Over UDP the client's answer is limited by the (rewritten) size too; TCP stays 65535.
      if (now >= 0 && req.proto === Proto.UDP && req.udpSize > this.size) req.udpSize = this.size;
    }
    this.next.serve(req);
  }
}

export class BufsizePlugin implements Plugin {
  readonly name = 'bufsize';
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly size: number;
  constructor(size: number) {
    this.size = size;
  }
  compose(next: Handler): Handler {
    return new BufsizeHandler(next, this.size);
  }
}

/** Go's strconv.Atoi on a word: optional sign, decimal digits. */
function atoi(text: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(text)) return null;
  const v = Number(text);
  return Number.isSafeInteger(v) ? v : null;
}

export const bufsizeSetup: PluginSetup = {
  name: 'bufsize',
  setup(d: Directive): Plugin {
    noBlock(d);
    if (d.args.length === 0) return new BufsizePlugin(DEFAULT_BUFSIZE);
    // CoreDNS answers a non-number, a size outside 512..4096 and a second argument alike:
    // an ArgErr naming the last word of the line.
    if (d.args.length > 1) argCountError(d.args[d.args.length - 1]!);
    const t = d.args[0]!;
    const size = atoi(t.text);
    if (size === null || size < MIN_BUFSIZE || size > MAX_BUFSIZE) argCountError(t);
    return new BufsizePlugin(size);
  },
};
