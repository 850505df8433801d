/**
 * Fuzz target for the forward plugin's TCP frame reassembler (FrameReader, RFC 1035 §4.2.2
 * length-prefixed messages): any stream of frames cut into any chunks comes out as the same
 * frames in order, as copies; a length below a DNS header stops the stream at that frame;
 * arbitrary bytes never throw.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameReader } from '../../src/wire/tcp-frame.ts';
import { params } from './lib.ts';

const arbFrame = fc.oneof(
  { weight: 6, arbitrary: fc.uint8Array({ minLength: 12, maxLength: 120 }) },
  { weight: 1, arbitrary: fc.integer({ min: 12, max: 65_535 }).map((n) => new Uint8Array(n).fill(n & 0xff)) },
);

function stream(frames: Uint8Array[]): Buffer {
  return Buffer.concat(frames.flatMap((f) => [Buffer.from([f.length >> 8, f.length & 0xff]), Buffer.from(f)]));
}

/** Cuts `b` at the given points (taken modulo its length, sorted, deduplicated). */
function chunks(b: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of [...at, b.length]) {
    if (c > prev) out.push(Buffer.from(b.subarray(prev, c)));
    prev = Math.max(prev, c);
  }
  return out;
}

test('FrameReader: frames cut anywhere come out whole, in order, as copies', () => {
  fc.assert(
    fc.property(fc.array(arbFrame, { maxLength: 12 }), fc.array(fc.nat(), { maxLength: 40 }), (frames, cuts) => {
      const got: Buffer[] = [];
      const r = new FrameReader((f) => got.push(f));
      for (const c of chunks(stream(frames), cuts)) {
        assert.equal(r.push(c), true);
        c.fill(0xee); // the reader must have copied what it keeps
      }
      assert.equal(got.length, frames.length);
      got.forEach((f, i) => assert.ok(Buffer.from(frames[i]!).equals(f), `frame ${i}`));
      assert.equal(r.idle, true);
    }),
    params(800),
  );
});

test('FrameReader: a length below a DNS header stops the stream at that frame', () => {
  fc.assert(
    fc.property(
      fc.array(arbFrame, { maxLength: 6 }),
      fc.nat(11),
      fc.array(arbFrame, { maxLength: 3 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (before, badLen, afterFrames, cuts) => {
        const bad = Buffer.concat([Buffer.from([0, badLen]), Buffer.alloc(badLen, 1)]);
        const all = Buffer.concat([stream(before), bad, stream(afterFrames)]);
        const got: Buffer[] = [];
        const r = new FrameReader((f) => got.push(f));
        let ok = true;
        for (const c of chunks(all, cuts)) {
          ok = r.push(c);
          if (!ok) break;
        }
        assert.equal(ok, false);
        assert.equal(r.badLength, badLen);
        assert.equal(got.length, before.length);
        got.forEach((f, i) => assert.ok(Buffer.from(before[i]!).equals(f)));
      },
    ),
    params(1_500),
  );
});

test('FrameReader: arbitrary bytes in arbitrary chunks never throw; what comes out is framed', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 20 }), (parts) => {
      let out = 0;
      let bytes = 0;
      const r = new FrameReader((f) => {
        assert.ok(f.length >= 12);
        out += f.length + 2;
      });
      for (const p of parts) {
        bytes += p.length;
        if (!r.push(Buffer.from(p))) break;
      }
      assert.ok(out <= bytes);
    }),
    params(1_500),
  );
});
