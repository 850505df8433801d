/**
 * Fuzz targets for the wire codec (src/wire): parseQuery, scanResponse, readName/skipName,
 * truncateResponse.
 * Generated well-formed messages (dns-packet) must parse to exactly what was generated;
 * mutated and random bytes must never throw and, when accepted, must satisfy the
 * invariants the hot paths rely on (every offset inside the message, names within limits).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';
import { ResponseScan, questionMatches, scanResponse } from '../../src/wire/message.ts';
import { truncateResponse } from '../../src/wire/truncate.ts';
import { encodeName, qnameToString, readName, skipName } from '../../src/wire/name.ts';
import { WireError } from '../../src/wire/errors.ts';
import type { Request } from '../../src/server/request.ts';
import { arbMutations, arbName, arbQuerySpec, arbResponseSpec, arbType, encodeQuerySpec, encodeResponse, mutate, params, requestOf } from './lib.ts';

const TYPE_CODES: Record<string, number> = { A: 1, NS: 2, CNAME: 5, SOA: 6, PTR: 12, MX: 15, TXT: 16, AAAA: 28, SRV: 33 };
const u16 = (b: Uint8Array, p: number) => (b[p]! << 8) | b[p + 1]!;
const u32 = (b: Uint8Array, p: number) => ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);

/** FNV-1a over the case-folded uncompressed qname bytes, as parseQuery documents it. */
function fnvQname(b: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    let c = b[i]!;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    h = Math.imul(h ^ c, 0x01000193);
  }
  return h | 0;
}

/** The invariants of a Request that parseQuery accepted. */
function checkAccepted(req: Request): void {
  const b = req.msg;
  const len = req.msgLen;
  assert.equal(b[2]! & 0x80, 0, 'QR clear');
  assert.equal((b[2]! >> 3) & 0x0f, 0, 'opcode QUERY');
  assert.equal(u16(b, 4), 1);
  assert.ok(u16(b, 6) <= 1 && u16(b, 8) <= 1 && u16(b, 10) <= 2, 'DefaultMsgAcceptFunc counts');
  assert.equal(req.id, u16(b, 0));
  assert.ok(req.qnameEnd > 12 && req.qnameEnd - 12 <= 255, `qname length ${req.qnameEnd - 12}`);
  assert.equal(req.questionEnd, req.qnameEnd + 4);
  assert.ok(req.questionEnd <= len);
  // The labels as parseQuery recorded them walk the qname exactly.
  let p = 12;
  for (let i = 0; i < req.labelCount; i++) {
    assert.equal(req.labelStart(i), p);
    const l = b[p]!;
    assert.ok(l > 0 && l <= 63, `label length ${l}`);
    p += 1 + l;
  }
  assert.equal(b[p], 0);
  assert.equal(p + 1, req.qnameEnd);
  assert.equal(skipName(b, 12, len), req.qnameEnd);
  assert.equal(req.nameHash, fnvQname(b, 12, req.qnameEnd));
  assert.equal(req.qtype, u16(b, req.qnameEnd));
  assert.equal(req.qclass, u16(b, req.qnameEnd + 2));
  assert.equal(readName(b, 12, len).name, qnameToString(b, 12, req.qnameEnd));
  assert.ok(req.udpSize >= 512);
  if (req.edns) {
    assert.ok(req.optOffset >= req.questionEnd && req.optOffset + 11 <= len);
    assert.equal(b[req.optOffset], 0, 'OPT owner is the root');
    assert.equal(u16(b, req.optOffset + 1), 41);
    assert.equal(req.ednsVersion, 0);
  } else {
    assert.equal(req.optOffset, -1);
  }
}

test('parseQuery: generated queries parse to exactly what was generated', () => {
  fc.assert(
    fc.property(arbQuerySpec, (q) => {
      const req = requestOf(encodeQuerySpec(q));
      assert.equal(parseQuery(req), ParseResult.OK);
      checkAccepted(req);
      assert.equal(req.id, q.id);
      assert.equal(qnameToString(req.msg, 12, req.qnameEnd), q.name + '.');
      assert.equal(req.labelCount, q.name.split('.').length);
      assert.equal(req.qtype, TYPE_CODES[q.type]);
      assert.equal(req.qclass, 1);
      assert.equal(req.recursionDesired, q.rd);
      assert.equal(req.checkingDisabled, q.cd);
      assert.equal(req.edns, q.edns !== null);
      assert.equal(req.dnssecOk, q.edns?.do ?? false);
      assert.equal(req.udpSize, q.edns ? Math.max(512, q.edns.size) : 512);
    }),
    params(1_000),
  );
});

test('parseQuery: mutated and random messages never throw; accepted ones are consistent', () => {
  const check = (bytes: Uint8Array) => {
    const req = requestOf(bytes);
    const r = parseQuery(req);
    assert.ok(r >= ParseResult.OK && r <= ParseResult.BADVERS);
    if (r === ParseResult.OK) checkAccepted(req);
    else if (r === ParseResult.DROP) assert.ok(bytes.length < 12 || (bytes[2]! & 0x80) !== 0);
    else {
      // FORMERR/NOTIMP/BADVERS: the header is valid for an error reply.
      assert.equal(req.id, u16(bytes, 0));
      if (req.questionEnd > 0) assert.ok(req.questionEnd <= bytes.length);
    }
  };
  fc.assert(
    fc.property(arbQuerySpec, arbMutations, (q, muts) => check(mutate(encodeQuerySpec(q), muts))),
    params(2_000),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => check(bytes)),
    params(1_500),
  );
  // Random bytes behind a plausible query header: the question and OPT parsing get exercised.
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat(2), fc.nat(1), (tail, ar, ns) => {
      const head = Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, ns, 0, ar]);
      check(Buffer.concat([head, tail]));
    }),
    params(2_000),
  );
});

/** Checks a scan of a message scanResponse accepted. */
function checkScan(_b: Uint8Array, len: number, s: ResponseScan): void {
  assert.ok(s.qnameEnd > 12 && s.questionEnd === s.qnameEnd + 4);
  assert.ok(s.questionEnd <= s.end && s.end <= len);
  let prev = s.questionEnd;
  for (const o of s.ttlOffsets) {
    assert.ok(o >= prev && o + 4 <= s.end, `TTL offset ${o} in [${prev}, ${s.end})`);
    prev = o + 4;
  }
  assert.equal(s.recordCount, s.ttlOffsets.length);
  assert.ok(s.minTtl <= 0x7fffffff);
  if (s.optStart >= 0) {
    assert.ok(s.optStart >= s.questionEnd && s.optEnd <= s.end && s.optStart < s.optEnd);
    assert.equal(s.recordCount, s.ancount + s.nscount + s.arcount - 1);
  } else {
    assert.equal(s.recordCount, s.ancount + s.nscount + s.arcount);
  }
}

test('scanResponse: generated responses scan to their records, TTLs, SOA negative TTL and OPT', () => {
  const scan = new ResponseScan();
  const arb = fc
    .tuple(arbName, arbType, fc.nat(0xffff))
    .chain(([name, type, id]) => fc.tuple(fc.constant(name), fc.constant(type), fc.constant(id), arbResponseSpec(name)));
  fc.assert(
    fc.property(arb, ([name, type, id, spec]) => {
      const b = encodeResponse(id, name, type, spec);
      assert.equal(scanResponse(b, b.length, scan), true);
      checkScan(b, b.length, scan);
      assert.equal(scan.end, b.length);
      const records = [...spec.answers, ...spec.authorities, ...spec.additionals];
      const ttls = records.map((r) => ((r as { ttl: number }).ttl > 0x7fffffff ? 0 : (r as { ttl: number }).ttl));
      assert.equal(scan.ttlOffsets.length, records.length);
      scan.ttlOffsets.forEach((o, i) => assert.equal(u32(b, o), (records[i] as { ttl: number }).ttl));
      assert.equal(scan.minTtl, ttls.length ? Math.min(...ttls) : -1);
      const ans = ttls.slice(0, spec.answers.length);
      assert.equal(scan.answerMinTtl, ans.length ? Math.min(...ans) : -1);
      const soa = spec.authorities.find((r) => r.type === 'SOA') as { ttl: number; data: { minimum: number } } | undefined;
      assert.equal(scan.soaNegativeTtl, soa ? Math.min(soa.ttl > 0x7fffffff ? 0 : soa.ttl, soa.data.minimum) : -1);
      assert.equal(scan.optStart >= 0, spec.opt !== null);
      if (spec.opt) assert.equal(scan.optUdpSize, spec.opt.size);
      assert.equal(scan.optDo, spec.opt?.do ?? false);
      const query = encodeQuerySpec({ id, name: name.toUpperCase(), type, rd: true, cd: false, edns: null });
      assert.equal(questionMatches(query, scan.qnameEnd, b, b.length), true);
    }),
    params(800),
  );
});

test('scanResponse: mutated and random responses never throw; accepted ones are consistent', () => {
  const scan = new ResponseScan();
  const arb = fc
    .tuple(arbName, arbType, fc.nat(0xffff))
    .chain(([name, type, id]) => fc.tuple(fc.constant(name), fc.constant(type), fc.constant(id), arbResponseSpec(name), arbMutations));
  fc.assert(
    fc.property(arb, ([name, type, id, spec, muts]) => {
      const b = mutate(encodeResponse(id, name, type, spec), muts);
      if (scanResponse(b, b.length, scan)) checkScan(b, b.length, scan);
      // A length shorter than the buffer: nothing past it is read.
      const cut = b.length >> 1;
      if (scanResponse(b, cut, scan)) checkScan(b, cut, scan);
    }),
    params(1_500),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
      if (scanResponse(bytes, bytes.length, scan)) checkScan(bytes, bytes.length, scan);
    }),
    params(1_500),
  );
});

/** Buffers made of name-ish tokens: labels, pointers (mostly backward), roots, junk. */
const arbNameSoup = fc
  .array(
    fc.oneof(
      fc.stringMatching(/^[a-zA-Z0-9.\\ -]{1,10}$/).map((s) => [s.length, ...Buffer.from(s)]),
      fc.nat(0x3fff).map((t) => [0xc0 | (t >> 8), t & 0xff]),
      fc.nat(40).map((t) => [0xc0, t]),
      fc.constant([0]),
      fc.nat(255).map((x) => [x]),
      fc.integer({ min: 40, max: 63 }).map((n) => [n, ...new Array<number>(n).fill(0x61)]),
    ),
    { maxLength: 40 },
  )
  .map((parts) => Uint8Array.from(parts.flat()));

test('readName and skipName agree on every offset of random buffers, and never loop', () => {
  fc.assert(
    fc.property(fc.oneof(arbNameSoup, fc.uint8Array({ maxLength: 300 })), (b) => {
      for (let off = 0; off <= b.length; off++) {
        const next = skipName(b, off, b.length);
        let read: { name: string; next: number } | null = null;
        try {
          read = readName(b, off, b.length);
        } catch (e) {
          assert.ok(e instanceof WireError, String(e));
        }
        if (read === null) {
          assert.equal(next, -1, `skipName accepted what readName rejected at ${off}`);
          continue;
        }
        assert.equal(next, read.next, `at ${off}`);
        assert.ok(read.next > off && read.next <= b.length);
        // The text is canonical: it encodes back to at most 255 octets and reads back the same.
        const wire = encodeName(read.name);
        assert.ok(wire.length <= 255);
        assert.equal(readName(wire, 0, wire.length).name, read.name);
      }
    }),
    params(800),
  );
});

test('names: generated names round-trip through encodeName, readName and qnameToString', () => {
  fc.assert(
    fc.property(arbName, (name) => {
      const wire = encodeName(name);
      assert.equal(readName(wire, 0, wire.length).name, name + '.');
      assert.equal(qnameToString(wire, 0, wire.length), name + '.');
      assert.equal(skipName(wire, 0, wire.length), wire.length);
      // Any cut inside the name is rejected by both.
      const cut = wire.subarray(0, wire.length - 1);
      assert.equal(skipName(cut, 0, cut.length), -1);
      assert.throws(() => readName(cut, 0, cut.length), WireError);
    }),
    params(1_000),
  );
});

test('truncateResponse: generated, mutated and random responses at any limit never throw; the result scans, fits and holds whole records of the input', () => {
  const inScan = new ResponseScan();
  const outScan = new ResponseScan();
  const arb = fc
    .tuple(arbName, arbType, fc.nat(0xffff))
    .chain(([name, type, id]) =>
      fc.tuple(fc.constant(name), fc.constant(type), fc.constant(id), arbResponseSpec(name), arbMutations, fc.integer({ min: 0, max: 1500 }), fc.boolean()),
    );
  fc.assert(
    fc.property(arb, ([name, type, id, spec, muts, limit, edns]) => {
      const q = requestOf(encodeQuerySpec({ id, name, type, rd: true, cd: false, edns: edns ? { size: limit, do: false } : null }));
      assert.equal(parseQuery(q), ParseResult.OK);
      const size = Math.max(512, limit);
      for (const b of [encodeResponse(id, name, type, spec), mutate(encodeResponse(id, name, type, spec), muts)]) {
        const out = truncateResponse(q, b, b.length, limit);
        assert.ok(out.length <= size, `${out.length} > ${size}`);
        assert.equal(scanResponse(out, out.length, outScan), true, 'the result scans');
        assert.equal(outScan.end, out.length);
        // Whole records of the input: every kept non-OPT record's bytes are the input's at the same offset.
        if (outScan.recordCount > 0 && scanResponse(b, b.length, inScan)) {
          const lastTtl = outScan.ttlOffsets[outScan.recordCount - 1]!;
          assert.deepEqual(out.subarray(12, lastTtl), Buffer.from(b.subarray(12, lastTtl)));
        }
      }
    }),
    params(1_500),
  );
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 700 }), fc.integer({ min: 0, max: 1500 }), (bytes, limit) => {
      const q = requestOf(encodeQuerySpec({ id: 1, name: 'a.example', type: 'A', rd: true, cd: false, edns: null }));
      parseQuery(q);
      const out = truncateResponse(q, bytes, bytes.length, limit);
      assert.ok(out.length <= Math.max(512, limit));
      assert.equal(scanResponse(out, out.length, outScan), true);
    }),
    params(1_500),
  );
});
