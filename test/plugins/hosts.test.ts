/**
 * The hosts plugin end to end: the real agent (`node src/main.ts`), real upstreams (NSD for
 * example.test, Knot for cluster.local) and dig.
 *
 *  1. The field customisation: a node-local-dns Corefile (cluster.local block and `.` block, as
 *     node-cache ships them) with `hosts FILE { 198.18.0.5 fixed.example.test; fallthrough }`
 *     before `forward`: fixed names from hosts, every other name from the upstream; the answer
 *     of hosts cached by the block's `cache` (hosts comes after cache); its metrics scraped.
 *  2. A hosts file without fallthrough and `reload 200ms`: SERVFAIL for names not in it (never
 *     cached), NODATA for the other family, file changes picked up, cache hits not seen by
 *     hosts, a deleted file keeps serving its last entries with one warning.
 * The machine's /etc/hosts is never used: every hosts line names a fixture file.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, startAgent, startKnot, sleep, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { CLUSTER_LOCAL } from '../engine/zones.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { metricSum, scrape, startAgent as startFaultAgent } from '../fault/lib/agent.ts';

let nsd: RunningServer;
let knot: Authority;
let agent: AgentProcess;
let host: string;
let port: number;
let metricsPort: number;
let dir: string;
let fieldHosts: string;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'nld-hosts-e2e-'));
  fieldHosts = path.join(dir, 'field.hosts');
  writeFileSync(fieldHosts, '# nothing but the inline entries\n');
  nsd = await startNsd();
  knot = await startKnot({ 'cluster.local': CLUSTER_LOCAL });
  ({ host, port } = await freeAddress());
  metricsPort = (await freeAddress(host)).port;
  agent = await startAgent(`cluster.local:${port} {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    reload
    loop
    bind ${host}
    forward . ${knot.addr} {
        force_tcp
    }
    prometheus ${host}:${metricsPort}
}
.:${port} {
    errors
    cache 30
    reload
    loop
    bind ${host}
    hosts ${fieldHosts} {
        198.18.0.5 fixed.example.test
        fallthrough
    }
    forward . ${nsd.addr}
    prometheus ${host}:${metricsPort}
}
`);
});

after(async () => {
  const code = await agent?.stop();
  await nsd?.stop();
  await knot?.stop();
  rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

const q = (...args: string[]): Promise<DigResult> => dig(host, port, args);
const answers = (r: DigResult) => r.answer.map((a) => `${a.name} ${a.type} ${a.data}`);

test('field Corefile: fixed names from hosts, other names from the upstream', async () => {
  const fixed = await q('fixed.example.test', 'A');
  assert.equal(fixed.status, 'NOERROR');
  assert.deepEqual(answers(fixed), ['fixed.example.test. A 198.18.0.5']);
  assert.ok(fixed.flags.includes('aa'), `authoritative: ${fixed.flags}`);
  assert.ok(fixed.answer[0]!.ttl <= 30, 'the cache caps the TTL of the answer it stores (3600 -> 30)');
  assert.equal(fixed.authority.length, 0);

  // NSD knows nothing of fixed.example.test: NODATA without SOA can only come from hosts.
  const fixedAaaa = await q('fixed.example.test', 'AAAA');
  assert.equal(fixedAaaa.status, 'NOERROR');
  assert.deepEqual([fixedAaaa.answer.length, fixedAaaa.authority.length], [0, 0]);
  assert.ok(fixedAaaa.flags.includes('aa'));

  const www = await q('www.example.test', 'A');
  assert.deepEqual(answers(www), ['www.example.test. A 192.0.2.80'], 'fallthrough to forward');
  const missing = await q('missing.example.test', 'A');
  assert.equal(missing.status, 'NXDOMAIN', "not in hosts: the upstream's answer");
  assert.equal(missing.authority[0]?.type, 'SOA');

  const ptr = await q('-x', '198.18.0.5');
  assert.deepEqual(answers(ptr), ['5.0.18.198.in-addr.arpa. PTR fixed.example.test.']);

  const svc = await q('web.default.svc.cluster.local', 'A');
  assert.deepEqual(answers(svc), ['web.default.svc.cluster.local. A 10.244.1.5'], 'the cluster block is untouched');
});

test("field Corefile: the answer of hosts is cached by the block's cache (hosts comes after cache)", async () => {
  const server = `dns://${host}:${port}`;
  const before = await scrape(host, metricsPort);
  const hits0 = metricSum(before, 'coredns_cache_hits_total', { server, type: 'success' });
  const fromHosts0 = metricSum(before, 'coredns_dns_responses_total', { server, plugin: 'hosts' });
  const first = await q('fixed.example.test', 'A');
  const second = await q('FIXED.example.test', 'A');
  assert.deepEqual(answers(first), ['fixed.example.test. A 198.18.0.5']);
  assert.deepEqual(
    second.answer.map((a) => a.data),
    ['198.18.0.5'],
  );
  const afterwards = await scrape(host, metricsPort);
  assert.equal(metricSum(afterwards, 'coredns_cache_hits_total', { server, type: 'success' }) - hits0, 2, 'both answered from the cache');
  assert.equal(metricSum(afterwards, 'coredns_dns_responses_total', { server, plugin: 'hosts' }) - fromHosts0, 0, 'hosts saw neither');
});

test('field Corefile: coredns_hosts_entries and coredns_hosts_reload_timestamp_seconds', async () => {
  const m = await scrape(host, metricsPort);
  // The inline A entry and its PTR entry; the file has none.
  assert.equal(metricSum(m, 'coredns_hosts_entries', { hostsfile: fieldHosts }), 2);
  assert.equal(m.get('coredns_hosts_entries')?.type, 'gauge');
  const ts = metricSum(m, 'coredns_hosts_reload_timestamp_seconds');
  assert.ok(Math.abs(ts - statSync(fieldHosts).mtimeMs / 1000) < 0.001, `the file's mtime: ${ts}`);
});

test('hosts file without fallthrough: SERVFAIL not cached, NODATA, reload on change, cache hits unseen, a deleted file keeps its entries', async () => {
  const file = path.join(dir, 'reloading.hosts');
  writeFileSync(file, '10.1.1.1 a.hosts.test\n10.1.1.3 c.hosts.test\n');
  const { host: h, port: p } = await freeAddress();
  const mp = (await freeAddress(h)).port;
  const a2 = await startAgent(`hosts.test:${p} {
    cache 30
    bind ${h}
    hosts ${file} {
        reload 200ms
    }
    forward . ${nsd.addr}
    prometheus ${h}:${mp}
}
`);
  try {
    const d = (...args: string[]) => dig(h, p, args);
    const server = `dns://${h}:${p}`;
    assert.deepEqual(answers(await d('a.hosts.test', 'A')), ['a.hosts.test. A 10.1.1.1']);
    const nodata = await d('a.hosts.test', 'AAAA');
    assert.deepEqual([nodata.status, nodata.answer.length, nodata.flags.includes('aa')], ['NOERROR', 0, true]);

    const m0 = await scrape(h, mp);
    for (let i = 0; i < 2; i++) assert.equal((await d('missing.hosts.test', 'A')).status, 'SERVFAIL');
    const m1 = await scrape(h, mp);
    const hits = (m: typeof m0) => metricSum(m, 'coredns_cache_hits_total', { server });
    assert.equal(hits(m1) - hits(m0), 0, 'SERVFAIL of hosts is never cached');
    assert.equal(metricSum(m1, 'coredns_dns_responses_total', { server, plugin: 'hosts', rcode: 'SERVFAIL' }), 2);

    // Change the file: new names show up; a.hosts.test stays as cached (hosts is not asked on a hit).
    writeFileSync(file, '10.1.1.2 a.hosts.test\n10.1.1.22 b.hosts.test\n10.1.1.3 c.hosts.test\n');
    const until = Date.now() + 10_000;
    let b: DigResult;
    do {
      await sleep(100);
      b = await d('b.hosts.test', 'A');
    } while (b.status !== 'NOERROR' && Date.now() < until);
    assert.deepEqual(answers(b), ['b.hosts.test. A 10.1.1.22']);
    assert.deepEqual(answers(await d('a.hosts.test', 'A')), ['a.hosts.test. A 10.1.1.1'], "cached answer, not the file's new one");
    assert.equal(metricSum(await scrape(h, mp), 'coredns_hosts_entries', { hostsfile: file }), 6);

    // Delete it: the last entries keep serving, one warning.
    unlinkSync(file);
    await sleep(1000);
    assert.deepEqual(answers(await d('c.hosts.test', 'A')), ['c.hosts.test. A 10.1.1.3']);
    const warnings = a2
      .output()
      .split('\n')
      .filter((l) => l.includes('plugin/hosts') && l.includes('cannot be read'));
    assert.equal(warnings.length, 1, a2.output());
    assert.match(warnings[0]!, /^\[WARNING\] plugin\/hosts: .*reloading\.hosts: cannot be read: ENOENT; keeping the 6 entries read before$/);
    assert.equal(a2.proc.exitCode, null, 'still running');
  } finally {
    const code = await a2.stop();
    assert.equal(code, 0, a2.output());
  }
});

test("Corefile reload (SIGUSR1): new inline entries answered, the file's entries served throughout", async () => {
  const file = path.join(dir, 'sigusr1.hosts');
  writeFileSync(file, '10.2.2.1 file.reload.test\n');
  const { host: h, port: p } = await freeAddress();
  const corefile = (inline: string) => `reload.test:${p} {\n    bind ${h}\n    hosts ${file} {\n        ${inline}\n        reload 0\n    }\n}\n`;
  const a3 = await startFaultAgent(corefile('10.2.2.2 one.reload.test'));
  try {
    const d = (...args: string[]) => dig(h, p, args);
    assert.deepEqual(answers(await d('one.reload.test', 'A')), ['one.reload.test. A 10.2.2.2']);
    writeFileSync(a3.corefile, corefile('10.2.2.3 two.reload.test'));
    a3.child.kill('SIGUSR1');
    const until = Date.now() + 15_000;
    let two: DigResult;
    do {
      assert.deepEqual(answers(await d('file.reload.test', 'A')), ['file.reload.test. A 10.2.2.1'], 'file entries answered during the reload');
      two = await d('two.reload.test', 'A');
      if (two.status !== 'NOERROR') await sleep(50);
    } while (two.status !== 'NOERROR' && Date.now() < until);
    assert.deepEqual(answers(two), ['two.reload.test. A 10.2.2.3']);
    assert.equal((await d('one.reload.test', 'A')).status, 'SERVFAIL', 'the old inline entry is gone');
    assert.ok(a3.alive(), a3.output());
  } finally {
    await a3.stop();
  }
});
