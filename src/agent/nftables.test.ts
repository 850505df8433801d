import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createScratchNetns, netnsSkipReason } from '../../test/netns/harness.ts';
import type { CommandOptions, CommandResult } from './exec.ts';
import { nodeLocalDnsRules } from './iptables.ts';
import {
  NFT_DELETE_SCRIPT,
  NftablesManager,
  diffNftTable,
  formatNftRule,
  nftReplaceScript,
  nftRuleFromIptables,
  parseNftTableJson,
  type NftRule,
} from './nftables.ts';

const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** What `nft -j list table` prints for a table holding `rules` (as nft 1.0.6 does). */
function listing(rules: readonly NftRule[], chains = true): string {
  const items: unknown[] = [{ metainfo: { version: '1.0.6', json_schema_version: 1 } }, { table: { family: 'inet', name: 'node-local-dns', handle: 1 } }];
  if (chains) {
    items.push(
      {
        chain: { family: 'inet', table: 'node-local-dns', name: 'raw-prerouting', handle: 1, type: 'filter', hook: 'prerouting', prio: -300, policy: 'accept' },
      },
      { chain: { family: 'inet', table: 'node-local-dns', name: 'raw-output', handle: 2, type: 'filter', hook: 'output', prio: -300, policy: 'accept' } },
      { chain: { family: 'inet', table: 'node-local-dns', name: 'filter-input', handle: 3, type: 'filter', hook: 'input', prio: 0, policy: 'accept' } },
      { chain: { family: 'inet', table: 'node-local-dns', name: 'filter-output', handle: 4, type: 'filter', hook: 'output', prio: 0, policy: 'accept' } },
    );
  }
  let h = 10;
  for (const r of rules) {
    items.push({
      rule: {
        family: 'inet',
        table: 'node-local-dns',
        chain: r.chain,
        handle: h++,
        comment: r.comment,
        expr: [
          { match: { op: '==', left: { payload: { protocol: r.family, field: r.dir } }, right: r.addr } },
          { match: { op: '==', left: { payload: { protocol: r.proto, field: r.portDir } }, right: r.port } },
          { [r.verdict]: null },
        ],
      },
    });
  }
  return JSON.stringify({ nftables: items });
}

test('nftables: the same 12 rules per IP as the iptables back end, in nft syntax', () => {
  const rules = nodeLocalDnsRules(['169.254.20.10'], 53, 8080).map(nftRuleFromIptables);
  assert.equal(rules.length, 12);
  assert.equal(
    formatNftRule(rules[0]!),
    '{inet node-local-dns raw-prerouting [ip daddr 169.254.20.10 tcp dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"]}',
  );
  assert.equal(
    formatNftRule(rules[7]!),
    '{inet node-local-dns filter-output [ip saddr 169.254.20.10 udp sport 53 accept comment "NodeLocal DNS Cache: allow DNS traffic"]}',
  );
  assert.equal(
    formatNftRule(rules[11]!),
    '{inet node-local-dns raw-output [ip saddr 169.254.20.10 tcp sport 8080 notrack comment "NodeLocal DNS Cache: skip conntrack"]}',
  );
  const v6 = nodeLocalDnsRules(['FD00:0::10'], 53, 8080).map(nftRuleFromIptables);
  assert.equal(v6[0]!.family, 'ip6');
  assert.equal(v6[0]!.addr, 'fd00::10', 'canonical form, as nft lists it');
});

test('nftables: the replace script declares, deletes and recreates the table in one transaction', () => {
  const rules = nodeLocalDnsRules(['169.254.20.10'], 53, 8080).map(nftRuleFromIptables);
  const s = nftReplaceScript(rules);
  assert.ok(s.startsWith('table inet node-local-dns\ndelete table inet node-local-dns\ntable inet node-local-dns {\n'));
  assert.match(
    s,
    /\tchain raw-prerouting \{\n\t\ttype filter hook prerouting priority raw; policy accept;\n\t\tip daddr 169\.254\.20\.10 tcp dport 53 notrack/,
  );
  assert.match(s, /\tchain filter-input \{\n\t\ttype filter hook input priority filter; policy accept;\n/);
  assert.equal(s.split('\n').filter((l) => l.startsWith('\t\tip ')).length, 12);
  assert.equal(NFT_DELETE_SCRIPT, 'table inet node-local-dns\ndelete table inet node-local-dns\n');
});

test('nftables: the read-back table is compared as a multiset of rules plus the chain definitions', () => {
  const rules = nodeLocalDnsRules(['169.254.20.10', '198.18.0.10'], 53, 8080).map(nftRuleFromIptables);
  const same = diffNftTable(rules, parseNftTableJson(listing(rules)));
  assert.deepEqual(same, { missing: [], extra: 0, chainProblems: [] });

  const missing = diffNftTable(rules, parseNftTableJson(listing(rules.slice(1))));
  assert.deepEqual(missing.missing, [rules[0]]);
  assert.equal(missing.extra, 0);

  const dup = diffNftTable(rules, parseNftTableJson(listing([...rules, rules[3]!])));
  assert.deepEqual({ m: dup.missing.length, e: dup.extra }, { m: 0, e: 1 });

  const foreign = JSON.parse(listing(rules)) as { nftables: unknown[] };
  foreign.nftables.push({
    rule: {
      family: 'inet',
      table: 'node-local-dns',
      chain: 'filter-input',
      handle: 99,
      expr: [{ match: { op: '==', left: { payload: { protocol: 'ip', field: 'daddr' } }, right: '198.18.9.9' } }, { drop: null }],
    },
  });
  assert.equal(diffNftTable(rules, parseNftTableJson(JSON.stringify(foreign))).extra, 1);

  const noChains = diffNftTable(rules, parseNftTableJson(listing(rules, false)));
  assert.equal(noChains.chainProblems.length, 4);
  const prio = JSON.parse(listing(rules)) as { nftables: { chain?: { prio: number; name: string } }[] };
  prio.nftables.find((x) => x.chain?.name === 'raw-prerouting')!.chain!.prio = 0;
  assert.deepEqual(diffNftTable(rules, parseNftTableJson(JSON.stringify(prio))).chainProblems, [
    'chain raw-prerouting is "type filter hook prerouting priority 0 policy accept"',
  ]);
  assert.throws(() => parseNftTableJson('not json'));
});

interface Call {
  file: string;
  args: readonly string[];
  input?: string;
}

function fakeNft(respond: (c: Call) => CommandResult | Error): {
  calls: Call[];
  runner: (f: string, a: readonly string[], o?: CommandOptions) => Promise<CommandResult>;
} {
  const calls: Call[] = [];
  return {
    calls,
    runner: async (file, args, o) => {
      const c = { file, args, input: o?.input };
      calls.push(c);
      const r = respond(c);
      if (r instanceof Error) throw r;
      return r;
    },
  };
}

test('nftables manager: absent table applied whole; present table left alone; failures counted as iptables', async () => {
  const ipt = nodeLocalDnsRules(['169.254.20.10'], 53, 8080);
  const expected = ipt.map(nftRuleFromIptables);
  let present: string | null = null;
  const f = fakeNft((c) => {
    if (c.args[0] === '-j')
      return present === null
        ? { code: 1, stdout: '', stderr: 'Error: No such file or directory\nlist table inet node-local-dns\n' }
        : { code: 0, stdout: present, stderr: '' };
    present = listing(expected);
    return { code: 0, stdout: '', stderr: '' };
  });
  const lines: string[] = [];
  const errors: string[] = [];
  const m = new NftablesManager(ipt, { runner: f.runner, log: { ...quiet, info: (l: string) => lines.push(l) }, onError: (t) => errors.push(t) });
  assert.deepEqual(await m.ensureAll(), { added: 12, existing: 0, errors: 0 });
  assert.deepEqual(
    f.calls.map((c) => c.args.join(' ')),
    ['-j list table inet node-local-dns', '-f -'],
  );
  assert.equal(f.calls[1]!.input, nftReplaceScript(expected));
  assert.equal(lines.filter((l) => l.startsWith('Added back nodelocaldns rule - {inet node-local-dns ')).length, 12);

  f.calls.length = 0;
  assert.deepEqual(await m.ensureAll(), { added: 0, existing: 12, errors: 0 });
  assert.equal(f.calls.length, 1, 'only read back');

  assert.deepEqual(await m.teardown(), { removed: 12, errors: 0 });
  assert.equal(f.calls.at(-1)!.input, NFT_DELETE_SCRIPT);
  assert.equal(errors.length, 0);

  const broken = fakeNft(() => new Error('cannot run nft: spawn nft ENOENT'));
  const errLines: string[] = [];
  const m2 = new NftablesManager(ipt, { runner: broken.runner, log: { ...quiet, error: (l: string) => errLines.push(l) }, onError: (t) => errors.push(t) });
  assert.deepEqual(await m2.ensureAll(), { added: 0, existing: 0, errors: 1 });
  assert.deepEqual(errors, ['iptables']);
  assert.deepEqual(errLines, ['Error checking/adding nftables table inet node-local-dns, error - cannot run nft: spawn nft ENOENT']);

  const rejected = fakeNft((c) =>
    c.args[0] === '-j'
      ? { code: 1, stdout: '', stderr: 'Error: No such file or directory' }
      : { code: 1, stdout: '', stderr: 'Error: Could not process rule: Operation not permitted\n' },
  );
  const m3 = new NftablesManager(ipt, { runner: rejected.runner, log: quiet, onError: (t) => errors.push(t) });
  assert.equal((await m3.ensureAll()).errors, 1);
  assert.deepEqual(errors, ['iptables', 'iptables']);
});

function nftSkipReason(): string | undefined {
  const r = netnsSkipReason();
  if (r !== undefined) return r;
  try {
    execFileSync('sh', ['-c', 'command -v nft'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'nft is not installed';
  }
}

test('nftables, real nft: a dual-stack table holds ip and ip6 rules, reads back as complete, is deleted', { skip: nftSkipReason() }, async (t) => {
  const ns = await createScratchNetns('nft-dual');
  t.after(() => ns.delete());
  const errors: string[] = [];
  const m = new NftablesManager(nodeLocalDnsRules(['169.254.20.10', 'FD00:0::10', '198.18.0.10', 'fd00::a'], 53, 8080), {
    runner: ns.run,
    log: { ...quiet, error: (l: string) => errors.push(l) },
  });
  assert.deepEqual(await m.ensureAll(), { added: 48, existing: 0, errors: 0 });
  const listed = await ns.exec('nft', ['list', 'table', 'inet', 'node-local-dns']);
  assert.equal((listed.match(/^\t\tip daddr /gm) ?? []).length + (listed.match(/^\t\tip saddr /gm) ?? []).length, 24);
  assert.equal((listed.match(/^\t\tip6 [sd]addr /gm) ?? []).length, 24);
  assert.match(listed, /ip6 daddr fd00::10 udp dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"/);
  // Read back (nft's JSON, canonical IPv6 text) it matches what was written: nothing re-applied.
  assert.deepEqual(await m.ensureAll(), { added: 0, existing: 48, errors: 0 });
  assert.deepEqual(await m.teardown(), { removed: 48, errors: 0 });
  assert.equal((await ns.run('nft', ['list', 'table', 'inet', 'node-local-dns'])).code === 0, false);
  assert.deepEqual(errors, []);
});
