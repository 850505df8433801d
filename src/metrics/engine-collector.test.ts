import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PluginScope, type BlockInfo, type EngineHooks, type Handler, type Plugin } from '../plugin.ts';
import { CachePlugin } from '../plugins/cache/cache.ts';
import { defaultCacheConfig } from '../plugins/cache/config.ts';
import { ForwardStats, UpstreamStats } from '../plugins/forward/stats.ts';
import { EngineCollector } from './engine-collector.ts';
import { pluginSetups } from '../plugins/registry.ts';
import { collectForward } from '../plugins/forward/metrics.ts';
import { MetricsHub } from './hub.ts';
import { parseExposition, sampleValue, samplesOf } from '../../test/lib/metrics-testing.ts';

function named(name: string): Plugin {
  const setupOnly = ['bind', 'reload', 'health', 'ready', 'debug', 'root'].includes(name);
  return { name, scope: PluginScope.QUERY, handler: !setupOnly, enablesMetrics: name === 'prometheus', compose: (next: Handler) => next };
}

function engineWith(blocks: BlockInfo[]): EngineHooks {
  return {
    reload: async () => {},
    isReady: () => true,
    isShuttingDown: () => false,
    blocks: () => blocks,
    fatal: (msg: string): never => {
      throw new Error(msg);
    },
    corefilePath: () => null,
    corefileText: () => '',
    pluginSetups: () => pluginSetups().values(),
  };
}

test('engine collector: plugin_enabled, cache and forward families with CoreDNS labels', async () => {
  const cache = new CachePlugin(defaultCacheConfig(['cluster.local.']), { clock: () => 0 });
  cache.requests = 10;
  cache.hitsSuccess = 6;
  cache.hitsDenial = 1;
  cache.misses = 3;
  cache.evictionsDenial = 2;
  const up = new UpstreamStats('10.96.0.10:53');
  up.requests = 4;
  up.observeResponse(0, 0.001);
  up.observeResponse(0, 0.003);
  up.observeResponse(3, 20);
  up.connCacheHitsTcp = 3;
  up.connCacheMissesTcp = 1;
  up.healthcheckFailures = 2;
  const fwdStats = new ForwardStats('cluster.local.', [up]);
  fwdStats.healthcheckBroken = 1;
  const forward: Plugin = { ...named('forward'), collect: (_b, out) => collectForward(fwdStats, out) };
  const block: BlockInfo = {
    zones: ['cluster.local.'],
    port: 53,
    addresses: ['169.254.20.10', '10.0.0.10'],
    serverLabels: ['dns://169.254.20.10:53', 'dns://10.0.0.10:53'],
    plugins: [named('reload'), named('bind'), named('prometheus'), named('errors'), cache, named('loop'), forward, named('health')],
  };
  const other: BlockInfo = { ...block, zones: ['.'], serverLabels: ['dns://169.254.20.10:53'], plugins: [named('errors'), named('forward')] };
  const hub = new MetricsHub({ defaultMetrics: false });
  const c = new EngineCollector();
  c.attach(engineWith([block, other]));
  hub.addCollector(c);
  const fams = parseExposition(await hub.render());

  const enabled = samplesOf(fams, 'coredns_plugin_enabled');
  const names = [...new Set(enabled.map((s) => s.labels.name))].sort();
  assert.deepEqual(names, ['cache', 'errors', 'forward', 'loop', 'prometheus']);
  assert.equal(enabled.length, 5 * 2, 'per server label; the block without prometheus is not listed');
  assert.equal(sampleValue(fams, 'coredns_plugin_enabled', { name: 'cache', server: 'dns://10.0.0.10:53', view: '', zone: 'cluster.local.' }), 1);

  const cb = { server: 'dns://169.254.20.10:53', view: '', zones: 'cluster.local.' };
  assert.equal(sampleValue(fams, 'coredns_cache_requests_total', cb), 10);
  assert.equal(sampleValue(fams, 'coredns_cache_hits_total', { ...cb, type: 'success' }), 6);
  assert.equal(sampleValue(fams, 'coredns_cache_hits_total', { ...cb, type: 'denial' }), 1);
  assert.equal(sampleValue(fams, 'coredns_cache_misses_total', cb), 3);
  assert.equal(sampleValue(fams, 'coredns_cache_entries', { ...cb, type: 'success' }), 0);
  assert.equal(sampleValue(fams, 'coredns_cache_evictions_total', { ...cb, type: 'denial' }), 2);
  assert.equal(fams.has('coredns_cache_prefetch_total'), false);

  const to = '10.96.0.10:53';
  assert.equal(sampleValue(fams, 'coredns_forward_requests_total', { to }), 4);
  assert.equal(sampleValue(fams, 'coredns_forward_responses_total', { rcode: 'NOERROR', to }), 2);
  assert.equal(sampleValue(fams, 'coredns_forward_responses_total', { rcode: 'NXDOMAIN', to }), 1);
  const p = { proxy_name: 'forward', rcode: 'NOERROR', to };
  assert.equal(sampleValue(fams, 'coredns_proxy_request_duration_seconds_bucket', { ...p, le: '0.001' }), 1);
  assert.equal(sampleValue(fams, 'coredns_proxy_request_duration_seconds_bucket', { ...p, le: '0.004' }), 2);
  assert.equal(sampleValue(fams, 'coredns_proxy_request_duration_seconds_count', p), 2);
  const nx = { proxy_name: 'forward', rcode: 'NXDOMAIN', to };
  assert.equal(sampleValue(fams, 'coredns_proxy_request_duration_seconds_bucket', { ...nx, le: '8.192' }), 0);
  assert.equal(sampleValue(fams, 'coredns_proxy_request_duration_seconds_bucket', { ...nx, le: '+Inf' }), 1);
  assert.equal(sampleValue(fams, 'coredns_forward_request_duration_seconds_count', { rcode: 'NOERROR', to }), 2);
  assert.equal(sampleValue(fams, 'coredns_proxy_conn_cache_hits_total', { proto: 'tcp', proxy_name: 'forward', to }), 3);
  assert.equal(sampleValue(fams, 'coredns_proxy_conn_cache_misses_total', { proto: 'tcp', proxy_name: 'forward', to }), 1);
  assert.equal(sampleValue(fams, 'coredns_proxy_healthcheck_failures_total', { proxy_name: 'forward', to }), 2);
  assert.equal(sampleValue(fams, 'coredns_forward_healthcheck_failures_total', { to }), 2);
  assert.equal(sampleValue(fams, 'coredns_forward_healthcheck_broken_total'), 1);
  assert.equal(sampleValue(fams, 'coredns_forward_max_concurrent_rejects_total'), 0);

  const legacy = parseExposition(await hub.render({ legacy: true }));
  assert.equal(sampleValue(legacy, 'coredns_forward_request_count_total', { to }), 4);
  assert.equal(sampleValue(legacy, 'coredns_forward_response_rcode_count_total', { rcode: 'NXDOMAIN', to }), 1);
  assert.equal(sampleValue(legacy, 'coredns_forward_request_duration_seconds_count', { to }), 3, '1.6 form: {to} only');
  assert.equal(samplesOf(legacy, 'coredns_forward_request_duration_seconds_count').length, 1);
  assert.equal(sampleValue(legacy, 'coredns_forward_healthcheck_failure_count_total', { to }), 2);
  assert.equal(sampleValue(legacy, 'coredns_forward_healthcheck_broken_count_total'), 1);
  assert.equal(sampleValue(legacy, 'coredns_cache_size', { server: 'dns://169.254.20.10:53', type: 'success' }), 0);
});

test('engine collector with no block serving still exports what plugins register at start (forward, health, reload)', async () => {
  const hub = new MetricsHub({ defaultMetrics: false });
  const c = new EngineCollector();
  c.attach(engineWith([]));
  hub.addCollector(c);
  const fams = parseExposition(await hub.render());
  assert.equal(sampleValue(fams, 'coredns_forward_healthcheck_broken_total'), 0);
  assert.equal(sampleValue(fams, 'coredns_forward_max_concurrent_rejects_total'), 0);
  assert.ok(fams.has('coredns_health_request_duration_seconds'));
  assert.ok(fams.has('coredns_health_request_failures_total'));
  assert.ok(fams.has('coredns_reload_failed_total'));
  assert.equal(fams.has('coredns_plugin_enabled'), false);
});
