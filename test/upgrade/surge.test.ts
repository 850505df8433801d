/**
 * The upgrade drill of a single DaemonSet rolling with `maxSurge: 1, maxUnavailable: 0`
 * (deploy/kubernetes/nodelocaldns.yaml), on a simulated node (test/netns/harness.ts: pod, node
 * and kube-dns network namespaces, NSD as kube-dns behind kube-proxy-style DNAT).
 *
 * Both instances run the agent with the arguments, environment and Corefile of the rendered
 * iptables-mode manifest (deploy/render.ts with the simulated cluster's addresses), changed only
 * where the simulation differs from a pod: file paths (the ConfigMap volumes, the peer
 * directory hostPath), `-interfacetype bridge` (this sandbox has no `dummy` links),
 * `-syncinterval 2s` (to see the next sync within the test) and `-workers 1` (2 cores).
 *
 * What the drill does, as kubelet and the DaemonSet controller would:
 *  1. the old instance serves alone; the rules it installs are the reference set;
 *  2. under 2,000 queries/s from the pod namespace (dnsperf, 32 client sockets, through
 *     169.254.20.10) the new instance starts beside it; both bind every DNS and HTTP port;
 *  3. a kubelet-like readiness probe (GET /ready on the manifest's host and port, from the
 *     manifest's initialDelaySeconds on) runs until it gets 200: whichever instance answers,
 *     the new one must by then serve with its rules in place;
 *  4. only then the old instance gets SIGTERM; it must leave interface and rules to the new one;
 *  5. asserted: 0 queries lost, exactly one set of rules (iptables-save) after the old one
 *     exited, the new one serving and its rules present after its next periodic sync.
 * A second, lighter drill (no load) does the same hand-over with the nftables-mode manifest
 * (`-rulesbackend nftables`): the table is the same before, during and after, exactly one, and
 * the last instance deletes it.
 * The load is stopped 2 s after the old instance exited: with the 1 s client timeout every query
 * sent around the hand-over has by then been answered or counted lost; what dnsperf reports as
 * interrupted at the stop was sent in the last second, with only the new instance serving.
 * A baseline (same load, no restart) runs first: when the machine itself loses queries the
 * baseline fails saying so, and the drill prints its numbers without asserting the loss bound
 * (as test/netns/drill.test.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { shippedNodeFlags } from '../../bench/lib/servers.ts';
import { TEMPLATE_PATH, renderManifest } from '../../deploy/render.ts';
import { envOf } from '../deploy/lib/bundle.ts';
import { findOne, parseManifests, type DaemonSetShape, type K8sObject } from '../deploy/lib/k8s.ts';
import { SIM, createSimNode, dig, netnsSkipReason, savedRules, waitFor, type SimNode } from '../netns/harness.ts';
import { type DnsperfResult, parseDnsperf } from '../netns/dnsperf-report.ts';

const ROOT = new URL('../../', import.meta.url).pathname;
const BIN = join(ROOT, 'bin/node-local-dns.js');
const NODE = join(ROOT, 'node_modules/.bin/node');

function dnsperfMissing(): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v dnsperf && command -v curl && command -v ss'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'dnsperf, curl or ss is not installed (apt-get install dnsperf curl iproute2)';
  }
}
const skip = netnsSkipReason({ nsd: true }) ?? dnsperfMissing();
if (skip) process.stdout.write(`# surge.test.ts skipped: ${skip}\n`);

const LOAD_QPS = 2000;
const LOAD_CLIENTS = 32;
const CLIENT_TIMEOUT_S = 1;
const SYNC_INTERVAL = '2s';

/** What the rendered manifest says about the node-cache container. */
interface ManifestPod {
  args: string[];
  env: Record<string, string>;
  corefileBase: string;
  ready: { host: string; port: number; path: string; initialDelayMs: number };
  health: { host: string; port: number };
  /** HTTP ports the instance binds on the node: health, ready, metrics (Corefile), agent metrics (-metrics-listen-address). */
  httpPorts: number[];
  strategy: unknown;
}

function manifestPod(mode: 'iptables' | 'nftables' = 'iptables'): ManifestPod {
  const rendered = renderManifest(readFileSync(TEMPLATE_PATH, 'utf8'), {
    mode,
    dnsServer: SIM.kubeDnsServiceIp,
    localDns: SIM.localDnsIp,
    domain: 'cluster.local',
  });
  const objs = parseManifests(rendered, 'rendered');
  const ds = findOne<DaemonSetShape>(objs, 'DaemonSet');
  const cm = findOne<K8sObject & { data: { Corefile: string } }>(objs, 'ConfigMap');
  const c = ds.spec.template.spec.containers[0]!;
  const ready = c.readinessProbe!.httpGet;
  const live = c.livenessProbe!.httpGet;
  const env = envOf(c);
  const args = c.args ?? [];
  const agentMetrics = Number(/:(\d+)$/.exec(args[args.indexOf('-metrics-listen-address') + 1] ?? '')?.[1]);
  const probe = c.readinessProbe as { initialDelaySeconds?: number } | undefined;
  return {
    args,
    env,
    corefileBase: cm.data.Corefile,
    ready: { host: ready.host!, port: Number(ready.port), path: ready.path, initialDelayMs: (probe?.initialDelaySeconds ?? 0) * 1000 },
    health: { host: live.host!, port: Number(live.port) },
    httpPorts: [Number(live.port), Number(ready.port), Number(env.NODE_LOCAL_DNS_METRICS_PORT), agentMetrics],
    strategy: ds.spec.updateStrategy,
  };
}

/** `args` with `flag`'s value replaced (or the flag appended). */
function withFlag(args: readonly string[], flag: string, value: string): string[] {
  const out = [...args];
  const i = out.indexOf(flag);
  if (i >= 0) out[i + 1] = value;
  else out.push(flag, value);
  return out;
}

interface Instance {
  name: string;
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startInstance(sim: SimNode, pod: ManifestPod, dir: string, name: string): Instance {
  const own = join(dir, name);
  let args = withFlag(pod.args, '-conf', join(own, 'Corefile'));
  args = withFlag(args, '-peerdir', join(dir, 'peers'));
  args = withFlag(args, '-basecorefile', join(dir, 'coredns', 'Corefile.base'));
  args = withFlag(args, '-kubednscm', join(dir, 'kube-dns'));
  args = withFlag(args, '-interfacetype', 'bridge');
  args = withFlag(args, '-syncinterval', SYNC_INTERVAL);
  args = withFlag(args, '-workers', '1');
  const child = sim.node.spawn(NODE, [...shippedNodeFlags(ROOT), BIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...pod.env, KUBE_DNS_UPSTREAM_SERVICE_HOST: SIM.kubeDnsUpstreamServiceIp },
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { name, child, out: () => out, exited };
}

async function nodeLocalRules(sim: SimNode): Promise<string[]> {
  const save = await sim.node.iptablesSave();
  return [...savedRules(save, 'raw'), ...savedRules(save, 'filter')].filter((l) => l.includes('NodeLocal DNS Cache'));
}

async function linkExists(sim: SimNode): Promise<boolean> {
  return (await sim.node.run('ip', ['link', 'show', 'nodelocaldns'])).code === 0;
}

/** HTTP status of one GET in the node namespace (a fresh connection: the kernel picks an instance anew), 0 when refused. */
async function httpStatus(sim: SimNode, host: string, port: number, path: string): Promise<number> {
  const r = await sim.node.run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', `http://${host}:${port}${path}`]);
  return Number(r.stdout.trim()) || 0;
}

/** Listening TCP sockets per port in the node namespace, with the owning pids (`ss -ltnp`). */
async function tcpListeners(sim: SimNode, port: number): Promise<Set<number>> {
  const out = await sim.node.exec('ss', ['-Hltnp', `sport = :${port}`]);
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

async function waitStarted(inst: Instance, timeoutMs = 60_000): Promise<void> {
  const started = waitFor(`${inst.name} to finish starting`, async () => inst.out().includes('[INFO] Start-up complete: serving'), timeoutMs, 100);
  const died = inst.exited.then(({ code, signal }) => {
    throw new Error(`${inst.name} exited early (code ${code}, signal ${signal})`);
  });
  await Promise.race([started, died]).catch((err: Error) => {
    throw new Error(`${err.message}\n${inst.name} output:\n${inst.out()}`);
  });
  died.catch(() => undefined);
}

async function stopInstance(inst: Instance): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (inst.child.exitCode !== null || inst.child.signalCode !== null) return inst.exited;
  inst.child.kill('SIGTERM');
  const timeout = new Promise<never>((_, reject) =>
    setTimeout(() => reject(new Error(`${inst.name} did not exit within 30 s of SIGTERM\n${inst.out()}`)), 30_000).unref(),
  );
  return Promise.race([inst.exited, timeout]);
}

// ---- load ---------------------------------------------------------------------------------

/** Names answered from the cache and unique names that reach kube-dns (NXDOMAIN from NSD) every time. */
async function writeQueryFile(path: string, misses: number): Promise<void> {
  const hits = ['web.default.svc.cluster.local A', 'kubernetes.default.svc.cluster.local A', 'www.example.org A', '20.2.18.198.in-addr.arpa PTR'];
  const lines: string[] = [];
  for (let i = 0; i < misses; i++) lines.push(...hits, `miss-${i}.default.svc.cluster.local A`);
  await writeFile(path, `${lines.join('\n')}\n`);
}

interface Load {
  result: Promise<DnsperfResult>;
  startedAtMs: number;
  /** Ends the load now: dnsperf prints its statistics (queries outstanding then are "interrupted", not lost). */
  stop(): void;
}

function startLoad(sim: SimNode, queryFile: string, seconds: number): Load {
  const startedAtMs = Date.now();
  const perf = sim.pod.spawn('dnsperf', [
    ...['-s', SIM.localDnsIp, '-d', queryFile, '-c', String(LOAD_CLIENTS), '-q', '1000', '-Q', String(LOAD_QPS)],
    ...['-l', String(seconds), '-t', String(CLIENT_TIMEOUT_S), '-S', '1'],
  ]);
  let out = '';
  perf.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  perf.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  const result = new Promise<DnsperfResult>((resolve, reject) =>
    perf.once('exit', (code) => {
      if (code !== 0 && !/Testing complete \(interruption\)/.test(out)) reject(new Error(`dnsperf exited with ${code}:\n${out}`));
      else resolve(parseDnsperf(out));
    }),
  );
  return { result, startedAtMs, stop: () => perf.kill('SIGINT') };
}

// ---- the drill ----------------------------------------------------------------------------

test('upgrade drill: one DaemonSet with maxSurge 1 hands the node over without a gap', { skip, timeout: 400_000 }, async (t) => {
  const pod = manifestPod();
  assert.deepEqual(pod.strategy, { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } }, 'the manifest rolls new pod first');
  const sim = await createSimNode();
  const instances: Instance[] = [];
  t.after(async () => {
    for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
    await sim.teardown();
  });
  const dir = join(sim.dir, 'surge');
  await mkdir(join(dir, 'coredns'), { recursive: true });
  await mkdir(join(dir, 'kube-dns'));
  for (const n of ['old', 'new']) await mkdir(join(dir, n));
  // The ConfigMap volumes: the manifest's Corefile, and kube-dns's upstreams (never this machine's resolv.conf).
  await writeFile(join(dir, 'coredns', 'Corefile.base'), pod.corefileBase);
  await writeFile(join(dir, 'kube-dns', 'upstreamNameservers'), `["${SIM.kubeDnsUpstreamServiceIp}"]`);
  const queryFile = join(dir, 'queries.txt');
  await writeQueryFile(queryFile, 20_000);
  const start = (name: string): Instance => {
    const i = startInstance(sim, pod, dir, name);
    instances.push(i);
    return i;
  };

  const old = start('old');
  let reference: string[] = [];
  let baselineLost = -1;

  await t.test('the old instance serves alone; its rules are the reference set', async () => {
    await waitStarted(old);
    reference = (await nodeLocalRules(sim)).sort();
    assert.ok(reference.length > 0, 'rules installed');
    assert.equal(new Set(reference).size, reference.length, 'no duplicate rule');
    assert.equal(await httpStatus(sim, pod.ready.host, pod.ready.port, pod.ready.path), 200);
    const r = await dig(sim.pod, SIM.kubeDnsServiceIp, 'web.default.svc.cluster.local', 'A');
    assert.deepEqual(
      r.answers.map((l) => l.split(' ').at(-1)),
      ['198.18.2.20'],
      r.raw,
    );
  });

  await t.test('baseline: the simulated node carries the load without a restart', async () => {
    const load = startLoad(sim, queryFile, 3);
    const perf = await load.result;
    const line = `baseline (no restart): ${LOAD_QPS} qps, sent ${perf.sent}, completed ${perf.completed}, lost ${perf.lost}`;
    t.diagnostic(line);
    process.stdout.write(`# ${line}\n`);
    baselineLost = perf.lost;
    assert.equal(perf.lost, 0, `the node loses queries at ${LOAD_QPS} qps without any restart: the machine is too busy for the drill\n${perf.raw}`);
  });

  await t.test('under load: new instance beside the old one, ready, then SIGTERM to the old one: 0 lost, one set of rules', async () => {
    const load = startLoad(sim, queryFile, 300);
    const events: Record<string, number> = {};
    let fresh: Instance | undefined;
    try {
      await new Promise((r) => setTimeout(r, 2000));
      events['new started'] = Date.now();
      fresh = start('new');
      // kubelet: the readiness probe from initialDelaySeconds on, until it sees 200 (success threshold 1).
      await new Promise((r) => setTimeout(r, pod.ready.initialDelayMs));
      let probes = 0;
      let notReady = 0;
      await waitFor(
        'a readiness probe to answer 200 with both instances running',
        async () => {
          if (fresh!.child.exitCode !== null) throw new Error(`the new instance exited:\n${fresh!.out()}`);
          probes++;
          const code = await httpStatus(sim, pod.ready.host, pod.ready.port, pod.ready.path);
          if (code !== 200) notReady++;
          return code === 200;
        },
        60_000,
        200,
      );
      events['probe 200'] = Date.now();
      // Whichever instance answered the probe: the new one serves with its rules in place by then
      // (its start-up line may still be in the pipe: it flips readiness and logs in one step).
      await waitFor('the new instance to have logged its start-up', async () =>
        /\[INFO\] Start-up complete: serving 169\.254\.20\.10, 198\.18\.0\.10; interface nodelocaldns and \d+ iptables rules in place/.test(fresh!.out()),
      );
      assert.match(old.out(), /\[INFO\] A newer primary is starting: \/ready answers 503 here until it serves/);
      assert.match(fresh.out(), /\[INFO\] Joining primary pid \d+ \(serving\) of the same role/);
      t.diagnostic(`readiness probes until 200: ${probes} (${notReady} not ready)`);

      // Both bind every HTTP port of the manifest (SO_REUSEPORT), and every probe target answers.
      // `ip netns exec` execs the agent in place: the spawned pid is the agent's.
      const pids = [old.child.pid!, fresh.child.pid!];
      for (const port of pod.httpPorts) {
        const owners = await tcpListeners(sim, port);
        // Both agents hold a listening socket. (A process an agent is forking at that moment,
        // iptables for its sync, shows the socket too until its exec closes it.)
        for (const pid of pids) assert.ok(owners.has(pid), `port ${port}: pid ${pid} listens (listeners: ${[...owners].join(', ')})`);
      }
      assert.equal(await httpStatus(sim, pod.health.host, pod.health.port, '/health'), 200);
      assert.doesNotMatch(fresh.out(), /address already in use|Failed to start metrics handler/);

      events['SIGTERM old'] = Date.now();
      assert.deepEqual(await stopInstance(old), { code: 0, signal: null }, old.out());
      events['old exited'] = Date.now();
      assert.match(old.out(), /\[INFO\] Not tearing down: 1 other instance\(s\) still serve 169\.254\.20\.10, 198\.18\.0\.10: primary pid \d+ \(serving\)/);
      await new Promise((r) => setTimeout(r, 2000));
    } finally {
      load.stop();
    }
    const seconds = (Date.now() - load.startedAtMs) / 1000;
    const perf = await load.result;
    const ev = Object.entries(events)
      .map(([k, v]) => `${k} at +${((v - load.startedAtMs) / 1000).toFixed(2)} s`)
      .join(', ');
    const line =
      `surge upgrade drill: ${LOAD_QPS} qps for ${seconds.toFixed(1)} s, dnsperf sent ${perf.sent}, completed ${perf.completed}, ` +
      `lost ${perf.lost}; completions per second [${perf.perSecond.map((x) => Math.round(x)).join(' ')}]; ${ev}`;
    t.diagnostic(line);
    process.stdout.write(`# ${line}\n`);

    const after = (await nodeLocalRules(sim)).sort();
    assert.deepEqual(after, reference, 'exactly one set of rules after the old instance exited');
    assert.ok(await linkExists(sim));
    assert.ok(perf.sent >= LOAD_QPS * seconds * 0.9, `dnsperf sent only ${perf.sent} in ${seconds} s`);
    if (baselineLost === 0) {
      assert.equal(perf.lost, 0, `lost ${perf.lost} of ${perf.sent} (${line})\nnew instance:\n${fresh?.out()}\nold instance:\n${old.out()}\n${perf.raw}`);
    }

    // The new instance serves and maintains the set-up from its next sync on.
    const newer = fresh!;
    await waitFor(
      'the new instance to take over the network sync',
      async () => newer.out().includes('[INFO] Maintaining the network set-up (no older primary serves)'),
      20_000,
    );
    await new Promise((r) => setTimeout(r, 2500));
    assert.deepEqual((await nodeLocalRules(sim)).sort(), reference, 'after its next sync: the same single set');
    assert.doesNotMatch(newer.out(), /Added back nodelocaldns rule|Added interface/);
    assert.equal(await httpStatus(sim, pod.ready.host, pod.ready.port, pod.ready.path), 200);
    for (const server of [SIM.localDnsIp, SIM.kubeDnsServiceIp]) {
      const r = await dig(sim.pod, server, 'www.example.org', 'A');
      assert.deepEqual(
        r.answers.map((l) => l.split(' ').at(-1)),
        ['198.18.5.5'],
        r.raw,
      );
    }
  });

  await t.test('the last instance to stop tears down', async () => {
    const newer = instances[1]!;
    assert.deepEqual(await stopInstance(newer), { code: 0, signal: null }, newer.out());
    assert.match(newer.out(), /No other instance alive in .*: this primary is the last one/);
    assert.deepEqual(await nodeLocalRules(sim), []);
    assert.equal(await linkExists(sim), false);
  });
});

/** The nftables back end's table, as `nft list table` prints it (handles omitted), or '' when absent. */
async function nftTable(sim: SimNode): Promise<string> {
  const r = await sim.node.run('nft', ['list', 'table', 'inet', 'node-local-dns']);
  return r.code === 0 ? r.stdout : '';
}

test('upgrade drill, nftables manifest: the table is handed over, never deleted or doubled', { skip, timeout: 200_000 }, async (t) => {
  const pod = manifestPod('nftables');
  assert.equal(pod.args[pod.args.indexOf('-rulesbackend') + 1], 'nftables');
  const sim = await createSimNode();
  const instances: Instance[] = [];
  t.after(async () => {
    for (const i of instances) if (i.child.exitCode === null && i.child.signalCode === null) i.child.kill('SIGKILL');
    await sim.teardown();
  });
  const dir = join(sim.dir, 'surge-nft');
  await mkdir(join(dir, 'coredns'), { recursive: true });
  await mkdir(join(dir, 'kube-dns'));
  for (const n of ['old', 'new']) await mkdir(join(dir, n));
  await writeFile(join(dir, 'coredns', 'Corefile.base'), pod.corefileBase);
  await writeFile(join(dir, 'kube-dns', 'upstreamNameservers'), `["${SIM.kubeDnsUpstreamServiceIp}"]`);

  const old = startInstance(sim, pod, dir, 'old');
  instances.push(old);
  await waitStarted(old);
  const reference = await nftTable(sim);
  assert.match(reference, /^table inet node-local-dns \{$/m);
  assert.deepEqual(await nodeLocalRules(sim), [], 'no iptables rules with the nftables back end');

  const fresh = startInstance(sim, pod, dir, 'new');
  instances.push(fresh);
  await new Promise((r) => setTimeout(r, pod.ready.initialDelayMs));
  await waitFor('a readiness probe to answer 200', async () => (await httpStatus(sim, pod.ready.host, pod.ready.port, pod.ready.path)) === 200, 60_000, 200);
  await waitFor('the new instance to have logged its start-up', async () => fresh.out().includes('[INFO] Start-up complete: serving'));
  assert.equal(await nftTable(sim), reference, 'the new instance found the table as it was');

  assert.deepEqual(await stopInstance(old), { code: 0, signal: null }, old.out());
  assert.match(old.out(), /\[INFO\] Not tearing down: 1 other instance\(s\) still serve/);
  assert.equal(await nftTable(sim), reference, 'the old instance left the table to the new one');
  const tables = await sim.node.exec('nft', ['list', 'tables']);
  assert.equal(tables.split('\n').filter((l) => l.trim() === 'table inet node-local-dns').length, 1, tables);
  await waitFor(
    'the new instance to take over the network sync',
    async () => fresh.out().includes('[INFO] Maintaining the network set-up (no older primary serves)'),
    20_000,
  );
  await new Promise((r) => setTimeout(r, 2500));
  assert.equal(await nftTable(sim), reference, 'after its next sync: the same table');
  const r = await dig(sim.pod, SIM.localDnsIp, 'www.example.org', 'A');
  assert.deepEqual(
    r.answers.map((l) => l.split(' ').at(-1)),
    ['198.18.5.5'],
    r.raw,
  );

  assert.deepEqual(await stopInstance(fresh), { code: 0, signal: null }, fresh.out());
  assert.equal(await nftTable(sim), '', 'the last instance deletes the table');
});
