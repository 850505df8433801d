/**
 * The monitoring material against a live agent: every series and label that the
 * PrometheusRule expressions and the Grafana queries read must be on the agent's /metrics.
 *
 * The agent runs in agent mode on loopback only (-localip 127.0.0.1 with interface and
 * iptables set-up off), from a Corefile.base that the agent templates, forwarding to a DNS
 * server this test runs on 127.0.0.1. Queries are chosen so that every series the material
 * uses is produced: UDP and TCP, DO bit, NOERROR/NXDOMAIN/SERVFAIL, cache hits and misses,
 * evictions (a zone with the smallest cache), prefetch, stale answers, and failing upstream
 * health checks (a zone forwarding to a loopback port nobody listens on).
 *
 * As in CoreDNS, a labelled family appears only after its first event. Series that no
 * query can provoke are listed in EVENT_ONLY with the reason.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, connect, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import dnsPacket from 'dns-packet';
import { CONTRACT, SYNTHETIC_SERIES, TARGET_LABELS } from './lib/contract.ts';
import { ROOT } from './lib/k8s.ts';
import { dashboardQueries, ruleQueries, type Query } from './lib/monitoring.ts';
import { analyzePromql, parseExposition, type ExposedMetric } from './lib/promql.ts';

const NODE = join(ROOT, 'node_modules/.bin/node');
const HOST = '127.0.0.1';

/**
 * Series the material reads that this test cannot make the agent produce:
 * - coredns_cache_drops_total: a response whose question differs from the query's, which
 *   only a rewriting plugin in front of the cache causes (none is supported).
 */
const EVENT_ONLY = new Set(['coredns_cache_drops_total']);

type Packet = dnsPacket.Packet;

/** An EDNS(0) OPT pseudo-record (RFC 6891 §6.1.2) with the given flags (DO = 0x8000). */
function optRecord(flags: number): dnsPacket.OptAnswer {
  return { type: 'OPT', name: '.', udpPayloadSize: 1232, extendedRcode: 0, ednsVersion: 0, flags, flag_do: (flags & dnsPacket.DNSSEC_OK) !== 0, options: [] };
}

/** A loopback DNS server (UDP and TCP on one port) answering from fixed rules. */
class Upstream {
  readonly udp: Socket = createSocket('udp4');
  tcp: Server | undefined;
  port = 0;

  answer(query: Packet): Packet {
    const q = query.questions?.[0];
    const name = (q?.name ?? '').toLowerCase();
    const soa = {
      name: name.endsWith('cluster.local') ? 'cluster.local' : '.',
      type: 'SOA' as const,
      ttl: 30,
      data: { mname: 'ns.dns.cluster.local', rname: 'hostmaster.cluster.local', serial: 1, refresh: 7200, retry: 1800, expire: 86400, minimum: 30 },
    };
    const reply: Packet = {
      id: query.id,
      type: 'response',
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: query.questions,
      answers: [],
      authorities: [],
      additionals: (query.additionals ?? []).filter((r) => r.type === 'OPT').map(() => optRecord(0)),
    };
    if (q === undefined) return { ...reply, flags: (reply.flags ?? 0) | 1 };
    if (name.startsWith('nx')) {
      reply.flags = (reply.flags ?? 0) | 3; // NXDOMAIN
      reply.authorities = [soa];
      return reply;
    }
    if ((name === '' || name === '.') && q.type === 'NS') {
      reply.answers = [{ name: '.', type: 'NS', ttl: 30, data: 'ns.upstream.test' }];
      return reply;
    }
    if (q.type === 'A') {
      const ttl = name.endsWith('prefetch.test') ? 20 : name.endsWith('stale.test') ? 1 : 30;
      reply.answers = [{ name: q.name, type: 'A', ttl, data: '198.18.0.53' }];
      return reply;
    }
    reply.authorities = [soa]; // NODATA
    return reply;
  }

  async start(): Promise<void> {
    for (let attempt = 0; attempt < 20; attempt++) {
      await new Promise<void>((resolve) => this.udp.bind(0, HOST, resolve));
      this.port = this.udp.address().port;
      const tcp = createServer((sock) => {
        let buf = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          buf = Buffer.concat([buf, d]);
          while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
            const len = buf.readUInt16BE(0);
            const msg = buf.subarray(2, 2 + len);
            buf = buf.subarray(2 + len);
            try {
              sock.write(dnsPacket.streamEncode(this.answer(dnsPacket.decode(msg))));
            } catch {
              sock.destroy();
            }
          }
        });
        sock.on('error', () => sock.destroy());
      });
      const ok = await new Promise<boolean>((resolve) => {
        tcp.once('error', () => resolve(false));
        tcp.listen(this.port, HOST, () => resolve(true));
      });
      if (ok) {
        this.tcp = tcp;
        this.udp.on('message', (msg, rinfo) => {
          try {
            this.udp.send(dnsPacket.encode(this.answer(dnsPacket.decode(msg))), rinfo.port, rinfo.address);
          } catch {
            // malformed query: no answer
          }
        });
        return;
      }
      await new Promise<void>((resolve) => this.udp.close(() => resolve()));
      (this as { udp: Socket }).udp = createSocket('udp4');
    }
    throw new Error('no free port for the upstream');
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.udp.close(() => resolve()));
    await new Promise<void>((resolve) => (this.tcp ? this.tcp.close(() => resolve()) : resolve()));
  }
}

/** A TCP port nothing listens on right now (bound then released). */
async function freeTcpPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve) => srv.listen(0, HOST, resolve));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** A port free for both UDP and TCP. */
async function freeDnsPort(): Promise<number> {
  for (let i = 0; i < 20; i++) {
    const port = await freeTcpPort();
    const sock = createSocket('udp4');
    const ok = await new Promise<boolean>((resolve) => {
      sock.once('error', () => resolve(false));
      sock.bind(port, HOST, () => resolve(true));
    });
    await new Promise<void>((resolve) => sock.close(() => resolve()));
    if (ok) return port;
  }
  throw new Error('no free DNS port');
}

let nextId = 1;

async function queryUdp(port: number, name: string, type: dnsPacket.RecordType, opts: { dnssecOk?: boolean } = {}): Promise<Packet> {
  const id = nextId++ & 0xffff;
  const sock = createSocket('udp4');
  try {
    const msg = dnsPacket.encode({
      id,
      type: 'query',
      flags: dnsPacket.RECURSION_DESIRED,
      questions: [{ name, type, class: 'IN' }],
      additionals: opts.dnssecOk ? [optRecord(dnsPacket.DNSSEC_OK)] : [],
    });
    return await new Promise<Packet>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer for ${name} ${type}`)), 5_000);
      sock.on('message', (data) => {
        const p = dnsPacket.decode(data);
        if (p.id !== id) return;
        clearTimeout(timer);
        resolve(p);
      });
      sock.send(msg, port, HOST);
    });
  } finally {
    sock.close();
  }
}

async function queryTcp(port: number, name: string, type: dnsPacket.RecordType): Promise<Packet> {
  const id = nextId++ & 0xffff;
  return new Promise<Packet>((resolve, reject) => {
    const sock = connect(port, HOST);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`no TCP answer for ${name}`));
    }, 5_000);
    let buf = Buffer.alloc(0);
    sock.on('connect', () =>
      sock.write(dnsPacket.streamEncode({ id, type: 'query', flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type, class: 'IN' }] })),
    );
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        clearTimeout(timer);
        sock.end();
        resolve(dnsPacket.streamDecode(buf) as Packet);
      }
    });
    sock.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://${HOST}:${port}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

function rcodeOf(p: Packet): string {
  return (p as Packet & { rcode?: string }).rcode ?? 'NOERROR';
}

describe('monitoring series against a live agent', { timeout: 180_000 }, () => {
  const upstream = new Upstream();
  let dir = '';
  let agent: ChildProcess | undefined;
  let agentLog = '';
  const ports = { dns: 0, prometheus: 0, health: 0, ready: 0, agent: 0, dead: 0 };
  let coreMetrics = new Map<string, ExposedMetric>();
  let agentMetrics = new Map<string, ExposedMetric>();

  before(async () => {
    await upstream.start();
    ports.dns = await freeDnsPort();
    ports.prometheus = await freeTcpPort();
    ports.health = await freeTcpPort();
    ports.ready = await freeTcpPort();
    ports.agent = await freeTcpPort();
    ports.dead = await freeDnsPort();
    dir = mkdtempSync(join(tmpdir(), 'nld-metrics-'));
    mkdirSync(join(dir, 'kube-dns'));
    const up = `${HOST}:${upstream.port}`;
    const prom = `prometheus ${HOST}:${ports.prometheus}`;
    // The production Corefile's shape (deploy/kubernetes), on loopback ports.
    writeFileSync(
      join(dir, 'Corefile.base'),
      `cluster.local:${ports.dns} {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    reload
    loop
    bind __PILLAR__LOCAL__DNS__
    forward . ${up} {
        force_tcp
    }
    ${prom}
    health ${HOST}:${ports.health}
    ready ${HOST}:${ports.ready}
}
evict.test:${ports.dns} {
    errors
    cache {
        success 1
    }
    bind __PILLAR__LOCAL__DNS__
    forward . ${up}
    ${prom}
}
prefetch.test:${ports.dns} {
    errors
    cache {
        prefetch 1 10m 90%
    }
    bind __PILLAR__LOCAL__DNS__
    forward . ${up}
    ${prom}
}
stale.test:${ports.dns} {
    errors
    cache {
        serve_stale 1h
    }
    bind __PILLAR__LOCAL__DNS__
    forward . ${up}
    ${prom}
}
broken.test:${ports.dns} {
    errors
    cache 30
    bind __PILLAR__LOCAL__DNS__
    forward . ${HOST}:${ports.dead}
    ${prom}
}
.:${ports.dns} {
    errors
    cache 30
    reload
    loop
    bind __PILLAR__LOCAL__DNS__
    forward . ${up}
    ${prom}
}
`,
    );
    agent = spawn(
      NODE,
      [
        join(ROOT, 'src/main.ts'),
        '-localip',
        HOST,
        '-setupinterface=false',
        '-setupiptables=false',
        '-basecorefile',
        join(dir, 'Corefile.base'),
        '-conf',
        join(dir, 'Corefile'),
        '-kubednscm',
        join(dir, 'kube-dns'),
        '-upstreamsvc',
        'kube-dns-upstream',
        '-health-port',
        String(ports.health),
        '-metrics-listen-address',
        `${HOST}:${ports.agent}`,
        // Its own peer directory: never register in the host's /run/node-local-dns.
        '-peerdir',
        join(dir, 'peers'),
        // One serving thread: caches are per worker, and the test provokes evictions and stale answers.
        '-workers',
        '1',
      ],
      { env: { ...process.env, KUBE_DNS_UPSTREAM_SERVICE_HOST: HOST }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    agent.stdout?.on('data', (d: Buffer) => (agentLog += d.toString()));
    agent.stderr?.on('data', (d: Buffer) => (agentLog += d.toString()));
    const exited = new Promise<never>((_, reject) => agent!.once('exit', (code) => reject(new Error(`agent exited (${code}):\n${agentLog}`))));
    const ready = (async () => {
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          if ((await httpGet(ports.ready, '/ready')).status === 200) return;
        } catch {
          // not listening yet
        }
        if (Date.now() > deadline) throw new Error(`agent not ready within 30 s:\n${agentLog}`);
        await sleep(200);
      }
    })();
    await Promise.race([ready, exited]);

    // Traffic.
    const d = ports.dns;
    assert.equal(rcodeOf(await queryUdp(d, 'web.default.svc.cluster.local', 'A')), 'NOERROR');
    await queryUdp(d, 'web.default.svc.cluster.local', 'A'); // cache hit
    await queryUdp(d, 'web.default.svc.cluster.local', 'AAAA');
    assert.equal(rcodeOf(await queryUdp(d, 'nxname.default.svc.cluster.local', 'A')), 'NXDOMAIN');
    await queryUdp(d, 'nxname.default.svc.cluster.local', 'A'); // denial cache hit
    await queryUdp(d, 'www.example.org', 'A', { dnssecOk: true });
    await queryUdp(d, '1.0.0.127.in-addr.arpa', 'PTR');
    await queryTcp(d, 'web.default.svc.cluster.local', 'A');
    await queryTcp(d, 'www.example.org', 'A');
    // More distinct names than the smallest cache holds (256 shards of 4): evictions.
    for (let i = 0; i < 1600; i += 16) {
      await Promise.all(Array.from({ length: 16 }, (_, j) => queryUdp(d, `n${i + j}.evict.test`, 'A')));
    }
    // prefetch 1 10m 90%: a hit once 10% of a 20 s TTL has passed triggers a prefetch.
    await queryUdp(d, 'p.prefetch.test', 'A');
    await sleep(2_500);
    await queryUdp(d, 'p.prefetch.test', 'A');
    await queryUdp(d, 'p.prefetch.test', 'A');
    // serve_stale: answers expire after the minimum TTL (5 s) and are then served stale.
    await queryUdp(d, 's.stale.test', 'A');
    await sleep(6_000);
    await queryUdp(d, 's.stale.test', 'A');
    // A dead upstream: errors, health-check failures, then "all upstreams down".
    for (let i = 0; i < 6; i++) {
      assert.equal(rcodeOf(await queryUdp(d, `x${i}.broken.test`, 'A')), 'SERVFAIL');
      await sleep(400);
    }
    await httpGet(ports.health, '/health');
    await sleep(1_500);

    const core = await httpGet(ports.prometheus, '/metrics');
    assert.equal(core.status, 200);
    coreMetrics = parseExposition(core.body);
    const setup = await httpGet(ports.agent, '/metrics');
    assert.equal(setup.status, 200);
    agentMetrics = parseExposition(setup.body);
  });

  after(async () => {
    if (agent !== undefined && agent.exitCode === null && agent.signalCode === null) {
      const gone = new Promise<void>((resolve) => agent!.once('exit', () => resolve()));
      agent.kill('SIGTERM');
      const timer = setTimeout(() => agent!.kill('SIGKILL'), 5_000);
      await gone;
      clearTimeout(timer);
    }
    await upstream.stop();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Where a series must be exposed: the agent endpoint's scrape keeps only coredns_nodecache_*
   * (deploy/monitoring/servicemonitor.yaml), everything else comes from the prometheus plugin.
   */
  function exposure(metric: string): ExposedMetric | undefined {
    return metric.startsWith('coredns_nodecache_') ? agentMetrics.get(metric) : coreMetrics.get(metric);
  }

  function problems(queries: Query[]): string[] {
    const out: string[] = [];
    for (const q of queries) {
      const a = analyzePromql(q.expr);
      for (const sel of a.selectors) {
        if (SYNTHETIC_SERIES.has(sel.metric)) continue;
        const m = exposure(sel.metric);
        if (m === undefined) {
          if (!EVENT_ONLY.has(sel.metric)) out.push(`${q.source}: ${sel.metric} not on /metrics`);
          continue;
        }
        for (const l of sel.labels) {
          if (!TARGET_LABELS.has(l) && !m.labels.has(l)) out.push(`${q.source}: ${sel.metric} has no label ${l} (has ${[...m.labels].join(',')})`);
        }
      }
      for (const g of [...a.groupings, { clause: 'label_values', labels: q.extraLabels, metrics: a.selectors.map((s) => s.metric) }]) {
        const seen = g.metrics.map(exposure).filter((m): m is ExposedMetric => m !== undefined && m.sampled);
        if (seen.length === 0) continue;
        for (const l of g.labels) {
          if (!TARGET_LABELS.has(l) && !seen.some((m) => m.labels.has(l))) out.push(`${q.source}: ${g.clause} (${l}): no series in scope has ${l}`);
        }
      }
    }
    return out;
  }

  test('the agent served the traffic and both metrics endpoints answered', () => {
    assert.ok(coreMetrics.size > 0, agentLog);
    assert.ok(agentMetrics.has('coredns_nodecache_setup_errors_total'), 'setup metrics endpoint');
  });

  test('every series and label of the PrometheusRule is exposed', () => {
    assert.deepEqual(problems(ruleQueries()), []);
  });

  test('every series and label of the Grafana dashboard is exposed', () => {
    assert.deepEqual(problems(dashboardQueries()), []);
  });

  test('EVENT_ONLY lists only agreed series the material really uses', () => {
    const used = new Set([...ruleQueries(), ...dashboardQueries()].flatMap((q) => analyzePromql(q.expr).selectors.map((s) => s.metric)));
    for (const m of EVENT_ONLY) {
      assert.ok(CONTRACT.has(m), `${m} is agreed`);
      assert.ok(used.has(m), `${m} is used`);
    }
  });
});
