import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { SETUP_ERRORS_METRIC, SetupErrorType, SetupMetrics } from './setup-metrics.ts';
import { DEFAULT_HTTP_LIMITS } from '../metrics/http-endpoints.ts';
import { HttpDropReason, httpConnectionDrops } from '../metrics/process-metrics.ts';
import { waitUntil } from '../../test/lib/net.ts';

test('every error type starts at 0 and counts up', async () => {
  const m = new SetupMetrics({ processMetrics: false });
  const text = await m.render();
  for (const t of ['iptables', 'iptables_lock', 'interface_add', 'interface_check', 'configmap']) {
    assert.match(text, new RegExp(`^${SETUP_ERRORS_METRIC}\\{errortype="${t}"\\} 0$`, 'm'), t);
  }
  m.inc(SetupErrorType.IPTABLES_LOCK);
  m.inc(SetupErrorType.IPTABLES_LOCK);
  m.inc(SetupErrorType.CONFIGMAP);
  assert.equal(await m.count('iptables_lock'), 2);
  assert.equal(await m.count('configmap'), 1);
  assert.equal(await m.count('iptables'), 0);
  assert.match(await m.render(), /^# TYPE coredns_nodecache_setup_errors_total counter$/m);
});

test('served on /metrics, 404 elsewhere', async (t) => {
  const m = new SetupMetrics();
  const addr = await m.listen('127.0.0.1:0');
  t.after(() => m.close());
  m.inc(SetupErrorType.INTERFACE_ADD);
  const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const body = await res.text();
  assert.match(body, /^coredns_nodecache_setup_errors_total\{errortype="interface_add"\} 1$/m);
  assert.match(body, /^process_cpu_user_seconds_total /m);
  assert.equal((await fetch(`http://127.0.0.1:${addr.port}/other`)).status, 404);
});

test('listen fails cleanly on a port taken without SO_REUSEPORT', async (t) => {
  const holder = createServer((c) => c.destroy());
  await new Promise<void>((resolve) => holder.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => holder.close());
  const b = new SetupMetrics({ processMetrics: false });
  await assert.rejects(b.listen(`127.0.0.1:${(holder.address() as AddressInfo).port}`), /EADDRINUSE/);
  await b.close();
});

test('two instances share the port (SO_REUSEPORT, a surge pod beside the old one): each serves its own counters', async (t) => {
  const oldInstance = new SetupMetrics({ processMetrics: false });
  const newInstance = new SetupMetrics({ processMetrics: false });
  t.after(async () => {
    await oldInstance.close();
    await newInstance.close();
  });
  const addr = await oldInstance.listen('127.0.0.1:0');
  assert.equal((await newInstance.listen(`127.0.0.1:${addr.port}`)).port, addr.port);
  oldInstance.inc(SetupErrorType.IPTABLES);
  const counts = new Set<string>();
  for (let i = 0; i < 200 && counts.size < 2; i++) {
    // A fresh connection each time (no keep-alive), so the kernel's hash picks a socket anew.
    const body = await (await fetch(`http://127.0.0.1:${addr.port}/metrics`, { headers: { connection: 'close' } })).text();
    counts.add(/^coredns_nodecache_setup_errors_total\{errortype="iptables"\} (\d+)$/m.exec(body)?.[1] ?? 'none');
  }
  assert.deepEqual([...counts].sort(), ['0', '1']);
});

test('the setup metrics listener has the HTTP bounds of every listener, and concurrent scrapes share one render', async (t) => {
  const m = new SetupMetrics({ processMetrics: false });
  const addr = await m.listen('127.0.0.1:0', { limits: { ...DEFAULT_HTTP_LIMITS, maxConnections: 2 } });
  const socks: Socket[] = [];
  t.after(async () => {
    for (const s of socks) s.destroy();
    await m.close();
  });
  const evictedBefore = httpConnectionDrops.count('127.0.0.1:0', HttpDropReason.EVICTED);
  for (let i = 0; i < 5; i++) {
    const s = connect(addr.port, '127.0.0.1');
    s.on('error', () => {});
    socks.push(s);
    await new Promise((r) => s.once('connect', r));
  }
  await waitUntil(() => httpConnectionDrops.count('127.0.0.1:0', HttpDropReason.EVICTED) - evictedBefore === 3, 'three evictions', 5000);

  const n = new SetupMetrics({ processMetrics: false });
  const nAddr = await n.listen('127.0.0.1:0');
  t.after(() => n.close());
  // Requests landing in one event-loop turn share a render; later ones the next (1 s on).
  const bodies = await Promise.all([1, 2, 3, 4, 5, 6].map(async () => (await fetch(`http://127.0.0.1:${nAddr.port}/metrics`)).text()));
  assert.ok(n.scrapes.renders <= 2, `${n.scrapes.renders} renders for 6 concurrent scrapes`);
  assert.ok(bodies.every((b) => b === bodies[0] && /coredns_nodecache_setup_errors_total/.test(b)));
});
