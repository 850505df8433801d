import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostsMap, lookupAddr, lookupHost, parseHostsText, parseHostsTextAsync, wildcardOf } from './hostsfile.ts';
import { addressFromReverse, ipText, parseIp } from './ip.ts';
import { ZoneList } from './zones.ts';

const ALL = { zones: new ZoneList(['.']), autoReverse: true };

test('ip: Go net.ParseIP acceptance and net.IP.String() text', () => {
  const rows: [string, string | null][] = [
    ['10.0.0.1', '10.0.0.1'],
    ['010.0.0.1', null], // leading zeros are refused (Go >= 1.17)
    ['1.2.3', null],
    ['256.0.0.1', null],
    ['::1', '::1'],
    ['::FFFF:10.0.0.2', '10.0.0.2'], // IPv4-mapped prints as IPv4
    ['::1.2.3.4', '::102:304'], // IPv4-compatible stays IPv6
    ['fe80::1%eth0', 'fe80::1'], // the zone is dropped
    ['2001:0DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'], // the longest zero run
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'], // the first of equal runs
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'], // a single zero group is not shortened
    ['1:2:3:4::5:6:7:8', null],
    ['example.org', null],
  ];
  for (const [text, want] of rows) {
    const ip = parseIp(text);
    assert.equal(ip === null ? null : ipText(ip), want, text);
  }
});

test('ip: reverse names to addresses (dnsutil.ExtractAddressFromReverse)', () => {
  const rows: [string, string][] = [
    ['1.0.0.10.in-addr.arpa.', '10.0.0.1'],
    ['0.10.in-addr.arpa.', ''], // not a whole address
    ['5.1.0.0.10.in-addr.arpa.', ''],
    ['01.0.0.10.in-addr.arpa.', ''],
    ['in-addr.arpa.', ''],
    ['example.org.', ''],
    ['b.a.9.8.7.6.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.', '2001:db8::567:89ab'],
    ['1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.', '::1'],
    // ::ffff:10.0.0.2 under ip6.arpa stands for the IPv4 address.
    ['2.0.0.0.0.0.a.0.f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa.', '10.0.0.2'],
    ['0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.', ''], // 24 nibbles
  ];
  for (const [name, want] of rows) assert.equal(addressFromReverse(name), want, name);
});

test('hosts file: comments, fields, families, case, FQDN, IPv4-mapped, duplicates', () => {
  const m = parseHostsText(
    [
      '# a comment line',
      '127.0.0.1 localhost localhost.domain',
      '::1 localhost localhost.domain   # trailing comment',
      '\t10.0.0.1\tExample.ORG\r',
      '::FFFF:10.0.0.2 example.com',
      'fe80::1%eth0 link.local.',
      '10.0.0.9',
      'notanip name.example',
      '10.0.0.3 dup.example',
      '10.0.0.3 dup.example',
      '10.0.0.4 fixed.example.test', // no newline at the end
    ].join('\n'),
    ALL,
  );
  assert.deepEqual(lookupHost(m, new HostsMap(), 'localhost.', true), ['127.0.0.1']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'localhost.', false), ['::1']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'example.org.', true), ['10.0.0.1']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'example.com.', true), ['10.0.0.2'], 'IPv4-mapped is IPv4');
  assert.deepEqual(lookupHost(m, new HostsMap(), 'example.com.', false), []);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'link.local.', false), ['fe80::1']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'dup.example.', true), ['10.0.0.3', '10.0.0.3']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'fixed.example.test.', true), ['10.0.0.4']);
  assert.deepEqual(lookupHost(m, new HostsMap(), 'name.example.', true), []);
  assert.deepEqual(lookupAddr(m, new HostsMap(), '127.0.0.1'), ['localhost.', 'localhost.domain.']);
  assert.deepEqual(lookupAddr(m, new HostsMap(), '10.0.0.2'), ['example.com.']);
  assert.deepEqual(lookupAddr(m, new HostsMap(), ''), []);
  // name4: 2+1+1+2+1 = 7 (localhost, localhost.domain, example.org, example.com, dup x2, fixed)
  // name6: 3 (localhost, localhost.domain, link.local); addr: 7 + 3 = 10
  assert.equal(m.count(), 7 + 3 + 10);
});

test('hosts file: names outside the zones are skipped; no_reverse makes no PTR entries', () => {
  const text = '10.0.0.1 a.example.org b.example.net\n';
  const m = parseHostsText(text, { zones: new ZoneList(['example.org.']), autoReverse: true });
  assert.deepEqual([...m.name4.keys()], ['a.example.org.']);
  assert.deepEqual(lookupAddr(m, new HostsMap(), '10.0.0.1'), ['a.example.org.']);
  const n = parseHostsText(text, { zones: new ZoneList(['.']), autoReverse: false });
  assert.equal(n.addr.size, 0);
  assert.equal(n.count(), 2);
});

test('hosts file: wildcards match one label, exact names win, and make no PTR', () => {
  const m = parseHostsText('192.168.1.10 *.example.com\n192.168.1.11 a.example.com\n', ALL);
  const none = new HostsMap();
  assert.deepEqual(lookupHost(m, none, 'a.example.com.', true), ['192.168.1.11']);
  assert.deepEqual(lookupHost(m, none, 'apps.example.com.', true), ['192.168.1.10']);
  assert.deepEqual(lookupHost(m, none, 'example.com.', true), []);
  assert.deepEqual(lookupHost(m, none, 'deep.apps.example.com.', true), []);
  assert.deepEqual(lookupAddr(m, none, '192.168.1.10'), []);
  assert.equal(wildcardOf('com.'), '');
  assert.equal(wildcardOf('.'), '');
  assert.equal(wildcardOf('a\\.b.com.'), '*.com.');
});

test('hosts file: file entries first, then inline ones (both are answered)', () => {
  const file = parseHostsText('10.0.0.1 example.org\n', ALL);
  const inline = parseHostsText('10.0.0.2 example.org\n10.0.0.1 other.org\n', ALL);
  assert.deepEqual(lookupHost(file, inline, 'example.org.', true), ['10.0.0.1', '10.0.0.2']);
  assert.deepEqual(lookupAddr(file, inline, '10.0.0.1'), ['example.org.', 'other.org.']);
});

test('hosts file: a line over 65535 bytes ends the parse (Go bufio.Scanner)', async () => {
  const text = `10.0.0.1 before.example\n10.0.0.2 ${'x'.repeat(70000)}\n10.0.0.3 after.example\n`;
  const m = parseHostsText(text, ALL);
  assert.deepEqual([...m.name4.keys()], ['before.example.']);
  const ok = `10.0.0.2 ${'y'.repeat(65535 - 9)}\n10.0.0.3 after.example\n`;
  assert.equal(parseHostsText(ok, ALL).name4.size, 2, 'a line of exactly 65535 bytes is read');
  const a = await parseHostsTextAsync(text, ALL, () => false);
  assert.deepEqual([...a!.name4.keys()], ['before.example.']);
});

test('hosts file: the background parse gives the same map and stops when cancelled', async () => {
  const lines: string[] = [];
  for (let i = 0; i < 10000; i++) lines.push(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255} host${i}.example`);
  const text = lines.join('\n');
  const a = await parseHostsTextAsync(text, ALL, () => false);
  assert.equal(a!.count(), parseHostsText(text, ALL).count());
  assert.equal(a!.count(), 20000);
  let calls = 0;
  assert.equal(await parseHostsTextAsync(text, ALL, () => ++calls > 2), null);
});
