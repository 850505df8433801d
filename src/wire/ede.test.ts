import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EDE_OPTION_CODE, edeOption, parseEde } from './ede.ts';

test('EDE option: 16-bit info code then UTF-8 text (RFC 8914 §2)', () => {
  const o = edeOption(21, 'Blocked according to RFC2606');
  assert.equal(o.code, EDE_OPTION_CODE);
  assert.deepEqual([...o.data.subarray(0, 2)], [0, 21]);
  assert.equal(Buffer.from(o.data.subarray(2)).toString('utf8'), 'Blocked according to RFC2606');
  assert.deepEqual([...edeOption(0x1234).data], [0x12, 0x34]);
  assert.deepEqual(parseEde(edeOption(65535, 'é').data), { infoCode: 65535, extraText: 'é' });
});

test('EDE option: out-of-range codes and short data are refused', () => {
  assert.throws(() => edeOption(65536), RangeError);
  assert.throws(() => edeOption(-1), RangeError);
  assert.throws(() => edeOption(1.5), RangeError);
  assert.throws(() => edeOption(1, 'x'.repeat(65534)), RangeError);
  assert.equal(parseEde(new Uint8Array([0])), null);
  assert.equal(parseEde(new Uint8Array(0)), null);
});
