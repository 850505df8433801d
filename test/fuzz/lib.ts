/**
 * Shared pieces of the fuzz targets: run counts (bounded in `npm test`, longer on demand with
 * `FUZZ_RUNS=1000000 node --test test/fuzz/`; `FUZZ_SEED` replays a failure), and fast-check
 * arbitraries for DNS names, queries and responses built with dns-packet.
 */
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import type { Answer, RecordType } from 'dns-packet';
import { Request } from '../../src/server/request.ts';
import type { ResponseWriter } from '../../src/plugin.ts';

const envRuns = Number(process.env.FUZZ_RUNS ?? '');
const envSeed = process.env.FUZZ_SEED === undefined ? undefined : Number(process.env.FUZZ_SEED);

/** fast-check parameters: `defaultRuns` unless FUZZ_RUNS is set. */
export function params(defaultRuns: number): { numRuns: number; seed?: number } {
  const numRuns = Number.isFinite(envRuns) && envRuns > 0 ? envRuns : defaultRuns;
  return envSeed === undefined ? { numRuns } : { numRuns, seed: envSeed };
}

/** A writer that keeps what it was given. */
export class Capture implements ResponseWriter {
  sent: Buffer[] = [];
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    this.sent.push(Buffer.from(msg.subarray(0, len)));
  }
}

export function requestOf(bytes: Uint8Array, writer: ResponseWriter = new Capture()): Request {
  const b = Buffer.from(bytes);
  return new Request(b, b.length, writer);
}

const label = fc.oneof(
  { weight: 8, arbitrary: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,14}$/) },
  { weight: 1, arbitrary: fc.stringMatching(/^[A-Za-z0-9_]{1,63}$/) },
  { weight: 1, arbitrary: fc.constantFrom('a', 'Z', 'xn--bcher-kva', '_tcp', '_http', '*', '0') },
);

/** A presentation name of 1..6 labels that fits the 255-octet limit. */
export const arbName: fc.Arbitrary<string> = fc
  .array(label, { minLength: 1, maxLength: 6 })
  .filter((ls) => ls.reduce((n, l) => n + l.length + 1, 1) <= 255)
  .map((ls) => ls.join('.'));

export const arbType: fc.Arbitrary<RecordType> = fc.constantFrom('A', 'AAAA', 'CNAME', 'NS', 'TXT', 'MX', 'SOA', 'SRV', 'PTR');

export const arbTtl: fc.Arbitrary<number> = fc.oneof(fc.integer({ min: 0, max: 600 }), fc.integer({ min: 0, max: 0xffffffff }));

const ipv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const ipv6 = fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));

/** A resource record of a random type for `name` (dns-packet form). */
export function arbRecord(name: fc.Arbitrary<string> = arbName): fc.Arbitrary<Answer> {
  return fc
    .tuple(name, arbType, arbTtl, ipv4, ipv6, arbName, fc.nat(65535), fc.array(fc.string({ maxLength: 40 }), { minLength: 1, maxLength: 3 }))
    .map(([n, type, ttl, v4, v6, target, num, txt]): Answer => {
      switch (type) {
        case 'A':
          return { name: n, type, ttl, data: v4 };
        case 'AAAA':
          return { name: n, type, ttl, data: v6 };
        case 'CNAME':
        case 'NS':
        case 'PTR':
          return { name: n, type, ttl, data: target } as Answer;
        case 'TXT':
          return { name: n, type, ttl, data: txt };
        case 'MX':
          return { name: n, type, ttl, data: { preference: num, exchange: target } };
        case 'SRV':
          return { name: n, type, ttl, data: { priority: num & 0xff, weight: num >> 8, port: num, target } };
        default:
          return {
            name: n,
            type: 'SOA',
            ttl,
            data: { mname: target, rname: `hostmaster.${target}`, serial: num, refresh: 3600, retry: 600, expire: 86400, minimum: num & 0x3ff },
          };
      }
    });
}

export interface QuerySpec {
  id: number;
  name: string;
  type: RecordType;
  rd: boolean;
  cd: boolean;
  edns: { size: number; do: boolean } | null;
}

export const arbQuerySpec: fc.Arbitrary<QuerySpec> = fc.record({
  id: fc.nat(0xffff),
  name: arbName,
  type: arbType,
  rd: fc.boolean(),
  cd: fc.boolean(),
  // dns-packet writes 4096 for a size of 0.
  edns: fc.option(fc.record({ size: fc.integer({ min: 1, max: 0xffff }), do: fc.boolean() }), { nil: null }),
});

export function encodeQuerySpec(q: QuerySpec): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id: q.id,
    flags: (q.rd ? dnsPacket.RECURSION_DESIRED : 0) | (q.cd ? dnsPacket.CHECKING_DISABLED : 0),
    questions: [{ name: q.name, type: q.type, class: 'IN' }],
    additionals: q.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: q.edns.size, flags: q.edns.do ? dnsPacket.DNSSEC_OK : 0 } as Answer] : [],
  });
}

export interface ResponseSpec {
  rcode: 'NOERROR' | 'NXDOMAIN' | 'SERVFAIL' | 'REFUSED' | 'NOTIMP' | 'FORMERR';
  aa: boolean;
  tc: boolean;
  ad: boolean;
  answers: Answer[];
  authorities: Answer[];
  additionals: Answer[];
  opt: { size: number; do: boolean } | null;
}

/** Records of a response for `name` (answers mostly own the name, others random). */
export function arbResponseSpec(name: string): fc.Arbitrary<ResponseSpec> {
  const own = fc.oneof({ weight: 3, arbitrary: fc.constant(name) }, { weight: 1, arbitrary: arbName });
  return fc.record({
    rcode: fc.constantFrom('NOERROR', 'NOERROR', 'NOERROR', 'NXDOMAIN', 'SERVFAIL', 'REFUSED', 'NOTIMP', 'FORMERR'),
    aa: fc.boolean(),
    tc: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
    ad: fc.boolean(),
    answers: fc.array(arbRecord(own), { maxLength: 5 }),
    authorities: fc.array(arbRecord(), { maxLength: 3 }),
    additionals: fc.array(arbRecord(), { maxLength: 3 }),
    opt: fc.option(fc.record({ size: fc.integer({ min: 512, max: 4096 }), do: fc.boolean() }), { nil: null }),
  });
}

export function encodeResponse(id: number, name: string, type: RecordType, r: ResponseSpec, rd = true, cd = false): Buffer {
  let flags = dnsPacket.RECURSION_AVAILABLE | (rd ? dnsPacket.RECURSION_DESIRED : 0) | (cd ? dnsPacket.CHECKING_DISABLED : 0);
  if (r.aa) flags |= dnsPacket.AUTHORITATIVE_ANSWER;
  if (r.tc) flags |= dnsPacket.TRUNCATED_RESPONSE;
  if (r.ad) flags |= dnsPacket.AUTHENTIC_DATA;
  return dnsPacket.encode({
    type: 'response',
    id,
    flags,
    rcode: r.rcode,
    questions: [{ name, type, class: 'IN' }],
    answers: r.answers,
    authorities: r.authorities,
    additionals: [
      ...r.additionals,
      ...(r.opt ? [{ type: 'OPT', name: '.', udpPayloadSize: r.opt.size, flags: r.opt.do ? dnsPacket.DNSSEC_OK : 0 } as Answer] : []),
    ],
  } as dnsPacket.Packet);
}

/** Byte mutations: overwrite, truncate, extend, splice a random slice elsewhere. */
export const arbMutations = fc.array(
  fc.oneof(
    fc.record({ kind: fc.constant('set' as const), at: fc.nat(2000), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat(2000), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('grow' as const), at: fc.nat(64), value: fc.nat(255) }),
    fc.record({ kind: fc.constant('copy' as const), at: fc.nat(2000), value: fc.nat(2000) }),
  ),
  { maxLength: 6 },
);

export function mutate(src: Buffer, muts: { kind: 'set' | 'cut' | 'grow' | 'copy'; at: number; value: number }[], keepPrefix = 0): Buffer {
  let b = Buffer.from(src);
  for (const m of muts) {
    if (b.length <= keepPrefix) break;
    const at = keepPrefix + (m.at % (b.length - keepPrefix));
    if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'cut') b = b.subarray(0, at);
    else if (m.kind === 'grow') b = Buffer.concat([b, Buffer.alloc(m.at + 1, m.value)]);
    else {
      const from = m.value % b.length;
      const n = Math.min(8, b.length - from, b.length - at);
      b.copy(b, at, from, from + n);
    }
  }
  return Buffer.from(b);
}
