import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { clampOptUdpSize } from './edns-size.ts';
import { Request } from '../server/request.ts';
import { parseQuery, ParseResult } from './query.ts';

function query(size: number | null): Request {
  const msg = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [{ name: 'example.org', type: 'A', class: 'IN' }],
    additionals: size === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: size, flags: dnsPacket.DNSSEC_OK } as unknown as dnsPacket.Answer],
  });
  const req = new Request(msg, msg.length, { writeMsg() {} });
  assert.equal(parseQuery(req), ParseResult.OK);
  return req;
}

test('lowers a larger size in place; keeps the DO bit and everything else', () => {
  const req = query(4096);
  const before = Buffer.from(req.msg);
  assert.equal(clampOptUdpSize(req.msg, req.msgLen, req.optOffset, 1232), 1232);
  const d = dnsPacket.decode(req.msg) as unknown as { additionals: { udpPayloadSize: number; flags: number }[] };
  assert.equal(d.additionals[0]!.udpPayloadSize, 1232);
  assert.equal(d.additionals[0]!.flags & dnsPacket.DNSSEC_OK, dnsPacket.DNSSEC_OK);
  let diff = 0;
  for (let i = 0; i < before.length; i++) if (before[i] !== req.msg[i]) diff++;
  assert.ok(diff >= 1 && diff <= 2, `${diff} bytes changed`);
});

test('never raises a size; equal and smaller sizes stay as they are', () => {
  for (const size of [512, 1000, 1232, 100, 1]) {
    const req = query(size);
    const before = Buffer.from(req.msg);
    assert.equal(clampOptUdpSize(req.msg, req.msgLen, req.optOffset, 1232), size);
    assert.deepEqual(req.msg, before);
  }
});

test('bounds: no OPT where it says, offsets out of range, a cut message: -1 and nothing written', () => {
  const req = query(4096);
  const before = Buffer.from(req.msg);
  assert.equal(clampOptUdpSize(req.msg, req.msgLen, -1, 1232), -1);
  assert.equal(clampOptUdpSize(req.msg, req.msgLen, 0, 1232), -1);
  assert.equal(clampOptUdpSize(req.msg, req.msgLen, 12, 1232), -1); // the question, not an OPT
  assert.equal(clampOptUdpSize(req.msg, req.msgLen - 1, req.optOffset, 1232), -1); // OPT runs past len
  assert.equal(clampOptUdpSize(req.msg, req.msgLen + 5, req.optOffset, 1232), -1); // len past the buffer
  assert.equal(clampOptUdpSize(req.msg, req.msgLen, req.msgLen, 1232), -1);
  assert.deepEqual(req.msg, before);
  // Every offset of a random buffer: never throws, writes only at a real OPT header.
  const junk = Buffer.alloc(64, 0xff);
  for (let off = -2; off < 70; off++) assert.equal(clampOptUdpSize(junk, junk.length, off, 1232), -1);
});
