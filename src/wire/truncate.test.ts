import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { truncateResponse } from './truncate.ts';
import { ResponseScan, scanResponse } from './message.ts';
import { ParseResult, parseQuery } from './query.ts';
import { encodeName } from './name.ts';
import { Request } from '../server/request.ts';

const sink = { writeMsg() {} };
const u16 = (b: Uint8Array, p: number) => (b[p]! << 8) | b[p + 1]!;
const TC = 0x02;

function queryFor(name: string, type: dnsPacket.RecordType, edns: { size: number; do?: boolean } | null): Request {
  const buf = dnsPacket.encode({
    type: 'query',
    id: 0x4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: edns.size, flags: edns.do ? dnsPacket.DNSSEC_OK : 0 } as dnsPacket.Answer] : [],
  });
  const r = new Request(buf, buf.length, sink);
  assert.equal(parseQuery(r), ParseResult.OK);
  return r;
}

/** A response as NSD writes it: every owner a 2-byte pointer to the qname (offset 12). */
function compressedA(name: string, count: number, opt: Buffer | null): Buffer {
  const qname = encodeName(name);
  const parts: Buffer[] = [Buffer.from([0x42, 0x42, 0x81, 0x80, 0, 1, count >> 8, count & 0xff, 0, 0, 0, opt ? 1 : 0]), qname, Buffer.from([0, 1, 0, 1])];
  for (let i = 0; i < count; i++) parts.push(Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4, 198, 18, i >> 8, i & 0xff]));
  if (opt) parts.push(opt);
  return Buffer.concat(parts);
}

/** An OPT record: payload size, extended rcode, DO, and `optionBytes` bytes of one option. */
function optRecord(size: number, extRcode: number, optionBytes = 0): Buffer {
  const rdata =
    optionBytes > 0 ? Buffer.concat([Buffer.from([0, 12, (optionBytes - 4) >> 8, (optionBytes - 4) & 0xff]), Buffer.alloc(optionBytes - 4)]) : Buffer.alloc(0);
  return Buffer.concat([Buffer.from([0, 0, 41, size >> 8, size & 0xff, extRcode, 0, 0x80, 0, rdata.length >> 8, rdata.length & 0xff]), rdata]);
}

function counts(b: Uint8Array): [number, number, number, number] {
  return [u16(b, 4), u16(b, 6), u16(b, 8), u16(b, 10)];
}

test('60 compressed A records without EDNS: the 29 that fit in 512 bytes, whole, with TC=1', () => {
  const q = queryFor('big.example.test', 'A', null);
  const resp = compressedA('big.example.test', 60, null);
  assert.ok(resp.length > 512);
  const out = truncateResponse(q, resp, resp.length, 512);
  // 12 + 22 (question) + 29 * 16 = 498; a 30th record would make 514.
  assert.equal(out.length, 498);
  assert.deepEqual(counts(out), [1, 29, 0, 0]);
  assert.ok((out[2]! & TC) !== 0, 'TC set');
  assert.equal(out[3], resp[3], 'rcode and RA unchanged');
  assert.deepEqual(out.subarray(12), resp.subarray(12, 498), 'a byte prefix of the records');
  const d = dnsPacket.decode(out);
  assert.equal(d.answers!.length, 29);
  assert.deepEqual(
    d.answers!.map((a) => (a as { data: unknown }).data),
    Array.from({ length: 29 }, (_, i) => `198.18.0.${i}`),
  );
});

test('EDNS: the OPT is kept (its bytes, extended rcode and options) and its length comes off the budget', () => {
  const q = queryFor('big.example.test', 'A', { size: 1232, do: true });
  const opt = optRecord(1232, 0, 0);
  const resp = compressedA('big.example.test', 100, opt);
  const out = truncateResponse(q, resp, resp.length, 1232);
  // (1232 - 11 - 34) / 16 = 74.2: 74 records, then the OPT.
  assert.deepEqual(counts(out), [1, 74, 0, 1]);
  assert.equal(out.length, 34 + 74 * 16 + 11);
  assert.deepEqual(out.subarray(out.length - 11), opt);
  assert.ok((out[2]! & TC) !== 0);
  const scan = new ResponseScan();
  assert.equal(scanResponse(out, out.length, scan), true);
  assert.equal(scan.optUdpSize, 1232);
  assert.equal(scan.optDo, true);
  // An OPT with a 100-byte option: 100 bytes less for records.
  const big = optRecord(1232, 0, 100);
  const resp2 = compressedA('big.example.test', 100, big);
  const out2 = truncateResponse(q, resp2, resp2.length, 1232);
  assert.equal(u16(out2, 6), Math.floor((1232 - 111 - 34) / 16));
  assert.deepEqual(out2.subarray(out2.length - 111), big);
});

test('an EDNS client whose size is below 512 gets 512; a response without OPT gets one for an EDNS client', () => {
  const q = queryFor('big.example.test', 'A', { size: 200 });
  const resp = compressedA('big.example.test', 60, null);
  const out = truncateResponse(q, resp, resp.length, 200);
  assert.ok(out.length <= 512);
  assert.equal(u16(out, 6), Math.floor((512 - 11 - 34) / 16));
  assert.equal(u16(out, 10), 1);
  const scan = new ResponseScan();
  assert.equal(scanResponse(out, out.length, scan), true);
  assert.ok(scan.optStart > 0);
});

test('sections in order: a full answer, then as much authority as fits; additional only after all authority', () => {
  const q = queryFor('a.example', 'TXT', null);
  const txt = (name: string, n: number) => ({ type: 'TXT' as const, name, ttl: 60, data: 'x'.repeat(n) });
  const resp = dnsPacket.encode({
    type: 'response',
    id: 0x4242,
    flags: 0x8180,
    questions: [{ name: 'a.example', type: 'TXT' }],
    answers: [txt('a.example', 100), txt('a.example', 100)],
    authorities: [txt('b.example', 100), txt('c.example', 100), txt('d.example', 100)],
    additionals: [{ type: 'A', name: 'e.example', ttl: 60, data: '192.0.2.1' }],
  });
  const out = truncateResponse(q, resp, resp.length, 512);
  const d = dnsPacket.decode(out);
  assert.equal(d.answers!.length, 2);
  assert.equal(d.authorities!.length, 1, 'the second authority record does not fit');
  assert.equal(d.additionals!.length, 0, 'nothing after the first record that does not fit, even a small one');
  assert.equal(d.flag_tc, true);
  assert.ok(out.length <= 512);
});

test("malformed or signed responses get the minimal form: header and the query's question, TC=1, OPT for EDNS", () => {
  const q = queryFor('big.example.test', 'A', { size: 512 });
  const good = compressedA('big.example.test', 60, null);
  const cases: [string, Buffer][] = [
    ['a record running past the end', good.subarray(0, good.length - 3)],
    ['QDCOUNT 2', Buffer.concat([good.subarray(0, 4), Buffer.from([0, 2]), good.subarray(6)])],
    [
      'a pointer that points forward',
      (() => {
        const b = Buffer.from(good);
        b[34] = 0xc0;
        b[35] = 0xff;
        return b;
      })(),
    ],
  ];
  // A CNAME whose target points past its own record (forward): not decodable inside the kept bytes.
  const cname = Buffer.concat([good.subarray(0, 34), Buffer.from([0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 2, 0xc1, 0x00]), good.subarray(34)]);
  cname[7] = 61;
  cases.push(['a CNAME target pointing forward', cname]);
  // TSIG as the last additional record: miekg does not truncate a signed message.
  const tsig = Buffer.concat([good, Buffer.from([0, 0, 250, 0, 255, 0, 0, 0, 0, 0, 0])]);
  tsig[11] = 1;
  cases.push(['TSIG', tsig]);
  for (const [what, resp] of cases) {
    const out = truncateResponse(q, resp, resp.length, 512);
    assert.deepEqual(counts(out), [1, 0, 0, 1], what);
    assert.ok((out[2]! & TC) !== 0, what);
    assert.deepEqual(out.subarray(12, q.questionEnd), q.msg.subarray(12, q.questionEnd), what);
    assert.equal(scanResponse(out, out.length, new ResponseScan()), true, what);
  }
});

// ---- properties over generated responses ----

const arbLabel = fc.stringMatching(/^[a-z0-9]{1,12}$/);
const arbName = fc.array(arbLabel, { minLength: 1, maxLength: 4 }).map((l) => l.join('.'));
const arbRecord = (owner: string) =>
  fc.oneof(
    fc.record({ type: fc.constant('A' as const), name: fc.constant(owner), ttl: fc.nat(86400), data: fc.ipV4() }),
    fc.record({ type: fc.constant('AAAA' as const), name: fc.constant(owner), ttl: fc.nat(86400), data: fc.constant('2001:db8::1') }),
    fc.record({ type: fc.constant('TXT' as const), name: arbName, ttl: fc.nat(86400), data: fc.string({ maxLength: 200 }) }),
    fc.record({ type: fc.constant('CNAME' as const), name: fc.constant(owner), ttl: fc.nat(86400), data: arbName }),
    fc.record({ type: fc.constant('NS' as const), name: arbName, ttl: fc.nat(86400), data: arbName }),
    fc.record({ type: fc.constant('MX' as const), name: arbName, ttl: fc.nat(86400), data: fc.record({ preference: fc.nat(100), exchange: arbName }) }),
    fc.record({
      type: fc.constant('SRV' as const),
      name: arbName,
      ttl: fc.nat(86400),
      data: fc.record({ priority: fc.nat(10), weight: fc.nat(10), port: fc.nat(65535), target: arbName }),
    }),
  ) as fc.Arbitrary<dnsPacket.Answer>;

const arbCase = arbName.chain((name) =>
  fc.record({
    name: fc.constant(name),
    answers: fc.array(arbRecord(name), { maxLength: 60 }),
    authorities: fc.array(arbRecord(name), { maxLength: 8 }),
    additionals: fc.array(arbRecord(name), { maxLength: 8 }),
    respOpt: fc.option(fc.record({ size: fc.integer({ min: 512, max: 4096 }), opt: fc.nat(60) }), { nil: null }),
    client: fc.option(fc.integer({ min: 0, max: 4096 }), { nil: null }),
    tc: fc.boolean(),
  }),
);

interface Case {
  name: string;
  answers: dnsPacket.Answer[];
  authorities: dnsPacket.Answer[];
  additionals: dnsPacket.Answer[];
  respOpt: { size: number; opt: number } | null;
  tc: boolean;
}

function encodeCase(c: Case): Buffer {
  const additionals = [...c.additionals];
  if (c.respOpt) {
    const options = c.respOpt.opt > 0 ? [{ code: 65001, data: Buffer.alloc(c.respOpt.opt) }] : [];
    additionals.push({ type: 'OPT', name: '.', udpPayloadSize: c.respOpt.size, options } as unknown as dnsPacket.Answer);
  }
  return dnsPacket.encode({
    type: 'response',
    id: 0x4242,
    flags: 0x8180 | (c.tc ? 0x200 : 0),
    questions: [{ name: c.name, type: 'A', class: 'IN' }],
    answers: c.answers,
    authorities: c.authorities,
    additionals,
  });
}

/** Start offsets of the records (and the end) of a message scanResponse accepts. */
function recordBounds(b: Uint8Array, scan: ResponseScan): number[] {
  // TTL offsets are 4 bytes into each record's fixed part; walk from the question instead.
  const starts: number[] = [];
  let pos = scan.questionEnd;
  const total = scan.ancount + scan.nscount + scan.arcount;
  for (let i = 0; i < total; i++) {
    starts.push(pos);
    let p = pos;
    while (b[p] !== 0 && (b[p]! & 0xc0) !== 0xc0) p += b[p]! + 1;
    p += b[p] === 0 ? 1 : 2;
    pos = p + 10 + u16(b, p + 8);
  }
  starts.push(pos);
  return starts;
}

test('property: the truncated message scans, fits, holds only whole records (a prefix), counts match, TC iff something was left out, and is maximal', () => {
  const scan = new ResponseScan();
  const outScan = new ResponseScan();
  fc.assert(
    fc.property(arbCase, fc.integer({ min: 0, max: 4096 }), (c, limit) => {
      const q = queryFor(c.name, 'A', c.client === null ? null : { size: c.client });
      const resp = encodeCase(c);
      const size = Math.max(512, limit);
      const out = truncateResponse(q, resp, resp.length, limit);
      assert.ok(out.length <= size, `${out.length} > ${size}`);
      assert.equal(scanResponse(out, out.length, outScan), true, 'the result scans');
      assert.equal(outScan.end, out.length, 'nothing after the records');
      dnsPacket.decode(out);
      assert.equal(scanResponse(resp, resp.length, scan), true);
      const inBounds = recordBounds(resp, scan);
      const inOpt = scan.optStart;
      const inRecords = inBounds.length - 1 - (inOpt >= 0 ? 1 : 0);
      const kept = outScan.recordCount;
      // The kept records are the input's first `kept` non-OPT records, byte for byte.
      const nonOpt = inBounds
        .slice(0, -1)
        .map((s, i) => [s, inBounds[i + 1]!] as const)
        .filter(([s]) => s !== inOpt);
      const outBounds = recordBounds(out, outScan);
      const outNonOpt = outBounds
        .slice(0, -1)
        .map((s, i) => [s, outBounds[i + 1]!] as const)
        .filter(([s]) => s !== outScan.optStart);
      assert.equal(outNonOpt.length, kept);
      for (let i = 0; i < kept; i++) {
        assert.deepEqual(out.subarray(outNonOpt[i]![0], outNonOpt[i]![1]), resp.subarray(nonOpt[i]![0], nonOpt[i]![1]), `record ${i}`);
      }
      // Sections: answer first, authority only after the whole answer, additional after both.
      const [, an, ns] = counts(out);
      const [, inAn, inNs] = counts(resp);
      if (ns > 0) assert.equal(an, inAn);
      if (kept - an - ns > 0) assert.equal(ns, inNs);
      assert.equal(an + ns + outScan.arcount - (outScan.optStart >= 0 ? 1 : 0), kept);
      const tc = (out[2]! & TC) !== 0;
      assert.equal(tc, kept < inRecords || c.tc, 'TC iff a record was left out (or it was set)');
      // An OPT goes out iff the response had one or the client used EDNS.
      assert.equal(outScan.optStart >= 0, inOpt >= 0 || c.client !== null);
      const optLen = outScan.optStart >= 0 ? outScan.optEnd - outScan.optStart : 0;
      if (kept < inRecords && resp.length > size) {
        // Maximal: the next record would not have fit.
        const [s, e] = nonOpt[kept]!;
        assert.ok(out.length - optLen + (e - s) + optLen > size, 'the next record fits too');
      }
    }),
    { numRuns: 600 },
  );
});

test('property: mutated and cut responses never throw and always give a message that scans and fits', () => {
  const outScan = new ResponseScan();
  fc.assert(
    fc.property(
      arbCase,
      fc.integer({ min: 0, max: 2048 }),
      fc.array(fc.tuple(fc.nat(4096), fc.nat(255)), { maxLength: 6 }),
      fc.nat(4096),
      (c, limit, muts, cutAt) => {
        const q = queryFor(c.name, 'A', c.client === null ? null : { size: c.client });
        const resp = Buffer.from(encodeCase(c));
        for (const [at, v] of muts) if (at < resp.length) resp[at] = v;
        const len = Math.min(resp.length, cutAt + 12);
        const out = truncateResponse(q, resp, len, limit);
        assert.ok(out.length <= Math.max(512, limit));
        assert.equal(scanResponse(out, out.length, outScan), true);
      },
    ),
    { numRuns: 1500 },
  );
});
