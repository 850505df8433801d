/**
 * Issue 12 finding 4: the HTTP listeners (prometheus /metrics, health, ready) under a flood of
 * held connections and slowloris clients, against the real process with its descriptor limit
 * lowered to 1024 (prlimit on the running agent; any pod can reach these ports).
 *
 * 2,000 connections held open to the metrics port (reopened when closed) and 48 slowloris
 * clients on the health port (a request head a byte every 400 ms), each flood from its own
 * source address (a pod's), the probes from another (kubelet's): the agent's descriptor
 * count stays within its listeners' connection caps, /health and /ready answer a fresh
 * client, DNS over UDP and TCP keeps answering (cached names, and misses forwarded upstream,
 * which need new sockets), and
 * nodelocaldns_http_connections_dropped_total shows the evictions and the timeouts.
 */
import { SHIPPED_NODE_FLAGS } from './lib/netns-agent.ts';
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import { startAgent, httpGet, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, sleep, waitUntil } from './lib/net.ts';
import { Prober, tcpQuery, udpQuery } from './lib/dns.ts';
import { DEFAULT_HTTP_LIMITS } from '../../src/metrics/http-endpoints.ts';

/** The agent's descriptor limit during the test. */
const NOFILE = 1024;
const HELD = 2_000;
/** Fewer than the cap: none is evicted, so each lives until the header timeout closes it. */
const SLOWLORIS = 48;
/** How long the flood lasts: longer than the header timeout, so slowloris clients time out. */
const FLOOD_MS = DEFAULT_HTTP_LIMITS.headersTimeoutMs + 4_000;
/** Three HTTP listeners at their cap, plus a margin for DNS sockets and transient ones. */
const FD_MARGIN = 48;
/**
 * Peak RSS allowed during the flood: well under the manifests' 256 MiB limit (as the mixed
 * hostile run's bound). The flood reconnects thousands of times a second; each admitted
 * connection's objects are garbage soon after, which grows V8's young generation to its cap
 * (16 MiB semi-spaces, the image's NODE_OPTIONS): ~+60 MiB at ~4k connections/s here.
 */
const MAX_RSS_KIB = 200 * 1024;

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metricsPort: number;
let healthPort: number;
let readyPort: number;

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return -1;
  }
}

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80', '* IN A 192.0.2.81']) });
  dns = await freeAddress();
  metricsPort = (await freeAddress(dns.host)).port;
  healthPort = (await freeAddress(dns.host)).port;
  readyPort = (await freeAddress(dns.host)).port;
  // The image runs Node.js with its generations capped (`npm start` flags = Dockerfile NODE_OPTIONS): so does this run.
  const savedNodeOptions = process.env.NODE_OPTIONS;
  process.env.NODE_OPTIONS = SHIPPED_NODE_FLAGS.join(' ');
  try {
    agent = await startAgent(`ok.test:${dns.port} {
    bind ${dns.host}
    cache 30
    forward . ${nsd.addr}
    prometheus ${dns.host}:${metricsPort}
    health ${dns.host}:${healthPort}
    ready ${dns.host}:${readyPort}
}
`);
  } finally {
    if (savedNodeOptions === undefined) delete process.env.NODE_OPTIONS;
    else process.env.NODE_OPTIONS = savedNodeOptions;
  }
  execFileSync('prlimit', ['--pid', String(agent.pid), `--nofile=${NOFILE}:${NOFILE}`]);
});

after(async () => {
  await agent?.stop();
  await nsd?.stop();
});

/** Connections to `port` kept open (reopened 50 ms after the server closes one) until stop(). */
class Holder {
  private readonly socks = new Set<net.Socket>();
  private readonly port: number;
  private readonly localAddress: string;
  private readonly onConnect: (s: net.Socket) => void;
  private running = true;
  opened = 0;
  closedByServer = 0;

  /** `localAddress`: the flooding client's own source address (a pod's), apart from the probes'. */
  constructor(port: number, count: number, localAddress: string, onConnect: (s: net.Socket) => void = () => {}) {
    this.port = port;
    this.localAddress = localAddress;
    this.onConnect = onConnect;
    for (let i = 0; i < count; i++) this.open();
  }

  private open(): void {
    if (!this.running) return;
    const s = net.connect({ port: this.port, host: dns.host, localAddress: this.localAddress });
    this.opened++;
    this.socks.add(s);
    s.on('connect', () => this.onConnect(s));
    s.on('data', () => {});
    s.on('error', () => {});
    s.on('close', () => {
      this.socks.delete(s);
      if (!this.running) return;
      this.closedByServer++;
      setTimeout(() => this.open(), 50);
    });
  }

  stop(): void {
    this.running = false;
    for (const s of this.socks) s.destroy();
  }
}

/** A slowloris client: a request head sent a byte every 400 ms, never finished. */
function slowloris(s: net.Socket): void {
  const head = 'GET /health HTTP/1.1\r\nHost: x\r\nX-Padding: ' + 'a'.repeat(200);
  let i = 0;
  const t = setInterval(() => {
    if (s.destroyed || i >= head.length) return clearInterval(t);
    s.write(head[i++]!);
  }, 400);
  s.on('close', () => clearInterval(t));
}

test('held connections and slowloris clients: fds bounded, /health and DNS answer, drops counted', { timeout: 120_000 }, async (t) => {
  const ok = (p: { rcode: string; answers?: unknown[] }) => p.rcode === 'NOERROR' && (p.answers?.[0] as { data?: string })?.data === '192.0.2.80';
  assert.ok(ok((await udpQuery(dns.host, dns.port, 'www.ok.test')).packet!), 'answers before the flood');
  await sleep(500);
  const baseFds = fdCount(agent.pid);
  const rssBefore = await agent.rssKiB();
  const bound = baseFds + 3 * DEFAULT_HTTP_LIMITS.maxConnections + FD_MARGIN;

  const udpProbe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 100, 'udp', 3_000);
  const tcpProbe = new Prober(dns.host, dns.port, 'www.ok.test', ok, 100, 'tcp', 3_000);
  const held = new Holder(metricsPort, HELD, '127.0.0.2');
  const slow = new Holder(healthPort, SLOWLORIS, '127.0.0.3', slowloris);
  let maxFds = 0;
  let maxRss = 0;
  const sampler = setInterval(() => {
    maxFds = Math.max(maxFds, fdCount(agent.pid));
    void agent.rssKiB().then((k) => (maxRss = Math.max(maxRss, k)));
  }, 50);
  const health: number[] = [];
  const ready: number[] = [];
  const dnsDuring: boolean[] = [];
  try {
    const end = performance.now() + FLOOD_MS;
    while (performance.now() < end) {
      await sleep(1_000);
      // A fresh client (kubelet's probe) while the flood holds every slot it can.
      health.push(
        await httpGet(dns.host, healthPort, '/health').then(
          (r) => r.status,
          () => 0,
        ),
      );
      ready.push(
        await httpGet(dns.host, readyPort, '/ready').then(
          (r) => r.status,
          () => 0,
        ),
      );
      // Cached answers over UDP and TCP, and a miss forwarded upstream (a new upstream socket).
      const miss = `n${dnsDuring.length}-${Date.now()}.ok.test`;
      const [u, tcp, fwd] = await Promise.all([
        udpQuery(dns.host, dns.port, 'www.ok.test', 'A', { timeoutMs: 3_000 }),
        tcpQuery(dns.host, dns.port, 'www.ok.test', 'A', { timeoutMs: 3_000 }),
        udpQuery(dns.host, dns.port, miss, 'A', { timeoutMs: 3_000 }),
      ]);
      const fwdOk = fwd.packet !== null && fwd.packet.rcode === 'NOERROR' && (fwd.packet.answers?.[0] as { data?: string })?.data === '192.0.2.81';
      dnsDuring.push(u.packet !== null && ok(u.packet) && tcp.packet !== null && ok(tcp.packet) && fwdOk);
    }
  } finally {
    clearInterval(sampler);
    held.stop();
    slow.stop();
    await udpProbe.stop();
    await tcpProbe.stop();
  }
  const out = agent.output().slice(-2000);
  t.diagnostic(`fds ${baseFds} -> peak ${maxFds}; RSS ${rssBefore} -> peak ${maxRss} KiB; ${held.opened} held opened, ${slow.closedByServer} slowloris closed`);
  assert.ok(agent.alive(), `the agent runs\n${out}`);
  assert.ok(held.opened > HELD, `the server closed held connections (${held.opened} opened)`);
  assert.ok(maxRss <= MAX_RSS_KIB, `agent RSS peaked at ${maxRss} KiB`);
  assert.ok(maxFds <= bound, `agent fds peaked at ${maxFds}, bound ${bound} (baseline ${baseFds})\n${out}`);
  assert.ok(health.length > 0 && health.every((s) => s === 200), `/health from a fresh client: ${health.join(',')}`);
  assert.ok(
    ready.every((s) => s === 200),
    `/ready from a fresh client: ${ready.join(',')}`,
  );
  assert.ok(dnsDuring.every(Boolean), `DNS over UDP and TCP, cached and forwarded, during the flood: ${dnsDuring.join(',')}`);
  assert.equal(udpProbe.unanswered + udpProbe.wrong, 0, `UDP probe: ${udpProbe.summary()}`);
  assert.equal(tcpProbe.unanswered + tcpProbe.wrong, 0, `TCP probe: ${tcpProbe.summary()}`);

  const fams = await scrape(dns.host, metricsPort);
  const dropped = (address: string, reason: string) => metricSum(fams, 'nodelocaldns_http_connections_dropped_total', { address, reason });
  const m = `${dns.host}:${metricsPort}`;
  const h = `${dns.host}:${healthPort}`;
  assert.ok(dropped(m, 'evicted') >= HELD - DEFAULT_HTTP_LIMITS.maxConnections, `metrics evictions: ${dropped(m, 'evicted')}`);
  assert.ok(dropped(h, 'timeout') >= SLOWLORIS, `slowloris clients timed out on the health port: ${dropped(h, 'timeout')}`);
  assert.ok(slow.closedByServer >= SLOWLORIS, `slowloris connections closed by the agent: ${slow.closedByServer}`);

  // The flood gone, the descriptors are given back.
  await waitUntil(() => fdCount(agent.pid) <= baseFds + 8, `the agent's fds back near ${baseFds} (now ${fdCount(agent.pid)})`, 20_000);
});
