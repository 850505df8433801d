import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizeZone, parseServerKey } from './address.ts';
import { CorefileError } from './errors.ts';
import type { Token } from './types.ts';

const key = (text: string): Token => ({ text, file: 'Corefile', line: 7, quoted: false });

test('parseServerKey: table', () => {
  const cases: Array<[string, string, number | null]> = [
    ['cluster.local:53', 'cluster.local.', 53],
    ['cluster.local.', 'cluster.local.', null],
    ['cluster.local', 'cluster.local.', null],
    ['.:53', '.', 53],
    ['.', '.', null],
    [':53', '.', 53],
    ['dns://.:53', '.', 53],
    ['dns://cluster.local', 'cluster.local.', null],
    ['DNS://Example.ORG:1053', 'example.org.', 1053],
    ['Cluster.Local:53', 'cluster.local.', 53],
    ['in-addr.arpa:53', 'in-addr.arpa.', 53],
    ['ip6.arpa:53', 'ip6.arpa.', 53],
    ['example.org:0', 'example.org.', 0],
    ['example.org:65535', 'example.org.', 65535],
    ['example.org:053', 'example.org.', 53],
    ['*.example.org', '*.example.org.', null],
    ['a\\.b.example.', 'a\\.b.example.', null],
    // CIDR keys become reverse zones (octet / nibble aligned).
    ['10.0.0.0/8', '10.in-addr.arpa.', null],
    ['10.0.0.0/24', '0.0.10.in-addr.arpa.', null],
    ['10.1.2.0/24:53', '2.1.10.in-addr.arpa.', 53],
    ['172.16.0.0/16', '16.172.in-addr.arpa.', null],
    ['10.0.0.5/32', '5.0.0.10.in-addr.arpa.', null],
    ['10.0.0.5/24', '0.0.10.in-addr.arpa.', null],
    ['0.0.0.0/0', 'in-addr.arpa.', null],
    ['dns://192.168.0.0/16:5353', '168.192.in-addr.arpa.', 5353],
    ['fd00::/8', 'd.f.ip6.arpa.', null],
    ['fd00::/8:53', 'd.f.ip6.arpa.', 53],
    ['2001:db8::/32', '8.b.d.0.1.0.0.2.ip6.arpa.', null],
    ['2001:DB8:1::/48', '1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.', null],
    ['::/0', 'ip6.arpa.', null],
    ['::1/128', '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.', null],
    ['::ffff:10.0.0.0/100', `0.f.f.f.f.${'0.'.repeat(20)}ip6.arpa.`, null],
  ];
  for (const [text, zone, port] of cases) {
    assert.deepEqual(parseServerKey(key(text)), { scheme: 'dns', zone, port }, text);
  }
});

test('parseServerKey: errors carry the key position', () => {
  const cases: Array<[string, string]> = [
    ['tls://.:853', "scheme 'tls://' in server key 'tls://.:853': only dns:// is served by node-local-dns"],
    ['https://.:443', "scheme 'https://' in server key 'https://.:443': only dns:// is served by node-local-dns"],
    ['grpc://.', "scheme 'grpc://' in server key 'grpc://.': only dns:// is served by node-local-dns"],
    ['quic://.:853', "scheme 'quic://' in server key 'quic://.:853': only dns:// is served by node-local-dns"],
    ['foo://.', "unknown scheme 'foo://' in server key 'foo://.': only dns:// is served by node-local-dns"],
    ['example.org:', 'expecting data after last colon: "example.org:"'],
    ['example.org:65536', "port 65536 out of range 0..65535 in server key 'example.org:65536'"],
    ['example.org:http', "invalid port 'http' in server key 'example.org:http'"],
    ['a..b', "zone is not a valid domain name: a..b. (empty label) in server key 'a..b'"],
    // Long words are quoted by their first 16 characters (errors.ts excerpt).
    [`${'a'.repeat(64)}.org`, `zone is not a valid domain name: ${'a'.repeat(16)}... (label longer than 63) in server key '${'a'.repeat(16)}...'`],
    [`${'abcdefg.'.repeat(32)}`, `specified zone is too long: 255 > 253 in server key '${'abcdefg.'.repeat(2)}...'`],
    ['10.0.0.0/20', "reverse zone CIDR '10.0.0.0/20' must have a prefix length that is a multiple of 8"],
    ['10.0.0.0/33', "invalid CIDR '10.0.0.0/33': prefix longer than 32"],
    ['fd00::/10', "reverse zone CIDR 'fd00::/10' must have a prefix length that is a multiple of 4"],
    ['10.0.0/8', "invalid CIDR '10.0.0/8'"],
    ['010.0.0.0/8', "invalid CIDR '010.0.0.0/8'"],
    ['fe80::1%eth0/64', "invalid CIDR 'fe80::1%eth0/64'"],
    ['a/b', "invalid CIDR 'a/b'"],
  ];
  for (const [text, detail] of cases) {
    assert.throws(
      () => parseServerKey(key(text)),
      (err: unknown) =>
        err instanceof CorefileError && err.message === `Corefile:7 - Error during parsing: ${detail}` && err.file === 'Corefile' && err.line === 7,
      text,
    );
  }
});

test('normalizeZone: lower case, fully qualified', () => {
  const cases: Array<[string, string]> = [
    ['', '.'],
    ['.', '.'],
    ['Cluster.Local', 'cluster.local.'],
    ['cluster.local.', 'cluster.local.'],
    ['a\\.', 'a\\..'],
    ['a\\\\.', 'a\\\\.'],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeZone(input), expected, input);
});
