/**
 * Test fixtures for the cache plugin: client queries as parsed Requests, a writer that keeps
 * what was sent, and a toy upstream handler answering with dns-packet-built responses.
 */
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';
import type { Handler, ResponseWriter } from '../../src/plugin.ts';
import { Proto, Request } from '../../src/server/request.ts';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';
import { CachePlugin } from '../../src/plugins/cache/cache.ts';
import { parseCacheDirective } from '../../src/plugins/cache/setup.ts';
import { parseCorefile } from '../../src/corefile/parser.ts';

/** dns-packet's decoded form; its typings leave out the rcode text it sets. */
export type Decoded = DecodedPacket & { rcode: string };

export class CaptureWriter implements ResponseWriter {
  sent: Buffer[] = [];
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    this.sent.push(Buffer.from(msg.subarray(0, len)));
  }
  get last(): Decoded {
    const b = this.sent[this.sent.length - 1];
    if (!b) throw new Error('nothing was sent');
    return dnsPacket.decode(b) as Decoded;
  }
}

export interface QueryOptions {
  id?: number;
  /** Add an OPT record (EDNS0). */
  edns?: boolean;
  dnssecOk?: boolean;
  checkingDisabled?: boolean;
  authenticData?: boolean;
  udpSize?: number;
}

export function makeQuery(name: string, type: RecordType = 'A', opts: QueryOptions = {}): { req: Request; out: CaptureWriter } {
  let flags = dnsPacket.RECURSION_DESIRED;
  if (opts.checkingDisabled) flags |= dnsPacket.CHECKING_DISABLED;
  if (opts.authenticData) flags |= dnsPacket.AUTHENTIC_DATA;
  const edns = opts.edns || opts.dnssecOk;
  const buf = dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 4242,
    flags,
    questions: [{ type, name, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.udpSize ?? 4096, flags: opts.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as Answer] : [],
  });
  const out = new CaptureWriter();
  const req = new Request(buf, buf.length, out);
  const r = parseQuery(req);
  if (r !== ParseResult.OK) throw new Error(`test query did not parse: ${r}`);
  req.proto = Proto.UDP;
  req.remoteAddress = '127.0.0.1';
  req.remotePort = 5353;
  return { req, out };
}

export interface ResponseSpec {
  rcode?: number;
  answers?: Answer[];
  authorities?: Answer[];
  additionals?: Answer[];
  /** Extra header flags (AA, TC, AD...). RA is always set. */
  flags?: number;
  /** Echo an OPT record at the end (default: when the query had one). */
  opt?: boolean;
  /** Replace the question's name (for mismatch tests). */
  questionName?: string;
}

/** A response to req built by dns-packet: the query's ID and question, RA set. */
export function makeResponse(req: Request, spec: ResponseSpec = {}): Buffer {
  const q = dnsPacket.decode(req.msg.subarray(0, req.msgLen));
  const question = q.questions![0]!;
  const additionals = [...(spec.additionals ?? [])];
  if (spec.opt ?? req.edns) {
    additionals.push({ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: req.dnssecOk ? dnsPacket.DNSSEC_OK : 0 } as Answer);
  }
  return dnsPacket.encode({
    type: 'response',
    id: req.id,
    flags: dnsPacket.RECURSION_AVAILABLE | (req.flags & 0x0110) | (spec.flags ?? 0) | (spec.rcode ?? 0),
    questions: [{ ...question, name: spec.questionName ?? question.name }],
    answers: spec.answers ?? [],
    authorities: spec.authorities ?? [],
    additionals,
  });
}

export function a(name: string, ttl: number, data = '192.0.2.1'): Answer {
  return { type: 'A', name, ttl, class: 'IN', data };
}

export function soa(zone: string, ttl: number, minimum: number): Answer {
  return {
    type: 'SOA',
    name: zone,
    ttl,
    class: 'IN',
    data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum },
  };
}

/**
 * A toy upstream: answers each query with `respond(req)` (a response Buffer), or keeps it
 * pending when `hold` is set, until `release()`.
 */
export class ToyNext implements Handler {
  calls: Request[] = [];
  pending: Request[] = [];
  hold = false;
  respond: (req: Request) => Buffer;
  constructor(respond: (req: Request) => Buffer) {
    this.respond = respond;
  }
  serve(req: Request): void {
    this.calls.push(req);
    if (this.hold) {
      this.pending.push(req);
      return;
    }
    const resp = this.respond(req);
    req.reply(resp, resp.length, 'toy');
  }
  release(): void {
    const list = this.pending;
    this.pending = [];
    for (const req of list) {
      const resp = this.respond(req);
      req.reply(resp, resp.length, 'toy');
    }
  }
}

/** A manual clock (ms). */
export class TestClock {
  now = 1_000_000;
  read = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** A cache plugin from Corefile text for the `cache` directive of its first block. */
export function cacheFrom(corefile: string, clock: TestClock, zones: string[] = ['.']): CachePlugin {
  const blocks = parseCorefile(corefile, 'Corefile', {});
  const d = blocks[0]!.directives.find((x) => x.name === 'cache');
  if (!d) throw new Error('no cache directive');
  return new CachePlugin(parseCacheDirective(d, zones), { clock: clock.read });
}

/** Sends one query through handler and returns what the client got. */
export function ask(handler: Handler, name: string, type: RecordType = 'A', opts: QueryOptions = {}): { req: Request; out: CaptureWriter; resp: Decoded } {
  const { req, out } = makeQuery(name, type, opts);
  handler.serve(req);
  return { req, out, resp: out.last };
}
