/**
 * The dns64 handler (CoreDNS plugin/dns64, RFC 6147). For an AAAA query of class IN that came
 * over IPv6 (or any family with `allow_ipv4`), it watches the response from the rest of the
 * chain (cache, forward, ...). When that response has no AAAA record (or always, with
 * `translate_all`) and is not NXDOMAIN, it asks the rest of the chain for the name's A
 * records with a query of its own and answers with AAAA records synthesized from them under
 * the prefix (RFC 6052).
 *
 * Everything else passes straight to `next` after three field compares: dns64 sits before
 * `cache` and runs on cache hits too. The A query goes through the server again
 * (`req.lookup`, CoreDNS's upstream lookup: the whole chain of the block serving the name, so
 * `log` logs it and `cache` answers and stores it like any A query); without a server (unit
 * tests) through `next`. The synthesized response goes only to the plugins before dns64 (log,
 * ...) and the client: `cache` keeps the upstream's own AAAA response.
 */
import type { Handler, ResponseWriter } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { ResponseScan, scanResponse } from '../../wire/message.ts';
import { ResponseClass, typify } from '../../wire/typify.ts';
import { Flag, QClass, QType, Rcode } from '../../wire/codes.ts';
import { responseFlagsWord, responseFullRcode } from '../../wire/response-fields.ts';
import { DNS64_DEFAULT_SOA_TTL, aQueryFor, answerHasType, authoritySoaTtl, synthesizeDns64, type Ipv6Prefix } from '../../wire/dns64.ts';
import { countTranslated } from './metrics.ts';

export interface Dns64Options {
  prefix: Ipv6Prefix;
  /** Synthesize even when the response has AAAA records (CoreDNS: not RFC 6147 §5.1.1). */
  translateAll: boolean;
  /** Also translate queries that came over IPv4. */
  allowIpv4: boolean;
}

/** Scratch scan of the AAAA response (used synchronously only). */
const scan = new ResponseScan();

/** Whether the response to an intercepted AAAA query gets a synthesized answer; its SOA TTL on `out`. */
function wantsSynthesis(opts: Dns64Options, msg: Buffer, len: number): boolean {
  if (!scanResponse(msg, len, scan)) return false;
  // RFC 6147 §5.1.2: NXDOMAIN is passed on; any other error counts as an empty answer.
  if (typify(scan, msg) === ResponseClass.NAME_ERROR) return false;
  if (opts.translateAll) return true;
  return !answerHasType(scan, msg, QType.AAAA);
}

/** Receives the A response of the internal query and answers the client's AAAA query with it. */
class AWriter implements ResponseWriter {
  private readonly client: Request;
  private readonly inner: ResponseWriter;
  private readonly aaaa: Buffer;
  private readonly soaTtl: number;
  private readonly opts: Dns64Options;
  constructor(client: Request, inner: ResponseWriter, aaaa: Buffer, soaTtl: number, opts: Dns64Options) {
    this.client = client;
    this.inner = inner;
    this.aaaa = aaaa;
    this.soaTtl = soaTtl;
    this.opts = opts;
  }

  writeMsg(sub: Request, msg: Buffer, len: number): void {
    // Only a NOERROR A response is translated; a failed A lookup leaves the client with the
    // AAAA response it would have had without dns64 (see README: deviations).
    if (sub.errorReply || responseFullRcode(msg, len) !== Rcode.NOERROR) {
      this.send(this.aaaa, this.aaaa.length, false);
      return;
    }
    let out: Buffer;
    try {
      out = synthesizeDns64(this.client, msg, len, this.opts.prefix, this.soaTtl);
    } catch (err) {
      this.client.reportError('dns64', err as Error);
      this.send(this.aaaa, this.aaaa.length, false);
      return;
    }
    countTranslated(this.client.server);
    this.send(out, out.length, true);
  }

  /** Writes to the plugins before dns64 and the client, the response fields updated for them. */
  send(out: Buffer, len: number, synthesized: boolean): void {
    const req = this.client;
    if (synthesized) {
      req.respondedBy = 'dns64';
      req.rcode = responseFlagsWord(out, len) & Flag.RCODE_MASK;
      req.responseLen = len;
    }
    req.writer = this.inner;
    this.inner.writeMsg(req, out, len);
  }
}

/** Sees the response to an intercepted AAAA query. */
class AaaaWriter implements ResponseWriter {
  private readonly inner: ResponseWriter;
  private readonly next: Handler;
  private readonly opts: Dns64Options;
  constructor(inner: ResponseWriter, next: Handler, opts: Dns64Options) {
    this.inner = inner;
    this.next = next;
    this.opts = opts;
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    req.writer = this.inner;
    // An error a plugin made up (forward: every upstream failed) is returned, not answered, in
    // CoreDNS: dns64 sees no response and passes the error on.
    if (req.errorReply || !wantsSynthesis(this.opts, msg, len)) {
      this.inner.writeMsg(req, msg, len);
      return;
    }
    const soa = authoritySoaTtl(scan, msg);
    // The AAAA response may be needed after the A query; the buffer is not ours to keep.
    const aaaa = Buffer.from(msg.subarray(0, len));
    const w = new AWriter(req, this.inner, aaaa, soa >= 0 ? soa : DNS64_DEFAULT_SOA_TTL, this.opts);
    const lookup = req.lookup;
    const sub = subRequest(req, w, lookup === null);
    if (sub === null) {
      w.send(aaaa, aaaa.length, false);
      return;
    }
    try {
      if (lookup !== null) lookup(sub);
      else this.next.serve(sub);
    } catch (err) {
      req.reportError('dns64', err as Error);
      if (!sub.replied) w.send(aaaa, aaaa.length, false);
    }
  }
}

/**
 * The internal A query for the client's AAAA query: same message, flags, EDNS, client and
 * server. `viaNext`: it skips the plugins before dns64, so it takes the client query's tap and
 * metadata; through the server the chain sets its own (as CoreDNS's new ServeDNS does).
 */
function subRequest(req: Request, w: ResponseWriter, viaNext: boolean): Request | null {
  const buf = aQueryFor(req.msg, req.msgLen, req.qnameEnd);
  const sub = req.derive(buf, w);
  if (sub === null) return null;
  if (viaNext) {
    sub.tap = req.tap;
    sub.metadata = req.metadata;
  }
  return sub;
}

export function dns64Handler(opts: Dns64Options, next: Handler): Handler {
  const allowIpv4 = opts.allowIpv4;
  return {
    serve(req: Request): void {
      if (req.qtype !== QType.AAAA || req.qclass !== QClass.IN || (!allowIpv4 && req.family !== 6)) {
        next.serve(req);
        return;
      }
      req.writer = new AaaaWriter(req.writer, next, opts);
      next.serve(req);
    },
  };
}
