/**
 * CoreDNS's hosts README, example by example, against node-local-dns: each row runs the
 * README's Corefile (upstreams replaced by a local NSD, never off-box) in the real agent and
 * asks dig what the README says the answer is. The README section each row follows is named.
 * Hosts files are fixtures in the agent's working directory (the README's `example.hosts`);
 * the one example that loads /etc/hosts only asserts what holds whatever that file lists.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { dig, type DigResult } from '../engine/harness.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { metricSum, scrape } from '../fault/lib/agent.ts';
import { pluginNames } from '../../src/plugins/registry.ts';
import { startAgentIn } from './lib/agent-in-dir.ts';

let nsd: RunningServer;
before(async () => {
  nsd = await startNsd();
});
after(async () => {
  await nsd?.stop();
});

/** The README's "The hosts file" example, plus example.org/example.net names for the zone examples. */
const README_HOSTS = `# The following lines are desirable for IPv4 capable hosts
127.0.0.1       localhost
192.168.1.10    example.com            example

# The following lines are desirable for IPv6 capable hosts
::1                     localhost ip6-localhost ip6-loopback
fdfc:a744:27b5:3b0e::1  example.com example

10.0.0.10 www.example.org
10.0.0.11 www.example.net
`;

interface Row {
  section: string;
  corefile: (host: string, port: number, metricsPort: number) => string;
  needs?: string[];
  checks: (q: (...args: string[]) => Promise<DigResult>, metrics: () => Promise<Awaited<ReturnType<typeof scrape>>>) => Promise<void>;
}

const rr = (r: DigResult) => r.answer.map((a) => `${a.name} ${a.ttl} ${a.type} ${a.data}`);

const ROWS: Row[] = [
  {
    section: 'Examples: "Load /etc/hosts file"',
    corefile: (h, p, m) => `.:${p} {\n  bind ${h}\n  hosts\n  prometheus ${h}:${m}\n}\n`,
    checks: async (q, metrics) => {
      // Whatever /etc/hosts lists, a random name is not in it: no fallthrough, so SERVFAIL.
      const r = await q(`nld-${randomBytes(6).toString('hex')}.invalid`, 'A');
      assert.equal(r.status, 'SERVFAIL');
      // The default file is /etc/hosts: once read, the entries gauge carries its path.
      const fams = await metrics();
      if (existsSync('/etc/hosts'))
        assert.deepEqual(
          fams.get('coredns_hosts_entries')?.samples.map((s) => s.labels),
          [{ hostsfile: '/etc/hosts' }],
        );
    },
  },
  {
    section: 'Examples: "Load example.hosts file in the current directory" with "The hosts file" entries',
    corefile: (h, p, m) => `.:${p} {\n  bind ${h}\n  hosts example.hosts\n  prometheus ${h}:${m}\n}\n`,
    checks: async (q, metrics) => {
      assert.deepEqual(rr(await q('example.com', 'A')), ['example.com. 3600 A 192.168.1.10']);
      assert.deepEqual(rr(await q('example', 'A')), ['example. 3600 A 192.168.1.10']);
      assert.deepEqual(rr(await q('example.com', 'AAAA')), ['example.com. 3600 AAAA fdfc:a744:27b5:3b0e::1']);
      assert.deepEqual(rr(await q('ip6-loopback', 'AAAA')), ['ip6-loopback. 3600 AAAA ::1']);
      const nodata = await q('localhost', 'MX');
      assert.deepEqual([nodata.status, nodata.answer.length, nodata.flags.includes('aa')], ['NOERROR', 0, true]);
      // "PTR records for reverse lookups are generated automatically"
      assert.deepEqual(rr(await q('-x', '192.168.1.10')), ['10.1.168.192.in-addr.arpa. 3600 PTR example.com.', '10.1.168.192.in-addr.arpa. 3600 PTR example.']);
      assert.deepEqual(rr(await q('-x', '::1')), [
        '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 3600 PTR localhost.',
        '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 3600 PTR ip6-localhost.',
        '1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa. 3600 PTR ip6-loopback.',
      ]);
      // Metrics: 8 names with an address (4 A, 4 AAAA incl. www.example.org/net as A) + as many PTR entries.
      const m = await metrics();
      assert.equal(metricSum(m, 'coredns_hosts_entries'), 20);
    },
  },
  {
    section: 'Examples: "only serve example.org and example.net from it and fall through to the next plugin"',
    corefile: (h, p) => `.:${p} {\n  bind ${h}\n  hosts example.hosts example.org example.net {\n    fallthrough\n  }\n  forward . ${nsd.addr}\n}\n`,
    checks: async (q) => {
      assert.deepEqual(rr(await q('www.example.org', 'A')), ['www.example.org. 3600 A 10.0.0.10']);
      assert.deepEqual(rr(await q('www.example.net', 'A')), ['www.example.net. 3600 A 10.0.0.11']);
      // example.com is in the file but not in the zones: not from hosts (NSD, the next plugin, refuses it).
      const com = await q('example.com', 'A');
      assert.equal(com.answer.length, 0);
      assert.equal(com.status, 'REFUSED');
      // A name of the zones not in the file falls through: NSD serves example.test names.
      assert.deepEqual(rr(await q('www.example.test', 'A')), ['www.example.test. 300 A 192.0.2.80']);
      const none = await q('nothere.example.org', 'A');
      assert.equal(none.status, 'REFUSED', 'fell through to the next plugin');
    },
  },
  {
    section: 'Examples: "Load hosts file inlined in Corefile"',
    needs: ['whoami'],
    corefile: (h, p) => `example.hosts:${p} example.org:${p} {\n  bind ${h}\n  hosts {\n    10.0.0.1 example.org\n    fallthrough\n  }\n  whoami\n}\n`,
    checks: async (q) => {
      assert.deepEqual(rr(await q('example.org', 'A')), ['example.org. 3600 A 10.0.0.1']);
      const other = await q('other.example.org', 'A');
      assert.equal(other.status, 'NOERROR');
      assert.ok(
        other.additional.some((a) => a.type === 'SRV'),
        'whoami answered the name hosts does not have',
      );
    },
  },
  {
    section: 'Examples: "Resolve all single-label subdomains of example.com" and "Wildcard records"',
    corefile: (h, p) =>
      `.:${p} {\n  bind ${h}\n  hosts example.hosts example.com {\n    192.168.1.10 *.example.com\n    192.168.1.11 www.example.com\n    fallthrough example.com\n  }\n  forward . ${nsd.addr}\n}\n`,
    checks: async (q) => {
      assert.deepEqual(rr(await q('www.example.com', 'A')), ['www.example.com. 3600 A 192.168.1.11'], 'explicit exception');
      assert.deepEqual(rr(await q('apps.example.com', 'A')), ['apps.example.com. 3600 A 192.168.1.10'], 'one label below: the wildcard');
      assert.deepEqual(rr(await q('example.com', 'A')), ['example.com. 3600 A 192.168.1.10'], "the file's own example.com entry");
      const deep = await q('deep.apps.example.com', 'A');
      assert.deepEqual([deep.status, deep.answer.length], ['REFUSED', 0], 'two labels below: no match, falls through');
      // "Wildcard entries do not generate PTR records": 192.168.1.10 maps back to the file's names only.
      assert.deepEqual(rr(await q('-x', '192.168.1.10')), ['10.1.168.192.in-addr.arpa. 3600 PTR example.com.']);
      assert.deepEqual(rr(await q('-x', '192.168.1.11')), ['11.1.168.192.in-addr.arpa. 3600 PTR www.example.com.']);
    },
  },
];

for (const row of ROWS) {
  const missing = (row.needs ?? []).filter((n) => !pluginNames().includes(n));
  test(`hosts README ${row.section}`, { skip: missing.length > 0 ? `needs ${missing.join(', ')} (not registered)` : false }, async () => {
    const { host, port } = await freeAddress();
    const metricsPort = (await freeAddress(host)).port;
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-hosts-compat-'));
    const agent = await startAgentIn(dir, row.corefile(host, port, metricsPort), { 'example.hosts': README_HOSTS });
    try {
      await row.checks(
        (...args) => dig(host, port, args),
        () => scrape(host, metricsPort),
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\nagent output:\n${agent.output()}`, { cause: err });
    } finally {
      await agent.stop();
    }
  });
}
