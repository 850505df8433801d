/** The full rcode of upstream replies (moved here from forward's tests with fullRcode, now scanResponse's). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ResponseScan, scanResponse } from './message.ts';
import { isHeaderOnlyError, replyFullRcode } from './reply.ts';
import { answerFor, clientQuery } from '../../test/lib/forward-testing.ts';

/** A reply with no question: the query's ID, QR, the rcode, and an OPT carrying extRcode when >= 0. */
function headerOnly(query: Buffer, rcode: number, extRcode = -1): Buffer {
  const opt = extRcode >= 0 ? Buffer.from([0, 0, 41, 0x04, 0xd0, extRcode, 0, 0, 0, 0, 0]) : Buffer.alloc(0);
  const h = Buffer.alloc(12);
  h[0] = query[0]!;
  h[1] = query[1]!;
  h[2] = 0x80 | (query[2]! & 0x79);
  h[3] = rcode & 0x0f;
  h[11] = extRcode >= 0 ? 1 : 0;
  return Buffer.concat([h, opt]);
}

test('replyFullRcode (scanResponse) reads the OPT of a reply without a question', () => {
  const scan = new ResponseScan();
  const q = clientQuery('x.example.org').req.msg;
  const m = headerOnly(q, 3, 2);
  assert.equal(replyFullRcode(m, m.length, scan), 0x23);
  const cut = m.subarray(0, 15);
  assert.equal(replyFullRcode(cut, cut.length, scan), 3, 'a truncated OPT gives the header rcode');
  assert.equal(isHeaderOnlyError(m, m.length, scan), true);
  assert.equal(isHeaderOnlyError(headerOnly(q, 0), 12, scan), false, 'NOERROR without a question is not an error reply');
  assert.equal(scanResponse(m, m.length, scan), false, 'without noQuestion a reply must carry its question');
});

test('replyFullRcode merges the OPT extended rcode (RFC 6891 §6.1.3)', () => {
  const scan = new ResponseScan();
  const q = clientQuery('x.example', 'A', { edns: true });
  const r = answerFor(Buffer.from(q.req.msg.subarray(0, q.req.msgLen)), { ip: '192.0.2.1' });
  assert.equal(replyFullRcode(r, r.length, scan), 0);
  // Append an OPT with extended rcode 1 → BADVERS (16).
  const opt = Buffer.from([0, 0, 41, 4, 0, 1, 0, 0, 0, 0, 0]);
  const withOpt = Buffer.concat([r, opt]);
  withOpt.writeUInt16BE(1, 10);
  assert.equal(replyFullRcode(withOpt, withOpt.length, scan), 16);
  assert.equal(scanResponse(withOpt, withOpt.length, scan), true);
  assert.equal(scan.rcode, 16);
  // Truncated garbage after the question: header rcode.
  const broken = Buffer.from(withOpt.subarray(0, withOpt.length - 3));
  assert.equal(replyFullRcode(broken, broken.length, scan), 0);
});
