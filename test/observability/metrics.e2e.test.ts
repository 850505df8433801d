/**
 * /metrics of the real agent (`node src/main.ts -conf ...`) after scripted queries: cache hits
 * and misses, NXDOMAIN, NODATA over TCP with the DO bit, SERVFAIL from a dead upstream, and a
 * query for a zone nobody serves (REFUSED, zone "dropped"). Every counter is checked with its
 * exact value and full label set.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Answer, Packet } from 'dns-packet';
import { freeAddress, freePorts, query, reply, scrape, startAgent, startUpstream } from './helpers.ts';
import { sampleValue, samplesOf, type ParsedFamily } from '../lib/metrics-testing.ts';

const SOA: Answer = {
  type: 'SOA',
  name: 'example',
  ttl: 60,
  class: 'IN',
  data: { mname: 'ns.example', rname: 'hostmaster.example', serial: 1, refresh: 3600, retry: 600, expire: 86400, minimum: 60 },
};

function answer(q: Packet): Packet {
  const { name, type } = q.questions![0]!;
  if (name === 'hit.example' && type === 'A') return reply(q, { answers: [{ type: 'A', name, ttl: 300, class: 'IN', data: '192.0.2.1' }] });
  if (name === 'hit.example') return reply(q, { authorities: [SOA] });
  return reply(q, { rcode: 'NXDOMAIN', authorities: [SOA] });
}

function labelNames(fams: Map<string, ParsedFamily>, name: string): string[] {
  const sets = new Set(samplesOf(fams, name).map((s) => Object.keys(s.labels).sort().join(',')));
  assert.equal(sets.size, 1, `${name}: one label set`);
  return [...sets][0]!.split(',');
}

test('metrics end to end (one worker): exact counters and label sets', { timeout: 90_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, upPort, deadPort, mPort] = await freePorts(host, 4);
  const up = await startUpstream(host, upPort!, (q) => answer(q));
  t.after(() => up.close());
  const agent = startAgent(
    `example:${dnsPort} {
    bind ${host}
    errors
    cache 30
    forward . ${host}:${upPort}
    prometheus ${host}:${mPort}
}
dead:${dnsPort} {
    bind ${host}
    errors
    forward . ${host}:${deadPort}
    prometheus ${host}:${mPort} {
        legacy_metrics
    }
}
`,
    ['-workers', '1'],
  );
  t.after(() => agent.stop());
  await agent.waitForOutput(/serving/);

  const rcodes: string[] = [];
  for (const n of ['hit.example', 'hit.example', 'hit.example', 'nx.example', 'nx.example']) rcodes.push((await query(host, dnsPort!, n)).rcode);
  rcodes.push((await query(host, dnsPort!, 'hit.example', 'AAAA', { tcp: true, do: true })).rcode);
  rcodes.push((await query(host, dnsPort!, 'x.dead', 'A', { timeoutMs: 20_000 })).rcode);
  rcodes.push((await query(host, dnsPort!, 'x.other', 'A')).rcode);
  assert.deepEqual(rcodes, ['NOERROR', 'NOERROR', 'NOERROR', 'NXDOMAIN', 'NXDOMAIN', 'NOERROR', 'SERVFAIL', 'REFUSED']);
  assert.deepEqual(up.queries, ['hit.example A', 'nx.example A', 'hit.example AAAA'], 'two cache hits per name never reached upstream');

  const f = await scrape(host, mPort!);
  const server = `dns://${host}:${dnsPort}`;
  const ex = { server, view: '', zone: 'example.' };
  const dead = { server, view: '', zone: 'dead.' };
  const dropped = { server, view: '', zone: 'dropped' };

  // coredns_dns_requests_total{server, zone, view, proto, family, type}
  assert.deepEqual(labelNames(f, 'coredns_dns_requests_total'), ['family', 'proto', 'server', 'type', 'view', 'zone']);
  assert.equal(sampleValue(f, 'coredns_dns_requests_total', { ...ex, proto: 'udp', family: '1', type: 'A' }), 5);
  assert.equal(sampleValue(f, 'coredns_dns_requests_total', { ...ex, proto: 'tcp', family: '1', type: 'AAAA' }), 1);
  assert.equal(sampleValue(f, 'coredns_dns_requests_total', { ...dead, proto: 'udp', family: '1', type: 'A' }), 1);
  assert.equal(sampleValue(f, 'coredns_dns_requests_total', { ...dropped, proto: 'udp', family: '1', type: 'A' }), 1);
  assert.equal(samplesOf(f, 'coredns_dns_requests_total').length, 4);

  // coredns_dns_responses_total{server, zone, view, rcode, plugin}
  assert.deepEqual(labelNames(f, 'coredns_dns_responses_total'), ['plugin', 'rcode', 'server', 'view', 'zone']);
  const responses = samplesOf(f, 'coredns_dns_responses_total')
    .map((s) => `${s.labels.zone} ${s.labels.rcode} ${s.labels.plugin || '-'} ${s.value}`)
    .sort();
  assert.deepEqual(responses, [
    'dead. SERVFAIL forward 1',
    'dropped REFUSED - 1',
    'example. NOERROR cache 2',
    'example. NOERROR forward 2',
    'example. NXDOMAIN cache 1',
    'example. NXDOMAIN forward 1',
  ]);

  assert.deepEqual(labelNames(f, 'coredns_dns_do_requests_total'), ['server', 'view', 'zone']);
  assert.equal(sampleValue(f, 'coredns_dns_do_requests_total', ex), 1);
  assert.equal(samplesOf(f, 'coredns_dns_do_requests_total').length, 1);

  // Histograms: duration {server, zone, view}; sizes {server, zone, view, proto}.
  assert.equal(sampleValue(f, 'coredns_dns_request_duration_seconds_count', ex), 6);
  assert.equal(sampleValue(f, 'coredns_dns_request_duration_seconds_count', dead), 1);
  assert.equal(sampleValue(f, 'coredns_dns_request_duration_seconds_count', dropped), 1);
  assert.equal(samplesOf(f, 'coredns_dns_request_duration_seconds_bucket').length, 3 * 17);
  assert.equal(sampleValue(f, 'coredns_dns_request_size_bytes_count', { ...ex, proto: 'udp' }), 5);
  assert.equal(sampleValue(f, 'coredns_dns_request_size_bytes_count', { ...ex, proto: 'tcp' }), 1);
  assert.equal(sampleValue(f, 'coredns_dns_request_size_bytes_bucket', { ...ex, proto: 'udp', le: '100' }), 5);
  assert.equal(sampleValue(f, 'coredns_dns_response_size_bytes_count', { ...ex, proto: 'udp' }), 5);
  assert.equal(samplesOf(f, 'coredns_dns_response_size_bytes_bucket').length, 4 * 15);

  assert.equal(sampleValue(f, 'coredns_panics_total'), 0);
  assert.deepEqual(
    samplesOf(f, 'coredns_build_info').map((s) => s.labels.goversion),
    [process.version],
  );

  // coredns_plugin_enabled{server, zone, view, name}: handler plugins of the blocks with prometheus.
  const enabled = samplesOf(f, 'coredns_plugin_enabled')
    .map((s) => `${s.labels.zone} ${s.labels.name}`)
    .sort();
  assert.deepEqual(enabled, [
    'dead. errors',
    'dead. forward',
    'dead. prometheus',
    'example. cache',
    'example. errors',
    'example. forward',
    'example. prometheus',
  ]);
  assert.ok(samplesOf(f, 'coredns_plugin_enabled').every((s) => s.labels.server === server && s.labels.view === '' && s.value === 1));

  // Cache {server, zones, view[, type]}.
  const c = { server, view: '', zones: 'example.' };
  assert.equal(sampleValue(f, 'coredns_cache_requests_total', c), 6);
  assert.equal(sampleValue(f, 'coredns_cache_hits_total', { ...c, type: 'success' }), 2);
  assert.equal(sampleValue(f, 'coredns_cache_hits_total', { ...c, type: 'denial' }), 1);
  assert.equal(sampleValue(f, 'coredns_cache_misses_total', c), 3);
  assert.equal(sampleValue(f, 'coredns_cache_entries', { ...c, type: 'success' }), 1);
  assert.equal(sampleValue(f, 'coredns_cache_entries', { ...c, type: 'denial' }), 2);

  // Forward / proxy {to[, rcode][, proxy_name]}.
  const to = `${host}:${upPort}`;
  const deadTo = `${host}:${deadPort}`;
  assert.equal(sampleValue(f, 'coredns_forward_requests_total', { to }), 3);
  assert.ok(sampleValue(f, 'coredns_forward_requests_total', { to: deadTo })! >= 1);
  assert.equal(sampleValue(f, 'coredns_forward_responses_total', { rcode: 'NOERROR', to }), 2);
  assert.equal(sampleValue(f, 'coredns_forward_responses_total', { rcode: 'NXDOMAIN', to }), 1);
  assert.equal(samplesOf(f, 'coredns_forward_responses_total').length, 2, 'the dead upstream never answered');
  assert.equal(sampleValue(f, 'coredns_proxy_request_duration_seconds_count', { proxy_name: 'forward', rcode: 'NOERROR', to }), 2);
  assert.equal(sampleValue(f, 'coredns_proxy_request_duration_seconds_count', { proxy_name: 'forward', rcode: 'NXDOMAIN', to }), 1);
  assert.equal(sampleValue(f, 'coredns_forward_request_duration_seconds_count', { rcode: 'NXDOMAIN', to }), undefined, 'legacy_metrics: the 1.6 {to} form');
  assert.equal(sampleValue(f, 'coredns_forward_request_duration_seconds_count', { to }), 3);
  assert.equal(sampleValue(f, 'coredns_forward_healthcheck_broken_total'), 0);
  assert.equal(sampleValue(f, 'coredns_forward_max_concurrent_rejects_total'), 0);
  assert.equal(sampleValue(f, 'coredns_reload_failed_total'), 0);
  assert.equal(sampleValue(f, 'coredns_health_request_failures_total'), 0);

  // legacy_metrics (asked for by the `dead` block on the same address).
  const l = { server, zone: 'example.' };
  assert.equal(sampleValue(f, 'coredns_dns_request_count_total', { ...l, proto: 'udp', family: '1' }), 5);
  assert.equal(sampleValue(f, 'coredns_dns_request_count_total', { ...l, proto: 'tcp', family: '1' }), 1);
  assert.equal(sampleValue(f, 'coredns_dns_request_type_count_total', { ...l, type: 'A' }), 5);
  assert.equal(sampleValue(f, 'coredns_dns_request_do_count_total', l), 1);
  assert.equal(sampleValue(f, 'coredns_dns_response_rcode_count_total', { ...l, rcode: 'NOERROR' }), 4);
  assert.equal(sampleValue(f, 'coredns_dns_response_rcode_count_total', { server, zone: 'dropped', rcode: 'REFUSED' }), 1);
  assert.equal(sampleValue(f, 'coredns_forward_request_count_total', { to }), 3);
  assert.equal(sampleValue(f, 'coredns_forward_response_rcode_count_total', { rcode: 'NXDOMAIN', to }), 1);
  assert.equal(sampleValue(f, 'coredns_cache_size', { server, type: 'denial' }), 2);
  assert.equal(sampleValue(f, 'coredns_panic_count_total'), 0);

  // Node's process metrics are there too.
  assert.ok((sampleValue(f, 'process_resident_memory_bytes') ?? 0) > 0);
  assert.equal(await agent.stop(), 0);
});

test('metrics end to end (two workers): the scrape merges both workers exactly once', { timeout: 90_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, upPort, mPort] = await freePorts(host, 3);
  const up = await startUpstream(host, upPort!, (q) => answer(q));
  t.after(() => up.close());
  const agent = startAgent(
    `example:${dnsPort} {
    bind ${host}
    cache 30
    forward . ${host}:${upPort}
    prometheus ${host}:${mPort}
}
`,
    ['-workers', '2'],
  );
  t.after(() => agent.stop());
  await agent.waitForOutput(/serving/);
  const n = 60;
  for (let i = 0; i < n; i++) {
    // Fresh sockets (new source ports) spread the queries over both workers' sockets.
    assert.equal((await query(host, dnsPort!, i % 2 === 0 ? 'hit.example' : `nx${i}.example`)).rcode, i % 2 === 0 ? 'NOERROR' : 'NXDOMAIN');
  }
  const f = await scrape(host, mPort!);
  const server = `dns://${host}:${dnsPort}`;
  const ex = { server, view: '', zone: 'example.' };
  assert.equal(sampleValue(f, 'coredns_dns_requests_total', { ...ex, proto: 'udp', family: '1', type: 'A' }), n);
  const responses = samplesOf(f, 'coredns_dns_responses_total').reduce((a, s) => a + s.value, 0);
  assert.equal(responses, n);
  assert.equal(sampleValue(f, 'coredns_dns_request_duration_seconds_count', ex), n);
  const c = { server, view: '', zones: 'example.' };
  const hits = samplesOf(f, 'coredns_cache_hits_total').reduce((a, s) => a + s.value, 0);
  const misses = sampleValue(f, 'coredns_cache_misses_total', c)!;
  assert.equal(sampleValue(f, 'coredns_cache_requests_total', c), n);
  assert.equal(hits + misses, n);
  assert.equal(sampleValue(f, 'coredns_forward_requests_total', { to: `${host}:${upPort}` }), up.queries.length);
  assert.equal(misses, up.queries.length, 'every miss went upstream once');
  // Gauges every worker reports alike are not doubled.
  assert.ok(samplesOf(f, 'coredns_plugin_enabled').every((s) => s.value === 1));
  assert.deepEqual(
    samplesOf(f, 'coredns_build_info').map((s) => s.value),
    [1],
  );
  assert.equal(await agent.stop(), 0);
});
