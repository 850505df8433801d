/**
 * NftablesManager against the real `nft` in a scratch network namespace (root): IPv4 and IPv6
 * local IPs in the one inet table (addresses written in a non-canonical form are read back
 * equal), a second ensureAll() finds everything in place and changes nothing (same handles),
 * a rule of ours changed behind its back is replaced, teardown deletes the table and a second
 * teardown is a no-op.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { nodeLocalDnsRules } from '../../src/agent/iptables.ts';
import { NftablesManager } from '../../src/agent/nftables.ts';
import { createScratchNetns, netnsSkipReason } from '../netns/harness.ts';

function skipReason(): string | undefined {
  const r = netnsSkipReason();
  if (r !== undefined) return r;
  try {
    execFileSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' });
  } catch {
    return 'nft is not installed (Debian: apt-get install nftables)';
  }
  return undefined;
}

test('nftables manager with the real nft: dual-family table, idempotent sync, repair, teardown', { skip: skipReason(), timeout: 60_000 }, async (t) => {
  const ns = await createScratchNetns('nftmgr');
  t.after(() => ns.delete());
  const lines: string[] = [];
  const errors: string[] = [];
  const log = { info: (l: string) => lines.push(l), warn: (l: string) => lines.push(l), error: (l: string) => lines.push(l) };
  const rules = nodeLocalDnsRules(['169.254.20.10', 'FD00:0::10'], 53, 8080);
  const m = new NftablesManager(rules, { runner: ns.run, log, onError: (type) => errors.push(type) });

  assert.deepEqual(await m.ensureAll(), { added: 24, existing: 0, errors: 0 });
  const listing = await ns.exec('nft', ['-a', 'list', 'table', 'inet', 'node-local-dns']);
  assert.match(listing, /ip6 daddr fd00::10 udp dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"/);
  assert.match(listing, /ip saddr 169\.254\.20\.10 tcp sport 53 accept comment "NodeLocal DNS Cache: allow DNS traffic"/);

  assert.deepEqual(await m.ensureAll(), { added: 0, existing: 24, errors: 0 });
  assert.equal(await ns.exec('nft', ['-a', 'list', 'table', 'inet', 'node-local-dns']), listing, 'nothing re-applied (same handles)');

  // Our comment on a rule that now drops: not one of ours any more, so the table is replaced.
  const handle = /ip6 daddr fd00::10 udp dport 53 notrack .*# handle (\d+)/.exec(listing)![1]!;
  await ns.exec('nft', [
    'replace',
    'rule',
    'inet',
    'node-local-dns',
    'raw-prerouting',
    'handle',
    handle,
    'ip6',
    'daddr',
    'fd00::10',
    'udp',
    'dport',
    '53',
    'drop',
    'comment',
    '"NodeLocal DNS Cache: skip conntrack"',
  ]);
  assert.deepEqual(await m.ensureAll(), { added: 1, existing: 23, errors: 0 });
  assert.ok(
    lines.includes(
      'Added back nodelocaldns rule - {inet node-local-dns raw-prerouting [ip6 daddr fd00::10 udp dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"]}',
    ),
    lines.join('\n'),
  );
  assert.ok(lines.includes('Replaced nftables table inet node-local-dns: 1 unexpected rule(s)'), lines.join('\n'));
  assert.doesNotMatch(await ns.exec('nft', ['list', 'table', 'inet', 'node-local-dns']), /drop/);

  assert.deepEqual(await m.teardown(), { removed: 24, errors: 0 });
  assert.equal((await ns.run('nft', ['list', 'table', 'inet', 'node-local-dns'])).code, 1);
  assert.deepEqual(await m.teardown(), { removed: 0, errors: 0 });
  assert.deepEqual(errors, []);
});
