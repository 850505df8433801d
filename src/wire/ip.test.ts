import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ipBytes, ipv4Bytes, ipv6Bytes, ipv6GroupsText } from './ip.ts';

/** WHATWG URL's IPv6 serializer: the same RFC 5952 compression, from an independent implementation. */
function urlText(groups: readonly number[]): string {
  return new URL(`http://[${groups.map((g) => g.toString(16)).join(':')}]/`).hostname.slice(1, -1);
}

test('ipv6GroupsText: RFC 5952 text, as the WHATWG URL serializer writes it', () => {
  const group = fc.oneof(fc.constant(0), fc.constant(0), fc.integer({ min: 0, max: 0xffff }));
  fc.assert(
    fc.property(fc.array(group, { minLength: 8, maxLength: 8 }), (groups) => {
      assert.equal(ipv6GroupsText(groups), urlText(groups));
    }),
    { numRuns: 2000 },
  );
  assert.equal(ipv6GroupsText([0xfd00, 0, 0, 0, 0, 0, 0, 0x10]), 'fd00::10');
  assert.equal(ipv6GroupsText([1, 0, 0, 2, 0, 0, 0, 3]), '1:0:0:2::3');
  assert.equal(ipv6GroupsText([1, 0, 0, 2, 0, 0, 3, 4]), '1::2:0:0:3:4');
  assert.equal(ipv6GroupsText([1, 0, 2, 3, 4, 5, 6, 7]), '1:0:2:3:4:5:6:7');
  assert.equal(ipv6GroupsText([0, 0, 0, 0, 0, 0, 0, 0]), '::');
});

test('ipv6Bytes and ipv6GroupsText round-trip', () => {
  fc.assert(
    fc.property(fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 }), (groups) => {
      const bytes = ipv6Bytes(ipv6GroupsText(groups));
      assert.ok(bytes);
      assert.deepEqual(
        Array.from({ length: 8 }, (_, i) => (bytes[2 * i]! << 8) | bytes[2 * i + 1]!),
        groups,
      );
    }),
  );
});

test('ipv4Bytes, ipv6Bytes, ipBytes refuse what is not an address of the family', () => {
  assert.deepEqual(ipv4Bytes('198.18.0.10'), Uint8Array.from([198, 18, 0, 10]));
  assert.equal(ipv4Bytes('fd00::10'), null);
  assert.equal(ipv6Bytes('198.18.0.10'), null);
  assert.equal(ipv6Bytes('fe80::1%eth0'), null);
  assert.deepEqual(ipv6Bytes('::ffff:1.2.3.4')?.subarray(10), Uint8Array.from([0xff, 0xff, 1, 2, 3, 4]));
  assert.equal(ipBytes('not an address'), null);
  assert.equal(ipBytes('fd00::10')?.length, 16);
});
