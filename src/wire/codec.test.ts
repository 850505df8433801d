import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, parseRR, formatRR, replyTo, formatIPv6, type Message, type RR } from './codec.ts';
import { WireError } from './errors.ts';
import { Flag, QType, QClass } from './codes.ts';
import { Request } from '../server/request.ts';
import { parseQuery, ParseResult } from './query.ts';

const fqdn = (n: string): string => (n.endsWith('.') ? n : n + '.');

function packetFixture(): Buffer {
  return dnsPacket.encode({
    type: 'response',
    id: 0xbeef,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER,
    questions: [{ name: 'www.example.org', type: 'A', class: 'IN' }],
    answers: [
      { name: 'www.example.org', type: 'CNAME', ttl: 300, data: 'web.example.org' },
      { name: 'web.example.org', type: 'A', ttl: 60, data: '192.0.2.1' },
      { name: 'web.example.org', type: 'AAAA', ttl: 60, data: '2001:db8::1' },
      { name: 'example.org', type: 'MX', ttl: 60, data: { preference: 10, exchange: 'mail.example.org' } },
      { name: 'example.org', type: 'TXT', ttl: 60, data: ['v=spf1 -all', 'second "quoted"'] },
      { name: '_sip._udp.example.org', type: 'SRV', ttl: 60, data: { priority: 1, weight: 2, port: 5060, target: 'sip.example.org' } },
      { name: '1.2.0.192.in-addr.arpa', type: 'PTR', ttl: 60, data: 'web.example.org' },
      { name: 'example.org', type: 'CAA', ttl: 60, data: { flags: 0, tag: 'issue', value: 'ca.example' } },
    ],
    authorities: [
      { name: 'example.org', type: 'NS', ttl: 3600, data: 'ns1.example.org' },
      {
        name: 'example.org',
        type: 'SOA',
        ttl: 3600,
        data: { mname: 'ns1.example.org', rname: 'hostmaster.example.org', serial: 2026120601, refresh: 7200, retry: 900, expire: 1209600, minimum: 300 },
      },
    ],
    additionals: [
      { name: 'ns1.example.org', type: 'A', ttl: 3600, data: '192.0.2.53' },
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        flags: dnsPacket.DNSSEC_OK,
        options: [{ code: 10, data: Buffer.from('0102030405060708', 'hex') }],
      } as unknown as dnsPacket.Answer,
    ],
  });
}

test('decodeMessage reads what dns-packet wrote (every typed rdata, OPT, flags)', () => {
  const m = decodeMessage(packetFixture());
  assert.equal(m.id, 0xbeef);
  assert.equal(m.flags, Flag.QR | Flag.AA | Flag.RD | Flag.RA);
  assert.equal(m.rcode, 0);
  assert.deepEqual(m.question, [{ name: 'www.example.org.', type: QType.A, class: QClass.IN }]);
  const a = m.answer;
  assert.equal(a.length, 8);
  assert.deepEqual(a[0], { name: 'www.example.org.', type: QType.CNAME, class: 1, ttl: 300, data: 'web.example.org.' });
  assert.equal(a[1]!.data, '192.0.2.1');
  assert.equal(a[2]!.data, '2001:db8::1');
  assert.deepEqual(a[3]!.data, { preference: 10, exchange: 'mail.example.org.' });
  assert.deepEqual(a[4]!.data, ['v=spf1 -all', 'second "quoted"']);
  assert.deepEqual(a[5]!.data, { priority: 1, weight: 2, port: 5060, target: 'sip.example.org.' });
  assert.equal(a[6]!.data, 'web.example.org.');
  assert.ok(a[7]!.data instanceof Uint8Array);
  assert.equal(formatRR(a[7]!), 'example.org.\t60\tIN\tCAA\t0 issue "ca.example"');
  assert.deepEqual(m.authority[1]!.data, {
    mname: 'ns1.example.org.',
    rname: 'hostmaster.example.org.',
    serial: 2026120601,
    refresh: 7200,
    retry: 900,
    expire: 1209600,
    minimum: 300,
  });
  assert.equal(m.additional.length, 1);
  assert.deepEqual(m.edns, { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: true, options: [{ code: 10, data: new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]) }] });
});

test('encodeMessage: dns-packet reads it back, compressed smaller than uncompressed', () => {
  const m = decodeMessage(packetFixture());
  const out = encodeMessage(m);
  const d = dnsPacket.decode(out);
  assert.equal(d.id, 0xbeef);
  assert.equal(d.answers!.length, 8);
  assert.equal(d.authorities!.length, 2);
  assert.equal(d.additionals!.length, 2);
  const byType = (t: string) => d.answers!.find((x) => x.type === t) as { data: unknown };
  assert.equal(byType('CNAME').data, 'web.example.org');
  assert.equal(byType('AAAA').data, '2001:db8::1');
  assert.deepEqual(byType('MX').data, { preference: 10, exchange: 'mail.example.org' });
  assert.deepEqual((byType('TXT').data as Buffer[]).map(String), ['v=spf1 -all', 'second "quoted"']);
  assert.deepEqual(byType('SRV').data, { priority: 1, weight: 2, port: 5060, target: 'sip.example.org' });
  const opt = d.additionals!.find((x) => x.type === 'OPT') as unknown as { udpPayloadSize: number; flags: number; options: { code: number }[] };
  assert.equal(opt.udpPayloadSize, 1232);
  assert.equal(opt.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
  assert.equal(opt.options[0]!.code, 10);
  // Re-decoding ours gives the same message; compression made it smaller than the names spelled out.
  assert.deepEqual(decodeMessage(out), m);
  // dns-packet spells every name out; ours points at earlier ones.
  const uncompressed = packetFixture().length;
  assert.ok(out.length < uncompressed - 100, `${out.length} vs ${uncompressed}`);
  assert.ok(out.includes(Buffer.from([0xc0, 0x0c])), 'a pointer to the question name');
});

test('rcode: extended bits go to the OPT and come back', () => {
  const m: Message = { id: 7, flags: Flag.QR, rcode: 16, question: [{ name: 'x.', type: 1, class: 1 }], answer: [], authority: [], additional: [], edns: null };
  const out = encodeMessage(m);
  const back = decodeMessage(out);
  assert.equal(back.rcode, 16);
  assert.equal(back.flags & 0xf, 0);
  assert.equal(back.edns!.extRcode, 1);
  const d = dnsPacket.decode(out);
  assert.equal((d as unknown as { rcode: string }).rcode, 'NOERROR'); // dns-packet reads the header's 4 bits only
  assert.equal((d.additionals![0] as unknown as { extendedRcode: number }).extendedRcode, 1);
});

function manyA(n: number): Message {
  const answer: RR[] = [];
  for (let i = 0; i < n; i++) answer.push({ name: 'many.example.', type: QType.A, class: 1, ttl: 30, data: `10.0.${i >> 8}.${i & 255}` });
  return {
    id: 1,
    flags: Flag.QR | Flag.RD,
    rcode: 0,
    question: [{ name: 'many.example.', type: QType.A, class: 1 }],
    answer,
    authority: [{ name: 'example.', type: QType.NS, class: 1, ttl: 30, data: 'a-long-name-server-label.example.' }],
    additional: [{ name: 'a-long-name-server-label.example.', type: QType.A, class: 1, ttl: 30, data: '10.9.9.9' }],
    edns: { udpSize: 512, extRcode: 0, version: 0, dnssecOk: false, options: [] },
  };
}

test('encodeMessage maxSize: whole records, TC set, OPT kept, no pointer into what was cut', () => {
  const full = encodeMessage(manyA(60));
  assert.ok(full.length > 512);
  const cut = encodeMessage(manyA(60), { maxSize: 512 });
  assert.ok(cut.length <= 512, `${cut.length}`);
  const m = decodeMessage(cut);
  assert.ok((m.flags & Flag.TC) !== 0);
  // 12 header + 18 question + 16 per compressed A + 11 OPT: (512-41)/16 = 29 answers.
  assert.equal(m.answer.length, 29);
  assert.equal(m.authority.length, 0);
  assert.equal(m.additional.length, 0);
  assert.ok(m.edns !== null);
  // It fits: no TC.
  const fits = decodeMessage(encodeMessage(manyA(3), { maxSize: 512 }));
  assert.equal(fits.flags & Flag.TC, 0);
  assert.equal(fits.additional.length, 1);
  // The authority's name server was dropped with its name's compression target: the additional
  // record's owner must be spelled out, not point into the dropped bytes.
  const msg = manyA(25);
  const sizeNoAdditional = encodeMessage({ ...msg, additional: [] }).length;
  const c2 = encodeMessage(msg, { maxSize: sizeNoAdditional + 5 });
  const d2 = decodeMessage(c2);
  assert.equal(d2.authority.length, 1);
  assert.equal(d2.additional.length, 0);
  assert.ok((d2.flags & Flag.TC) !== 0);
  // Rollback forgets compression targets: records after a cut never reference the cut bytes.
  for (let size = 100; size < full.length; size += 7) {
    const t = encodeMessage(manyA(60), { maxSize: size });
    decodeMessage(t); // backward pointers into the kept prefix only, else this throws
    assert.doesNotThrow(() => dnsPacket.decode(t));
  }
});

test('encodeMessage keeps TC already set and throws past 65535 without maxSize', () => {
  const m = manyA(1);
  m.flags |= Flag.TC;
  assert.ok((decodeMessage(encodeMessage(m)).flags & Flag.TC) !== 0);
  const big = manyA(1);
  big.answer = Array.from({ length: 300 }, () => ({ name: 'big.', type: QType.TXT, class: 1, ttl: 1, data: ['x'.repeat(255)] }));
  assert.throws(
    () => encodeMessage(big),
    (e: WireError) => e instanceof WireError && e.code === 'ERR_DNS_TOO_LARGE',
  );
  const cut = decodeMessage(encodeMessage(big, { maxSize: 65535 }));
  assert.ok(cut.answer.length > 200 && cut.answer.length < 300);
});

test('decodeMessage: every prefix of a message throws WireError', () => {
  const full = packetFixture();
  for (let n = 0; n < full.length; n++) {
    assert.throws(
      () => decodeMessage(full, n),
      (e: unknown) => e instanceof WireError,
      `prefix ${n}`,
    );
    assert.throws(
      () => decodeMessage(full.subarray(0, n)),
      (e: unknown) => e instanceof WireError,
      `slice ${n}`,
    );
  }
  // len beyond the buffer.
  assert.throws(() => decodeMessage(full, full.length + 1), WireError);
});

test('decodeMessage rejects rdata that does not fit its type, loops and a second OPT', () => {
  const base = dnsPacket.encode({ type: 'response', id: 1, answers: [{ name: 'a', type: 'A', data: '1.2.3.4' }] });
  // A with rdlength 5 (one extra byte appended).
  const bad = Buffer.concat([base, Buffer.from([0])]);
  bad.writeUInt16BE(5, bad.length - 7);
  assert.throws(
    () => decodeMessage(bad),
    (e: WireError) => e.code === 'ERR_DNS_BAD_RDATA',
  );
  // CNAME whose name ends before its rdata does.
  const cn = dnsPacket.encode({ type: 'response', id: 1, answers: [{ name: 'a', type: 'CNAME', data: 'b' }] });
  const cn2 = Buffer.concat([cn, Buffer.from([0])]);
  cn2.writeUInt16BE(cn2.readUInt16BE(cn.length - 5) + 1, cn.length - 5 - 0);
  assert.throws(() => decodeMessage(cn2), WireError);
  // Name pointing at itself.
  const loop = Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1]);
  assert.throws(
    () => decodeMessage(loop),
    (e: WireError) => e.code === 'ERR_DNS_BAD_POINTER',
  );
  // Two OPTs.
  const opt = Buffer.from([0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
  const two = Buffer.concat([Buffer.from([0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 2]), opt, opt]);
  assert.throws(
    () => decodeMessage(two),
    (e: WireError) => e.code === 'ERR_DNS_BAD_RDATA',
  );
  // Option running past the OPT's rdata.
  const badOpt = Buffer.from([0, 1, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 4, 0, 10, 0, 8]);
  assert.throws(
    () => decodeMessage(badOpt),
    (e: WireError) => e.code === 'ERR_DNS_TRUNCATED',
  );
});

test('fuzz: random bytes and mutated messages decode or throw WireError, never anything else', () => {
  const full = packetFixture();
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
      try {
        decodeMessage(b);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(full.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 6 }), (muts) => {
      const b = Buffer.from(full);
      for (const [at, v] of muts) b[at] = v;
      try {
        const m = decodeMessage(b);
        // What decodes re-encodes and decodes to the same thing.
        assert.deepEqual(decodeMessage(encodeMessage(m)), m);
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
      }
    }),
    { numRuns: 3000 },
  );
});

const label = fc.stringMatching(/^[a-zA-Z0-9-]{1,20}$/);
const nameArb = fc.array(label, { minLength: 0, maxLength: 4 }).map((ls) => (ls.length === 0 ? '.' : ls.join('.') + '.'));
const rrArb: fc.Arbitrary<RR> = fc.oneof(
  fc.tuple(nameArb, fc.ipV4()).map(([n, a]) => ({ name: n, type: QType.A, class: 1, ttl: 5, data: a })),
  fc.tuple(nameArb, fc.uint8Array({ minLength: 16, maxLength: 16 })).map(([n, b]) => ({ name: n, type: QType.AAAA, class: 1, ttl: 5, data: formatIPv6(b) })),
  fc.tuple(nameArb, nameArb).map(([n, t]) => ({ name: n, type: QType.CNAME, class: 1, ttl: 5, data: t })),
  fc.tuple(nameArb, fc.nat(65535), nameArb).map(([n, p, t]) => ({ name: n, type: QType.MX, class: 1, ttl: 5, data: { preference: p, exchange: t } })),
  fc
    .tuple(
      nameArb,
      fc.array(
        fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x00-\xff]/g, '?')),
        { maxLength: 3 },
      ),
    )
    .map(([n, s]) => ({ name: n, type: QType.TXT, class: 1, ttl: 5, data: s })),
  fc
    .tuple(
      nameArb,
      fc.integer({ min: 256, max: 65535 }).filter((t) => t !== 257 && t !== QType.OPT),
      fc.uint8Array({ maxLength: 30 }),
    )
    .map(([n, t, b]) => ({ name: n, type: t, class: 1, ttl: 5, data: b })),
);

test('property: encode then decode is the identity; dns-packet agrees on names and counts', () => {
  fc.assert(
    fc.property(fc.array(rrArb, { maxLength: 8 }), fc.array(rrArb, { maxLength: 3 }), fc.boolean(), (answer, additional, edns) => {
      const m: Message = {
        id: 42,
        flags: Flag.QR,
        rcode: 0,
        question: [{ name: 'q.example.', type: 1, class: 1 }],
        answer,
        authority: [],
        additional,
        edns: edns ? { udpSize: 4096, extRcode: 0, version: 0, dnssecOk: true, options: [] } : null,
      };
      const out = encodeMessage(m);
      assert.deepEqual(decodeMessage(out), m);
      const d = dnsPacket.decode(out);
      assert.deepEqual(
        d.answers!.map((x) => fqdn(x.name)),
        answer.map((x) => x.name),
      );
    }),
    { numRuns: 500 },
  );
});

test('parseRR: typed records, origin, TTL and class in either order, comments, parentheses', () => {
  const origin = 'example.org.';
  const cases: [string, string][] = [
    ['www 60 IN A 192.0.2.1', 'www.example.org.\t60\tIN\tA\t192.0.2.1'],
    ['@ IN 60 AAAA 2001:DB8:0:0:0:0:0:1', 'example.org.\t60\tIN\tAAAA\t2001:db8::1'],
    ['v6m AAAA ::ffff:192.0.2.1', 'v6m.example.org.\t3600\tIN\tAAAA\t::ffff:192.0.2.1'],
    ['alias.example.com. 1h CNAME target', 'alias.example.com.\t3600\tIN\tCNAME\ttarget.example.org.'],
    ['example.org. NS ns1', 'example.org.\t3600\tIN\tNS\tns1.example.org.'],
    ['4.3.2.1.in-addr.arpa. PTR host.', '4.3.2.1.in-addr.arpa.\t3600\tIN\tPTR\thost.'],
    ['d DNAME other.net.', 'd.example.org.\t3600\tIN\tDNAME\tother.net.'],
    ['@ MX 10 mail ; comment', 'example.org.\t3600\tIN\tMX\t10 mail.example.org.'],
    [
      't TXT "hello world" "with \\"quote\\" and \\\\" bare \\065\\010',
      't.example.org.\t3600\tIN\tTXT\t"hello world" "with \\"quote\\" and \\\\" "bare" "A\\010"',
    ],
    ['_http._tcp SRV 0 5 80 web', '_http._tcp.example.org.\t3600\tIN\tSRV\t0 5 80 web.example.org.'],
    [
      '@ SOA ns1 hostmaster ( 2026120601 2h 15m 2w 300 )',
      'example.org.\t3600\tIN\tSOA\tns1.example.org. hostmaster.example.org. 2026120601 7200 900 1209600 300',
    ],
    ['@ CAA 0 issue "letsencrypt.org"', 'example.org.\t3600\tIN\tCAA\t0 issue "letsencrypt.org"'],
    ['x TYPE123 \\# 3 abcdef', 'x.example.org.\t3600\tIN\tTYPE123\t\\# 3 abcdef'],
    ['x TYPE123 \\# 0', 'x.example.org.\t3600\tIN\tTYPE123\t\\# 0'],
    ['x CLASS3 TYPE1 \\# 4 c0000201', 'x.example.org.\t3600\tCH\tA\t192.0.2.1'],
    ['x A \\# 4 C000 0202', 'x.example.org.\t3600\tIN\tA\t192.0.2.2'],
    ['x TXT \\# 6 0568656c6c6f', 'x.example.org.\t3600\tIN\tTXT\t"hello"'],
    ['x DS \\# 4 01020304', 'x.example.org.\t3600\tIN\tDS\t\\# 4 01020304'],
    ['We\\.ird.Name. A 1.1.1.1', 'We\\.ird.Name.\t3600\tIN\tA\t1.1.1.1'],
  ];
  for (const [text, want] of cases) assert.equal(formatRR(parseRR(text, { origin })), want, text);
  assert.equal(parseRR('a A 1.2.3.4', { defaultTtl: 5 }).ttl, 5);
  assert.equal(parseRR('a A 1.2.3.4').name, 'a.');
  // Parsed records encode and decode to the same data.
  for (const [text] of cases) {
    const rr = parseRR(text, { origin });
    const m: Message = { id: 1, flags: Flag.QR, rcode: 0, question: [], answer: [rr], authority: [], additional: [], edns: null };
    assert.deepEqual(decodeMessage(encodeMessage(m)).answer[0], rr, text);
  }
});

test('parseRR: readable errors', () => {
  const bad: [string, RegExp][] = [
    ['a A 300.1.1.1', /bad A address/],
    ['a AAAA 1.2.3.4', /bad AAAA address/],
    ['a MX mail', /MX needs 2 rdata/],
    ['a MX 70000 mail.', /bad MX preference/],
    ['a BOGUS x', /unknown type/],
    ['a TXT "unterminated', /unterminated/],
    ['a TXT', /at least one string/],
    ['a TYPE99 \\# 2 ab', /length 2 but 1 bytes/],
    ['a TYPE99 \\# 1 zz', /not hex/],
    ['a A \\# 3 010203', /A rdata: length 3/],
    ['a DS 1 2 3 abcd', /RFC 3597 form/],
    ['a', /too few fields/],
    ['a..b A 1.2.3.4', /empty label/],
    [`a TXT "${'x'.repeat(256)}"`, /longer than 255/],
  ];
  for (const [text, re] of bad)
    assert.throws(
      () => parseRR(text),
      (e: Error) => re.test(e.message) && e.message.includes('cannot parse record'),
      text,
    );
});

test('replyTo: id, question, QR, RD/CD copied, EDNS mirrored; parses as a response to the query', () => {
  const q = dnsPacket.encode({
    type: 'query',
    id: 0x1234,
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.CHECKING_DISABLED,
    questions: [{ name: 'WhoAmI.Example', type: 'A', class: 'IN' }],
    additionals: [{ type: 'OPT', name: '.', udpPayloadSize: 4000, flags: dnsPacket.DNSSEC_OK } as unknown as dnsPacket.Answer],
  });
  const req = new Request(q, q.length, { writeMsg() {} });
  assert.equal(parseQuery(req), ParseResult.OK);
  const m = replyTo(req, { answer: [parseRR('whoami.example. 0 IN A 10.0.0.1')] });
  assert.equal(m.id, 0x1234);
  assert.equal(m.flags, Flag.QR | Flag.RD | Flag.CD);
  assert.deepEqual(m.question, [{ name: 'WhoAmI.Example.', type: 1, class: 1 }]);
  assert.deepEqual(m.edns, { udpSize: 4000, extRcode: 0, version: 0, dnssecOk: true, options: [] });
  const d = dnsPacket.decode(encodeMessage(m));
  assert.equal(d.type, 'response');
  assert.equal((d.answers![0] as { data: string }).data, '10.0.0.1');
  const plain = dnsPacket.encode({ type: 'query', id: 9, questions: [{ name: 'x', type: 'TXT', class: 'IN' }] });
  const r2 = new Request(plain, plain.length, { writeMsg() {} });
  parseQuery(r2);
  assert.equal(replyTo(r2).edns, null);
});

test('formatIPv6 follows RFC 5952 (longest zero run, first on ties, no single-group ::)', () => {
  const h = (s: string) => new Uint8Array(Buffer.from(s, 'hex'));
  assert.equal(formatIPv6(h('20010db8000000000001000000000001')), '2001:db8::1:0:0:1');
  assert.equal(formatIPv6(h('20010db8000100010001000100010000')), '2001:db8:1:1:1:1:1:0');
  assert.equal(formatIPv6(h('00000000000000000000000000000000')), '::');
  assert.equal(formatIPv6(h('00000000000000000000000000000001')), '::1');
  assert.equal(formatIPv6(h('fe800000000000000000000000000000')), 'fe80::');
});
