import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, truncateSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RecordType } from 'dns-packet';
import { parseCorefile } from '../../corefile/parser.ts';
import { MemoryLogger } from '../../../test/lib/metrics-testing.ts';
import { SnapshotBuilder } from '../../metrics/snapshot.ts';
import type { BlockInfo } from '../../plugin.ts';
import { HostsPlugin, MAX_HOSTS_FILE_BYTES } from './hosts.ts';
import { parseHosts } from './setup.ts';
import { makeQuery, NextHandler } from '../../../test/lib/hosts-testing.ts';

const dir = mkdtempSync(join(tmpdir(), 'nld-hosts-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));

// CoreDNS's hosts_test.go data, in our own fixture file.
const EXAMPLE = `
127.0.0.1 localhost localhost.domain
::1 localhost localhost.domain
10.0.0.1 example.org
::FFFF:10.0.0.2 example.com
10.0.0.3 fallthrough-example.org
1.2.3.4 aa.example.com
5.6.7.8 *.apps.example.com
reload 5s
timeout 3600
`;

let fileNo = 0;
function fixture(text: string): string {
  const p = join(dir, `hosts-${fileNo++}`);
  writeFileSync(p, text);
  return p;
}

/** A started plugin from `hosts PATH ARGS { BODY }` with its file read. */
async function plugin(t: { after: (fn: () => void) => void }, path: string, args = '', body = '', log = new MemoryLogger()): Promise<HostsPlugin> {
  const text = `hosts ${path} ${args}${body === '' ? '' : ` {\n${body}\n}`}`;
  const d = parseCorefile(`. {\n${text}\n}\n`, 'Corefile', {})[0]!.directives[0]!;
  const p = new HostsPlugin(parseHosts(d, ['.']).options, { log });
  p.start();
  t.after(() => p.stop());
  await p.idle();
  return p;
}

function ask(p: HostsPlugin, name: string, type: RecordType, opts: { edns?: boolean; tcp?: boolean; udpSize?: number } = {}) {
  const next = new NextHandler();
  const { req, out } = makeQuery(name, type, opts);
  p.compose(next).serve(req);
  return { next: next.calls, msg: out.last, req, raw: out.sent[out.sent.length - 1]! };
}

const rrs = (m: { answers?: { name: string; type: string; ttl?: number; data?: unknown }[] }) =>
  (m.answers ?? []).map((a) => `${a.name} ${a.ttl} ${a.type} ${String(a.data)}`);

test("hosts: answers as CoreDNS's hosts_test.go cases state", async (t) => {
  const p = await plugin(t, fixture(EXAMPLE));
  const rows: [string, RecordType, string[]][] = [
    ['example.org.', 'A', ['example.org 3600 A 10.0.0.1']],
    ['example.com.', 'A', ['example.com 3600 A 10.0.0.2']],
    ['localhost.', 'AAAA', ['localhost 3600 AAAA ::1']],
    ['1.0.0.10.in-addr.arpa.', 'PTR', ['1.0.0.10.in-addr.arpa 3600 PTR example.org']],
    ['2.0.0.10.in-addr.arpa.', 'PTR', ['2.0.0.10.in-addr.arpa 3600 PTR example.com']],
    ['1.0.0.127.in-addr.arpa.', 'PTR', ['1.0.0.127.in-addr.arpa 3600 PTR localhost', '1.0.0.127.in-addr.arpa 3600 PTR localhost.domain']],
    ['example.org.', 'AAAA', []],
    ['example.org.', 'MX', []],
    ['apps.example.com.', 'A', []], // the wildcard *.apps.example.com needs one more label
    ['x.apps.example.com.', 'A', ['x.apps.example.com 3600 A 5.6.7.8']],
    ['aa.example.com.', 'A', ['aa.example.com 3600 A 1.2.3.4']],
  ];
  for (const [name, type, want] of rows) {
    const r = ask(p, name, type);
    if (name === 'apps.example.com.') {
      assert.equal(r.msg.rcode, 'SERVFAIL', name);
      continue;
    }
    assert.equal(r.next, 0, `${name} ${type} answered by hosts`);
    assert.equal(r.msg.rcode, 'NOERROR', `${name} ${type}`);
    assert.equal(r.msg.flag_aa, true, `${name} ${type}: authoritative`);
    assert.deepEqual(rrs(r.msg), want, `${name} ${type}`);
  }
});

test('hosts: the answer owner is the query name in lower case; question, ID, RD echoed; EDNS mirrored', async (t) => {
  const p = await plugin(t, fixture(EXAMPLE));
  const r = ask(p, 'Example.ORG.', 'A', { edns: true, udpSize: 1400 });
  assert.equal(r.msg.id, 4242);
  assert.equal(r.msg.flag_rd, true);
  assert.equal(r.msg.flag_ra, false);
  assert.equal(r.msg.questions![0]!.name, 'Example.ORG');
  assert.equal(r.msg.answers![0]!.name, 'example.org');
  const opt = r.msg.additionals!.find((a) => a.type === 'OPT') as { udpPayloadSize: number } | undefined;
  assert.equal(opt?.udpPayloadSize, 1400);
  assert.equal(ask(p, 'example.org.', 'A').msg.additionals!.length, 0, 'no OPT without one in the query');
});

test('hosts: no record for the name: SERVFAIL (uncacheable) without fallthrough, the next plugin with it', async (t) => {
  const path = fixture(EXAMPLE);
  const p = await plugin(t, path);
  for (const type of ['A', 'AAAA', 'TXT'] as RecordType[]) {
    const r = ask(p, 'missing.example.', type);
    assert.equal(r.next, 0);
    assert.equal(r.msg.rcode, 'SERVFAIL', type);
    assert.equal(r.msg.flag_aa, false);
    assert.equal(r.req.errorReply, true, 'made-up error: no cache stores it');
  }
  const f = await plugin(t, path, '', 'fallthrough');
  assert.equal(ask(f, 'missing.example.', 'A').next, 1);
  assert.equal(ask(f, 'missing.example.', 'TXT').next, 1);
  // A name with an address of the other family is NODATA, never fallthrough.
  const r = ask(f, 'example.org.', 'AAAA');
  assert.equal(r.next, 0);
  assert.deepEqual([r.msg.rcode, r.msg.flag_aa, rrs(r.msg)], ['NOERROR', true, []]);
  // fallthrough limited to zones
  const z = await plugin(t, path, '', 'fallthrough example.net');
  assert.equal(ask(z, 'missing.example.net.', 'A').next, 1);
  assert.equal(ask(z, 'missing.example.org.', 'A').msg.rcode, 'SERVFAIL');
});

test('hosts: names outside ZONES go on, except PTR; PTR without names goes on', async (t) => {
  const p = await plugin(t, fixture('10.0.0.1 a.example.org b.example.net\n'), 'example.org');
  assert.deepEqual(rrs(ask(p, 'a.example.org.', 'A').msg), ['a.example.org 3600 A 10.0.0.1']);
  assert.equal(ask(p, 'b.example.net.', 'A').next, 1, 'not in the zones: next plugin, no SERVFAIL');
  assert.equal(ask(p, 'missing.example.org.', 'A').msg.rcode, 'SERVFAIL');
  // PTR is answered outside the zones, with the names in the zones only.
  assert.deepEqual(rrs(ask(p, '1.0.0.10.in-addr.arpa.', 'PTR').msg), ['1.0.0.10.in-addr.arpa 3600 PTR a.example.org']);
  assert.equal(ask(p, '2.0.0.10.in-addr.arpa.', 'PTR').next, 1);
  assert.equal(ask(p, 'a.example.org.', 'PTR').next, 1, 'a PTR for a non-reverse name goes on');
});

test('hosts: IPv6 reverse, IPv4-mapped reverse, no_reverse, ttl', async (t) => {
  const path = fixture('fdfc:a744:27b5:3b0e::1 example.com example\n::ffff:10.0.0.2 mapped.example\n');
  const p = await plugin(t, path, '', 'ttl 60');
  assert.deepEqual(rrs(ask(p, 'example.com.', 'AAAA').msg), ['example.com 60 AAAA fdfc:a744:27b5:3b0e::1']);
  assert.deepEqual(rrs(ask(p, '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.0.b.3.5.b.7.2.4.4.7.a.c.f.d.f.ip6.arpa.', 'PTR').msg), [
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.0.b.3.5.b.7.2.4.4.7.a.c.f.d.f.ip6.arpa 60 PTR example.com',
    '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.0.b.3.5.b.7.2.4.4.7.a.c.f.d.f.ip6.arpa 60 PTR example',
  ]);
  assert.deepEqual(rrs(ask(p, 'mapped.example.', 'A').msg), ['mapped.example 60 A 10.0.0.2']);
  assert.deepEqual(rrs(ask(p, '2.0.0.10.in-addr.arpa.', 'PTR').msg), ['2.0.0.10.in-addr.arpa 60 PTR mapped.example']);
  const n = await plugin(t, path, '', 'no_reverse');
  assert.equal(ask(n, '2.0.0.10.in-addr.arpa.', 'PTR').next, 1);
  assert.deepEqual(rrs(ask(n, 'mapped.example.', 'A').msg), ['mapped.example 3600 A 10.0.0.2']);
});

test("hosts: inline entries are answered after the file's, and alone when the file is missing", async (t) => {
  const p = await plugin(t, fixture('10.0.0.1 example.org\n'), '', '10.0.0.2 example.org\n10.0.0.3 inline.example\nfallthrough');
  assert.deepEqual(rrs(ask(p, 'example.org.', 'A').msg), ['example.org 3600 A 10.0.0.1', 'example.org 3600 A 10.0.0.2']);
  assert.deepEqual(rrs(ask(p, 'inline.example.', 'A').msg), ['inline.example 3600 A 10.0.0.3']);
  const m = await plugin(t, join(dir, 'missing'), '', '10.0.0.3 inline.example');
  assert.deepEqual(rrs(ask(m, 'inline.example.', 'A').msg), ['inline.example 3600 A 10.0.0.3']);
});

test('hosts: fallthrough_unsupported sends other types of known names on', async (t) => {
  const path = fixture(EXAMPLE);
  const p = await plugin(t, path, '', 'fallthrough\nfallthrough_unsupported');
  assert.equal(ask(p, 'example.org.', 'TXT').next, 1);
  assert.equal(ask(p, 'example.org.', 'AAAA').next, 0, 'A/AAAA stay NODATA');
  const z = await plugin(t, path, '', 'fallthrough example.net\nfallthrough_unsupported');
  const r = ask(z, 'example.org.', 'TXT');
  assert.deepEqual([r.next, r.msg.rcode, r.msg.flag_aa], [0, 'NOERROR', true], 'outside the fallthrough zones: NODATA');
});

test("hosts: a huge answer is truncated to the client's size with TC", async (t) => {
  const lines: string[] = [];
  for (let i = 0; i < 300; i++) lines.push(`0.0.0.0 blocked${i}.example`);
  const p = await plugin(t, fixture(lines.join('\n')));
  const r = ask(p, '0.0.0.0.in-addr.arpa.', 'PTR');
  assert.equal(r.msg.flag_tc, true);
  assert.ok(r.raw.length <= 512, String(r.raw.length));
  const tcp = ask(p, '0.0.0.0.in-addr.arpa.', 'PTR', { tcp: true });
  assert.equal(tcp.msg.answers!.length, 300);
  assert.equal(tcp.msg.flag_tc, false);
});

test('hosts: reload on change, keeps the last entries when the file goes, logs once, metrics', async (t) => {
  const path = fixture('10.0.0.1 one.example\n');
  const log = new MemoryLogger();
  const p = await plugin(t, path, '', 'reload 0\n10.9.9.9 inline.example', log);
  const metrics = () => {
    const out = new SnapshotBuilder();
    p.collect({} as BlockInfo, out);
    return Object.fromEntries(out.build().families.map((f) => [f.name, f.samples.map((s) => [s.labels, s.value])]));
  };
  // one.example A + its PTR + inline A + its PTR
  assert.deepEqual(metrics().coredns_hosts_entries, [[{ hostsfile: path }, 4]]);
  utimesSync(path, 1_700_000_000, 1_700_000_000);
  writeFileSync(path, '10.0.0.2 two.example three.example\n');
  utimesSync(path, 1_700_000_000.5, 1_700_000_000.5);
  await p.checkNow();
  assert.equal(ask(p, 'one.example.', 'A').msg.rcode, 'SERVFAIL');
  assert.deepEqual(rrs(ask(p, 'two.example.', 'A').msg), ['two.example 3600 A 10.0.0.2']);
  const m = metrics();
  assert.deepEqual(m.coredns_hosts_entries, [[{ hostsfile: path }, 4 + 2]]);
  assert.deepEqual(m.coredns_hosts_reload_timestamp_seconds, [[{}, 1_700_000_000.5]], "the file's mtime, as CoreDNS");

  // Same size, new mtime: re-read.
  writeFileSync(path, '10.0.0.3 two.example three.example\n');
  utimesSync(path, 1_700_000_100, 1_700_000_100);
  await p.checkNow();
  assert.deepEqual(rrs(ask(p, 'two.example.', 'A').msg), ['two.example 3600 A 10.0.0.3']);

  // Gone: the last entries stay, one warning however many checks.
  unlinkSync(path);
  await p.checkNow();
  await p.checkNow();
  await p.checkNow();
  assert.deepEqual(rrs(ask(p, 'two.example.', 'A').msg), ['two.example 3600 A 10.0.0.3']);
  assert.deepEqual(log.lines, [`WARNING plugin/hosts: ${path}: cannot be read: ENOENT; keeping the 4 entries read before`]);
  // A FIFO in its place: refused without blocking, logged once, entries kept.
  execFileSync('mkfifo', [path]);
  await p.checkNow();
  await p.checkNow();
  assert.equal(log.lines.length, 2);
  assert.match(log.lines[1]!, /WARNING plugin\/hosts: .*: is not a regular file; keeping the 4 entries/);
  unlinkSync(path);
  // Over the size cap: refused, entries kept.
  writeFileSync(path, '');
  truncateSync(path, MAX_HOSTS_FILE_BYTES + 1);
  await p.checkNow();
  assert.match(log.lines[2]!, new RegExp(`WARNING plugin/hosts: ${path}: is larger than ${MAX_HOSTS_FILE_BYTES} bytes; keeping the 4 entries`));
  assert.deepEqual(rrs(ask(p, 'two.example.', 'A').msg), ['two.example 3600 A 10.0.0.3']);
  // Back: read again, logged once.
  writeFileSync(path, '10.0.0.4 four.example\n');
  await p.checkNow();
  await p.checkNow();
  assert.deepEqual(log.lines.slice(3), [`INFO plugin/hosts: ${path}: read again, 2 entries`]);
  assert.deepEqual(rrs(ask(p, 'four.example.', 'A').msg), ['four.example 3600 A 10.0.0.4']);
});

test('hosts: the reload timer picks up changes by itself; stop ends it', async (t) => {
  const path = fixture('10.0.0.1 one.example\n');
  const p = await plugin(t, path, '', 'reload 20ms');
  writeFileSync(path, '10.0.0.2 one.example and.more\n');
  const until = Date.now() + 5000;
  while (Date.now() < until && (ask(p, 'one.example.', 'A').msg.answers![0] as { data?: unknown }).data !== '10.0.0.2')
    await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(rrs(ask(p, 'one.example.', 'A').msg), ['one.example 3600 A 10.0.0.2']);
  p.stop();
  writeFileSync(path, '10.0.0.3 one.example and.more.more\n');
  await new Promise((r) => setTimeout(r, 100));
  assert.deepEqual(rrs(ask(p, 'one.example.', 'A').msg), ['one.example 3600 A 10.0.0.2'], 'no reads after stop');
});

test('hosts: queries before the first read wait for it; a reload takes over the entries', async (t) => {
  const path = fixture('10.0.0.1 early.example\n');
  const d = parseCorefile(`. {\nhosts ${path}\n}\n`, 'Corefile', {})[0]!.directives[0]!;
  const p = new HostsPlugin(parseHosts(d, ['.']).options, { log: new MemoryLogger() });
  t.after(() => p.stop());
  const { req, out } = makeQuery('early.example.', 'A');
  p.compose(new NextHandler()).serve(req);
  assert.equal(out.sent.length, 0, 'held until the file is read');
  p.start();
  await p.idle();
  assert.deepEqual(rrs(out.last), ['early.example 3600 A 10.0.0.1']);

  const q = new HostsPlugin(parseHosts(d, ['.']).options, { log: new MemoryLogger() });
  t.after(() => q.stop());
  q.takeOver(p);
  const r = ask(q, 'early.example.', 'A');
  assert.deepEqual(rrs(r.msg), ['early.example 3600 A 10.0.0.1'], 'served before the new instance starts');
});

test('hosts: an unexpected error in a timed check is logged and the timer goes on', async (t) => {
  const path = fixture('10.0.0.1 one.example\n');
  const log = new MemoryLogger();
  const p = await plugin(t, path, '', 'reload 20ms', log);
  const real = (p as unknown as { check: () => Promise<void> }).check.bind(p);
  let calls = 0;
  (p as unknown as { check: () => Promise<void> }).check = async () => {
    calls++;
    if (calls === 1) throw new Error('boom');
    return real();
  };
  writeFileSync(path, '10.0.0.2 one.example and.more\n');
  const until = Date.now() + 5000;
  while (Date.now() < until && calls < 3) await new Promise((r) => setTimeout(r, 10));
  await p.idle();
  assert.ok(calls >= 3, 'checks go on after the failed one');
  assert.deepEqual(log.lines, ['ERROR plugin/hosts: reading ' + path + ' failed: boom']);
  assert.deepEqual(rrs(ask(p, 'one.example.', 'A').msg), ['one.example 3600 A 10.0.0.2']);
});
