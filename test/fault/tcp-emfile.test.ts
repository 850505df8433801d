/**
 * Descriptor exhaustion through the DNS TCP listener. The agent runs under `ulimit -n 128`;
 * clients from 30 addresses open 150 TCP connections and hold them. Before the fix the agent
 * accepted until its descriptors ran out: accept() then failed with EMFILE (libuv closes
 * such connections without telling Node, so nothing was counted or logged), new TCP clients
 * were turned away and forwarding could not open upstream sockets. Now TCP clients get at
 * most half of the descriptors beyond 64 (32 here, 4 per client; src/server/tcp.ts tcpLimitsFor):
 * idle connections make room for new ones, the rest are refused and counted, the agent never
 * runs out, UDP (cached and forwarded) and new TCP clients are answered throughout, and the
 * process neither exits nor spins.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, scrape, metricSum } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep, waitUntil } from './lib/net.ts';
import { Prober, tcpQuery, udpQuery } from './lib/dns.ts';

const FD_LIMIT = 128;
/** TCP clients' share of the descriptors (src/server/tcp.ts tcpLimitsFor: half of those beyond 64). */
const TCP_CAP = (FD_LIMIT - 64) / 2;
/** More connections than the agent has descriptors. */
const CONNECTIONS = 150;

let nsd: Nsd;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };
let child: ChildProcess;
let output = '';
let dir = '';

const alive = () => child.exitCode === null && child.signalCode === null;

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80', '*.wild IN A 192.0.2.99']) });
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  dir = mkdtempSync(path.join(tmpdir(), 'nld-emfile-'));
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(
    corefile,
    `ok.test:${dns.port} {\n    bind ${dns.host}\n    cache 300\n    forward . ${nsd.addr}\n    prometheus ${metrics.host}:${metrics.port}\n}\n`,
  );
  // Hard and soft limit both (Node raises the soft limit to the hard one at start).
  child = spawn('bash', ['-c', `ulimit -n ${FD_LIMIT} && exec "$0" "$@"`, NODE, path.join(ROOT, 'src/main.ts'), '-conf', corefile], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d));
  child.stderr!.on('data', (d: Buffer) => (output += d));
  await waitUntil(
    () => {
      if (!alive()) throw new Error(`agent exited: ${output}`);
      return / serving/.test(output);
    },
    'the agent to serve',
    20_000,
  );
});

after(async () => {
  if (child && alive()) {
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(t);
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  await nsd?.stop();
});

/** CPU time (user + system) of the agent, in clock ticks. */
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** Descriptors the agent holds now. */
function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

test(`under ulimit -n ${FD_LIMIT}: TCP clients cannot use up the descriptors; UDP, forwarding and new TCP clients are served; no exit, no spin`, {
  timeout: 120_000,
}, async (t) => {
  const limits = readFileSync(`/proc/${child.pid}/limits`, 'utf8');
  assert.match(limits, new RegExp(`^Max open files\\s+${FD_LIMIT}\\s+${FD_LIMIT}`, 'm'), 'the agent runs under the low limit');
  const ok = (p: { rcode: string; answers?: unknown[] }) => p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.80';
  const first = await udpQuery(dns.host, dns.port, 'www.ok.test');
  assert.ok(first.packet && ok(first.packet), 'cached over UDP');
  assert.equal((await tcpQuery(dns.host, dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR', 'TCP answered before');
  const udpProbe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 25, 'udp');
  const socks: { sock: net.Socket; closed: boolean }[] = [];
  t.after(async () => {
    for (const c of socks) c.sock.destroy();
    await udpProbe.stop();
  });

  // 150 connections from 30 addresses, held open.
  let maxFds = 0;
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = { sock: net.connect({ port: dns.port, host: dns.host, localAddress: `127.0.4.${1 + (i % 30)}` }), closed: false };
    c.sock.on('error', () => {});
    c.sock.on('close', () => (c.closed = true));
    await new Promise<void>((r) => {
      c.sock.once('connect', () => r());
      c.sock.once('close', () => r());
    });
    socks.push(c);
    maxFds = Math.max(maxFds, openFds(child.pid!));
  }
  await waitUntil(() => socks.filter((c) => !c.closed).length <= TCP_CAP, 'the agent to keep at most half its descriptors for TCP clients', 10_000);

  // While they are held: forwarded misses (new upstream sockets need descriptors) and new TCP clients are answered.
  let missesOk = 0;
  for (let i = 0; i < 20; i++) {
    const r = await udpQuery(dns.host, dns.port, `n${i}.wild.ok.test`, 'A', { timeoutMs: 3_000 });
    if (r.packet?.rcode === 'NOERROR' && (r.packet.answers?.[0] as { data?: string })?.data === '192.0.2.99') missesOk++;
    maxFds = Math.max(maxFds, openFds(child.pid!));
  }
  const fresh = await tcpQuery(dns.host, dns.port, 'www.ok.test', 'A', { timeoutMs: 3_000 });
  // Held for a while: the process must not spin.
  const ticks0 = cpuTicks(child.pid!);
  const wall0 = performance.now();
  await sleep(2_000);
  const cpuMs = ((cpuTicks(child.pid!) - ticks0) * 1000) / 100;
  const wallMs = performance.now() - wall0;
  maxFds = Math.max(maxFds, openFds(child.pid!));
  const kept = socks.filter((c) => !c.closed).length;
  t.diagnostic(
    `${kept} of ${CONNECTIONS} connections kept; at most ${maxFds} of ${FD_LIMIT} descriptors in use; CPU ${cpuMs.toFixed(0)} ms in ${wallMs.toFixed(0)} ms`,
  );
  assert.ok(alive(), `agent exited: ${output}`);
  assert.ok(maxFds < FD_LIMIT, `the agent reached ${maxFds} of ${FD_LIMIT} descriptors`);
  assert.equal(missesOk, 20, `forwarded misses answered while the connections were held: ${missesOk} of 20`);
  assert.equal(fresh.packet?.rcode, 'NOERROR', 'a new TCP client is answered while the connections are held');
  assert.ok(cpuMs < wallMs / 2, `the agent used ${cpuMs} ms of CPU in ${wallMs.toFixed(0)} ms`);
  const fams = await scrape(metrics.host, metrics.port);
  assert.ok(metricSum(fams, 'nodelocaldns_tcp_connections') <= TCP_CAP);
  const turnedAway =
    metricSum(fams, 'nodelocaldns_tcp_connections_closed_total', { reason: 'client_share' }) +
    metricSum(fams, 'nodelocaldns_tcp_connections_closed_total', { reason: 'connection_limit' }) +
    metricSum(fams, 'nodelocaldns_tcp_connections_refused_total');
  assert.ok(turnedAway >= CONNECTIONS - TCP_CAP, `connections evicted or refused, counted: ${turnedAway}`);

  // Connections closed: TCP still answered; UDP was answered throughout.
  for (const c of socks) c.sock.destroy();
  assert.equal((await tcpQuery(dns.host, dns.port, 'www.ok.test', 'A', { timeoutMs: 3_000 })).packet?.rcode, 'NOERROR', 'TCP answered afterwards');
  await udpProbe.stop();
  assert.equal(udpProbe.unanswered + udpProbe.wrong, 0, `UDP during the test: ${udpProbe.summary()}`);
  assert.ok(udpProbe.latencies.length > 0);
  assert.ok(alive());
});
