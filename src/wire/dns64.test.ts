import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aQueryFor, answerHasType, authoritySoaTtl, embedIPv4, parseCidr, synthesizeDns64 } from './dns64.ts';
import { decodeMessage, encodeMessage, formatIPv6, formatRR, parseRR, type Message } from './codec.ts';
import { ResponseScan, scanResponse } from './message.ts';
import { Flag, QType } from './codes.ts';

const v4 = (s: string) => Uint8Array.from(s.split('.').map(Number));
function to6(prefix: string, addr: string): string {
  const p = parseCidr(prefix)!;
  return formatIPv6(embedIPv4({ bytes: p.bytes, length: p.length }, v4(addr)));
}

test('embedIPv4: RFC 6052 §2.2 positions for each prefix length, u octet skipped', () => {
  // CoreDNS TestTo6 values.
  assert.equal(to6('64:ff9b::/96', '64.64.64.64'), '64:ff9b::4040:4040');
  assert.equal(to6('64:ff9b::/64', '64.64.64.64'), '64:ff9b::40:4040:4000:0');
  assert.equal(to6('64:ff9b::/56', '64.64.64.64'), '64:ff9b:0:40:40:4040::');
  assert.equal(to6('64::/32', '64.64.64.64'), '64:0:4040:4040::');
  // RFC 6052 §2.4 table, 192.0.2.33 under 2001:db8::/N.
  assert.equal(to6('2001:db8::/32', '192.0.2.33'), '2001:db8:c000:221::');
  assert.equal(to6('2001:db8:100::/40', '192.0.2.33'), '2001:db8:1c0:2:21::');
  assert.equal(to6('2001:db8:122::/48', '192.0.2.33'), '2001:db8:122:c000:2:2100::');
  assert.equal(to6('2001:db8:122:300::/56', '192.0.2.33'), '2001:db8:122:3c0:0:221::');
  assert.equal(to6('2001:db8:122:344::/64', '192.0.2.33'), '2001:db8:122:344:c0:2:2100:0');
  assert.equal(to6('2001:db8:122:344::/96', '192.0.2.33'), '2001:db8:122:344::c000:221');
  assert.throws(() => embedIPv4({ bytes: new Uint8Array(16), length: 96 }, new Uint8Array(3)), RangeError);
});

test('parseCidr: Go ParseCIDR forms, masked, printed as IPNet.String', () => {
  assert.deepEqual(parseCidr('64:ff9b::/96')?.text, '64:ff9b::/96');
  assert.equal(parseCidr('64:ff9b::1/96')?.text, '64:ff9b::/96');
  assert.equal(parseCidr('2002:c0a8:a88a::/48')?.text, '2002:c0a8:a88a::/48');
  assert.equal(parseCidr('64:ff9b::/52')?.length, 52);
  assert.equal(parseCidr('8.8.8.8/24')?.text, '8.8.8.0/24');
  assert.equal(parseCidr('8.8.8.8/24')?.bytes.length, 4);
  assert.equal(parseCidr('::ffff:10.0.0.1/128')?.bytes[15], 1);
  for (const bad of ['foobar', '64:ff9b::', '64:ff9b::/129', '1.2.3.4/33', '64:ff9b::/-1', '64:ff9b::/x', 'fe80::1%eth0/64', '/96'])
    assert.equal(parseCidr(bad), null, bad);
});

function query(name: string, qtype: number, edns: boolean): Buffer {
  return encodeMessage({
    id: 42,
    flags: Flag.RD,
    rcode: 0,
    question: [{ name, type: qtype, class: 1 }],
    answer: [],
    authority: [],
    additional: [],
    edns: edns ? { udpSize: 4096, extRcode: 0, version: 0, dnssecOk: true, options: [] } : null,
  });
}

test('aQueryFor: the same message with qtype A; bounds checked', () => {
  const q = query('example.com.', QType.AAAA, true);
  const qnameEnd = 12 + 13;
  const a = aQueryFor(q, q.length, qnameEnd);
  assert.equal(a.length, q.length);
  const m = decodeMessage(a);
  assert.deepEqual(m.question, [{ name: 'example.com.', type: QType.A, class: 1 }]);
  assert.equal(m.id, 42);
  assert.equal(m.edns?.udpSize, 4096);
  assert.equal(m.edns?.dnssecOk, true);
  assert.equal(q.readUInt16BE(qnameEnd), QType.AAAA, 'the client message is not changed');
  assert.throws(() => aQueryFor(q, 20, qnameEnd), RangeError);
});

function response(m: Partial<Message>): Buffer {
  return encodeMessage({
    id: 43,
    flags: Flag.QR | Flag.RD | Flag.RA,
    rcode: 0,
    question: [{ name: 'example.com.', type: QType.AAAA, class: 1 }],
    answer: [],
    authority: [],
    additional: [],
    edns: null,
    ...m,
  });
}

test('answerHasType / authoritySoaTtl on a scanned response', () => {
  const s = new ResponseScan();
  const withAaaa = response({ answer: [parseRR('example.com. 60 IN CNAME x.example.com.'), parseRR('x.example.com. 60 IN AAAA ::1')] });
  assert.ok(scanResponse(withAaaa, withAaaa.length, s));
  assert.equal(answerHasType(s, withAaaa, QType.AAAA), true);
  assert.equal(answerHasType(s, withAaaa, QType.A), false);
  assert.equal(authoritySoaTtl(s, withAaaa), -1);
  const nodata = response({
    authority: [parseRR('example.com. 70 IN SOA foo. bar. 1 1 1 1 1'), parseRR('example.com. 80 IN SOA foo. bar. 1 1 1 1 1')],
    additional: [parseRR('x.example.com. 5 IN AAAA ::1')],
  });
  assert.ok(scanResponse(nodata, nodata.length, s));
  assert.equal(answerHasType(s, nodata, QType.AAAA), false, 'an AAAA in additional does not count');
  assert.equal(authoritySoaTtl(s, nodata), 80, 'the last SOA, as CoreDNS loops');
});

const client = { id: 42, flags: Flag.RD, qtype: QType.AAAA, qclass: 1, name: () => 'Example.com.' };
const wkp = (() => {
  const p = parseCidr('64:ff9b::/96')!;
  return { bytes: p.bytes, length: p.length };
})();

test('synthesizeDns64: CoreDNS "standard flow": A records become AAAA, TTL bounded by the SOA TTL', () => {
  const a = response({
    question: [{ name: 'example.com.', type: QType.A, class: 1 }],
    answer: [parseRR('example.com. 60 IN A 192.0.2.42'), parseRR('example.com. 5000 IN A 192.0.2.43')],
  });
  const out = decodeMessage(synthesizeDns64(client, a, a.length, wkp, 70));
  assert.equal(out.id, 42);
  assert.equal(out.flags & Flag.QR, Flag.QR);
  assert.equal(out.flags & Flag.RD, Flag.RD);
  assert.equal(out.flags & Flag.RA, Flag.RA, 'RA as the A response had it');
  assert.equal(out.flags & Flag.AA, 0);
  assert.equal(out.rcode, 0);
  assert.deepEqual(out.question, [{ name: 'Example.com.', type: QType.AAAA, class: 1 }]);
  assert.deepEqual(out.answer.map(formatRR), ['example.com.\t60\tIN\tAAAA\t64:ff9b::c000:22a', 'example.com.\t70\tIN\tAAAA\t64:ff9b::c000:22b']);
});

test('synthesizeDns64: CNAME chain kept, authority/additional/OPT of the A response passed, TC kept, 600 s default bound', () => {
  const a = response({
    flags: Flag.QR | Flag.RD | Flag.RA | Flag.TC,
    question: [{ name: 'www.example.com.', type: QType.A, class: 1 }],
    answer: [parseRR('www.example.com. 3600 IN CNAME example.com.'), parseRR('example.com. 3600 IN A 10.1.2.3')],
    authority: [parseRR('example.com. 3600 IN NS ns.example.com.')],
    additional: [parseRR('ns.example.com. 3600 IN A 10.0.0.53')],
    edns: { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [{ code: 3, data: Uint8Array.from([1, 2]) }] },
  });
  const out = decodeMessage(synthesizeDns64({ ...client, name: () => 'www.example.com.' }, a, a.length, wkp, 600));
  assert.deepEqual(out.answer.map(formatRR), ['www.example.com.\t3600\tIN\tCNAME\texample.com.', 'example.com.\t600\tIN\tAAAA\t64:ff9b::a01:203']);
  assert.deepEqual(out.authority.map(formatRR), ['example.com.\t3600\tIN\tNS\tns.example.com.']);
  assert.deepEqual(out.additional.map(formatRR), ['ns.example.com.\t3600\tIN\tA\t10.0.0.53'], 'additional A records are not translated (RFC 6147 §5.3.2)');
  assert.equal(out.edns?.udpSize, 1232);
  assert.deepEqual(
    out.edns?.options.map((o) => o.code),
    [3],
  );
  assert.equal(out.flags & Flag.TC, Flag.TC);
});

test('synthesizeDns64: CoreDNS "a empty": no A records, the A response SOA in authority', () => {
  const a = response({
    question: [{ name: 'example.com.', type: QType.A, class: 1 }],
    authority: [parseRR('example.com. 3600 IN SOA foo. bar. 1 7200 900 1209600 86400')],
  });
  const out = decodeMessage(synthesizeDns64(client, a, a.length, wkp, 3600));
  assert.equal(out.rcode, 0);
  assert.equal(out.answer.length, 0);
  assert.equal(out.authority.length, 1);
  assert.equal(out.authority[0]!.type, QType.SOA);
});

test('synthesizeDns64: a malformed A response throws WireError (never reads past the end)', () => {
  const a = response({ question: [{ name: 'example.com.', type: QType.A, class: 1 }], answer: [parseRR('example.com. 60 IN A 192.0.2.42')] });
  assert.throws(() => synthesizeDns64(client, a, a.length - 3, wkp, 600), { name: 'WireError' });
});
