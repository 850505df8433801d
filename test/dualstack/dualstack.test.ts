/**
 * Dual-stack on a simulated node (test/dualstack/sim.ts): an IPv4 pod and an IPv6 pod, each in
 * its own namespace, kube-proxy DNATing kube-dns's cluster IPs of both families to a real kube-dns
 * stand-in (NSD on 198.18.1.2 and fd00:2::2). The agent runs as the dual-stack DaemonSet runs it:
 * its flags and Corefile.base come from deploy/render.ts's dual-stack rendering
 * (`--local-dns 169.254.20.10,fd00::10 --dns-server 198.18.0.10,fd00::a`), so
 * `-localip 169.254.20.10,fd00::10,198.18.0.10,fd00::a`, with the kube-dns-upstream cluster IP
 * IPv6 (fd00::b) and custom upstreams of both families for `.`.
 *
 * For each back end (iptables, nftables) it proves: the interface holds the four addresses (IPv6
 * with `nodad`); the rules exist for both families (ip6tables' raw and filter tables, or `ip6`
 * rules beside `ip` ones in `table inet node-local-dns`); the IPv4 pod's queries to 169.254.20.10
 * and 198.18.0.10 and the IPv6 pod's to fd00::10 and fd00::a, over UDP and TCP, are answered by
 * node-local-dns (its coredns_dns_requests_total per `server` label, `dns://[fd00::10]:53` as
 * CoreDNS writes it, rises by exactly the queries sent) with no conntrack entry in either family,
 * cluster names resolved through the IPv6 upstream; `health` answers on 169.254.20.10:8080 and
 * [fd00::10]:8080; the periodic sync puts back a deleted IPv6 rule; after SIGKILL a restarted agent
 * adopts the rules left behind (one set per family); SIGTERM removes every rule of both families
 * and the interface, after which both kube-dns cluster IPs reach the stand-in
 * through kube-proxy's DNAT again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseOptions } from '../../src/cli/options.ts';
import { TEMPLATE_PATH, renderManifest } from '../../deploy/render.ts';
import { envOf } from '../deploy/lib/bundle.ts';
import { findOne, parseManifests, type DaemonSetShape, type K8sObject } from '../deploy/lib/k8s.ts';
import { type Netns, dig, netnsSkipReason, savedRules, stopAgent, waitAgentReady, waitFor, watchAgent, type NetnsAgent } from '../netns/harness.ts';
import { DUAL, DUAL_RECORDS, createDualStackNode, type DualStackNode } from './sim.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/main.ts');

function skipReason(): string | undefined {
  const r = netnsSkipReason({ nsd: true });
  if (r !== undefined) return r;
  for (const t of ['nft', 'conntrack', 'curl', 'ip6tables-save']) {
    try {
      execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' });
    } catch {
      return `${t} is not installed (Debian: apt-get install nftables conntrack curl iptables)`;
    }
  }
  return undefined;
}
const skip = skipReason();

const LOCAL_IPS = [DUAL.localDns4Ip, DUAL.localDns6Ip, DUAL.kubeDnsService4Ip, DUAL.kubeDnsService6Ip];
const V4_IPS = [DUAL.localDns4Ip, DUAL.kubeDnsService4Ip];
const V6_IPS = [DUAL.localDns6Ip, DUAL.kubeDnsService6Ip];
const RULES_PER_IP = 12;

/** The dual-stack manifest of deploy/render.ts for this node's addresses: the agent's args, env and Corefile.base. */
function manifestFor(mode: 'iptables' | 'nftables'): { args: string[]; env: Record<string, string>; corefileBase: string } {
  const text = renderManifest(readFileSync(TEMPLATE_PATH, 'utf8'), {
    mode,
    localDns: `${DUAL.localDns4Ip},${DUAL.localDns6Ip}`,
    dnsServer: `${DUAL.kubeDnsService4Ip},${DUAL.kubeDnsService6Ip}`,
    domain: 'cluster.local',
  });
  const objs = parseManifests(text, `dual-stack ${mode}`);
  const container = findOne<DaemonSetShape>(objs, 'DaemonSet').spec.template.spec.containers[0]!;
  const cm = findOne<K8sObject & { data: Record<string, string> }>(objs, 'ConfigMap', 'node-local-dns');
  return { args: container.args ?? [], env: envOf(container), corefileBase: cm.data.Corefile! };
}

/** `args` with the value of each `-flag` in `values` replaced (appended when absent). */
function withFlags(args: readonly string[], values: Record<string, string>): string[] {
  const out = [...args];
  for (const [flag, value] of Object.entries(values)) {
    const i = out.indexOf(flag);
    if (i >= 0) out[i + 1] = value;
    else out.push(flag, value);
  }
  return out;
}

async function startAgent(sim: DualStackNode, mode: 'iptables' | 'nftables'): Promise<NetnsAgent> {
  const m = manifestFor(mode);
  const dir = join(sim.dir, `agent-${mode}`);
  await mkdir(join(dir, 'kube-dns'), { recursive: true });
  await mkdir(join(dir, 'peers'), { recursive: true });
  await writeFile(join(dir, 'Corefile.base'), m.corefileBase);
  // Custom upstreams for `.` of both families (never the machine's /etc/resolv.conf).
  await writeFile(join(dir, 'kube-dns', 'upstreamNameservers'), JSON.stringify([DUAL.kubeDns4PodIp, DUAL.kubeDns6PodIp]));
  const args = withFlags(m.args, {
    '-conf': join(dir, 'Corefile'),
    '-basecorefile': join(dir, 'Corefile.base'),
    '-kubednscm': join(dir, 'kube-dns'),
    '-peerdir': join(dir, 'peers'),
    '-interfacetype': 'bridge', // no dummy link type on this kernel
    '-syncinterval': '1s',
  });
  assert.deepEqual(parseOptions(args).localIps, LOCAL_IPS, "the manifest's -localip");
  const child = sim.node.spawn(process.execPath, [MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...m.env, KUBE_DNS_UPSTREAM_SERVICE_HOST: DUAL.kubeDnsUpstream6Ip },
  });
  return watchAgent(child);
}

/** node-cache's rules (by comment) in iptables and ip6tables. */
async function xtablesRules(node: Netns): Promise<{ v4: string[]; v6: string[] }> {
  const pick = (save: string): string[] => [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
  return { v4: pick(await node.iptablesSave(false)), v6: pick(await node.iptablesSave(true)) };
}

/** The rules of `table inet node-local-dns` as `nft list` prints them, or null without the table. */
async function nftRules(node: Netns): Promise<string[] | null> {
  const r = await node.run('nft', ['list', 'table', 'inet', 'node-local-dns']);
  if (r.code !== 0) return null;
  return r.stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => /^ip6? [sd]addr /.test(l));
}

async function rulesInPlace(node: Netns, mode: 'iptables' | 'nftables'): Promise<boolean> {
  if (mode === 'iptables') {
    const x = await xtablesRules(node);
    return x.v4.length === V4_IPS.length * RULES_PER_IP && x.v6.length === V6_IPS.length * RULES_PER_IP;
  }
  return (await nftRules(node))?.length === LOCAL_IPS.length * RULES_PER_IP;
}

/** coredns_dns_requests_total per `server` label (the agent's prometheus plugin on :9253). */
async function requestsByServer(node: Netns): Promise<Map<string, number>> {
  const text = await node.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9253/metrics']);
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^coredns_dns_requests_total\{.*server="([^"]+)".*\} (\S+)$/.exec(line);
    if (m) out.set(m[1]!, (out.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Conntrack entries of `family` whose original destination is one of `ips`. */
async function conntrackTo(node: Netns, family: 'ipv4' | 'ipv6', ips: readonly string[]): Promise<string[]> {
  const r = await node.run('conntrack', ['-L', '-f', family]);
  return r.stdout.split('\n').filter((l) => {
    const dst = / dst=(\S+) /.exec(l)?.[1];
    return dst !== undefined && ips.includes(dst);
  });
}

function serverLabel(ip: string): string {
  return ip.includes(':') ? `dns://[${ip}]:53` : `dns://${ip}:53`;
}

const lastWord = (answers: string[]): string[] => answers.map((l) => l.split(' ').at(-1)!);

for (const mode of ['iptables', 'nftables'] as const) {
  test(`dual-stack, ${mode} back end: IPv4 and IPv6 pods, both families' rules, health, upstream and teardown`, { skip, timeout: 300_000 }, async (t) => {
    const sim = await createDualStackNode();
    const agents: NetnsAgent[] = [];
    t.after(async () => {
      for (const x of agents) if (x.child.exitCode === null && x.child.signalCode === null) x.child.kill('SIGKILL');
      await sim.teardown();
    });

    const a = await startAgent(sim, mode);
    agents.push(a);
    let current = a;
    await waitAgentReady(
      a,
      'node-local-dns to serve with its rules in place',
      async () => a.out().includes('[INFO] Start-up complete: serving') && (await rulesInPlace(sim.node, mode)),
    );

    await t.test('the interface holds both families; the rules exist for both families', async () => {
      const addrs = await sim.node.exec('ip', ['addr', 'show', 'dev', 'nodelocaldns']);
      for (const ip of V4_IPS) assert.match(addrs, new RegExp(`inet ${ip.replaceAll('.', '\\.')}/32 `), addrs);
      for (const ip of V6_IPS) assert.match(addrs, new RegExp(`inet6 ${ip}/128 scope global nodad`), addrs);
      if (mode === 'iptables') {
        const x = await xtablesRules(sim.node);
        assert.equal(x.v4.length, 24);
        assert.equal(x.v6.length, 24);
        const raw6 = await sim.node.exec('ip6tables', ['-w', '5', '-t', 'raw', '-S']);
        const filter6 = await sim.node.exec('ip6tables', ['-w', '5', '-t', 'filter', '-S']);
        t.diagnostic(`ip6tables -t raw -S:\n${raw6}\nip6tables -t filter -S:\n${filter6}`);
        console.log(`# ip6tables -t raw -S (dual-stack test):\n${raw6}# ip6tables -t filter -S:\n${filter6}`);
        for (const ip of V6_IPS) {
          for (const proto of ['tcp', 'udp']) {
            assert.match(raw6, new RegExp(`^-A PREROUTING -d ${ip}/128 -p ${proto} -m ${proto} --dport 53 .*-j NOTRACK$`, 'm'));
            assert.match(raw6, new RegExp(`^-A OUTPUT -s ${ip}/128 -p ${proto} -m ${proto} --sport 53 .*-j NOTRACK$`, 'm'));
            assert.match(filter6, new RegExp(`^-A INPUT -d ${ip}/128 -p ${proto} -m ${proto} --dport 53 .*-j ACCEPT$`, 'm'));
            assert.match(filter6, new RegExp(`^-A OUTPUT -s ${ip}/128 -p ${proto} -m ${proto} --sport 53 .*-j ACCEPT$`, 'm'));
          }
          assert.match(raw6, new RegExp(`^-A OUTPUT -d ${ip}/128 -p tcp -m tcp --dport 8080 .*-j NOTRACK$`, 'm'));
        }
        assert.equal(await nftRules(sim.node), null, 'no nftables table of ours');
        assert.match(a.out(), /48 iptables rules in place/);
      } else {
        const listing = await sim.node.exec('nft', ['list', 'table', 'inet', 'node-local-dns']);
        t.diagnostic(`nft list table inet node-local-dns:\n${listing}`);
        console.log(`# nft list table inet node-local-dns (dual-stack test):\n${listing}`);
        const rules = (await nftRules(sim.node))!;
        assert.equal(rules.filter((r) => r.startsWith('ip ')).length, 24);
        assert.equal(rules.filter((r) => r.startsWith('ip6 ')).length, 24);
        for (const ip of V6_IPS) {
          for (const proto of ['tcp', 'udp']) {
            assert.ok(listing.includes(`ip6 daddr ${ip} ${proto} dport 53 notrack comment "NodeLocal DNS Cache: skip conntrack"`), `${ip} ${proto}`);
            assert.ok(listing.includes(`ip6 saddr ${ip} ${proto} sport 53 accept comment "NodeLocal DNS Cache: allow DNS traffic"`), `${ip} ${proto}`);
          }
        }
        const x = await xtablesRules(sim.node);
        assert.deepEqual([...x.v4, ...x.v6], [], 'the nftables back end writes no iptables rule');
        assert.match(a.out(), /nftables table inet node-local-dns \(48 rules\) in place/);
      }
    });

    await t.test('the Corefile served binds both families, health on both link-local addresses, IPv6 upstream', async () => {
      const served = readFileSync(join(sim.dir, `agent-${mode}`, 'Corefile'), 'utf8');
      assert.match(served, /^ {4}bind 169\.254\.20\.10 fd00::10 198\.18\.0\.10 fd00::a$/m);
      assert.match(served, /^ {4}forward \. fd00::b \{$/m);
      assert.match(served, /^ {4}forward \. 198\.18\.1\.2 fd00:2::2$/m);
      assert.match(served, /^ {4}health \[fd00::10\]:\{\$NODE_LOCAL_DNS_HEALTH_PORT\}$/m);
      for (const url of [`http://${DUAL.localDns4Ip}:8080/health`, `http://[${DUAL.localDns6Ip}]:8080/health`]) {
        assert.equal(await sim.node.exec('curl', ['-sS', '--max-time', '5', url]), 'OK', url);
      }
      assert.equal(await sim.node.exec('curl', ['-sS', '--max-time', '5', `http://${DUAL.localDns4Ip}:8181/ready`]), 'OK');
    });

    await t.test('IPv4 and IPv6 pods are answered by node-local-dns on all four addresses, untracked', async () => {
      await sim.node.exec('conntrack', ['-F']);
      await sim.node.exec('conntrack', ['-F', '-f', 'ipv6']);
      const before = await requestsByServer(sim.node);
      const sent = new Map<string, number>();
      for (const [pod, servers] of [
        [sim.pod4, V4_IPS],
        [sim.pod6, V6_IPS],
      ] as const) {
        for (const server of servers) {
          for (const tcp of [false, true]) {
            for (const [name, [a4, a6]] of Object.entries(DUAL_RECORDS)) {
              for (const [type, want] of [
                ['A', a4],
                ['AAAA', a6],
              ] as const) {
                const r = await dig(pod, server, name, type, { tcp });
                sent.set(server, (sent.get(server) ?? 0) + 1);
                assert.deepEqual(lastWord(r.answers), [want], `${pod.name} → ${server} ${tcp ? 'tcp' : 'udp'} ${name} ${type}\n${r.raw}`);
              }
            }
          }
        }
      }
      const after = await requestsByServer(sim.node);
      for (const ip of LOCAL_IPS) {
        const label = serverLabel(ip);
        assert.equal((after.get(label) ?? 0) - (before.get(label) ?? 0), sent.get(ip), `${label}: every query counted by node-local-dns`);
      }
      assert.ok(after.has('dns://[fd00::10]:53') && after.has('dns://[fd00::a]:53'), [...after.keys()].join(', '));
      assert.deepEqual(await conntrackTo(sim.node, 'ipv4', V4_IPS), [], 'no IPv4 conntrack entry for the cache');
      assert.deepEqual(await conntrackTo(sim.node, 'ipv6', V6_IPS), [], 'no IPv6 conntrack entry for the cache');
      // The cluster zones went out through the IPv6 kube-dns-upstream cluster IP (DNAT'ed: tracked).
      const upstream = await conntrackTo(sim.node, 'ipv6', [DUAL.kubeDnsUpstream6Ip]);
      assert.ok(
        upstream.some((l) => l.includes(`src=${DUAL.kubeDns6PodIp} `)),
        `upstream through fd00::b DNAT'ed to the stand-in:\n${upstream.join('\n')}`,
      );
    });

    await t.test('no error logged, no failed health self check (either listener)', async () => {
      assert.doesNotMatch(a.out(), /\[ERROR\]/);
      assert.doesNotMatch(a.out(), /Local health request to "[^"]*" failed/);
    });

    await t.test('the periodic sync puts back a deleted IPv6 rule', async () => {
      const added = (a.out().match(/Added back nodelocaldns rule/g) ?? []).length;
      if (mode === 'iptables') {
        await sim.node.exec('ip6tables', [
          '-w',
          '5',
          '-t',
          'raw',
          '-D',
          'PREROUTING',
          '-p',
          'udp',
          '-d',
          DUAL.localDns6Ip,
          '--dport',
          '53',
          '-j',
          'NOTRACK',
          '-m',
          'comment',
          '--comment',
          'NodeLocal DNS Cache: skip conntrack',
        ]);
      } else {
        const listing = await sim.node.exec('nft', ['-a', 'list', 'chain', 'inet', 'node-local-dns', 'raw-prerouting']);
        const handle = /ip6 daddr fd00::10 udp dport 53 notrack .*# handle (\d+)/.exec(listing)?.[1];
        assert.ok(handle, listing);
        await sim.node.exec('nft', ['delete', 'rule', 'inet', 'node-local-dns', 'raw-prerouting', 'handle', handle]);
      }
      assert.equal(await rulesInPlace(sim.node, mode), false);
      await waitFor('the IPv6 rule to come back', () => rulesInPlace(sim.node, mode), 15_000, 200);
      await waitFor('the log line', async () => (a.out().match(/Added back nodelocaldns rule/g) ?? []).length === added + 1, 5000);
      assert.match(
        a.out(),
        mode === 'iptables'
          ? /Added back nodelocaldns rule - \{raw PREROUTING \[-p udp -d fd00::10 --dport 53 -j NOTRACK/
          : /Added back nodelocaldns rule - \{inet node-local-dns raw-prerouting \[ip6 daddr fd00::10 udp dport 53 notrack/,
      );
    });

    await t.test('after SIGKILL and a restart: one set of rules in both families', async () => {
      assert.equal((await stopAgent(a, 'SIGKILL')).signal, 'SIGKILL');
      assert.equal(await rulesInPlace(sim.node, mode), true, 'the killed instance left its rules');
      const b = await startAgent(sim, mode);
      agents.push(b);
      await waitFor('the restarted agent to serve', async () => b.out().includes('[INFO] Start-up complete: serving'), 30_000, 200);
      assert.equal(await rulesInPlace(sim.node, mode), true, 'no rule twice, none missing');
      assert.doesNotMatch(b.out(), /Added back nodelocaldns rule|Replaced nftables table/, 'the rules left behind were adopted as they are');
      const r = await dig(sim.pod6, DUAL.kubeDnsService6Ip, 'www.example.org', 'AAAA', { tcp: true });
      assert.deepEqual(lastWord(r.answers), ['fd00:5::5'], r.raw);
      current = b;
    });

    await t.test("SIGTERM removes every rule of both families and the interface; kube-dns's IPs reach the stand-in via DNAT", async () => {
      assert.deepEqual(await stopAgent(current, 'SIGTERM'), { code: 0, signal: null }, current.out());
      const x = await xtablesRules(sim.node);
      assert.deepEqual(x.v4, []);
      assert.deepEqual(x.v6, []);
      assert.equal(await nftRules(sim.node), null);
      assert.equal((await sim.node.run('ip', ['link', 'show', 'nodelocaldns'])).code !== 0, true, 'interface removed');
      for (const [pod, server] of [
        [sim.pod4, DUAL.kubeDnsService4Ip],
        [sim.pod6, DUAL.kubeDnsService6Ip],
      ] as const) {
        const r = await dig(pod, server, 'kubernetes.default.svc.cluster.local', 'AAAA');
        assert.deepEqual(lastWord(r.answers), ['fd00::1'], `${server}\n${r.raw}`);
      }
      const tracked6 = await conntrackTo(sim.node, 'ipv6', [DUAL.kubeDnsService6Ip]);
      assert.ok(
        tracked6.some((l) => l.includes(`src=${DUAL.kubeDns6PodIp} `)),
        `DNAT'ed to the stand-in:\n${tracked6.join('\n')}`,
      );
      const tracked4 = await conntrackTo(sim.node, 'ipv4', [DUAL.kubeDnsService4Ip]);
      assert.ok(
        tracked4.some((l) => l.includes(`src=${DUAL.kubeDns4PodIp} `)),
        `DNAT'ed to the stand-in:\n${tracked4.join('\n')}`,
      );
    });
  });
}
