/** TCP framing (FrameBuffer, FrameReader): moved here from forward's transport-tcp tests with the code. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FrameBuffer, FrameReader, frameInto } from './tcp-frame.ts';

function framed(msgs: Buffer[]): Buffer {
  return Buffer.concat(
    msgs.flatMap((m) => {
      const l = Buffer.alloc(2);
      l.writeUInt16BE(m.length);
      return [l, m];
    }),
  );
}

test('FrameReader: frames split anywhere (even inside the length prefix) and batched come out whole and in order', () => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ minLength: 12, maxLength: 600 }), { minLength: 1, maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 20 }),
      (msgs, cuts) => {
        const stream = framed(msgs.map((m) => Buffer.from(m)));
        const got: Buffer[] = [];
        const r = new FrameReader((f) => got.push(f));
        let off = 0;
        let i = 0;
        while (off < stream.length) {
          const n = cuts[i++ % cuts.length]!;
          assert.equal(r.push(stream.subarray(off, off + n)), true);
          off += n;
        }
        assert.equal(got.length, msgs.length);
        got.forEach((g, k) => assert.deepEqual(new Uint8Array(g), msgs[k]));
        assert.equal(r.idle, true);
      },
    ),
  );
});

test('FrameReader: delivered frames are copies (the chunk can be reused)', () => {
  const got: Buffer[] = [];
  const r = new FrameReader((f) => got.push(f));
  const chunk = framed([Buffer.alloc(12, 7)]);
  r.push(chunk);
  chunk.fill(0);
  assert.deepEqual(got[0], Buffer.alloc(12, 7));
});

test('FrameReader: length 0 or shorter than a header is a framing error', () => {
  for (const len of [0, 1, 11]) {
    const r = new FrameReader(() => assert.fail('no frame expected'));
    const b = Buffer.alloc(2 + len);
    b.writeUInt16BE(len);
    assert.equal(r.push(b), false);
    assert.equal(r.badLength, len);
  }
  // Split inside the prefix, too.
  const r = new FrameReader(() => assert.fail('no frame expected'));
  assert.equal(r.push(Buffer.from([0])), true);
  assert.equal(r.push(Buffer.from([5, 1, 2])), false);
});

test('FrameReader: arbitrary bytes never throw', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 10 }), (chunks) => {
      const r = new FrameReader(() => {});
      for (const c of chunks) if (!r.push(Buffer.from(c))) break;
    }),
  );
});

test('FrameBuffer: views without copy, one join for a frame split across chunks, compact keeps only the rest', () => {
  const a = Buffer.alloc(12, 1);
  const b = Buffer.alloc(20, 2);
  const out = Buffer.alloc(2 + 12 + 2 + 20);
  frameInto(out, a, 12);
  frameInto(out.subarray(14), b, 20);
  const fb = new FrameBuffer();
  fb.push(out.subarray(0, 20));
  assert.equal(fb.nextLength(), 12);
  const first = fb.take(false)!;
  assert.equal(first.buffer, out.buffer, 'a frame within one chunk is a view');
  assert.deepEqual(first, a);
  assert.equal(fb.nextLength(), 20);
  assert.equal(fb.take(false), null, 'incomplete');
  fb.compact();
  fb.push(out.subarray(20));
  assert.equal(fb.hasFrame(), true);
  assert.deepEqual(fb.take(false), b);
  assert.equal(fb.bytes, 0);
  assert.equal(fb.nextLength(), -1);
});
