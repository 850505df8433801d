import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import { loadBalanceResponse, seedShuffle, type Subnet } from './shuffle.ts';
import { decodeMessage, encodeMessage, formatRR, parseRR, type Message, type RR } from './codec.ts';
import { Flag, QType } from './codes.ts';
import { WeightTable } from './weights.ts';

function msg(qname: string, qtype: number, answer: string[], additional: string[] = [], opts: Partial<Message> = {}): Buffer {
  const m: Message = {
    id: 1,
    flags: Flag.QR | Flag.RD | Flag.RA,
    rcode: 0,
    question: [{ name: qname, type: qtype, class: 1 }],
    answer: answer.map((t) => parseRR(t)),
    authority: [],
    additional: additional.map((t) => parseRR(t)),
    edns: { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [] },
    ...opts,
  };
  return Buffer.from(encodeMessage(m));
}

const texts = (rrs: RR[]): string[] => rrs.map(formatRR);

function run(buf: Buffer, prefer: Subnet[] | null = null): { out: Buffer; inPlace: boolean } {
  const copy = Buffer.from(buf);
  const r = loadBalanceResponse(copy, copy.length, prefer);
  return r === null ? { out: copy, inPlace: true } : { out: r, inPlace: false };
}

const A5 = [1, 2, 3, 4, 5].map((i) => `www.example. 60 IN A 192.0.2.${i}`);

test('only A records: shuffled in place, every record kept, each one reaches the top', () => {
  const buf = msg('www.example.', QType.A, A5);
  const before = decodeMessage(buf);
  const firsts = new Set<string>();
  let changed = 0;
  for (let i = 0; i < 200; i++) {
    const { out, inPlace } = run(buf);
    assert.equal(inPlace, true);
    assert.equal(out.length, buf.length);
    const m = decodeMessage(out);
    assert.deepEqual(texts(m.answer).sort(), texts(before.answer).sort());
    assert.deepEqual(m.edns, before.edns);
    assert.deepEqual(m.question, before.question);
    firsts.add(m.answer[0]!.data as string);
    if (texts(m.answer).join() !== texts(before.answer).join()) changed++;
  }
  assert.equal(firsts.size, 5);
  assert.ok(changed > 150, `${changed}`);
});

test('CNAME chain first, in its order; the A records after it shuffled; in place (they point into the CNAME)', () => {
  const buf = msg('www.example.', QType.A, [
    'www.example. 60 IN CNAME mid.example.',
    'mid.example. 60 IN CNAME web.example.',
    ...[1, 2, 3, 4].map((i) => `web.example. 60 IN A 192.0.2.${i}`),
  ]);
  const firsts = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const { out, inPlace } = run(buf);
    assert.equal(inPlace, true);
    const m = decodeMessage(out);
    assert.deepEqual(texts(m.answer.slice(0, 2)), ['www.example.\t60\tIN\tCNAME\tmid.example.', 'mid.example.\t60\tIN\tCNAME\tweb.example.']);
    assert.equal(
      m.answer.slice(2).every((r) => r.name === 'web.example.' && r.type === QType.A),
      true,
    );
    firsts.add(m.answer[2]!.data as string);
  }
  assert.equal(firsts.size, 4);
});

test('mixed section: CNAMEs, then other types, then addresses, then MX (CoreDNS regrouping)', () => {
  const buf = msg('x.example.', QType.ANY, [
    'x.example. 60 IN MX 10 m1.example.',
    'x.example. 60 IN A 192.0.2.1',
    'x.example. 60 IN TXT "t"',
    'x.example. 60 IN AAAA 2001:db8::1',
    'x.example. 60 IN CNAME y.example.',
    'x.example. 60 IN MX 20 m2.example.',
  ]);
  for (let i = 0; i < 20; i++) {
    const m = decodeMessage(run(buf).out);
    const types = m.answer.map((r) => r.type);
    assert.equal(types[0], QType.CNAME);
    assert.equal(types[1], QType.TXT);
    assert.deepEqual(types.slice(2, 4).sort(), [QType.A, QType.AAAA].sort());
    assert.deepEqual(types.slice(4), [QType.MX, QType.MX]);
  }
});

test('MX whose exchanges the additional records name: re-encoded (slow path), glue still right', () => {
  const buf = msg(
    'example.',
    QType.MX,
    ['example. 60 IN MX 10 mx1.example.', 'example. 60 IN MX 20 mx2.example.', 'example. 60 IN MX 30 mx3.example.'],
    ['mx1.example. 60 IN A 192.0.2.1', 'mx2.example. 60 IN A 192.0.2.2', 'mx3.example. 60 IN A 192.0.2.3'],
  );
  const before = decodeMessage(buf);
  const orders = new Set<string>();
  let slow = 0;
  for (let i = 0; i < 60; i++) {
    const { out, inPlace } = run(buf);
    if (!inPlace) slow++;
    const m = decodeMessage(out);
    assert.deepEqual(texts(m.answer).sort(), texts(before.answer).sort());
    // Additional A records are shuffled too (CoreDNS shuffles every section), names intact.
    assert.deepEqual(texts(m.additional).sort(), texts(before.additional).sort());
    orders.add(texts(m.answer).join());
    dnsPacket.decode(out);
  }
  assert.ok(slow > 0);
  assert.ok(orders.size > 1);
});

test('left alone: NXDOMAIN/SERVFAIL, extended rcode, AXFR/IXFR, TSIG, a single record, malformed', () => {
  for (const rcode of [2, 3]) {
    const b = msg('www.example.', QType.A, A5, [], { rcode });
    assert.deepEqual(run(b).out, b);
  }
  const ext = msg('www.example.', QType.A, A5, [], { rcode: 16 });
  assert.deepEqual(run(ext).out, ext);
  for (const qt of [QType.AXFR, QType.IXFR]) {
    const b = msg('example.', qt, A5);
    assert.deepEqual(run(b).out, b);
  }
  const tsig = msg('www.example.', QType.A, A5, ['key. 0 ANY TYPE250 \\# 4 01020304']);
  assert.deepEqual(run(tsig).out, tsig);
  const one = msg('www.example.', QType.A, [A5[0]!]);
  assert.deepEqual(run(one).out, one);
  const full = msg('www.example.', QType.A, A5);
  for (let n = 0; n < full.length; n++) {
    const cut = Buffer.from(full.subarray(0, n));
    const before = Buffer.from(cut);
    assert.equal(loadBalanceResponse(cut, n, null), null);
    assert.deepEqual(cut, before, `prefix ${n} untouched`);
  }
});

test('A records compressed against each other (not the question): re-encoded, not corrupted', () => {
  // Question for a different name: the first A's owner is spelled out, the others point at it.
  const buf = msg('alias.example.', QType.A, A5.slice(0, 3));
  const before = decodeMessage(buf);
  let slow = 0;
  for (let i = 0; i < 40; i++) {
    const { out, inPlace } = run(buf);
    if (!inPlace) slow++;
    assert.deepEqual(texts(decodeMessage(out).answer).sort(), texts(before.answer).sort());
  }
  assert.ok(slow > 0);
});

test('prefer: addresses in the preferred subnets first, in subnet order; then the others; answer and additional', () => {
  const subnets: Subnet[] = [
    { bytes: Uint8Array.from([10, 9, 20, 0]), bits: 24 },
    { bytes: Uint8Array.from([192, 168, 1, 0]), bits: 24 },
  ];
  const buf = msg('www.example.', QType.A, [
    'www.example. 60 IN A 172.16.0.1',
    'www.example. 60 IN A 192.168.1.5',
    'www.example. 60 IN A 10.9.20.7',
    'www.example. 60 IN A 172.16.0.2',
  ]);
  for (let i = 0; i < 30; i++) {
    const m = decodeMessage(run(buf, subnets).out);
    assert.deepEqual(
      m.answer.slice(0, 2).map((r) => r.data),
      ['10.9.20.7', '192.168.1.5'],
    );
    assert.deepEqual(
      m.answer
        .slice(2)
        .map((r) => r.data)
        .sort(),
      ['172.16.0.1', '172.16.0.2'],
    );
  }
  const v6: Subnet[] = [{ bytes: Uint8Array.from(Buffer.from('20010db8000000000000000000000000', 'hex')), bits: 32 }];
  const b6 = msg('www.example.', QType.AAAA, ['www.example. 60 IN AAAA 2001:db9::1', 'www.example. 60 IN AAAA 2001:db8::1', 'www.example. 60 IN AAAA fe80::1']);
  for (let i = 0; i < 10; i++) assert.equal(decodeMessage(run(b6, v6).out).answer[0]!.data, '2001:db8::1');
});

test('fuzz (round_robin and weighted): mutated responses never throw; a result that decoded before decodes after with the same records', () => {
  seedShuffle(12345);
  const base = msg(
    'example.',
    QType.MX,
    ['example. 60 IN MX 10 mx1.example.', 'example. 60 IN MX 20 mx2.example.', 'example. 60 IN CNAME c.example.', ...A5],
    ['mx1.example. 60 IN A 192.0.2.1', 'mx2.example. 60 IN AAAA 2001:db8::2'],
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), (muts) => {
      const b = Buffer.from(base);
      for (const [at, v] of muts) b[at] = v;
      let before: Message | null = null;
      try {
        before = decodeMessage(b);
      } catch {
        before = null;
      }
      const weighted = muts.length % 2 === 1;
      const table = new WeightTable();
      table.add('mx1.example.', Uint8Array.from([192, 0, 2, 1]), 7);
      table.add('example.', Uint8Array.from([192, 0, 2, 3]), 200);
      const r = weighted ? loadBalanceResponse(b, b.length, null, table) : loadBalanceResponse(b, b.length, null);
      const out = r ?? b;
      if (before !== null) {
        const after = decodeMessage(out);
        const all = (m: Message) => [...texts(m.answer), '|', ...texts(m.authority), '|', ...texts(m.additional)].sort();
        assert.deepEqual(all(after), all(before));
      }
    }),
    { numRuns: 3000 },
  );
});
