/**
 * runAgent's orchestration against real `ip`/`iptables` inside a throwaway network namespace.
 * The DNS engine here is a recording one (it reads the Corefile it is given and records calls,
 * and can be told to fail): the engine is the lead's part, and serving through it is covered
 * end to end by test/netns/node.test.ts.
 */
import { test } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '../plugin.ts';
import { parseOptions } from '../cli/options.ts';
import { writeConfigMapVolume } from '../../test/lib/configmap-volume.ts';
import { createScratchNetns, netnsSkipReason, savedRules, waitFor, type Netns } from '../../test/netns/harness.ts';
import { AgentError, runAgent, type EngineHandle } from './agent.ts';
import { InterfaceError, InterfaceManager } from './iface.ts';
import { nodeLocalDnsRules, formatRule } from './iptables.ts';

const skip = netnsSkipReason();

const BASE =
  'cluster.local:53 {\n    errors\n    cache 30\n    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__\n' +
  '    forward . __PILLAR__CLUSTER__DNS__ {\n            force_tcp\n    }\n    prometheus :9253\n    health __PILLAR__LOCAL__DNS__:8080\n    }\n' +
  '.:53 {\n    errors\n    cache 30\n    bind __PILLAR__LOCAL__DNS__ __PILLAR__DNS__SERVER__\n    forward . __PILLAR__UPSTREAM__SERVERS__\n    prometheus :9253\n    }\n';
const ENV = { KUBE_DNS_UPSTREAM_SERVICE_HOST: '198.18.0.11' };

function captureLog(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`[INFO] ${m}`),
    warn: (m) => lines.push(`[WARNING] ${m}`),
    error: (m) => lines.push(`[ERROR] ${m}`),
  };
}

interface Recorded {
  events: string[];
  starts: { corefile: string; bind: string[]; port: number; clusterZones: readonly string[]; rulesAtStart: number; ifaceAtStart: boolean }[];
  /** The readiness condition the agent gave the engine (the `ready` plugin's answer), per start. */
  readyChecks: (() => boolean)[];
  reloads: string[];
  failReload: boolean;
  rulesAtStop: number;
}

/** An engine that records what the agent asks of it and what the node looked like at that time. */
function recordingEngine(ns: Netns, rec: Recorded) {
  return async (corefilePath: string, bind: string[], port: number, clusterZones: readonly string[], readyCheck: () => boolean): Promise<EngineHandle> => {
    rec.readyChecks.push(readyCheck);
    const corefile = await readFile(corefilePath, 'utf8');
    const save = await ns.iptablesSave();
    const iface = await new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: [] }, ns.run).exists();
    rec.starts.push({ corefile, bind, port, clusterZones, rulesAtStart: (save.match(/NodeLocal DNS Cache/g) ?? []).length, ifaceAtStart: iface });
    rec.events.push('start');
    return {
      setClusterZones: (zones) => rec.events.push(`zones ${zones.join(',')}`),
      reload: async () => {
        rec.events.push('reload');
        const text = await readFile(corefilePath, 'utf8');
        if (rec.failReload) throw new Error('Corefile:3 - Error during parsing: unknown directive');
        rec.reloads.push(text);
      },
      stop: async () => {
        rec.events.push('stop');
        rec.rulesAtStop = ((await ns.iptablesSave()).match(/NodeLocal DNS Cache/g) ?? []).length;
      },
    };
  };
}

function newRecorded(): Recorded {
  return { events: [], starts: [], readyChecks: [], reloads: [], failReload: false, rulesAtStop: -1 };
}

/**
 * A scratch namespace and a temp dir, both removed after the test. `peers` (inside the temp dir)
 * is the `-peerdir` of every agent a test starts: never the host's default /run/node-local-dns.
 */
async function setup(t: { after(fn: () => Promise<void>): void }) {
  const ns = await createScratchNetns('agent');
  const dir = await mkdtemp(join(tmpdir(), 'nld-agent-'));
  t.after(async () => {
    await ns.delete();
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(join(dir, 'coredns'));
  await mkdir(join(dir, 'kube-dns'));
  const peers = join(dir, 'peers');
  await mkdir(peers);
  return { ns, dir, peers };
}

function countRules(save: string): number {
  return (save.match(/NodeLocal DNS Cache/g) ?? []).length;
}

test('template mode: render → interface → engine → iptables; sync; ConfigMap reloads; shutdown tears down', { skip }, async (t) => {
  const { ns, dir, peers } = await setup(t);
  await writeFile(join(dir, 'coredns', 'Corefile.base'), BASE);
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: '["198.18.1.2"]' });
  const opts = parseOptions([
    '-localip',
    '169.254.20.10,198.18.0.10',
    '-conf',
    join(dir, 'Corefile'),
    '-basecorefile',
    join(dir, 'coredns', 'Corefile.base'),
    '-kubednscm',
    join(dir, 'kube-dns'),
    '-upstreamsvc',
    'kube-dns-upstream',
    '-interfacetype',
    'bridge',
    '-syncinterval',
    '1h',
    '-metrics-listen-address',
    '127.0.0.1:0',
    '-pidfile',
    join(dir, 'pid'),
    '-health-port',
    '8080',
    '-peerdir',
    peers,
  ]);
  const rec = newRecorded();
  const log = captureLog();
  const env: Record<string, string | undefined> = { ...ENV };
  const agent = await runAgent(opts, {
    startEngine: recordingEngine(ns, rec),
    log,
    env,
    runner: ns.run,
    version: 'v-test',
    configPollMs: 200,
    processMetrics: false,
  });
  let shut = false;
  t.after(async () => {
    if (!shut) await agent.shutdown();
  });

  // Order: Corefile written and interface up before the engine; rules only after it started.
  assert.equal(rec.starts.length, 1);
  const s = rec.starts[0]!;
  assert.deepEqual(s.bind, ['169.254.20.10', '198.18.0.10']);
  assert.equal(s.port, 53);
  assert.equal(s.ifaceAtStart, true);
  assert.equal(s.rulesAtStart, 0);
  assert.match(s.corefile, /^ {4}forward \. 198\.18\.0\.11 \{$/m);
  assert.match(s.corefile, /^ {4}forward \. 198\.18\.1\.2$/m);
  assert.match(s.corefile, /^ {4}bind 169\.254\.20\.10 198\.18\.0\.10 $/m);
  assert.equal(countRules(await ns.iptablesSave()), 24);
  assert.equal(await readFile(join(dir, 'pid'), 'utf8'), `${process.pid}\n`);

  const rules = nodeLocalDnsRules(opts.localIps, 53, 8080);
  // The role and peer-registration lines (src/agent/standby.ts; drilled in test/netns/drill.test.ts).
  const roleLines = log.lines.filter((l) => /^\[INFO\] (Role: primary - |Registered as primary in )/.test(l));
  assert.equal(roleLines.length, 2, log.lines.join('\n'));
  assert.ok(
    roleLines.some((l) => l.startsWith(`[INFO] Registered as primary in ${peers} (${peers}/primary-`)),
    roleLines.join('\n'),
  );
  log.lines.splice(0, log.lines.length, ...log.lines.filter((l) => !roleLines.includes(l)));
  // The template's block forwarding to __PILLAR__CLUSTER__DNS__ names the cluster zones for the
  // cache's stale default (src/config/cluster-zones.ts), handed to the engine (not the environment).
  assert.deepEqual(s.clusterZones, ['cluster.local.']);
  assert.equal(env.NODE_LOCAL_DNS_CLUSTER_ZONES, undefined);
  const zonesLine = '[INFO] Cluster zones (served stale when every upstream fails, unless a cache block says otherwise): cluster.local.';
  assert.equal(log.lines.filter((l) => l === zonesLine).length, 1, log.lines.join('\n'));
  log.lines.splice(log.lines.indexOf(zonesLine), 1);
  // node-cache warns the same way when custom upstreams meet the stock (UDP) forward line.
  assert.equal(log.lines[2], '[WARNING] no TCP upstream forward block found; assuming the upstream forward already uses UDP');
  log.lines.splice(2, 1);
  assert.deepEqual(log.lines.slice(0, 3), [
    '[INFO] Starting node-local-dns v-test',
    `[INFO] Using Corefile ${join(dir, 'Corefile')}`,
    '[INFO] Updated Corefile with 0 custom stubdomains and upstream servers 198.18.1.2',
  ]);
  assert.equal(log.lines[3], `[INFO] Using config file:\n${s.corefile}`);
  assert.equal(log.lines[4], '[INFO] Added interface - nodelocaldns');
  assert.deepEqual(
    log.lines.slice(5, -1),
    rules.map((r) => `[INFO] Added back nodelocaldns rule - ${formatRule(r)}`),
  );
  assert.equal(log.lines.at(-1), '[INFO] Start-up complete: serving 169.254.20.10, 198.18.0.10; interface nodelocaldns and 24 iptables rules in place');

  // Setup metrics are served, all zero.
  const body = await (await fetch(`http://127.0.0.1:${agent.metricsAddress!.port}/metrics`)).text();
  assert.match(body, /^coredns_nodecache_setup_errors_total\{errortype="iptables"\} 0$/m);

  // Periodic sync puts back a deleted rule and a deleted address.
  log.lines.length = 0;
  await ns.exec('iptables', ['-w', '5', '-t', 'raw', '-D', 'PREROUTING', ...rules[0]!.args]);
  await ns.exec('ip', ['addr', 'del', '198.18.0.10/32', 'dev', 'nodelocaldns']);
  await agent.sync();
  assert.deepEqual(log.lines, [
    `[INFO] Added back nodelocaldns rule - ${formatRule(rules[0]!)}`,
    '[INFO] Added back addresses 198.18.0.10 to interface nodelocaldns',
  ]);
  assert.equal(countRules(await ns.iptablesSave()), 24);

  // A ConfigMap change (kubelet-style ..data swap) is picked up by the watcher and reloaded.
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: '["198.18.1.2"]', stubDomains: '{"stub.test": ["198.18.1.2"]}' });
  await waitFor('reload after the ConfigMap change', async () => rec.reloads.length === 1, 5000);
  // The cluster zones go with the reload (the engine hands them to every worker).
  assert.equal(rec.events[rec.events.indexOf('reload') - 1], 'zones cluster.local.');
  assert.match(
    rec.reloads[0]!,
    /\nstub\.test:53 \{\n {4}errors\n {4}cache 30\n {4}bind 169\.254\.20\.10 198\.18\.0\.10\n {4}forward \. 198\.18\.1\.2\n {4}prometheus :9253\n\}\n$/,
  );
  assert.ok(log.lines.includes('[INFO] Updated Corefile with 1 custom stubdomains and upstream servers 198.18.1.2'));

  // An invalid ConfigMap is counted and ignored; the last good values stay.
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: '["not-an-ip"]', stubDomains: '{"stub.test": ["198.18.1.2"]}' });
  await agent.refresh();
  assert.ok((await agent.metrics.count('configmap')) >= 1);
  assert.equal(rec.reloads.length, 1);
  assert.equal(await readFile(join(dir, 'Corefile'), 'utf8'), rec.reloads[0]);

  // A reload the engine rejects keeps the old config on disk too.
  const before = await agent.metrics.count('configmap');
  rec.failReload = true;
  await writeFile(join(dir, 'coredns', 'Corefile.base'), BASE + 'extra.test:53 {\n    bogus\n}\n');
  await agent.refresh();
  assert.equal(rec.reloads.length, 1);
  assert.ok(rec.events.filter((e) => e === 'reload').length >= 2);
  assert.equal(await readFile(join(dir, 'Corefile'), 'utf8'), rec.reloads[0], 'previous Corefile restored');
  assert.ok(log.lines.some((l) => l.startsWith('[ERROR] Reload of') && l.includes('still serving the previous configuration')));
  assert.ok((await agent.metrics.count('configmap')) > before);

  // Shutdown: engine stopped (rules still there at that moment), then everything removed.
  await agent.shutdown();
  shut = true;
  assert.equal(rec.events.at(-1), 'stop');
  assert.equal(rec.rulesAtStop, 24);
  assert.equal(countRules(await ns.iptablesSave()), 0);
  assert.equal(await new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: [] }, ns.run).exists(), false);
  await assert.rejects(stat(join(dir, 'pid')));
  await agent.shutdown();
});

test('adoption after a kill: existing interface and rules are reused, nothing duplicated; -skipteardown keeps them', { skip }, async (t) => {
  const { ns, dir, peers } = await setup(t);
  await writeFile(join(dir, 'Corefile'), '.:53 {\n    whoami\n}\n');
  const argv = [
    '-localip',
    '169.254.20.10',
    '-conf',
    join(dir, 'Corefile'),
    '-basecorefile',
    join(dir, 'none'),
    '-kubednscm',
    join(dir, 'kube-dns'),
    '-interfacetype',
    'bridge',
    '-metrics-listen-address',
    '',
    '-peerdir',
    peers,
    '-skipteardown',
  ];
  const first = await runAgent(parseOptions(argv), {
    startEngine: recordingEngine(ns, newRecorded()),
    log: captureLog(),
    runner: ns.run,
    processMetrics: false,
  });
  await first.shutdown();
  assert.equal(countRules(await ns.iptablesSave()), 12, '-skipteardown leaves the rules');
  assert.ok(await new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: [] }, ns.run).exists());

  const log = captureLog();
  const rec = newRecorded();
  const second = await runAgent(parseOptions(argv.filter((a) => a !== '-skipteardown')), {
    startEngine: recordingEngine(ns, rec),
    log,
    runner: ns.run,
    processMetrics: false,
  });
  assert.equal(rec.starts[0]!.corefile, '.:53 {\n    whoami\n}\n', 'served as is without a template');
  assert.ok(log.lines.some((l) => l.includes('not found, serving') && l.includes('as is')));
  assert.ok(!log.lines.some((l) => l.includes('Added back') || l.includes('Added interface')), log.lines.join('\n'));
  const save = await ns.iptablesSave();
  assert.equal(countRules(save), 12);
  assert.equal(savedRules(save, 'raw').length, 8);
  await second.shutdown();
  assert.equal(countRules(await ns.iptablesSave()), 0);
});

test('surge: two primaries of one DaemonSet hand over readiness, maintenance and the set-up without a gap or a duplicate', { skip }, async (t) => {
  const { ns, dir, peers } = await setup(t);
  await writeFile(join(dir, 'Corefile'), '.:53 {\n    whoami\n}\n');
  const argv = (name: string) => [
    '-localip',
    '169.254.20.10',
    '-conf',
    join(dir, 'Corefile'),
    '-basecorefile',
    join(dir, 'none'),
    '-interfacetype',
    'bridge',
    '-metrics-listen-address',
    '',
    '-syncinterval',
    '200ms',
    '-pidfile',
    join(dir, `${name}.pid`),
    '-peerdir',
    peers,
  ];
  const oldLog = captureLog();
  const oldRec = newRecorded();
  const old = await runAgent(parseOptions(argv('old')), { startEngine: recordingEngine(ns, oldRec), log: oldLog, runner: ns.run, processMetrics: false });
  let oldStopped = false;
  t.after(async () => {
    if (!oldStopped) await old.shutdown();
  });
  const oldReady = oldRec.readyChecks[0]!;
  assert.equal(oldReady(), true, 'alone: ready once start-up is complete');
  assert.equal(countRules(await ns.iptablesSave()), 12);

  // The new instance: at its engine's start (its /ready port opens then) the old one already answers 503.
  const newLog = captureLog();
  const newRec = newRecorded();
  let oldReadyWhenNewStarted: boolean | undefined;
  let newReadyBeforeRules: boolean | undefined;
  const record = recordingEngine(ns, newRec);
  const fresh = await runAgent(parseOptions(argv('new')), {
    startEngine: async (...args) => {
      oldReadyWhenNewStarted = oldReady();
      const e = await record(...args);
      newReadyBeforeRules = args[4]();
      return e;
    },
    log: newLog,
    runner: ns.run,
    processMetrics: false,
  });
  t.after(() => fresh.shutdown());
  assert.equal(oldReadyWhenNewStarted, false, 'the old instance must not answer ready while the new one starts');
  assert.equal(newReadyBeforeRules, false, 'the new instance is not ready before its start-up is complete');
  assert.ok(
    oldLog.lines.includes('[INFO] A newer primary is starting: /ready answers 503 here until it serves (it shares the probe port)'),
    oldLog.lines.join('\n'),
  );
  assert.ok(
    newLog.lines.some((l) => /^\[INFO\] Joining primary pid \d+ \(serving\) of the same role/.test(l)),
    newLog.lines.join('\n'),
  );
  assert.equal(newRec.readyChecks[0]!(), true);
  await waitFor('the old instance to be ready again', async () => oldReady(), 5000, 50);
  assert.equal(countRules(await ns.iptablesSave()), 12, 'the new instance found the rules: one set');
  assert.ok(!newLog.lines.some((l) => l.includes('Added back') || l.includes('Added interface')), newLog.lines.join('\n'));
  // While both serve, the older one maintains; the newer one leaves the sync to it.
  await waitFor(
    'the new instance to defer',
    async () => newLog.lines.some((l) => /^\[INFO\] Leaving the network sync to the older primary pid \d+ \(serving\)$/.test(l)),
    5000,
    50,
  );

  // The old one gets SIGTERM: it sees the new one alive and keeps the set-up; the new one maintains from its next tick.
  await old.shutdown();
  oldStopped = true;
  assert.ok(
    oldLog.lines.some((l) => /^\[INFO\] Not tearing down: 1 other instance\(s\) still serve 169\.254\.20\.10: primary pid \d+ \(serving\)$/.test(l)),
    oldLog.lines.join('\n'),
  );
  assert.equal(oldReady(), false, 'a stopping instance is not ready');
  assert.equal(countRules(await ns.iptablesSave()), 12);
  assert.ok(await new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: [] }, ns.run).exists());
  await waitFor(
    'the new instance to take over the sync',
    async () => newLog.lines.includes('[INFO] Maintaining the network set-up (no older primary serves)'),
    5000,
    50,
  );
  // Its sync repairs what goes missing now, once.
  await ns.run('iptables', ['-w', '-t', 'raw', '-F', 'PREROUTING']);
  await waitFor('the rules to be restored', async () => countRules(await ns.iptablesSave()) === 12, 5000, 50);
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(countRules(await ns.iptablesSave()), 12, 'exactly one set after repeated syncs');
  assert.equal(newRec.readyChecks[0]!(), true);
});

test('no network set-up and no -localip: the Corefile is just served', { skip }, async (t) => {
  const { ns, dir, peers } = await setup(t);
  await writeFile(join(dir, 'Corefile'), '.:1053 {\n    whoami\n}\n');
  const rec = newRecorded();
  const agent = await runAgent(
    parseOptions([
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      join(dir, 'none'),
      '-setupinterface=false',
      '-setupiptables=false',
      '-metrics-listen-address=',
      '-peerdir',
      peers,
    ]),
    { startEngine: recordingEngine(ns, rec), log: captureLog(), runner: ns.run, processMetrics: false },
  );
  assert.deepEqual(rec.starts[0]!.bind, []);
  await agent.shutdown();
  assert.deepEqual(rec.events, ['start', 'stop']);
  assert.equal(countRules(await ns.iptablesSave()), 0);
});

test('start-up failures: missing -localip, dummy unsupported, missing service env, engine failure', { skip }, async (t) => {
  const { ns, dir, peers } = await setup(t);
  const common = ['-conf', join(dir, 'Corefile'), '-kubednscm', join(dir, 'kube-dns'), '-metrics-listen-address', '127.0.0.1:0', '-peerdir', peers];
  const deps = (rec: Recorded) => ({ startEngine: recordingEngine(ns, rec), log: captureLog(), runner: ns.run, processMetrics: false, env: {} });

  await writeFile(join(dir, 'Corefile'), '.:53 {\n}\n');
  let rec = newRecorded();
  await assert.rejects(
    runAgent(parseOptions([...common, '-basecorefile', join(dir, 'none')]), deps(rec)),
    (e: unknown) => e instanceof AgentError && /-localip is required/.test(e.message),
  );

  const probe = await ns.run('ip', ['link', 'add', 'probe0', 'type', 'dummy']);
  if (probe.code !== 0) {
    rec = newRecorded();
    await assert.rejects(
      runAgent(parseOptions([...common, '-basecorefile', join(dir, 'none'), '-localip', '169.254.20.10']), deps(rec)),
      (e: unknown) => e instanceof InterfaceError && e.code === 'ERR_IFACE_UNSUPPORTED' && /-interfacetype=bridge/.test(e.message),
    );
    assert.equal(rec.starts.length, 0, 'engine not started');
  }

  await writeFile(join(dir, 'coredns', 'Corefile.base'), BASE);
  rec = newRecorded();
  await assert.rejects(
    runAgent(
      parseOptions([
        ...common,
        '-basecorefile',
        join(dir, 'coredns', 'Corefile.base'),
        '-localip',
        '169.254.20.10',
        '-interfacetype',
        'bridge',
        '-upstreamsvc',
        'kube-dns-upstream',
      ]),
      deps(rec),
    ),
    (e: unknown) => e instanceof AgentError && /KUBE_DNS_UPSTREAM_SERVICE_HOST/.test(e.message) && !/<nil>/.test(e.message),
  );
  assert.equal(rec.starts.length, 0);

  // Rules left behind by a killed predecessor are removed too when the engine cannot start.
  const leftover = nodeLocalDnsRules(['169.254.20.10'], 53, 8080);
  for (const r of leftover) await ns.exec('iptables', ['-w', '5', '-t', r.table, '-I', r.chain, '1', ...r.args]);
  assert.equal(countRules(await ns.iptablesSave()), 12);
  const failing = {
    ...deps(newRecorded()),
    env: ENV,
    startEngine: async (): Promise<EngineHandle> => {
      throw new Error('listen udp 169.254.20.10:53: bind: address already in use');
    },
  };
  await assert.rejects(
    runAgent(
      parseOptions([
        ...common,
        '-basecorefile',
        join(dir, 'coredns', 'Corefile.base'),
        '-localip',
        '169.254.20.10',
        '-interfacetype',
        'bridge',
        '-upstreamsvc',
        'kube-dns-upstream',
      ]),
      failing,
    ),
    /address already in use/,
  );
  assert.equal(await new InterfaceManager({ name: 'nodelocaldns', type: 'bridge', ips: [] }, ns.run).exists(), false, 'interface removed again');
  assert.equal(countRules(await ns.iptablesSave()), 0, 'no rules for a server that never started');
});

test('template mode: a Corefile template replaced by a FIFO is an error that is counted; ConfigMap updates go on', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nlF-agent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await mkdir(join(dir, 'coredns'));
  await mkdir(join(dir, 'kube-dns'));
  const base = join(dir, 'coredns', 'Corefile.base');
  await writeFile(base, BASE);
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: '["198.18.1.2"]' });
  const reloads: string[] = [];
  const log = captureLog();
  const agent = await runAgent(
    parseOptions([
      '-localip',
      '169.254.20.10',
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      base,
      '-kubednscm',
      join(dir, 'kube-dns'),
      '-upstreamsvc',
      'kube-dns-upstream',
      '-setupinterface=false',
      '-setupiptables=false',
      '-metrics-listen-address=',
      '-peerdir=',
    ]),
    {
      startEngine: async (corefilePath) => ({
        setClusterZones: () => {},
        reload: async () => void reloads.push(await readFile(corefilePath, 'utf8')),
        stop: async () => {},
      }),
      log,
      env: { ...ENV },
      configPollMs: 3_600_000,
      processMetrics: false,
    },
  );
  t.after(() => agent.shutdown());
  const within = <T>(p: Promise<T>) =>
    Promise.race([p.then(() => 'settled' as const), new Promise<'pending'>((r) => setTimeout(() => r('pending'), 5_000).unref())]);

  await rm(base);
  execFileSync('mkfifo', [base]);
  assert.equal(await within(agent.refresh()), 'settled', 'the refresh blocked on the FIFO');
  assert.ok(
    log.lines.some((l) => /^\[ERROR\] Failed to sync node-local-dns config: .*Corefile\.base: is a FIFO, not a regular file$/.test(l)),
    log.lines.join('\n'),
  );
  assert.ok((await agent.metrics.count('configmap')) >= 1);

  // Watching goes on: a regular template again, and a ConfigMap change, are picked up.
  await rm(base);
  await writeFile(base, BASE);
  await writeConfigMapVolume(join(dir, 'kube-dns'), { upstreamNameservers: '["198.18.1.3"]' });
  assert.equal(await within(agent.refresh()), 'settled');
  assert.match(reloads.at(-1) ?? '', /forward \. 198\.18\.1\.3/);
});

test('-pidfile naming a FIFO: start-up logs the failure instead of blocking forever', { timeout: 60_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nlF-agent-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'Corefile'), '.:1053 {\n}\n');
  execFileSync('mkfifo', [join(dir, 'pid')]);
  const log = captureLog();
  const started = runAgent(
    parseOptions([
      '-conf',
      join(dir, 'Corefile'),
      '-basecorefile',
      join(dir, 'none'),
      '-setupinterface=false',
      '-setupiptables=false',
      '-metrics-listen-address=',
      '-peerdir=',
      '-pidfile',
      join(dir, 'pid'),
    ]),
    { startEngine: async () => ({ setClusterZones: () => {}, reload: async () => {}, stop: async () => {} }), log, processMetrics: false },
  );
  const r = await Promise.race([started, new Promise<'pending'>((res) => setTimeout(() => res('pending'), 5_000).unref())]);
  assert.notEqual(r, 'pending', 'start-up blocked opening the FIFO');
  t.after(() => (r as Awaited<typeof started>).shutdown());
  assert.ok(
    log.lines.some((l) => /^\[ERROR\] Failed to write pidfile .*\/pid: .*ENXIO/.test(l)),
    log.lines.join('\n'),
  );
});
