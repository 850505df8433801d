/**
 * Flags that used to do less than `-h` says (issue 15 §4), through the real binary
 * (`node src/main.ts`):
 *  - `-pidfile` is written once serving and removed on SIGTERM, in agent mode and in
 *    `-conf`-only mode;
 *  - `-metrics-listen-address` that cannot be bound (port held: EADDRINUSE; address not on the
 *    node yet: EADDRNOTAVAIL, in a network namespace) is retried with a log line per failure,
 *    each counted in nodelocaldns_setup_metrics_listen_errors_total, until it binds; on one of
 *    the local IPs it is bound once the interface holds them (no failure at all);
 *  - `-conf`-only mode serves the set-up metrics when `-metrics-listen-address` is given, and
 *    opens nothing on 9353 when it is not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NODE, ROOT, httpGet, startAgent } from '../fault/lib/agent.ts';
import { freeAddress, waitUntil } from '../lib/net.ts';
import { createScratchNetns, netnsSkipReason, waitFor, type Netns } from '../netns/harness.ts';

const MAIN = join(ROOT, 'src/main.ts');

interface Proc {
  child: ChildProcess;
  out(): string;
  alive(): boolean;
  stop(sig?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function supervise(child: ChildProcess): Proc {
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
  const alive = () => child.exitCode === null && child.signalCode === null;
  return {
    child,
    out: () => out,
    alive,
    stop: async (sig = 'SIGTERM') => {
      if (alive()) {
        child.kill(sig);
        const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
        const r = await exited;
        clearTimeout(t);
        return r;
      }
      return exited;
    },
  };
}

/** Value of an unlabelled (or first) sample of `name` in an exposition, undefined when absent. */
function sample(text: string, name: string): number | undefined {
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Holds a TCP port on host until released. */
async function holdPort(host: string, port: number): Promise<net.Server> {
  const s = net.createServer();
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.listen(port, host, () => res());
  });
  return s;
}

test('-pidfile in -conf-only mode: written once serving, removed on SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-flags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { host, port } = await freeAddress();
  const pidfile = join(dir, 'coredns.pid');
  const agent = await startAgent(`.:${port} {\n    bind ${host}\n    errors\n}\n`, { extraArgs: ['-pidfile', pidfile] });
  t.after(() => agent.stop());
  await waitUntil(() => existsSync(pidfile) && readFileSync(pidfile, 'utf8') !== '', 'the pidfile');
  assert.equal(readFileSync(pidfile, 'utf8'), `${agent.pid}\n`);
  await agent.stop();
  assert.equal(existsSync(pidfile), false, 'removed on a clean exit');
});

test('-pidfile in agent mode (-localip, set-up off): written once serving, removed on SIGTERM', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'nld-flags-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const { host, port } = await freeAddress();
  await writeFile(join(dir, 'Corefile'), `.:${port} {\n    bind ${host}\n    errors\n}\n`);
  await mkdir(join(dir, 'kube-dns'));
  const pidfile = join(dir, 'node-cache.pid');
  const p = supervise(
    spawn(
      NODE,
      [
        MAIN,
        '-localip',
        host,
        '-dns.port',
        String(port),
        '-setupinterface=false',
        '-setupiptables=false',
        '-conf',
        join(dir, 'Corefile'),
        '-basecorefile',
        join(dir, 'none'),
        '-kubednscm',
        join(dir, 'kube-dns'),
        '-peerdir',
        '',
        '-metrics-listen-address',
        '127.0.0.1:0',
        '-pidfile',
        pidfile,
      ],
      { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
    ),
  );
  t.after(() => p.stop('SIGKILL'));
  await waitUntil(
    () => {
      if (!p.alive()) throw new Error(`exited: ${p.out()}`);
      return existsSync(pidfile) && /Start-up complete/.test(p.out());
    },
    'the pidfile',
    20_000,
  );
  assert.equal(readFileSync(pidfile, 'utf8'), `${p.child.pid}\n`);
  assert.deepEqual(await p.stop(), { code: 0, signal: null });
  assert.equal(existsSync(pidfile), false);
});

for (const mode of ['conf-only', 'agent'] as const) {
  test(`-metrics-listen-address on a port still held (${mode} mode): retried, logged, counted, then served`, { timeout: 60_000 }, async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'nld-flags-'));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const dns = await freeAddress();
    const metrics = await freeAddress('127.0.0.1');
    let holder: net.Server | undefined = await holdPort(metrics.host, metrics.port);
    t.after(() => holder?.close());
    const address = `${metrics.host}:${metrics.port}`;
    await writeFile(join(dir, 'Corefile'), `.:${dns.port} {\n    bind ${dns.host}\n    errors\n}\n`);
    await mkdir(join(dir, 'kube-dns'));
    const args =
      mode === 'agent'
        ? [
            '-localip',
            dns.host,
            '-dns.port',
            String(dns.port),
            '-setupinterface=false',
            '-setupiptables=false',
            '-basecorefile',
            join(dir, 'none'),
            '-kubednscm',
            join(dir, 'kube-dns'),
            '-peerdir',
            '',
          ]
        : [];
    const p = supervise(
      spawn(NODE, [MAIN, '-conf', join(dir, 'Corefile'), ...args, '-metrics-listen-address', address], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    t.after(() => p.stop('SIGKILL'));
    const failure = new RegExp(
      `\\[ERROR\\] Failed to start metrics handler on ${address.replaceAll('.', '\\.')}: listen EADDRINUSE[^\\n]*; retrying in \\d+s`,
      'g',
    );
    await waitUntil(
      () => {
        if (!p.alive()) throw new Error(`exited: ${p.out()}`);
        return (p.out().match(failure) ?? []).length >= 2;
      },
      'two failed attempts',
      20_000,
    );
    assert.match(p.out(), /retrying in 1s[\s\S]*retrying in 2s/, 'growing delay');
    await new Promise<void>((r) => holder!.close(() => r()));
    holder = undefined;
    await waitUntil(() => /Metrics handler listening on \S+ after \d+ failed attempt\(s\)/.test(p.out()), 'the listener after the retries', 20_000);
    const failed = Number(/after (\d+) failed attempt/.exec(p.out())![1]);
    assert.equal(failed, (p.out().match(failure) ?? []).length);
    const r = await httpGet(metrics.host, metrics.port, '/metrics');
    assert.equal(r.status, 200);
    assert.equal(sample(r.body, 'nodelocaldns_setup_metrics_listen_errors_total'), failed);
    assert.match(r.body, /^# HELP nodelocaldns_setup_metrics_listen_errors_total /m);
    assert.equal(sample(r.body, 'coredns_nodecache_setup_errors_total\\{errortype="configmap"\\}'), 0);
    assert.match(r.body, /^process_resident_memory_bytes /m);
    assert.deepEqual(await p.stop(), { code: 0, signal: null });
  });
}

const netnsSkip = netnsSkipReason();

async function curl(ns: Netns, url: string): Promise<{ code: number; body: string }> {
  const r = await ns.run('curl', ['-sS', '--max-time', '3', url]);
  return { code: r.code, body: r.stdout };
}

test('-metrics-listen-address before its address exists (network namespace)', { skip: netnsSkip, timeout: 120_000 }, async (t) => {
  const ns = await createScratchNetns('flags');
  const dir = await mkdtemp(join(tmpdir(), 'nld-flags-'));
  const procs: Proc[] = [];
  t.after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
    await ns.delete();
    await rm(dir, { recursive: true, force: true });
  });
  await mkdir(join(dir, 'kube-dns'));
  const localIp = '198.18.7.7';
  await writeFile(join(dir, 'agent.Corefile'), `.:53 {\n    bind ${localIp}\n    errors\n}\n`);

  await t.test('agent mode, on the local IP: bound once the interface holds it, no failure', async () => {
    const p = supervise(
      ns.spawn(
        process.execPath,
        [
          MAIN,
          '-localip',
          localIp,
          '-setupiptables=false',
          '-interfacetype',
          'bridge',
          '-conf',
          join(dir, 'agent.Corefile'),
          '-basecorefile',
          join(dir, 'none'),
          '-kubednscm',
          join(dir, 'kube-dns'),
          '-peerdir',
          '',
          '-metrics-listen-address',
          `${localIp}:9353`,
        ],
        { cwd: ROOT },
      ),
    );
    procs.push(p);
    await waitFor(
      'start-up',
      async () => {
        if (!p.alive()) throw new Error(`exited: ${p.out()}`);
        return /Start-up complete/.test(p.out());
      },
      30_000,
    );
    const r = await curl(ns, `http://${localIp}:9353/metrics`);
    assert.equal(r.code, 0, p.out());
    assert.equal(sample(r.body, 'nodelocaldns_setup_metrics_listen_errors_total'), 0);
    assert.doesNotMatch(p.out(), /Failed to start metrics handler/);
    assert.deepEqual(await p.stop(), { code: 0, signal: null }, p.out());
  });

  await t.test('-conf only: an address added later is bound by the retry (EADDRNOTAVAIL counted)', async () => {
    const other = '198.18.7.8';
    await writeFile(join(dir, 'conf.Corefile'), `.:53 {\n    bind 127.0.0.1\n    errors\n}\n`);
    const p = supervise(ns.spawn(process.execPath, [MAIN, '-conf', join(dir, 'conf.Corefile'), '-metrics-listen-address', `${other}:9353`], { cwd: ROOT }));
    procs.push(p);
    await waitFor(
      'a failed attempt',
      async () => {
        if (!p.alive()) throw new Error(`exited: ${p.out()}`);
        return new RegExp(`Failed to start metrics handler on ${other.replaceAll('.', '\\.')}:9353: listen EADDRNOTAVAIL`).test(p.out());
      },
      20_000,
    );
    await ns.exec('ip', ['addr', 'add', `${other}/32`, 'dev', 'lo']);
    await waitFor('the listener', async () => /Metrics handler listening on 198\.18\.7\.8:9353 after \d+ failed attempt/.test(p.out()), 40_000, 200);
    const failed = Number(/after (\d+) failed attempt/.exec(p.out())![1]);
    assert.ok(failed >= 1);
    const r = await curl(ns, `http://${other}:9353/metrics`);
    assert.equal(sample(r.body, 'nodelocaldns_setup_metrics_listen_errors_total'), failed);
    assert.deepEqual(await p.stop(), { code: 0, signal: null }, p.out());
  });

  await t.test('-conf only without -metrics-listen-address: nothing listens on 9353', async () => {
    const p = supervise(ns.spawn(process.execPath, [MAIN, '-conf', join(dir, 'conf.Corefile')], { cwd: ROOT }));
    procs.push(p);
    await waitFor(
      'serving',
      async () => {
        if (!p.alive()) throw new Error(`exited: ${p.out()}`);
        return / serving/.test(p.out());
      },
      20_000,
    );
    const r = await curl(ns, 'http://127.0.0.1:9353/metrics');
    assert.notEqual(r.code, 0, 'connection refused expected');
    assert.deepEqual(await p.stop(), { code: 0, signal: null }, p.out());
  });
});
