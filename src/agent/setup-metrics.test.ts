import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SETUP_ERRORS_METRIC, SETUP_ERROR_TYPES, SetupMetrics } from './setup-metrics.ts';

test('every error type starts at 0 and counts up', async () => {
  const m = new SetupMetrics({ processMetrics: false });
  const text = await m.registry.metrics();
  for (const t of ['iptables', 'iptables_lock', 'interface_add', 'interface_check', 'configmap']) {
    assert.match(text, new RegExp(`^${SETUP_ERRORS_METRIC}\\{errortype="${t}"\\} 0$`, 'm'), t);
  }
  m.inc(SETUP_ERROR_TYPES.iptablesLock);
  m.inc(SETUP_ERROR_TYPES.iptablesLock);
  m.inc(SETUP_ERROR_TYPES.configmap);
  assert.equal(await m.count('iptables_lock'), 2);
  assert.equal(await m.count('configmap'), 1);
  assert.equal(await m.count('iptables'), 0);
  assert.match(await m.registry.metrics(), /^# TYPE coredns_nodecache_setup_errors_total counter$/m);
});

test('served on /metrics, 404 elsewhere', async (t) => {
  const m = new SetupMetrics();
  const addr = await m.listen('127.0.0.1:0');
  t.after(() => m.close());
  m.inc(SETUP_ERROR_TYPES.interfaceAdd);
  const res = await fetch(`http://127.0.0.1:${addr.port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
  const body = await res.text();
  assert.match(body, /^coredns_nodecache_setup_errors_total\{errortype="interface_add"\} 1$/m);
  assert.match(body, /^process_cpu_user_seconds_total /m);
  assert.equal((await fetch(`http://127.0.0.1:${addr.port}/other`)).status, 404);
});

test('listen fails cleanly on a taken port', async (t) => {
  const a = new SetupMetrics({ processMetrics: false });
  const addr = await a.listen('127.0.0.1:0');
  t.after(() => a.close());
  const b = new SetupMetrics({ processMetrics: false });
  await assert.rejects(b.listen(`127.0.0.1:${addr.port}`), /EADDRINUSE/);
  await b.close();
});
