import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { encodeDnstap, emptyTapMessage, ipToTapAddress, SocketFamily, SocketProtocol, TapType } from './dnstap-proto.ts';

/** A minimal protobuf reader for the test: field number -> list of raw values. */
function decode(buf: Uint8Array): Map<number, (number | Uint8Array)[]> {
  const out = new Map<number, (number | Uint8Array)[]>();
  let off = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[off++]!;
      v += (b & 0x7f) * mul;
      mul *= 128;
      if ((b & 0x80) === 0) return v;
    }
  };
  while (off < buf.length) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wt = key & 7;
    let val: number | Uint8Array;
    if (wt === 0) val = varint();
    else if (wt === 2) {
      const len = varint();
      val = buf.subarray(off, off + len);
      off += len;
    } else if (wt === 5) {
      val = Buffer.from(buf.buffer, buf.byteOffset + off, 4).readUInt32LE(0);
      off += 4;
    } else throw new Error(`wire type ${wt}`);
    assert.ok(off <= buf.length, 'field runs past the end');
    const l = out.get(field) ?? [];
    l.push(val);
    out.set(field, l);
  }
  return out;
}

const one = (m: Map<number, (number | Uint8Array)[]>, f: number): number | Uint8Array | undefined => m.get(f)?.[0];

test('encodeDnstap: header fields, type MESSAGE, nested message with every field', () => {
  const q = Buffer.from('abcd0100000100000000000003777777076578616d706c65036f72670000010001', 'hex');
  const m = emptyTapMessage(TapType.FORWARDER_RESPONSE);
  m.family = SocketFamily.INET;
  m.protocol = SocketProtocol.TCP;
  m.queryAddress = Uint8Array.of(127, 0, 0, 1);
  m.queryPort = 40000;
  m.responseAddress = Uint8Array.of(10, 0, 0, 53);
  m.responsePort = 53;
  // biome-ignore lint/correctness/noPrecisionLoss: a double as the encoder receives it; the test checks its rounding to nanoseconds
  m.queryTimeMs = 1_700_000_000_123.456789;
  m.responseTimeMs = 1_700_000_001_000;
  m.queryMessage = q;
  m.responseMessage = q;
  const buf = encodeDnstap({ identity: Buffer.from('node1'), version: Buffer.from('v1'), extra: Buffer.from('x') }, m, 4);
  assert.deepEqual([...buf.subarray(0, 4)], [0, 0, 0, 0]);
  const top = decode(buf.subarray(4));
  assert.equal(Buffer.from(one(top, 1) as Uint8Array).toString(), 'node1');
  assert.equal(Buffer.from(one(top, 2) as Uint8Array).toString(), 'v1');
  assert.equal(Buffer.from(one(top, 3) as Uint8Array).toString(), 'x');
  assert.equal(one(top, 15), 1);
  const msg = decode(one(top, 14) as Uint8Array);
  assert.equal(one(msg, 1), 8);
  assert.equal(one(msg, 2), 1);
  assert.equal(one(msg, 3), 2);
  assert.deepEqual([...(one(msg, 4) as Uint8Array)], [127, 0, 0, 1]);
  assert.deepEqual([...(one(msg, 5) as Uint8Array)], [10, 0, 0, 53]);
  assert.equal(one(msg, 6), 40000);
  assert.equal(one(msg, 7), 53);
  assert.equal(one(msg, 8), 1_700_000_000);
  assert.ok(Math.abs((one(msg, 9) as number) - 123_456_789) < 1000);
  assert.equal(one(msg, 12), 1_700_000_001);
  assert.equal(one(msg, 13), 0);
  assert.deepEqual(Buffer.from(one(msg, 10) as Uint8Array), q);
  assert.deepEqual(Buffer.from(one(msg, 14) as Uint8Array), q);
});

test('encodeDnstap: absent optional fields are not written; empty identity/version omitted; no extra', () => {
  const m = emptyTapMessage(TapType.CLIENT_QUERY);
  const buf = encodeDnstap({ identity: new Uint8Array(0), version: new Uint8Array(0), extra: null }, m);
  const top = decode(buf);
  assert.deepEqual(
    [...top.keys()].sort((a, b) => a - b),
    [14, 15],
  );
  const msg = decode(one(top, 14) as Uint8Array);
  assert.deepEqual([...msg.keys()], [1]);
  assert.equal(one(msg, 1), 5);
});

test('encodeDnstap: large messages use multi-byte length varints', () => {
  const m = emptyTapMessage(TapType.CLIENT_RESPONSE);
  m.responseMessage = Buffer.alloc(70_000, 7);
  const buf = encodeDnstap({ identity: Buffer.from('i'), version: Buffer.from('v'), extra: null }, m);
  const msg = decode(one(decode(buf), 14) as Uint8Array);
  assert.equal((one(msg, 14) as Uint8Array).length, 70_000);
});

test('ipToTapAddress: IPv4, IPv6 forms, IPv4-mapped IPv6 as INET, zones, garbage', () => {
  assert.deepEqual(ipToTapAddress('192.0.2.1'), { bytes: Uint8Array.of(192, 0, 2, 1), family: 1 });
  const v6 = ipToTapAddress('2001:db8::1')!;
  assert.equal(v6.family, 2);
  assert.equal(Buffer.from(v6.bytes).toString('hex'), '20010db8000000000000000000000001');
  assert.equal(Buffer.from(ipToTapAddress('::1')!.bytes).toString('hex'), '00000000000000000000000000000001');
  assert.equal(Buffer.from(ipToTapAddress('::')!.bytes).toString('hex'), '0'.repeat(32));
  assert.equal(Buffer.from(ipToTapAddress('fe80::1%eth0')!.bytes).toString('hex'), 'fe800000000000000000000000000001');
  assert.deepEqual(ipToTapAddress('::ffff:10.1.2.3'), { bytes: Uint8Array.of(10, 1, 2, 3), family: 1 });
  assert.equal(Buffer.from(ipToTapAddress('64:ff9b::192.0.2.33')!.bytes).toString('hex'), '0064ff9b0000000000000000c0000221');
  for (const bad of ['', '1.2.3', '1.2.3.256', '1::2::3', 'x::1', '1:2:3:4:5:6:7:8:9', 'example.org', '12345::']) {
    assert.equal(ipToTapAddress(bad), null, bad);
  }
});

test('encodeDnstap: a real decoder (dnstap-ldns -x) reads the payload', { skip: !existsSync('/usr/bin/dnstap-ldns') }, () => {
  const q = Buffer.from('abcd0100000100000000000003777777076578616d706c65036f72670000010001', 'hex');
  const m = emptyTapMessage(TapType.CLIENT_QUERY);
  m.family = SocketFamily.INET6;
  m.protocol = SocketProtocol.UDP;
  m.queryAddress = ipToTapAddress('2001:db8::7')!.bytes;
  m.queryPort = 5353;
  m.queryTimeMs = Date.UTC(2026, 0, 2, 3, 4, 5, 6);
  m.queryMessage = q;
  const hex = encodeDnstap({ identity: Buffer.from('id1'), version: Buffer.from('ver1'), extra: null }, m).toString('hex');
  const dir = mkdtempSync(path.join(tmpdir(), 'dnstap-proto-'));
  const file = path.join(dir, 'payload.hex');
  writeFileSync(file, hex + '\n');
  let out: string;
  try {
    out = execFileSync('/usr/bin/dnstap-ldns', ['-x', '-y', '-r', file]).toString();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.match(out, /type: MESSAGE/);
  assert.match(out, /identity: "id1"/);
  assert.match(out, /version: "ver1"/);
  assert.match(out, /type: CLIENT_QUERY/);
  assert.match(out, /socket_family: INET6/);
  assert.match(out, /socket_protocol: UDP/);
  assert.match(out, /query_address: "2001:db8::7"/);
  assert.match(out, /query_port: 5353/);
  assert.match(out, /query_time: !!timestamp 2026-01-02 03:04:05\.006/);
  assert.match(out, /id: 43981/);
  assert.match(out, /www\.example\.org\.\s+IN\s+A/);
});
