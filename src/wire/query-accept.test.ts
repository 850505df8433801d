import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParseResult, parseQuery } from './query.ts';
import { encodeName } from './name.ts';
import { Request } from '../server/request.ts';

const sink = { writeMsg() {} };
const RR_A = [0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 1];
const OPT = [0, 0, 41, 0x10, 0, 0, 0, 0x80, 0, 0, 0];

function msg(an: number, ns: number, ar: number, records: number[]): Request {
  const b = Buffer.concat([
    Buffer.from([0x12, 0x34, 0x01, 0x00, 0, 1, 0, an, 0, ns, 0, ar]),
    encodeName('www.example.test.'),
    Buffer.from([0, 1, 0, 1]),
    Buffer.from(records),
  ]);
  return new Request(b, b.length, sink);
}

test("acceptance counts are miekg's DefaultMsgAcceptFunc: ANCOUNT <= 1, NSCOUNT <= 1, ARCOUNT <= 2", () => {
  assert.equal(parseQuery(msg(1, 0, 0, RR_A)), ParseResult.OK, 'an answer record (NOTIFY-shaped) is taken');
  assert.equal(parseQuery(msg(0, 1, 0, RR_A)), ParseResult.OK, 'an authority record (IXFR-shaped) is taken');
  assert.equal(parseQuery(msg(2, 0, 0, [...RR_A, ...RR_A])), ParseResult.FORMERR);
  assert.equal(parseQuery(msg(0, 2, 0, [...RR_A, ...RR_A])), ParseResult.FORMERR);
  assert.equal(parseQuery(msg(0, 0, 3, [...OPT, ...RR_A, ...RR_A])), ParseResult.FORMERR);
  // Every counted record must parse.
  assert.equal(parseQuery(msg(1, 0, 0, [])), ParseResult.FORMERR);
  assert.equal(parseQuery(msg(1, 0, 0, RR_A.slice(0, 12))), ParseResult.FORMERR);
});

test('the OPT is read from the additional section only, after answer and authority records', () => {
  const r = msg(1, 1, 1, [...RR_A, ...RR_A, ...OPT]);
  assert.equal(parseQuery(r), ParseResult.OK);
  assert.equal(r.edns, true);
  assert.equal(r.udpSize, 4096);
  assert.equal(r.dnssecOk, true);
  assert.equal(r.optOffset, 12 + 18 + 4 + 32);
  // An OPT-typed record in the answer section is just a record.
  const inAnswer = msg(1, 0, 0, OPT);
  assert.equal(parseQuery(inAnswer), ParseResult.OK);
  assert.equal(inAnswer.edns, false);
});
