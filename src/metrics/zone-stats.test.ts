import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DROPPED_ZONE, ZoneStatsRegistry } from './zone-stats.ts';
import { MetricsHub } from './hub.ts';
import { answeredRequest, parseExposition, sampleValue, samplesOf } from '../../test/lib/metrics-testing.ts';
import { mergeSnapshots, SnapshotBuilder } from './snapshot.ts';
import { TIME_BUCKETS, SIZE_BUCKETS, SLIM_TIME_BUCKETS, rcodeLabel, proxyRcodeLabel, TYPE_INDEX, MONITORED_TYPE_LABELS } from './labels.ts';

const SERVER = 'dns://169.254.20.10:53';
const ZONE = 'cluster.local.';

function hubWith(reg: ZoneStatsRegistry): MetricsHub {
  return new MetricsHub({ zoneStats: reg, defaultMetrics: false });
}

test('labels: bucket layouts and label tables are CoreDNS values', () => {
  assert.deepEqual(TIME_BUCKETS.map(String), [
    '0.00025',
    '0.0005',
    '0.001',
    '0.002',
    '0.004',
    '0.008',
    '0.016',
    '0.032',
    '0.064',
    '0.128',
    '0.256',
    '0.512',
    '1.024',
    '2.048',
    '4.096',
    '8.192',
  ]);
  assert.deepEqual(SLIM_TIME_BUCKETS.map(String), ['0.00025', '0.0025', '0.025', '0.25', '2.5']);
  assert.deepEqual(SIZE_BUCKETS.map(String), ['0', '100', '200', '300', '400', '511', '1023', '2047', '4095', '8291', '16000', '32000', '48000', '64000']);
  assert.equal(rcodeLabel(3), 'NXDOMAIN');
  assert.equal(rcodeLabel(16), 'BADSIG');
  assert.equal(rcodeLabel(12), 'RCODE12');
  assert.equal(proxyRcodeLabel(12), '12');
  assert.equal(MONITORED_TYPE_LABELS[TYPE_INDEX[65]!], 'HTTPS');
  assert.equal(MONITORED_TYPE_LABELS[TYPE_INDEX[13]!], 'other'); // HINFO is not monitored
  assert.equal(MONITORED_TYPE_LABELS[TYPE_INDEX[255]!], 'ANY');
});

test('record + exposition: exact counters, label sets and histogram buckets', async () => {
  const reg = new ZoneStatsRegistry();
  reg.monitor(SERVER, ZONE);
  const s = reg.get(SERVER, ZONE);
  s.record(answeredRequest({ qtype: 1, rcode: 0, respondedBy: 'cache', msgLen: 40, responseLen: 120 }), 0.0001);
  s.record(answeredRequest({ qtype: 1, rcode: 0, respondedBy: 'forward', msgLen: 40, responseLen: 120 }), 0.003);
  s.record(answeredRequest({ qtype: 28, family: 6, rcode: 3, respondedBy: 'forward', msgLen: 52, responseLen: 600 }), 0.02);
  s.record(answeredRequest({ qtype: 13, proto: 1, rcode: 2, respondedBy: '', dnssecOk: true, msgLen: 70000, responseLen: 30 }), 9);

  const text = await hubWith(reg).render();
  const fams = parseExposition(text);
  const base = { server: SERVER, view: '', zone: ZONE };

  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...base, proto: 'udp', family: '1', type: 'A' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...base, proto: 'udp', family: '2', type: 'AAAA' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...base, proto: 'tcp', family: '1', type: 'other' }), 1);
  assert.equal(samplesOf(fams, 'coredns_dns_requests_total').length, 3, 'only non-zero series exist');

  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'NOERROR', plugin: 'cache' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'NOERROR', plugin: 'forward' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'NXDOMAIN', plugin: 'forward' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'SERVFAIL', plugin: '' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_do_requests_total', base), 1);

  // Duration histogram {server, zone, view}: 0.0001 → le 0.00025; 0.003 → 0.004; 0.02 → 0.032; 9 → +Inf only.
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '0.00025' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '0.002' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '0.004' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '0.032' }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '8.192' }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { ...base, le: '+Inf' }), 4);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_count', base), 4);
  assert.ok(Math.abs(sampleValue(fams, 'coredns_dns_request_duration_seconds_sum', base)! - 9.0231) < 1e-9);

  // Size histograms per proto; 70000 bytes over TCP lands only in +Inf.
  const udp = { ...base, proto: 'udp' };
  const tcp = { ...base, proto: 'tcp' };
  assert.equal(sampleValue(fams, 'coredns_dns_request_size_bytes_bucket', { ...udp, le: '0' }), 0);
  assert.equal(sampleValue(fams, 'coredns_dns_request_size_bytes_bucket', { ...udp, le: '100' }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_request_size_bytes_bucket', { ...tcp, le: '64000' }), 0);
  assert.equal(sampleValue(fams, 'coredns_dns_request_size_bytes_bucket', { ...tcp, le: '+Inf' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_request_size_bytes_sum', udp), 132);
  assert.equal(sampleValue(fams, 'coredns_dns_response_size_bytes_bucket', { ...udp, le: '200' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_response_size_bytes_bucket', { ...udp, le: '1023' }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_response_size_bytes_count', tcp), 1);
  assert.equal(sampleValue(fams, 'coredns_panics_total'), 0);

  // Types and help texts.
  assert.equal(fams.get('coredns_dns_requests_total')!.type, 'counter');
  assert.equal(fams.get('coredns_dns_request_duration_seconds')!.type, 'histogram');
  assert.equal(fams.get('coredns_dns_requests_total')!.help, 'Counter of DNS requests made per zone, protocol and family.');

  // client_golang's layout: labels sorted by name, `le` last.
  assert.match(text, /^coredns_dns_requests_total\{family="1",proto="udp",server="dns:\/\/169\.254\.20\.10:53",type="A",view="",zone="cluster\.local\."\} 2$/m);
  assert.match(text, /^coredns_dns_request_duration_seconds_bucket\{server="[^"]+",view="",zone="cluster\.local\.",le="0\.00025"\} 1$/m);

  assert.equal(samplesOf(fams, 'coredns_dns_requests_total').length, 3);
});

test('families are sorted by name and empty vectors are left out', async () => {
  const reg = new ZoneStatsRegistry();
  const text = await hubWith(reg).render();
  const names = [...text.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!);
  assert.deepEqual(names, [...names].sort());
  assert.ok(!names.includes('coredns_dns_requests_total'), 'no query yet: no requests family');
  assert.ok(names.includes('coredns_panics_total'));
  assert.ok(names.includes('coredns_build_info'));
  const fams = parseExposition(text);
  const bi = samplesOf(fams, 'coredns_build_info');
  assert.equal(bi.length, 1);
  assert.equal(bi[0]!.labels.goversion, process.version);
});

test('only monitored routes and the dropped zone are exported; port 0 labels match any port', async () => {
  const reg = new ZoneStatsRegistry();
  reg.get(SERVER, 'other.').record(answeredRequest({}), 0.001);
  reg.get(SERVER, DROPPED_ZONE).record(answeredRequest({ rcode: 5, respondedBy: '' }), 0);
  reg.monitor('dns://127.0.0.1:0', 'example.');
  reg.get('dns://127.0.0.1:40053', 'example.').record(answeredRequest({}), 0.001);
  reg.get('dns://127.0.0.10:40053', 'example.').record(answeredRequest({}), 0.001);
  const fams = parseExposition(await hubWith(reg).render());
  const zones = samplesOf(fams, 'coredns_dns_requests_total')
    .map((s) => `${s.labels.server} ${s.labels.zone}`)
    .sort();
  assert.deepEqual(zones, ['dns://127.0.0.1:40053 example.', `${SERVER} dropped`]);
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { server: SERVER, zone: 'dropped', view: '', rcode: 'REFUSED', plugin: '' }), 1);
});

test('extended rcodes, drops and panics', async () => {
  const reg = new ZoneStatsRegistry();
  reg.monitor(SERVER, ZONE);
  reg.get(SERVER, ZONE).record(answeredRequest({ rcode: 16, respondedBy: '' }), 0);
  reg.get(SERVER, ZONE).record(answeredRequest({ rcode: 30, respondedBy: '' }), 0);
  reg.countDrop('short');
  reg.countDrop('short');
  reg.countDrop('response');
  reg.countPanic();
  const fams = parseExposition(await hubWith(reg).render());
  const base = { server: SERVER, view: '', zone: ZONE, plugin: '' };
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'BADSIG' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_responses_total', { ...base, rcode: 'RCODE30' }), 1);
  assert.equal(sampleValue(fams, 'nodelocaldns_dropped_packets_total', { reason: 'short' }), 2);
  assert.equal(sampleValue(fams, 'nodelocaldns_dropped_packets_total', { reason: 'response' }), 1);
  assert.equal(sampleValue(fams, 'coredns_panics_total'), 1);
});

test('worker snapshots merge: counters and histograms add up, build info does not', async () => {
  const a = new ZoneStatsRegistry();
  const b = new ZoneStatsRegistry();
  for (const r of [a, b]) r.monitor(SERVER, ZONE);
  a.get(SERVER, ZONE).record(answeredRequest({ qtype: 1 }), 0.001);
  b.get(SERVER, ZONE).record(answeredRequest({ qtype: 1 }), 0.001);
  b.get(SERVER, ZONE).record(answeredRequest({ qtype: 28 }), 0.5);
  const main = hubWith(a);
  const worker = hubWith(b);
  // A snapshot survives structured cloning (what a MessagePort does).
  const wire = structuredClone(worker.snapshot());
  main.setRemoteSnapshots(async () => [wire]);
  const fams = parseExposition(await main.render());
  const base = { server: SERVER, view: '', zone: ZONE, proto: 'udp', family: '1' };
  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...base, type: 'A' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...base, type: 'AAAA' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_count', { server: SERVER, view: '', zone: ZONE }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_request_duration_seconds_bucket', { server: SERVER, view: '', zone: ZONE, le: '0.001' }), 2);
  assert.equal(samplesOf(fams, 'coredns_build_info')[0]!.value, 1);

  const merged = mergeSnapshots([main.snapshot(), wire]);
  const requests = merged.families.find((f) => f.name === 'coredns_dns_requests_total')!;
  assert.equal(
    requests.samples.reduce((n, s) => n + s.value, 0),
    3,
  );
});

test('snapshot builder rejects histograms with the wrong bucket count', () => {
  const b = new SnapshotBuilder();
  const f = b.family('x_seconds', 'x', 'histogram', { bounds: [1, 2] });
  assert.throws(() => f.addHistogram({}, [1, 2], 3), /2 bucket counts for 2 bounds/);
});

test('legacy_metrics: 1.6-era families summed from the current counters', async () => {
  const reg = new ZoneStatsRegistry();
  reg.monitor(SERVER, ZONE);
  const s = reg.get(SERVER, ZONE);
  s.record(answeredRequest({ qtype: 1, rcode: 0, respondedBy: 'cache' }), 0.001);
  s.record(answeredRequest({ qtype: 1, rcode: 0, respondedBy: 'forward' }), 0.001);
  s.record(answeredRequest({ qtype: 28, rcode: 3, respondedBy: 'forward', dnssecOk: true }), 0.001);
  const hub = hubWith(reg);
  const plain = parseExposition(await hub.render());
  assert.equal(plain.has('coredns_dns_request_count_total'), false, 'not served unless asked');
  const fams = parseExposition(await hub.render({ legacy: true }));
  const b = { server: SERVER, zone: ZONE };
  assert.equal(sampleValue(fams, 'coredns_dns_request_count_total', { ...b, proto: 'udp', family: '1' }), 3);
  assert.equal(sampleValue(fams, 'coredns_dns_request_type_count_total', { ...b, type: 'A' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_request_type_count_total', { ...b, type: 'AAAA' }), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_request_do_count_total', b), 1);
  assert.equal(sampleValue(fams, 'coredns_dns_response_rcode_count_total', { ...b, rcode: 'NOERROR' }), 2);
  assert.equal(sampleValue(fams, 'coredns_dns_response_rcode_count_total', { ...b, rcode: 'NXDOMAIN' }), 1);
  assert.equal(sampleValue(fams, 'coredns_panic_count_total'), 0);
  // The current families are still there.
  assert.equal(sampleValue(fams, 'coredns_dns_requests_total', { ...b, view: '', proto: 'udp', family: '1', type: 'A' }), 2);
});
