/**
 * Unit tests of the benchmark harness's parsers and arithmetic (no servers, no sockets except
 * the free-port check on loopback).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseDnsperfStats, parseVerboseLatency, summarizeLatency, DnsperfError } from '../../bench/lib/dnsperf.ts';
import { median, percentileSorted, ratio, SampleBuffer } from '../../bench/lib/stats.ts';
import { parseStat } from '../../bench/lib/proc.ts';
import { parseOptions, UsageError } from '../../bench/lib/options.ts';
import { assertLoopback, freePort, NonLoopbackAddressError } from '../../bench/lib/net.ts';
import { ratios, summarize } from '../../bench/lib/report.ts';
import type { CellRun, WorkloadDef } from '../../bench/lib/harness.ts';

const DNSPERF_OUTPUT = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.54 -p 5400 -d m.txt -n 3
[Status] Sending queries (to 127.0.0.54:5400)
[Status] Testing complete (end of file)

Statistics:

  Queries sent:         12
  Queries completed:    11 (91.67%)
  Queries lost:         1 (8.33%)

  Response codes:       NOERROR 8 (72.73%), REFUSED 3 (27.27%)
  Average packet size:  request 28, response 47
  Run time (s):         0.008928
  Queries per second:   1232.078853

  Average Latency (s):  0.005184 (min 0.001851, max 0.008653)
  Latency StdDev (s):   0.002086
`;

test('parseDnsperfStats reads counts, rcodes, rate and latency', () => {
  const s = parseDnsperfStats(DNSPERF_OUTPUT);
  assert.equal(s.sent, 12);
  assert.equal(s.completed, 11);
  assert.equal(s.lost, 1);
  assert.deepEqual(s.rcodes, { NOERROR: 8, REFUSED: 3 });
  assert.equal(s.runTimeSec, 0.008928);
  assert.equal(s.qps, 1232.078853);
  assert.ok(Math.abs(s.avgLatencyMs - 5.184) < 1e-9);
  assert.ok(Math.abs(s.minLatencyMs - 1.851) < 1e-9);
  assert.ok(Math.abs(s.maxLatencyMs - 8.653) < 1e-9);
});

test('parseDnsperfStats rejects output without a statistics block', () => {
  assert.throws(() => parseDnsperfStats('Error: unable to open file: q.txt\n'), DnsperfError);
});

test('parseVerboseLatency takes the last field of "> " lines only', () => {
  assert.equal(parseVerboseLatency('> NOERROR svc-1.default.svc.cluster.local A 0.000123'), 0.000123);
  assert.equal(parseVerboseLatency('> NXDOMAIN x.cluster.local.svc.cluster.local A 0.5'), 0.5);
  assert.ok(Number.isNaN(parseVerboseLatency('> T _http._tcp.svc-69.default.svc.cluster.local SRV')));
  assert.ok(Number.isNaN(parseVerboseLatency('> T 1.0.96.10.in-addr.arpa 12')));
  assert.ok(Number.isNaN(parseVerboseLatency('[Timeout] Query timed out: msg id 7')));
  assert.ok(Number.isNaN(parseVerboseLatency('  Queries sent: 12')));
});

test('percentiles use nearest rank and report observed values', () => {
  const b = new SampleBuffer(2); // forces growth
  for (let i = 100; i >= 1; i--) b.push(i / 1000);
  const s = summarizeLatency(b)!;
  assert.equal(s.samples, 100);
  assert.ok(Math.abs(s.p50Ms - 50) < 1e-9);
  assert.ok(Math.abs(s.p99Ms - 99) < 1e-9);
  assert.ok(Math.abs(s.p999Ms - 100) < 1e-9);
  assert.ok(Math.abs(s.maxMs - 100) < 1e-9);
  assert.equal(summarizeLatency(new SampleBuffer()), null);
  assert.equal(percentileSorted(Float64Array.of(1, 2, 3), 0), 1);
  assert.ok(Number.isNaN(percentileSorted(new Float64Array(0), 50)));
});

test('median ignores non-finite values; ratio refuses missing or zero denominators', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([NaN, 5]), 5);
  assert.ok(Number.isNaN(median([])));
  assert.equal(ratio(3, 2), 1.5);
  assert.ok(Number.isNaN(ratio(1, 0)));
  assert.ok(Number.isNaN(ratio(NaN, 2)));
});

test('parseStat copes with spaces and parentheses in comm', () => {
  // Fields after comm: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime ...
  const line = '4242 (dnsdist/udp (x) y) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 12 0 1000 100000 200';
  assert.deepEqual(parseStat(line), { ppid: 17, ticks: 250 + 50 + 7 + 3 });
  assert.equal(parseStat('garbage'), null);
});

test('parseOptions: defaults, --quick, validation', () => {
  const d = parseOptions([], '/p')!;
  assert.deepEqual(d.servers, ['node-local-dns', 'node-local-dns-dgram', 'dnsdist', 'unbound', 'dnsmasq', 'node-echo']);
  assert.deepEqual(d.nodeFlags, []);
  assert.deepEqual(parseOptions(['--node-flags=--trace-gc --cpu-prof'], '/p')!.nodeFlags, ['--trace-gc', '--cpu-prof']);
  assert.equal(d.reps, 3);
  assert.equal(d.durationSec, 8);
  assert.equal(d.mdPath, '/p/bench/RESULTS.md');
  assert.equal(d.workers, undefined);
  const q = parseOptions(['--quick', '--only', 'dnsdist,node-local-dns', '--workers', '2'], '/p')!;
  assert.equal(q.reps, 1);
  assert.equal(q.durationSec, 2);
  assert.equal(q.mdPath, null);
  assert.deepEqual(q.servers, ['node-local-dns', 'dnsdist']); // canonical order
  assert.equal(q.workers, 2);
  assert.equal(parseOptions(['--quick', '--reps', '4', '--duration', '0.5'], '/p')!.reps, 4);
  assert.equal(parseOptions(['-h'], '/p'), null);
  assert.throws(() => parseOptions(['--only', 'coredns'], '/p'), UsageError);
  assert.throws(() => parseOptions(['--reps', '0'], '/p'), UsageError);
  assert.throws(() => parseOptions(['--reps', '1.5'], '/p'), UsageError);
  assert.throws(() => parseOptions(['--bogus'], '/p'), UsageError);
  assert.throws(() => parseOptions(['--server-cpu', '1;rm'], '/p'), UsageError);
  assert.throws(() => parseOptions(['--upstream', 'bind'], '/p'), UsageError);
});

test('only loopback addresses are accepted', async () => {
  assert.equal(assertLoopback('127.0.0.202'), '127.0.0.202');
  for (const bad of ['10.96.0.10', '169.254.20.10', '127.0.0.256', '::1', 'localhost']) {
    assert.throws(() => assertLoopback(bad), NonLoopbackAddressError);
  }
  const port = await freePort('127.0.0.203');
  assert.ok(port > 0 && port < 65536);
  await assert.rejects(freePort('8.8.8.8'), NonLoopbackAddressError);
});

test('summarize takes medians over ok repetitions, marks n/a and errors; ratios pair ok servers', () => {
  const wl = (id: 'hit' | 'miss-tcp'): WorkloadDef => ({
    id,
    title: id,
    mode: id === 'hit' ? 'udp' : 'tcp',
    warmFile: null,
    file: '',
    fileLines: 0,
    expectedRcodes: ['NOERROR'],
    timeLimited: true,
    dnsperf: { clients: 1, outstanding: 1, timeoutSec: 1, perQueryLatency: false },
  });
  const run = (server: CellRun['server'], workload: CellRun['workload'], rep: number, qps: number, cpu: number): CellRun => ({
    server,
    workload,
    rep,
    order: 0,
    status: 'ok',
    qps,
    cpuUsPerQuery: cpu,
    peakRssKb: 1000,
  });
  const runs: CellRun[] = [
    run('node-local-dns', 'hit', 0, 100, 10),
    run('node-local-dns', 'hit', 1, 300, 30),
    run('node-local-dns', 'hit', 2, 200, 20),
    run('dnsdist', 'hit', 0, 400, 5),
    { server: 'dnsdist', workload: 'hit', rep: 1, order: 0, status: 'error', error: 'boom' },
    { server: 'node-local-dns', workload: 'miss-tcp', rep: 0, order: 0, status: 'error', error: 'did not start\nstack' },
    run('dnsdist', 'miss-tcp', 0, 50, 40),
  ];
  const workloads = [wl('hit'), wl('miss-tcp')];
  const sum = summarize(runs, ['node-local-dns', 'dnsdist', 'dnsmasq'], workloads, (s, w) => (s === 'dnsmasq' && w.mode === 'tcp' ? 'no tcp' : null));
  const get = (s: string, w: string) => sum.find((r) => r.server === s && r.workload === w)!;
  assert.equal(get('node-local-dns', 'hit').qps, 200);
  assert.equal(get('node-local-dns', 'hit').okReps, 3);
  assert.equal(get('dnsdist', 'hit').status, 'ok');
  assert.match(get('dnsdist', 'hit').note!, /1 of 2 reps failed: boom/);
  assert.equal(get('node-local-dns', 'miss-tcp').status, 'error');
  assert.equal(get('dnsmasq', 'miss-tcp').status, 'n/a');
  assert.equal(get('dnsmasq', 'hit').status, 'error'); // no runs at all
  const rr = ratios(sum, ['node-local-dns', 'dnsdist', 'dnsmasq'], workloads);
  assert.equal(rr.length, 1); // only hit has two ok servers
  assert.deepEqual(
    { a: rr[0]!.a, b: rr[0]!.b, qps: rr[0]!.qps, cpu: rr[0]!.cpuUsPerQuery, rss: rr[0]!.peakRssKb },
    { a: 'node-local-dns', b: 'dnsdist', qps: 0.5, cpu: 4, rss: 1 },
  );
});
