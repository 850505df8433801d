import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger } from '../plugin.ts';
import { createScratchNetns, netnsSkipReason, savedRules, type Netns } from '../../test/netns/harness.ts';
import { IPTABLES_COMMENTS, IptablesManager, classifyIptablesError, formatRule, nodeLocalDnsRules, ruleSaveLine, type IptablesRule } from './iptables.ts';
import type { SetupErrorType } from './setup-metrics.ts';

const skip = netnsSkipReason();

function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`[INFO] ${m}`),
    warn: (m) => lines.push(`[WARNING] ${m}`),
    error: (m) => lines.push(`[ERROR] ${m}`),
  };
}

test('12 rules per local IP in node-cache order, with node-cache comments', () => {
  const rules = nodeLocalDnsRules(['169.254.20.10'], 53, 8080);
  assert.equal(rules.length, 12);
  const S = `-m comment --comment ${IPTABLES_COMMENTS.skipConntrack}`;
  const A = `-m comment --comment ${IPTABLES_COMMENTS.allowTraffic}`;
  assert.deepEqual(rules.map(formatRule), [
    `{raw PREROUTING [-p tcp -d 169.254.20.10 --dport 53 -j NOTRACK ${S}]}`,
    `{raw PREROUTING [-p udp -d 169.254.20.10 --dport 53 -j NOTRACK ${S}]}`,
    `{filter INPUT [-p tcp -d 169.254.20.10 --dport 53 -j ACCEPT ${A}]}`,
    `{filter INPUT [-p udp -d 169.254.20.10 --dport 53 -j ACCEPT ${A}]}`,
    `{raw OUTPUT [-p tcp -s 169.254.20.10 --sport 53 -j NOTRACK ${S}]}`,
    `{raw OUTPUT [-p udp -s 169.254.20.10 --sport 53 -j NOTRACK ${S}]}`,
    `{filter OUTPUT [-p tcp -s 169.254.20.10 --sport 53 -j ACCEPT ${A}]}`,
    `{filter OUTPUT [-p udp -s 169.254.20.10 --sport 53 -j ACCEPT ${A}]}`,
    `{raw OUTPUT [-p tcp -d 169.254.20.10 --dport 53 -j NOTRACK ${S}]}`,
    `{raw OUTPUT [-p udp -d 169.254.20.10 --dport 53 -j NOTRACK ${S}]}`,
    `{raw OUTPUT [-p tcp -d 169.254.20.10 --dport 8080 -j NOTRACK ${S}]}`,
    `{raw OUTPUT [-p tcp -s 169.254.20.10 --sport 8080 -j NOTRACK ${S}]}`,
  ]);
  assert.equal(IPTABLES_COMMENTS.skipConntrack, 'NodeLocal DNS Cache: skip conntrack');
  assert.equal(IPTABLES_COMMENTS.allowTraffic, 'NodeLocal DNS Cache: allow DNS traffic');
  assert.ok(rules.every((r) => !r.ipv6));

  const two = nodeLocalDnsRules(['169.254.20.10', '198.18.0.10'], 1053, 9090);
  assert.equal(two.length, 24);
  assert.ok(two.slice(12).every((r) => r.args.includes('198.18.0.10')));
  assert.ok(two.some((r) => r.args.includes('1053')) && two.some((r) => r.args.includes('9090')));
  const v6 = nodeLocalDnsRules(['fd00::10'], 53, 8080);
  assert.ok(v6.every((r) => r.ipv6));
});

test('error classification', () => {
  assert.equal(classifyIptablesError('Another app is currently holding the xtables lock. Stopped waiting after 5s.'), 'iptables_lock');
  assert.equal(classifyIptablesError('iptables: No chain/target/match by that name.'), 'iptables');
  assert.equal(classifyIptablesError(''), 'iptables');
});

/** What iptables-save must show for `rules` after inserting each at the top of its chain in order. */
function expectedSave(rules: readonly IptablesRule[], table: string): string[] {
  const chains = new Map<string, string[]>();
  for (const r of rules) {
    if (r.table !== table) continue;
    const list = chains.get(r.chain) ?? [];
    list.unshift(ruleSaveLine(r));
    chains.set(r.chain, list);
  }
  // iptables-save lists chains in built-in order.
  const order = table === 'raw' ? ['PREROUTING', 'OUTPUT'] : ['INPUT', 'FORWARD', 'OUTPUT'];
  return order.flatMap((c) => chains.get(c) ?? []);
}

async function withNetns(t: { after(fn: () => Promise<void>): void }): Promise<Netns> {
  const ns = await createScratchNetns('ipt');
  t.after(() => ns.delete());
  return ns;
}

test('real iptables: install, idempotent re-ensure, add-back with log line, teardown', { skip }, async (t) => {
  const ns = await withNetns(t);
  // An unrelated rule that must survive everything.
  await ns.exec('iptables', ['-w', '5', '-t', 'filter', '-A', 'INPUT', '-p', 'tcp', '--dport', '22', '-j', 'ACCEPT']);

  const rules = nodeLocalDnsRules(['169.254.20.10', '198.18.0.10'], 53, 8080);
  const log = captureLog();
  const errors: SetupErrorType[] = [];
  const m = new IptablesManager(rules, { runner: ns.run, log, onError: (type) => errors.push(type) });

  const first = await m.ensureAll();
  assert.deepEqual(first, { added: 24, existing: 0, errors: 0 });
  assert.deepEqual(
    log.lines,
    rules.map((r) => `[INFO] Added back nodelocaldns rule - ${formatRule(r)}`),
  );
  assert.equal(
    log.lines[0],
    '[INFO] Added back nodelocaldns rule - {raw PREROUTING [-p tcp -d 169.254.20.10 --dport 53 -j NOTRACK -m comment --comment NodeLocal DNS Cache: skip conntrack]}',
  );

  const save1 = await ns.iptablesSave();
  assert.deepEqual(savedRules(save1, 'raw'), expectedSave(rules, 'raw'));
  assert.deepEqual(savedRules(save1, 'filter'), [
    ...expectedSave(rules, 'filter').filter((l) => l.startsWith('-A INPUT')),
    '-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT',
    ...expectedSave(rules, 'filter').filter((l) => l.startsWith('-A OUTPUT')),
  ]);
  assert.equal(
    savedRules(save1, 'raw')[0],
    '-A PREROUTING -d 198.18.0.10/32 -p udp -m udp --dport 53 -m comment --comment "NodeLocal DNS Cache: skip conntrack" -j NOTRACK',
  );

  // Re-ensure adds nothing twice and logs nothing.
  log.lines.length = 0;
  assert.deepEqual(await m.ensureAll(), { added: 0, existing: 24, errors: 0 });
  assert.deepEqual(log.lines, []);
  assert.equal(await ns.iptablesSave().then((s) => savedRules(s, 'raw').join('\n')), savedRules(save1, 'raw').join('\n'));

  // A rule deleted behind our back is added back, at the top of its chain, with the log line.
  const victim = rules[9]!; // raw OUTPUT udp -d 169.254.20.10 --dport 53
  await ns.exec('iptables', ['-w', '5', '-t', victim.table, '-D', victim.chain, ...victim.args]);
  assert.equal(await m.check(victim), false);
  assert.deepEqual(await m.ensureAll(), { added: 1, existing: 23, errors: 0 });
  assert.deepEqual(log.lines, [`[INFO] Added back nodelocaldns rule - ${formatRule(victim)}`]);
  const rawOut = savedRules(await ns.iptablesSave(), 'raw').filter((l) => l.startsWith('-A OUTPUT'));
  assert.equal(rawOut[0], ruleSaveLine(victim));
  assert.equal(rawOut.length, 12);

  // Teardown removes every copy, including a duplicate someone added.
  await ns.exec('iptables', ['-w', '5', '-t', 'raw', '-A', 'PREROUTING', ...rules[0]!.args]);
  const td = await m.teardown();
  assert.deepEqual(td, { removed: 25, errors: 0 });
  const save2 = await ns.iptablesSave();
  assert.ok(!save2.includes('NodeLocal DNS Cache'), save2);
  assert.deepEqual(savedRules(save2, 'filter'), ['-A INPUT -p tcp -m tcp --dport 22 -j ACCEPT']);
  assert.deepEqual(errors, []);
  // Teardown of nothing is a no-op.
  assert.deepEqual(await m.teardown(), { removed: 0, errors: 0 });
});

test('real ip6tables for IPv6 local IPs', { skip }, async (t) => {
  const ns = await withNetns(t);
  const rules = nodeLocalDnsRules(['fd00::10'], 53, 8080);
  const m = new IptablesManager(rules, { runner: ns.run, log: captureLog() });
  assert.deepEqual(await m.ensureAll(), { added: 12, existing: 0, errors: 0 });
  const save6 = await ns.iptablesSave(true);
  assert.deepEqual(savedRules(save6, 'raw'), expectedSave(rules, 'raw'));
  assert.deepEqual(savedRules(save6, 'filter'), expectedSave(rules, 'filter'));
  assert.ok(!(await ns.iptablesSave()).includes('NodeLocal DNS Cache'), 'nothing in the IPv4 tables');
  assert.deepEqual(await m.teardown(), { removed: 12, errors: 0 });
  assert.ok(!(await ns.iptablesSave(true)).includes('NodeLocal DNS Cache'));
});

test('a failing rule is logged and counted as iptables, the others still go in', { skip }, async (t) => {
  const ns = await withNetns(t);
  const good = nodeLocalDnsRules(['169.254.20.10'], 53, 8080).slice(0, 1);
  const bad: IptablesRule = { table: 'filter', chain: 'PREROUTING', args: ['-p', 'tcp', '-j', 'ACCEPT'], ipv6: false };
  const log = captureLog();
  const errors: SetupErrorType[] = [];
  const m = new IptablesManager([bad, ...good], { runner: ns.run, log, onError: (type) => errors.push(type) });
  assert.deepEqual(await m.ensureAll(), { added: 1, existing: 0, errors: 1 });
  assert.deepEqual(errors, ['iptables']);
  assert.match(log.lines[0]!, /^\[ERROR\] Error checking\/adding iptables rule \{filter PREROUTING \[-p tcp -j ACCEPT\]\}, error - error inserting rule: .+/);
  assert.equal(log.lines[1], `[INFO] Added back nodelocaldns rule - ${formatRule(good[0]!)}`);
});

test('dual-stack local IPs: IPv4 rules in iptables, IPv6 rules in ip6tables, both torn down', { skip }, async (t) => {
  const ns = await createScratchNetns('ipt-dual');
  t.after(() => ns.delete());
  const rules = nodeLocalDnsRules(['169.254.20.10', 'fd00::10', '198.18.0.10', 'fd00::a'], 53, 8080);
  assert.deepEqual(
    rules.map((r) => r.ipv6),
    [...Array(12).fill(false), ...Array(12).fill(true), ...Array(12).fill(false), ...Array(12).fill(true)],
  );
  const m = new IptablesManager(rules, { runner: ns.run, log: captureLog() });
  assert.deepEqual(await m.ensureAll(), { added: 48, existing: 0, errors: 0 });
  const v4 = rules.filter((r) => !r.ipv6);
  const v6 = rules.filter((r) => r.ipv6);
  for (const [ipv6, own] of [
    [false, v4],
    [true, v6],
  ] as const) {
    const save = await ns.iptablesSave(ipv6);
    assert.deepEqual(savedRules(save, 'raw').sort(), expectedSave(own, 'raw').sort());
    assert.deepEqual(savedRules(save, 'filter').sort(), expectedSave(own, 'filter').sort());
  }
  assert.deepEqual(await m.ensureAll(), { added: 0, existing: 48, errors: 0 });
  assert.deepEqual(await m.teardown(), { removed: 48, errors: 0 });
  assert.ok(!(await ns.iptablesSave()).includes('NodeLocal DNS Cache'));
  assert.ok(!(await ns.iptablesSave(true)).includes('NodeLocal DNS Cache'));
});
