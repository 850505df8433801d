/**
 * The last line of defence outside query handling (src/util/panic.ts), against the real process:
 * an exception escaping a socket callback, or a promise rejection nobody handles, is logged
 * once with its stack, counted in coredns_panics_total, and the agent keeps answering; more
 * than 10 within 60 s exit 1 (kubelet restarts the container). With worker threads, the same
 * holds inside each worker; a worker past the threshold ends and the pool replaces it, the
 * process serving throughout.
 *
 * The fault is a preload module (test/fault/lib/panic-inject.ts, `node --import`) that opens a
 * UDP socket in each thread whose message callback throws on demand: no hook in the shipped
 * code, and the throw comes from a genuine dgram callback on the agent's event loop.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, metricSum, scrape } from './lib/agent.ts';
import { freeAddress, waitUntil } from './lib/net.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { udpQuery } from './lib/dns.ts';

const INJECTOR = path.join(ROOT, 'test/fault/lib/panic-inject.ts');

interface Proc {
  child: ChildProcess;
  dns: { host: string; port: number };
  metrics: { host: string; port: number };
  output(): string;
  alive(): boolean;
  exited: Promise<number | string>;
  /** Injector ports announced so far: [threadId, isMain, port]. */
  injectors(): { thread: number; main: boolean; port: number }[];
  stop(): Promise<void>;
}

let nsd: Nsd;
const procs: Proc[] = [];

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
});
after(async () => {
  for (const p of procs) await p.stop();
  await nsd.stop();
});

async function startInjected(extraArgs: string[] = []): Promise<Proc> {
  const dns = await freeAddress();
  const metrics = await freeAddress(dns.host);
  const dir = mkdtempSync(path.join(tmpdir(), 'nlF-panic-'));
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(
    corefile,
    `.:${dns.port} {
    bind ${dns.host}
    errors
    prometheus ${metrics.host}:${metrics.port}
    forward . ${nsd.addr}
}
`,
  );
  const child = spawn(NODE, ['--import', INJECTOR, path.join(ROOT, 'src/main.ts'), '-conf', corefile, ...extraArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((r) => child.once('exit', (code, sig) => r(code ?? sig ?? -1)));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const p: Proc = {
    child,
    dns,
    metrics,
    output: () => out,
    alive,
    exited,
    injectors: () =>
      [...out.matchAll(/panic-inject thread=(\d+) main=(true|false) port=(\d+)/g)].map((m) => ({
        thread: Number(m[1]),
        main: m[2] === 'true',
        port: Number(m[3]),
      })),
    stop: async () => {
      if (alive()) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  procs.push(p);
  await waitUntil(
    () => {
      if (!alive()) throw new Error(`agent exited: ${out}`);
      return / serving/.test(out);
    },
    'the agent to serve',
    20_000,
  );
  return p;
}

/** Sends `what` to an injector socket (one datagram per call). */
async function inject(port: number, what: 'throw' | 'reject', times = 1): Promise<void> {
  const s = dgram.createSocket('udp4');
  try {
    for (let i = 0; i < times; i++) await new Promise<void>((r, j) => s.send(what, port, '127.0.0.1', (e) => (e ? j(e) : r())));
  } finally {
    s.close();
  }
}

const recovered = (p: Proc) => (p.output().match(/\[ERROR\] Recovered from panic/g) ?? []).length;

test('panic outside query handling: logged with its stack, counted, the process keeps serving', { timeout: 60_000 }, async () => {
  const p = await startInjected();
  await waitUntil(() => p.injectors().length === 1, 'the injector port');
  const port = p.injectors()[0]!.port;
  assert.equal((await udpQuery(p.dns.host, p.dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR');

  await inject(port, 'throw', 3);
  await inject(port, 'reject', 2);
  await waitUntil(() => recovered(p) === 5 || !p.alive(), 'five recovered panics');
  assert.ok(p.alive(), `the agent exited:\n${p.output()}`);
  assert.equal(recovered(p), 5);
  assert.match(
    p.output(),
    /\[ERROR\] Recovered from panic \(uncaughtException\): Error: injected fault: thrown from a dgram callback \(thread 0\)\n\s+at Socket\.<anonymous> \(.*panic-inject\.ts/,
  );
  assert.match(p.output(), /\[ERROR\] Recovered from panic \(unhandledRejection\): Error: injected fault: unhandled rejection/);

  const r = await udpQuery(p.dns.host, p.dns.port, 'www.ok.test');
  assert.equal(r.packet?.rcode, 'NOERROR');
  assert.equal(metricSum(await scrape(p.metrics.host, p.metrics.port), 'coredns_panics_total'), 5);
  await inject(port, 'throw');
  await waitUntil(() => recovered(p) === 6, 'the injector still fires: its socket survived');
  await p.stop();
});

test('panic outside query handling: more than 10 within 60 s exit 1 with a FATAL line', { timeout: 60_000 }, async () => {
  const p = await startInjected();
  await waitUntil(() => p.injectors().length === 1, 'the injector port');
  await inject(p.injectors()[0]!.port, 'throw', 10);
  await waitUntil(() => recovered(p) === 10, 'ten recovered panics');
  assert.ok(p.alive(), 'ten are tolerated');
  assert.equal((await udpQuery(p.dns.host, p.dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR');
  await inject(p.injectors()[0]!.port, 'throw');
  assert.equal(await p.exited, 1);
  assert.match(p.output(), /\[FATAL\] 11 panics within 60s \(more than 10\)/);
});

test('panic in a worker thread: survived inside the worker; past the threshold the worker alone is replaced', { timeout: 90_000 }, async () => {
  const p = await startInjected(['-workers', '2']);
  await waitUntil(() => p.injectors().filter((i) => !i.main).length === 2, "both workers' injector ports");
  const [w1, w2] = p.injectors().filter((i) => !i.main);
  await inject(w1!.port, 'throw', 2);
  await inject(w2!.port, 'reject', 1);
  await waitUntil(() => recovered(p) === 3, 'three recovered panics');
  assert.match(p.output(), /\[ERROR\] Recovered from panic in worker \d \(uncaughtException\): Error: injected fault/);
  assert.equal(metricSum(await scrape(p.metrics.host, p.metrics.port), 'coredns_panics_total'), 3, 'counted in the workers, merged on scrape');
  assert.doesNotMatch(p.output(), /exited unexpectedly/);

  // Past the threshold, worker w1 ends itself; the pool starts a fresh one; the process serves on.
  await inject(w1!.port, 'throw', 9);
  await waitUntil(() => /worker \d restarted/.test(p.output()) || !p.alive(), 'the worker to be replaced');
  assert.ok(p.alive(), `the process exited:\n${p.output()}`);
  assert.match(p.output(), /\[FATAL\] 11 panics in worker \d within 60s/);
  assert.match(p.output(), /worker \d exited unexpectedly \(code 1\)/);
  for (let i = 0; i < 10; i++) assert.equal((await udpQuery(p.dns.host, p.dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR');
  assert.equal(metricSum(await scrape(p.metrics.host, p.metrics.port), 'coredns_panics_total'), 3 + 9, "the ended worker's panics are kept");
  await p.stop();
});
