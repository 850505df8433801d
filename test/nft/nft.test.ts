/**
 * `-rulesbackend nftables|auto` on a simulated node whose kube-proxy runs in nftables mode
 * (test/nft/lib/kube-proxy-nft.ts: `table ip kube-proxy` DNATs the kube-dns service IP
 * 198.18.0.10:53 to the kube-dns stand-in, NSD on 198.18.1.2 in its own namespace).
 * The agent (`node src/main.ts` in the node namespace, as the DaemonSet pod) listens on
 * 169.254.20.10 and 198.18.0.10 and forwards to the stand-in.
 *
 * Proves: pods' queries to both addresses are answered by node-local-dns (its
 * coredns_dns_requests_total rises by exactly the queries sent) and leave no conntrack entry
 * and never reach kube-proxy's chains; the table is the expected one and its rules exist nowhere
 * else (no iptables rule); the periodic sync puts back a deleted rule and drops a foreign one;
 * SIGTERM deletes the table and queries to 198.18.0.10 reach the stand-in through the DNAT again;
 * after SIGKILL and a restart there is one table with one set of rules; `auto` picks nftables
 * when kube-proxy's table exists and iptables when it does not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  SIM,
  createSimNode,
  dig,
  netnsSkipReason,
  savedRules,
  stopAgent,
  waitAgentReady,
  waitFor,
  watchAgent,
  type NetnsAgent,
  type SimNode,
} from '../netns/harness.ts';
import { newToServices, replaceWithNftKubeProxy } from './lib/kube-proxy-nft.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/main.ts');

function skipReason(): string | undefined {
  const r = netnsSkipReason({ nsd: true });
  if (r !== undefined) return r;
  for (const t of ['nft', 'conntrack', 'curl']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    } catch {
      return `${t} is not installed (Debian: apt-get install nftables conntrack curl)`;
    }
  }
  return existsSync(MAIN) ? undefined : 'src/main.ts does not exist';
}
const skip = skipReason();

const LOCAL_IPS = `${SIM.localDnsIp},${SIM.kubeDnsServiceIp}`;
const RULES_PER_IP = 12;
const TOTAL_RULES = 2 * RULES_PER_IP;

const COREFILE = `.:53 {
    errors
    bind ${SIM.localDnsIp} ${SIM.kubeDnsServiceIp}
    forward . ${SIM.kubeDnsPodIp}
    prometheus 127.0.0.1:9253
    health ${SIM.localDnsIp}:8080
}
`;

function startAgent(sim: SimNode, dir: string, backend: string): NetnsAgent {
  const child = sim.node.spawn(
    process.execPath,
    [
      MAIN,
      '-localip',
      LOCAL_IPS,
      '-rulesbackend',
      backend,
      '-interfacetype',
      'bridge',
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      join(dir, 'no-such-Corefile.base'),
      '-kubednscm',
      join(dir, 'kube-dns'),
      '-syncinterval',
      '1s',
      '-metrics-listen-address',
      '127.0.0.1:9353',
      '-peerdir',
      join(dir, 'peers'),
    ],
    { cwd: ROOT },
  );
  return watchAgent(child);
}

interface TableView {
  exists: boolean;
  /** Rule lines (`chain: statement`) without handles. */
  rules: string[];
  chains: string[];
}

/** The node's `inet node-local-dns` table as nft lists it (JSON), reduced to chains and rules. */
async function table(sim: SimNode): Promise<TableView> {
  const r = await sim.node.run('nft', ['-j', 'list', 'table', 'inet', 'node-local-dns']);
  if (r.code !== 0) return { exists: false, rules: [], chains: [] };
  const items = (JSON.parse(r.stdout) as { nftables: Record<string, Record<string, unknown>>[] }).nftables;
  const chains = items.filter((i) => i.chain).map((i) => `${i.chain!.name} ${i.chain!.hook} ${i.chain!.prio}`);
  const rules = items.filter((i) => i.rule).map((i) => `${i.rule!.chain}: ${JSON.stringify(i.rule!.expr)} ${i.rule!.comment}`);
  return { exists: true, rules, chains };
}

async function tablesNamed(sim: SimNode, name: string): Promise<string[]> {
  const out = await sim.node.exec('nft', ['list', 'tables']);
  return out.split('\n').filter((l) => l.trim().endsWith(` ${name}`));
}

/** Rules with node-cache's comment in iptables (either back end's view of the raw/filter tables). */
async function iptablesNodeLocalRules(sim: SimNode): Promise<string[]> {
  const save = await sim.node.iptablesSave();
  return [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
}

/** coredns_dns_requests_total summed over its series (the agent's prometheus plugin). */
async function dnsRequests(sim: SimNode): Promise<number> {
  const text = await sim.node.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9253/metrics']);
  let sum = 0;
  for (const line of text.split('\n')) {
    const m = /^coredns_dns_requests_total\{[^}]*\} (\S+)$/.exec(line);
    if (m) sum += Number(m[1]);
  }
  return sum;
}

/** Conntrack entries of the node namespace whose original destination is one of `ips`. */
async function conntrackTo(sim: SimNode, ips: string[]): Promise<string[]> {
  const r = await sim.node.run('conntrack', ['-L']);
  return r.stdout
    .split('\n')
    .filter((l) => ips.some((ip) => l.includes(` dst=${ip} `) && /^\S+\s+\d+\s+/.test(l) && l.indexOf(` dst=${ip} `) === l.indexOf(' dst=')));
}

async function waitReady(sim: SimNode, agent: NetnsAgent, expectTable: boolean): Promise<void> {
  await waitAgentReady(agent, 'node-local-dns to serve and install its rules', async () => {
    if (!agent.out().includes('[INFO] Start-up complete: serving')) return false;
    if (expectTable && (await table(sim)).rules.length !== TOTAL_RULES) return false;
    const r = await dig(sim.pod, SIM.localDnsIp, 'kubernetes.default.svc.cluster.local', 'A', { timeoutSec: 1 });
    return r.status === 'NOERROR';
  });
}

test('-rulesbackend nftables beside kube-proxy in nftables mode', { skip, timeout: 300_000 }, async (t) => {
  const sim = await createSimNode();
  const agents: NetnsAgent[] = [];
  t.after(async () => {
    for (const a of agents) if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    await sim.teardown();
  });
  await replaceWithNftKubeProxy(sim);
  const dir = join(sim.dir, 'agent');
  await mkdir(join(dir, 'kube-dns'), { recursive: true });
  await mkdir(join(dir, 'peers'));
  await writeFile(join(dir, 'Corefile'), COREFILE);

  await t.test("without node-local-dns, kube-proxy's nftables DNAT sends 198.18.0.10 to the stand-in", async () => {
    const before = await newToServices(sim);
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'web.default.svc.cluster.local', 'A');
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.2.20'],
      r.raw,
    );
    assert.ok((await newToServices(sim)) > before, "the query was tracked and passed kube-proxy's chains");
  });

  const first = startAgent(sim, dir, 'nftables');
  agents.push(first);
  await waitReady(sim, first, true);

  await t.test('one table of its own with the 24 rules; nothing in iptables', async () => {
    const listing = await sim.node.exec('nft', ['list', 'table', 'inet', 'node-local-dns']);
    t.diagnostic(`nft list table inet node-local-dns:\n${listing}`);
    console.log(`# nft list table inet node-local-dns (as listed by the test):\n${listing}`);
    const view = await table(sim);
    assert.deepEqual(view.chains, ['raw-prerouting prerouting -300', 'raw-output output -300', 'filter-input input 0', 'filter-output output 0']);
    assert.equal(view.rules.length, TOTAL_RULES);
    for (const ip of [SIM.localDnsIp, SIM.kubeDnsServiceIp]) {
      for (const proto of ['tcp', 'udp']) {
        assert.ok(listing.includes(`ip daddr ${ip} ${proto} dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"`), `${ip} ${proto} prerouting`);
        assert.ok(listing.includes(`ip saddr ${ip} ${proto} sport 53 accept comment "NodeLocal DNS Cache: allow DNS traffic"`), `${ip} ${proto} output accept`);
      }
      assert.ok(listing.includes(`ip daddr ${ip} tcp dport 8080 notrack`), `${ip} health`);
    }
    assert.deepEqual(await iptablesNodeLocalRules(sim), [], 'the nftables back end writes no iptables rule');
    const out = first.out();
    assert.match(out, /\[INFO\] Rules back end: nftables \(-rulesbackend nftables\)/);
    assert.equal((out.match(/\[INFO\] Added back nodelocaldns rule - \{inet node-local-dns /g) ?? []).length, TOTAL_RULES);
    assert.match(
      out,
      /Start-up complete: serving 169\.254\.20\.10, 198\.18\.0\.10; interface nodelocaldns and nftables table inet node-local-dns \(24 rules\) in place/,
    );
    const metrics = await sim.node.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9353/metrics']);
    assert.match(metrics, /^coredns_nodecache_setup_errors_total\{errortype="iptables"\} 0$/m);
  });

  await t.test('queries to 198.18.0.10 and 169.254.20.10 are answered by node-local-dns, untracked', async () => {
    await sim.node.exec('conntrack', ['-F']);
    const kubeProxyBefore = await newToServices(sim);
    const before = await dnsRequests(sim);
    let sent = 0;
    for (const server of [SIM.localDnsIp, SIM.kubeDnsServiceIp]) {
      for (const tcp of [false, true]) {
        const r = await dig(sim.pod, server, 'web.default.svc.cluster.local', 'A', { tcp });
        sent++;
        assert.deepEqual(
          r.answers.map((l) => l.split(' ').at(-1)),
          ['198.18.2.20'],
          `${server} ${tcp ? 'tcp' : 'udp'}\n${r.raw}`,
        );
      }
    }
    // A host-network client (the node itself: kube-proxy's nat-output chain would DNAT it).
    for (const tcp of [false, true]) {
      const r = await dig(sim.node, SIM.kubeDnsServiceIp, 'web.default.svc.cluster.local', 'A', { tcp });
      sent++;
      assert.deepEqual(
        r.answers.map((l) => l.split(' ').at(-1)),
        ['198.18.2.20'],
        `node ${tcp ? 'tcp' : 'udp'}\n${r.raw}`,
      );
    }
    assert.equal((await dnsRequests(sim)) - before, sent, 'node-local-dns counted every query: none went to the stand-in');
    assert.deepEqual(await conntrackTo(sim, [SIM.localDnsIp, SIM.kubeDnsServiceIp]), [], "no conntrack entry for the cache's addresses");
    assert.equal(await newToServices(sim), kubeProxyBefore, "kube-proxy's chains saw no new connection to the service IP");
    // conntrack is on in this namespace: the cache's own upstream flow to the stand-in is tracked.
    assert.ok((await conntrackTo(sim, [SIM.kubeDnsPodIp])).length > 0, 'expected tracked upstream flows');
  });

  await t.test('the periodic sync puts a deleted rule back and drops a foreign one, replacing the table', async () => {
    const listing = await sim.node.exec('nft', ['-a', 'list', 'chain', 'inet', 'node-local-dns', 'raw-prerouting']);
    const handle = new RegExp(`ip daddr ${SIM.localDnsIp.replaceAll('.', '\\.')} udp dport 53 notrack .*# handle (\\d+)`).exec(listing)?.[1];
    assert.ok(handle, listing);
    const added = (first.out().match(/Added back nodelocaldns rule/g) ?? []).length;
    await sim.node.exec('nft', ['delete', 'rule', 'inet', 'node-local-dns', 'raw-prerouting', 'handle', handle]);
    await waitFor('the rule to come back', async () => (await table(sim)).rules.length === TOTAL_RULES, 15_000, 200);
    await waitFor('the log line', async () => (first.out().match(/Added back nodelocaldns rule/g) ?? []).length === added + 1, 5000);
    assert.match(
      first.out(),
      /Added back nodelocaldns rule - \{inet node-local-dns raw-prerouting \[ip daddr 169\.254\.20\.10 udp dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"\]\}/,
    );

    await sim.node.exec('nft', ['add', 'rule', 'inet', 'node-local-dns', 'filter-input', 'ip', 'daddr', '198.18.9.9', 'drop']);
    await waitFor(
      'the foreign rule to go',
      async () => {
        const v = await table(sim);
        return v.rules.length === TOTAL_RULES && !v.rules.some((r) => r.includes('198.18.9.9'));
      },
      15_000,
      200,
    );
    await waitFor('the log line', async () => /Replaced nftables table inet node-local-dns: 1 unexpected rule\(s\)/.test(first.out()), 5000);
  });

  await t.test("SIGTERM deletes the table; 198.18.0.10 reaches the stand-in through kube-proxy's DNAT", async () => {
    assert.deepEqual(await stopAgent(first, 'SIGTERM'), { code: 0, signal: null }, first.out());
    assert.equal((await table(sim)).exists, false);
    assert.deepEqual(await tablesNamed(sim, 'node-local-dns'), []);
    assert.deepEqual(await tablesNamed(sim, 'kube-proxy'), ['table ip kube-proxy'], "kube-proxy's table untouched");
    await sim.node.exec('conntrack', ['-F']);
    const before = await newToServices(sim);
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'kubernetes.default.svc.cluster.local', 'A');
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.0.1'],
      r.raw,
    );
    assert.ok((await newToServices(sim)) > before, "answered through kube-proxy's chains");
    const tracked = await conntrackTo(sim, [SIM.kubeDnsServiceIp]);
    assert.ok(
      tracked.some((l) => l.includes(`src=${SIM.kubeDnsPodIp} `)),
      `DNAT'ed to the stand-in:\n${tracked.join('\n')}`,
    );
  });

  await t.test('after SIGKILL and a restart: one table, one set of rules', async () => {
    const second = startAgent(sim, dir, 'nftables');
    agents.push(second);
    await waitReady(sim, second, true);
    assert.equal((await stopAgent(second, 'SIGKILL')).signal, 'SIGKILL');
    assert.equal((await table(sim)).rules.length, TOTAL_RULES, 'the killed instance left its table');

    const third = startAgent(sim, dir, 'nftables');
    agents.push(third);
    await waitReady(sim, third, true);
    assert.deepEqual(await tablesNamed(sim, 'node-local-dns'), ['table inet node-local-dns']);
    const view = await table(sim);
    assert.equal(view.rules.length, TOTAL_RULES);
    assert.equal(new Set(view.rules).size, TOTAL_RULES, 'no rule twice');
    assert.doesNotMatch(third.out(), /Added back nodelocaldns rule|Replaced nftables table/, 'the leftover table was adopted as is');
    const before = await dnsRequests(sim);
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'www.example.org', 'A', { tcp: true });
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.5.5'],
    );
    assert.equal((await dnsRequests(sim)) - before, 1);
    assert.deepEqual(await stopAgent(third, 'SIGTERM'), { code: 0, signal: null }, third.out());
    assert.equal((await table(sim)).exists, false);
  });

  await t.test("-rulesbackend auto: nftables while kube-proxy's table exists, iptables without it", async () => {
    const a = startAgent(sim, dir, 'auto');
    agents.push(a);
    await waitReady(sim, a, true);
    assert.match(a.out(), /\[INFO\] Rules back end: nftables \(auto: kube-proxy runs in nftables mode \(table ip kube-proxy exists\)\)/);
    assert.deepEqual(await iptablesNodeLocalRules(sim), []);
    assert.deepEqual(await stopAgent(a, 'SIGTERM'), { code: 0, signal: null }, a.out());
    assert.equal((await table(sim)).exists, false);

    await sim.node.exec('nft', ['delete', 'table', 'ip', 'kube-proxy']);
    const b = startAgent(sim, dir, 'auto');
    agents.push(b);
    await waitReady(sim, b, false);
    await waitFor('the iptables rules', async () => (await iptablesNodeLocalRules(sim)).length === TOTAL_RULES, 15_000, 200);
    assert.match(b.out(), /\[INFO\] Rules back end: iptables \(auto: no kube-proxy nftables table; iptables is installed\)/);
    assert.equal((await table(sim)).exists, false, 'no nftables table of ours');
    assert.deepEqual(await stopAgent(b, 'SIGTERM'), { code: 0, signal: null }, b.out());
    assert.deepEqual(await iptablesNodeLocalRules(sim), []);
  });
});
