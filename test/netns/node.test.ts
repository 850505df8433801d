/**
 * End to end on a simulated node: `node src/main.ts` runs as the node-local-dns DaemonSet pod
 * (host network = the `node` namespace) with the stock Corefile from kubernetes'
 * nodelocaldns.yaml (iptables-mode rendering), kube-dns being NSD behind kube-proxy-style DNAT.
 *
 * Checks: pods get answers through both local IPs (169.254.20.10 and the kube-dns service IP
 * 198.18.0.10) over UDP and TCP; those flows leave no conntrack entries; ConfigMap changes are
 * applied live; a deleted rule is put back by the periodic sync; SIGTERM removes rules and
 * interface (pods fall back to kube-dns through DNAT); after SIGKILL the next instance adopts the
 * leftover interface and rules without duplicating them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeConfigMapVolume } from '../lib/configmap-volume.ts';
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
} from './harness.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const MAIN = join(ROOT, 'src/main.ts');
const skip = netnsSkipReason({ nsd: true }) ?? (existsSync(MAIN) ? undefined : 'src/main.ts does not exist yet');

const LOCAL_IPS = `${SIM.localDnsIp},${SIM.kubeDnsServiceIp}`;

/** Starts the agent; `peers` is its `-peerdir` (a temp dir of the test, never the host's default). */
function startAgent(sim: SimNode, dir: string, peers: string, extra: string[] = []): NetnsAgent {
  const child = sim.node.spawn(
    process.execPath,
    [
      MAIN,
      '-localip',
      LOCAL_IPS,
      '-interfacetype',
      'bridge',
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      join(dir, 'coredns', 'Corefile.base'),
      '-kubednscm',
      join(dir, 'kube-dns'),
      '-upstreamsvc',
      'kube-dns-upstream',
      '-syncinterval',
      '1s',
      '-pidfile',
      join(dir, 'node-cache.pid'),
      '-peerdir',
      peers,
      ...extra,
    ],
    { cwd: ROOT, env: { ...process.env, KUBE_DNS_UPSTREAM_SERVICE_HOST: SIM.kubeDnsUpstreamServiceIp } },
  );
  return watchAgent(child);
}

async function nodeLocalRules(sim: SimNode): Promise<string[]> {
  const save = await sim.node.iptablesSave();
  return [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
}

async function linkExists(sim: SimNode, name: string): Promise<boolean> {
  return (await sim.node.run('ip', ['link', 'show', name])).code === 0;
}

/** Waits until the agent serves, has its 24 rules in place, and has finished starting. */
async function waitReady(sim: SimNode, agent: NetnsAgent): Promise<void> {
  await waitAgentReady(agent, 'node-local-dns to serve and install its rules', async () => {
    // Logged once runAgent has finished (main installs its signal handlers right after).
    if (!agent.out().includes('[INFO] Start-up complete: serving')) return false;
    if ((await nodeLocalRules(sim)).length !== 24) return false;
    const r = await dig(sim.pod, SIM.localDnsIp, 'kubernetes.default.svc.cluster.local', 'A', { timeoutSec: 1 });
    return r.status === 'NOERROR';
  });
}

/** Conntrack entries of the node namespace whose original destination is one of `ips`. */
async function conntrackTo(sim: SimNode, ips: string[]): Promise<string[]> {
  const r = await sim.node.run('conntrack', ['-L']);
  const lines = r.stdout.split('\n').filter((l) => l.trim() !== '');
  return lines.filter((l) => ips.some((ip) => new RegExp(`^\\S+\\s+\\d+\\s+(?:\\d+\\s+)?(?:\\S+\\s+)?src=\\S+ dst=${ip.replaceAll('.', '\\.')} `).test(l)));
}

test('node-local-dns on a simulated node', { skip, timeout: 240_000 }, async (t) => {
  const sim = await createSimNode();
  const peers = await mkdtemp(join(tmpdir(), 'nld-peers-'));
  const agents: NetnsAgent[] = [];
  t.after(async () => {
    for (const a of agents) {
      if (a.child.exitCode === null && a.child.signalCode === null) a.child.kill('SIGKILL');
    }
    await sim.teardown();
    await rm(peers, { recursive: true, force: true });
  });

  const dir = join(sim.dir, 'agent');
  await mkdir(join(dir, 'coredns'), { recursive: true });
  await mkdir(join(dir, 'kube-dns'));
  // The ConfigMap Corefile from nodelocaldns.yaml, rendered by the iptables-mode sed step.
  const raw = await readFile(join(ROOT, 'src/agent/testdata/nodelocaldns-configmap.Corefile'), 'utf8');
  const base = raw
    .replaceAll('__PILLAR__DNS__SERVER__', SIM.kubeDnsServiceIp)
    .replaceAll('__PILLAR__LOCAL__DNS__', SIM.localDnsIp)
    .replaceAll('__PILLAR__DNS__DOMAIN__', 'cluster.local');
  await writeFile(join(dir, 'coredns', 'Corefile.base'), base);
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: `["${SIM.kubeDnsUpstreamServiceIp}"]` });

  const first = startAgent(sim, dir, peers);
  agents.push(first);
  await waitReady(sim, first);

  await t.test('start-up log and state follow node-cache', async () => {
    const out = first.out();
    assert.match(out, /\[INFO\] Starting node-local-dns \S+/);
    assert.match(out, /\[INFO\] Updated Corefile with 0 custom stubdomains and upstream servers 198\.18\.0\.11/);
    assert.match(out, /\[INFO\] Added interface - nodelocaldns/);
    assert.ok(out.includes(`[INFO] Registered as primary in ${peers} (${peers}/primary-`), "registered in the test's peer directory");
    assert.equal((out.match(/\[INFO\] Added back nodelocaldns rule - \{/g) ?? []).length, 24);
    assert.ok(await linkExists(sim, 'nodelocaldns'));
    assert.match(await readFile(join(dir, 'node-cache.pid'), 'utf8'), /^\d+\n$/);
    const corefile = await readFile(join(dir, 'Corefile'), 'utf8');
    assert.match(corefile, /forward \. 198\.18\.0\.11 \{\n\s+force_tcp/);
    assert.match(corefile, /^\s+forward \. 198\.18\.0\.11$/m);
  });

  await t.test('pods are answered on both local IPs over UDP and TCP', async () => {
    for (const server of [SIM.localDnsIp, SIM.kubeDnsServiceIp]) {
      for (const tcp of [false, true]) {
        const what = `${server} ${tcp ? 'tcp' : 'udp'}`;
        const a = await dig(sim.pod, server, 'web.default.svc.cluster.local', 'A', { tcp });
        assert.equal(a.status, 'NOERROR', `${what}\n${a.raw}`);
        assert.deepEqual(
          a.answers.map((l) => l.split(' ').slice(2).join(' ')),
          ['IN A 198.18.2.20'],
          what,
        );
        const ptr = await dig(sim.pod, server, '20.2.18.198.in-addr.arpa', 'PTR', { tcp });
        assert.deepEqual(
          ptr.answers.map((l) => l.split(' ').at(-1)),
          ['web.default.svc.cluster.local.'],
          what,
        );
        const ext = await dig(sim.pod, server, 'www.example.org', 'A', { tcp });
        assert.deepEqual(
          ext.answers.map((l) => l.split(' ').at(-1)),
          ['198.18.5.5'],
          what,
        );
      }
    }
  });

  await t.test('no conntrack entries for traffic to node-local-dns once its rules are in', async () => {
    // Flows the server opened to itself before the rules existed (node-cache installs them after
    // start-up, so the same happens there) are flushed; from now on nothing may be tracked.
    await sim.node.exec('conntrack', ['-F']);
    for (const server of [SIM.localDnsIp, SIM.kubeDnsServiceIp]) {
      for (const tcp of [false, true]) {
        // Fresh names (cache misses) so the cache also talks to its upstream.
        const name = `${server === SIM.localDnsIp ? 'kube-dns' : 'kube-dns-upstream'}.kube-system.svc.cluster.local`;
        const r = await dig(sim.pod, server, name, 'A', { tcp });
        assert.equal(r.status, 'NOERROR', r.raw);
      }
    }
    const health = await sim.node.run('curl', ['-sS', '--max-time', '5', `http://${SIM.localDnsIp}:8080/health`]);
    assert.equal(health.code, 0, health.stderr);
    const tracked = await conntrackTo(sim, [SIM.localDnsIp, SIM.kubeDnsServiceIp]);
    assert.deepEqual(tracked, []);
    // conntrack is active in this namespace: the cache's own upstream flows are tracked (DNAT).
    assert.ok((await conntrackTo(sim, [SIM.kubeDnsUpstreamServiceIp])).length > 0, 'expected tracked upstream flows');
  });

  await t.test('setup metrics and health endpoints', async () => {
    const metrics = await sim.node.exec('curl', ['-sS', '--max-time', '5', 'http://127.0.0.1:9353/metrics']);
    for (const type of ['iptables', 'iptables_lock', 'interface_add', 'interface_check', 'configmap']) {
      assert.match(metrics, new RegExp(`^coredns_nodecache_setup_errors_total\\{errortype="${type}"\\} 0$`, 'm'));
    }
    const health = await sim.node.exec('curl', ['-sS', '--max-time', '5', `http://${SIM.localDnsIp}:8080/health`]);
    assert.equal(health.trim(), 'OK');
  });

  await t.test('a stub domain added to the kube-dns ConfigMap is served without restart', async () => {
    await writeConfigMapVolume(join(dir, 'kube-dns'), {
      upstreamNameservers: `["${SIM.kubeDnsUpstreamServiceIp}"]`,
      stubDomains: `{"stub.test": ["${SIM.kubeDnsPodIp}"]}`,
    });
    await waitFor('the ConfigMap update', async () => first.out().includes('Updated Corefile with 1 custom stubdomains'), 20_000, 200);
    assert.match(await readFile(join(dir, 'Corefile'), 'utf8'), /\nstub\.test:53 \{\n[^}]*prometheus :9253\n\}\n/);
    await waitFor(
      'the stub domain to answer',
      async () => {
        const r = await dig(sim.pod, SIM.localDnsIp, 'www.stub.test', 'A', { timeoutSec: 1 });
        return r.answers.some((l) => l.endsWith(' 198.18.6.6'));
      },
      15_000,
      200,
    );
  });

  await t.test('a rule deleted behind its back is added back by the periodic sync', async () => {
    const before = (first.out().match(/Added back nodelocaldns rule/g) ?? []).length;
    await sim.node.exec('iptables', [
      '-w',
      '5',
      '-t',
      'raw',
      '-D',
      'PREROUTING',
      '-p',
      'udp',
      '-d',
      SIM.localDnsIp,
      '--dport',
      '53',
      '-j',
      'NOTRACK',
      '-m',
      'comment',
      '--comment',
      'NodeLocal DNS Cache: skip conntrack',
    ]);
    await waitFor('the rule to come back', async () => (await nodeLocalRules(sim)).length === 24, 15_000, 200);
    await waitFor('the log line', async () => (first.out().match(/Added back nodelocaldns rule/g) ?? []).length === before + 1, 5000);
    assert.match(first.out(), /Added back nodelocaldns rule - \{raw PREROUTING \[-p udp -d 169\.254\.20\.10 --dport 53 -j NOTRACK/);
  });

  await t.test('SIGTERM tears down rules and interface; pods fall back to kube-dns', async () => {
    assert.deepEqual(await stopAgent(first, 'SIGTERM'), { code: 0, signal: null }, first.out());
    assert.deepEqual(await nodeLocalRules(sim), []);
    assert.equal(await linkExists(sim, 'nodelocaldns'), false);
    await assert.rejects(stat(join(dir, 'node-cache.pid')));
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'kubernetes.default.svc.cluster.local', 'A');
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.0.1'],
      'kube-proxy DNAT answers again',
    );
  });

  await t.test('after SIGKILL the next instance adopts interface and rules without duplicates', async () => {
    const second = startAgent(sim, dir, peers);
    agents.push(second);
    await waitReady(sim, second);
    const killed = await stopAgent(second, 'SIGKILL');
    assert.equal(killed.signal, 'SIGKILL');
    assert.equal((await nodeLocalRules(sim)).length, 24, 'rules left behind by the killed instance');
    assert.ok(await linkExists(sim, 'nodelocaldns'));

    const third = startAgent(sim, dir, peers);
    agents.push(third);
    await waitReady(sim, third);
    assert.equal((await nodeLocalRules(sim)).length, 24, 'no duplicate rules');
    assert.doesNotMatch(third.out(), /Added back nodelocaldns rule|Added interface/);
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'www.example.org', 'A', { tcp: true });
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.5.5'],
    );

    assert.deepEqual(await stopAgent(third, 'SIGTERM'), { code: 0, signal: null }, third.out());
    assert.deepEqual(await nodeLocalRules(sim), []);
  });
});
