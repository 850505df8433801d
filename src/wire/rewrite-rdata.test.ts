/** rewrite-rdata and rr-names: option payloads, NAPTR replacement access with bounds checks, name tables. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressBytes, addressFamily, clientSubnetData, naptrReplacement, uint16Bytes, withNaptrReplacement } from './rewrite-rdata.ts';
import { WireError } from './errors.ts';
import { classByName, rcodeByName, typeByName } from './rr-names.ts';

test('addresses: family as Go sees it, 4 or 16 bytes', () => {
  assert.equal(addressFamily('192.0.2.1'), 4);
  assert.equal(addressFamily('::ffff:192.0.2.1'), 4);
  assert.equal(addressFamily('2001:db8::1'), 6);
  assert.equal(addressFamily('nope'), 0);
  assert.deepEqual(addressBytes('::ffff:192.0.2.1', 4), Uint8Array.from([192, 0, 2, 1]));
  assert.deepEqual(addressBytes('192.0.2.1', 6), Uint8Array.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]));
  assert.deepEqual(addressBytes('::1', 6), Uint8Array.from([...new Array(15).fill(0), 1]));
  assert.deepEqual(addressBytes('fe80::1:2%eth0', 6), Uint8Array.from([0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]));
  assert.equal(addressBytes('2001:db8::1', 4), null);
  assert.deepEqual(uint16Bytes(0xabcd), Uint8Array.from([0xab, 0xcd]));
});

test('client subnet: masked and cut to whole bytes (RFC 7871 §6)', () => {
  assert.deepEqual(clientSubnetData('10.1.2.3', 24, 56), Uint8Array.from([0, 1, 24, 0, 10, 1, 2]));
  assert.deepEqual(clientSubnetData('10.1.2.3', 32, 56), Uint8Array.from([0, 1, 32, 0, 10, 1, 2, 3]));
  assert.deepEqual(clientSubnetData('10.1.255.3', 17, 56), Uint8Array.from([0, 1, 17, 0, 10, 1, 0x80]));
  assert.deepEqual(clientSubnetData('2001:db8::1', 24, 0), Uint8Array.from([0, 2, 0, 0]));
  assert.equal(clientSubnetData('', 24, 56), null);
  assert.throws(() => clientSubnetData('10.1.2.3', 33, 56), WireError);
});

test('NAPTR replacement: read and replaced; short or trailing rdata throws', () => {
  const rd = Uint8Array.from([0, 1, 0, 2, 1, 0x55, 0, 0, 1, 0x61, 4, 0x74, 0x65, 0x73, 0x74, 0]);
  assert.equal(naptrReplacement(rd), 'a.test.');
  const out = withNaptrReplacement(rd, 'bb.example.');
  assert.equal(naptrReplacement(out), 'bb.example.');
  assert.deepEqual(out.subarray(0, 8), rd.subarray(0, 8));
  assert.throws(() => naptrReplacement(rd.subarray(0, 6)), WireError);
  assert.throws(() => naptrReplacement(rd.subarray(0, 12)), WireError);
  assert.throws(() => naptrReplacement(Uint8Array.from([...rd, 1])), WireError);
  assert.throws(() => naptrReplacement(Uint8Array.from([0, 1, 0, 2, 9, 0x55])), WireError);
});

test('type, class and rcode names as miekg/dns spells them', () => {
  assert.equal(typeByName('HINFO'), 13);
  assert.equal(typeByName('ANY'), 255);
  assert.equal(typeByName('NSAP-PTR'), 23);
  assert.equal(typeByName('BOGUS'), -1);
  assert.equal(classByName('CH'), 3);
  assert.equal(classByName('XX'), -1);
  assert.equal(rcodeByName('SERVFAIL'), 2);
  assert.equal(rcodeByName('BADCOOKIE'), 23);
  assert.equal(rcodeByName('NOPE'), -1);
});

test('qnameLowerText: lower-cased text of a wire qname, escapes as qnameToString', async () => {
  const { qnameLowerText } = await import('./qname-text.ts');
  const { qnameToString, encodeName } = await import('./name.ts');
  for (const name of ['WWW.Example.ORG.', '.', 'a\\.b.c.', 'x\\\\y.', 'sp\\032ace.', 'hi\\255.z.']) {
    const wire = encodeName(name);
    assert.equal(qnameLowerText(wire, 0, wire.length), qnameToString(wire, 0, wire.length).toLowerCase(), name);
  }
  const wire = encodeName('a.b.');
  assert.equal(qnameLowerText(wire, 0, 3), 'a.', 'stops at the end given');
  assert.equal(qnameLowerText(Uint8Array.from([5, 0x61]), 0, 2), '.', 'a label running past the end is not read');
});
