import { test } from 'node:test';
import assert from 'node:assert/strict';
import { responseFlagsWord, responseFullRcode } from './response-fields.ts';
import { encodeMessage, parseRR } from './codec.ts';
import { Flag } from './codes.ts';

const msg = (rcode: number, edns: boolean) =>
  encodeMessage({
    id: 1,
    flags: Flag.QR | Flag.RD,
    rcode,
    question: [{ name: 'a.test.', type: 1, class: 1 }],
    answer: [parseRR('a.test. 60 IN A 192.0.2.1')],
    authority: [],
    additional: [parseRR('b.test. 60 IN A 192.0.2.2')],
    edns: edns ? { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [] } : null,
  });

test('responseFullRcode: header bits, plus the OPT extended bits past other records', () => {
  assert.equal(responseFullRcode(msg(3, false), msg(3, false).length), 3);
  assert.equal(responseFullRcode(msg(3, true), msg(3, true).length), 3);
  const bad = msg(16, true);
  assert.equal(responseFullRcode(bad, bad.length), 16);
  const cookie = msg(23, true);
  assert.equal(responseFullRcode(cookie, cookie.length), 23);
});

test('response fields: bounds — short messages and cut records never read past len', () => {
  const m = msg(23, true);
  assert.equal(responseFullRcode(m, 11), -1);
  assert.equal(responseFlagsWord(m, 11), -1);
  assert.equal(responseFlagsWord(m, 12), Flag.QR | Flag.RD | 7);
  // Cut inside the OPT: the header's 4 bits.
  assert.equal(responseFullRcode(m, m.length - 8), 7);
  assert.equal(responseFullRcode(m, m.length + 1), -1, 'len beyond the buffer');
  const header = Buffer.from([0, 1, 0x81, 0x02, 0, 0, 0, 0, 0, 0, 0, 1]);
  assert.equal(responseFullRcode(header, header.length), 2, 'ARCOUNT 1 with nothing there');
});
