import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { Reader } from './reader.ts';
import { Writer } from './writer.ts';
import { readName, skipName, encodeName, qnameToString } from './name.ts';
import { WireError } from './errors.ts';
import { parseQuery, ParseResult } from './query.ts';
import { scanResponse, ResponseScan, questionMatches, buildEmptyResponse, buildTruncated } from './message.ts';
import { Request } from '../server/request.ts';
import { Rcode } from './codes.ts';

const sink = { writeMsg() {} };

function req(buf: Buffer): Request {
  return new Request(buf, buf.length, sink);
}

test('names: encode then read back, with escapes', () => {
  for (const name of ['.', 'example.org.', 'a.b.c.d.', 'we\\.ird.name.', 'sp\\032ace.x.', 'x\\\\y.z.']) {
    const wire = encodeName(name);
    assert.equal(readName(wire, 0, wire.length).name, name);
    assert.equal(qnameToString(wire, 0, wire.length), name);
  }
});

test('names: label and name length limits', () => {
  assert.throws(
    () => encodeName('a'.repeat(64) + '.'),
    (e: WireError) => e.code === 'ERR_DNS_BAD_LABEL',
  );
  const long = Array.from({ length: 5 }, () => 'a'.repeat(63)).join('.') + '.';
  assert.throws(
    () => encodeName(long),
    (e: WireError) => e.code === 'ERR_DNS_NAME_TOO_LONG',
  );
  assert.throws(
    () => encodeName('a..b.'),
    (e: WireError) => e.code === 'ERR_DNS_BAD_NAME_TEXT',
  );
});

test('names: compression pointers must go backward; loops are rejected', () => {
  // "b" label then pointer to itself.
  const self = Buffer.from([1, 0x62, 0xc0, 0x00]);
  assert.throws(
    () => readName(self, 0, self.length),
    (e: WireError) => e.code === 'ERR_DNS_BAD_POINTER',
  );
  assert.equal(skipName(self, 0, self.length), -1);
  // Two pointers pointing at each other.
  const pair = Buffer.from([0xc0, 0x02, 0xc0, 0x00]);
  assert.equal(skipName(pair, 2, pair.length), -1);
  assert.throws(() => readName(pair, 2, pair.length));
  // A forward pointer.
  const fwd = Buffer.from([0xc0, 0x02, 0x00]);
  assert.equal(skipName(fwd, 0, fwd.length), -1);
  // A valid backward pointer: "a.example." then "www" + ptr.
  const ok = Buffer.concat([encodeName('example.'), Buffer.from([3, 0x77, 0x77, 0x77, 0xc0, 0x00])]);
  assert.deepEqual(readName(ok, 9, ok.length), { name: 'www.example.', next: ok.length });
  // A chain of pointers expanding beyond 255 bytes.
  const parts: number[] = [];
  parts.push(63, ...Buffer.alloc(63, 0x61), 0);
  for (let i = 0; i < 4; i++) {
    const prev = i === 0 ? 0 : parts.length - 66;
    parts.push(63, ...Buffer.alloc(63, 0x61), 0xc0 | (prev >> 8), prev & 0xff);
  }
  const chain = Buffer.from(parts);
  assert.throws(
    () => readName(chain, chain.length - 66, chain.length),
    (e: WireError) => e.code === 'ERR_DNS_NAME_TOO_LONG',
  );
});

test('reader: bounds-checked', () => {
  const r = new Reader(Buffer.from([1, 2, 3]));
  assert.equal(r.u16(), 0x0102);
  assert.throws(
    () => r.u16(),
    (e: WireError) => e.code === 'ERR_DNS_TRUNCATED',
  );
  assert.equal(r.u8(), 3);
  assert.throws(() => r.u8());
});

test('writer: round trip against dns-packet with compression', () => {
  const w = new Writer(16);
  w.u16(0x1234).u16(0x8180).u16(1).u16(2).u16(0).u16(0);
  w.name('Example.org.').u16(1).u16(1);
  for (const ip of [
    [192, 0, 2, 1],
    [192, 0, 2, 2],
  ]) {
    w.name('example.ORG.').u16(1).u16(1).u32(300).u16(4).bytes(Uint8Array.from(ip));
  }
  const buf = w.finish();
  const decoded = dnsPacket.decode(Buffer.from(buf));
  assert.equal(decoded.id, 0x1234);
  assert.equal(decoded.questions![0]!.name, 'Example.org');
  assert.deepEqual(
    decoded.answers!.map((a) => (a as { data: string }).data),
    ['192.0.2.1', '192.0.2.2'],
  );
  // The answer names are pointers (2 bytes each), not full names.
  assert.equal(buf.length, 12 + 13 + 4 + 2 * (2 + 10 + 4));
});

function query(name: string, type: string, opts: Partial<dnsPacket.Packet> = {}): Buffer {
  return dnsPacket.encode({ type: 'query', id: 4242, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: type as 'A', class: 'IN' }], ...opts });
}

test('parseQuery: question, hash is case-insensitive, EDNS fields', () => {
  const a = req(query('WWW.Example.ORG', 'AAAA'));
  assert.equal(parseQuery(a), ParseResult.OK);
  assert.equal(a.id, 4242);
  assert.equal(a.qtype, 28);
  assert.equal(a.qclass, 1);
  assert.equal(a.labelCount, 3);
  assert.equal(a.name(), 'WWW.Example.ORG.');
  assert.equal(a.edns, false);
  assert.equal(a.udpSize, 512);
  const b = req(
    query('www.example.org', 'AAAA', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer] }),
  );
  assert.equal(parseQuery(b), ParseResult.OK);
  assert.equal(a.nameHash, b.nameHash);
  assert.equal(b.edns, true);
  assert.equal(b.udpSize, 4096);
  assert.equal(b.dnssecOk, true);
  const small = req(query('x.', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 100 } as dnsPacket.Answer] }));
  assert.equal(parseQuery(small), ParseResult.OK);
  assert.equal(small.udpSize, 512);
});

test('parseQuery: rejects what miekg/dns rejects', () => {
  assert.equal(parseQuery(req(Buffer.alloc(5))), ParseResult.DROP);
  const resp = query('a.', 'A');
  resp[2]! |= 0x80;
  assert.equal(parseQuery(req(resp)), ParseResult.DROP);
  const notify = query('a.', 'A');
  notify[2] = (notify[2]! & 0x87) | (2 << 3);
  assert.equal(parseQuery(req(notify)), ParseResult.NOTIMP);
  const two = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [
      { name: 'a', type: 'A' },
      { name: 'b', type: 'A' },
    ],
  });
  assert.equal(parseQuery(req(two)), ParseResult.FORMERR);
  const trunc = query('example.org', 'A').subarray(0, 20);
  assert.equal(parseQuery(req(Buffer.from(trunc))), ParseResult.FORMERR);
  const v1 = query('a.', 'A', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, ednsVersion: 1 } as dnsPacket.Answer] });
  assert.equal(parseQuery(req(v1)), ParseResult.BADVERS);
  const ptr = Buffer.from(query('a.', 'A'));
  ptr[12] = 0xc0;
  assert.equal(parseQuery(req(ptr)), ParseResult.FORMERR);
});

test('scanResponse: TTL offsets, negative TTL from SOA, OPT', () => {
  const resp = dnsPacket.encode({
    type: 'response',
    id: 7,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | 3,
    questions: [{ name: 'nope.example.org', type: 'A' }],
    authorities: [
      {
        name: 'example.org',
        type: 'SOA',
        ttl: 3600,
        data: { mname: 'ns.example.org', rname: 'h.example.org', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 60 },
      },
    ],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer],
  } as dnsPacket.Packet);
  const s = new ResponseScan();
  assert.equal(scanResponse(resp, resp.length, s), true);
  assert.equal(s.rcode, Rcode.NXDOMAIN);
  assert.equal(s.soaNegativeTtl, 60);
  assert.equal(s.ttlOffsets.length, 1);
  assert.equal(resp.readUInt32BE(s.ttlOffsets[0]!), 3600);
  assert.ok(s.optStart > 0 && s.optEnd === resp.length);
  assert.equal(s.optUdpSize, 1232);
  assert.equal(scanResponse(resp, resp.length - 3, s), false);
  const q = query('NOPE.example.org', 'A');
  assert.equal(questionMatches(q, 12 + 18, resp, resp.length), true);
  assert.equal(questionMatches(query('other.example.org', 'A'), 12 + 19, resp, resp.length), false);
});

test('error and truncated responses echo the question and EDNS', () => {
  const q = req(
    query('big.example.org', 'TXT', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as dnsPacket.Answer] }),
  );
  assert.equal(parseQuery(q), ParseResult.OK);
  const sf = dnsPacket.decode(buildEmptyResponse(q, Rcode.SERVFAIL));
  assert.equal(sf.id, 4242);
  assert.equal((sf as { rcode?: string }).rcode, 'SERVFAIL');
  assert.equal(sf.questions![0]!.name, 'big.example.org');
  assert.equal((sf.additionals![0] as { type: string }).type, 'OPT');
  const bv = buildEmptyResponse(q, Rcode.BADVERS);
  assert.equal(bv[3]! & 0x0f, 0);
  assert.equal(bv[bv.length - 6], 1, 'extended rcode 1 in OPT');
  const big = dnsPacket.encode({
    type: 'response',
    id: 4242,
    flags: 0x8180,
    questions: [{ name: 'big.example.org', type: 'TXT' }],
    answers: [{ name: 'big.example.org', type: 'TXT', ttl: 1, data: 'x'.repeat(200) }],
  });
  const tc = dnsPacket.decode(buildTruncated(q, big));
  assert.equal(tc.flag_tc, true);
  assert.equal(tc.answers!.length, 0);
  assert.equal(tc.questions!.length, 1);
});

test('fuzz: random bytes and mutated packets never throw from parseQuery/scanResponse/skipName', () => {
  const seeds = [
    query('www.example.org', 'A'),
    query('x.', 'AAAA', { additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4096 } as dnsPacket.Answer] }),
    dnsPacket.encode({
      type: 'response',
      id: 1,
      questions: [{ name: 'a.b', type: 'A' }],
      answers: [
        { name: 'a.b', type: 'CNAME', data: 'c.d' },
        { name: 'c.d', type: 'A', data: '192.0.2.1' },
      ],
    }),
  ];
  const scan = new ResponseScan();
  fc.assert(
    fc.property(fc.integer({ min: 0, max: seeds.length - 1 }), fc.array(fc.tuple(fc.nat(600), fc.nat(255)), { maxLength: 8 }), fc.nat(600), (si, muts, cut) => {
      const b = Buffer.from(seeds[si]!);
      for (const [at, v] of muts) if (at < b.length) b[at] = v;
      const m = b.subarray(0, Math.min(b.length, cut));
      const r = req(Buffer.from(m));
      parseQuery(r);
      scanResponse(m, m.length, scan);
      for (let i = 0; i < m.length; i++) skipName(m, i, m.length);
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
      const b = Buffer.from(bytes);
      parseQuery(req(b));
      scanResponse(b, b.length, scan);
      try {
        readName(b, 0, b.length);
      } catch (e) {
        assert.ok(e instanceof WireError);
      }
    }),
    { numRuns: 3000 },
  );
});
