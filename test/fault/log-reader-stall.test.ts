/**
 * A log reader that stops reading (a stalled container log pipe) must neither stop DNS nor
 * make the process hold log lines without end: the real agent with `log` (a line per query)
 * writes its stdout into a FIFO that nobody reads, 150,000 queries go through, and its RSS
 * must stay bounded (before the bound: 68 -> 330 MB), every query answered, and the dropped
 * lines counted in nodelocaldns_log_lines_dropped_total{stream="stdout"}.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, metricSum, scrape } from './lib/agent.ts';
import { SHIPPED_NODE_FLAGS } from './lib/netns-agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress, rssKiB, waitUntil } from './lib/net.ts';
import { udpQuery } from './lib/dns.ts';

const QUERIES_PER_PASS = 1_500;
const PASSES = 100;
/** Growth allowed: the 1 MiB of unwritten lines plus V8's young generation churning through dropped lines (measured +25 MiB). */
const MAX_RSS_GROWTH_KIB = 64 * 1024;

let dir: string;
let nsd: Nsd;
let child: ChildProcess | null = null;
let readFd = -1;
let writeFd = -1;
let dns: { host: string; port: number };
let metricsPort: number;

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'nld-logstall-'));
  nsd = await startNsd({ 'stall.test.': zoneText('stall.test', ['* IN A 192.0.2.7']) });
  dns = await freeAddress();
  metricsPort = (await freeAddress(dns.host)).port;
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(
    corefile,
    `stall.test:${dns.port} {
    bind ${dns.host}
    log
    cache 30
    forward . ${nsd.addr}
    prometheus ${dns.host}:${metricsPort}
}
`,
  );
  const fifo = path.join(dir, 'stdout.fifo');
  execFileSync('mkfifo', [fifo]);
  // The reading end is opened and never read: the agent's writes fill the pipe and then wait.
  readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
  writeFd = openSync(fifo, constants.O_WRONLY);
  child = spawn(NODE, [...SHIPPED_NODE_FLAGS, path.join(ROOT, 'src/main.ts'), '-conf', corefile], {
    cwd: ROOT,
    stdio: ['ignore', writeFd, openSync(path.join(dir, 'stderr.log'), 'w')],
  });
  closeSync(writeFd);
  writeFd = -1;
  await waitUntil(
    async () => (await udpQuery(dns.host, dns.port, 'ready.stall.test', 'A', { timeoutMs: 500 })).packet?.rcode === 'NOERROR',
    'the agent to answer',
    20_000,
  );
  writeFileSync(path.join(dir, 'queries'), Array.from({ length: QUERIES_PER_PASS }, (_, i) => `n${i}.stall.test A\n`).join(''));
});

after(async () => {
  if (child !== null && child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child!.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  if (readFd >= 0) closeSync(readFd);
  await nsd?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function dnsperf(): Promise<string> {
  return new Promise((resolve) => {
    execFile(
      'dnsperf',
      ['-s', dns.host, '-p', String(dns.port), '-d', path.join(dir, 'queries'), '-n', String(PASSES), '-t', '2', '-q', '100'],
      { timeout: 120_000 },
      (_err, stdout) => resolve(String(stdout)),
    );
  });
}

test('a log reader that never reads: every query answered, RSS bounded, dropped lines counted', async () => {
  const pid = child!.pid!;
  const beforeKiB = await rssKiB(pid);
  let peakKiB = beforeKiB;
  const sampler = setInterval(() => {
    void rssKiB(pid).then((k) => (peakKiB = Math.max(peakKiB, k)));
  }, 100);
  const out = await dnsperf();
  clearInterval(sampler);
  peakKiB = Math.max(peakKiB, await rssKiB(pid));
  const completed = /Queries completed:\s+(\d+)/.exec(out);
  const fams = await scrape(dns.host, metricsPort);
  const dropped = metricSum(fams, 'nodelocaldns_log_lines_dropped_total', { stream: 'stdout' });
  const why = `\nRSS ${beforeKiB} -> peak ${peakKiB} KiB, dropped ${dropped}\n${out.slice(-600)}\nstderr: ${readFileSync(path.join(dir, 'stderr.log'), 'utf8').slice(-600)}`;
  assert.equal(child!.exitCode, null, `the agent is running${why}`);
  assert.equal(Number(completed?.[1]), QUERIES_PER_PASS * PASSES, `every query answered${why}`);
  assert.ok(peakKiB - beforeKiB < MAX_RSS_GROWTH_KIB, `RSS growth under ${MAX_RSS_GROWTH_KIB / 1024} MiB${why}`);
  assert.ok(dropped > QUERIES_PER_PASS * PASSES * 0.9, `the lines the reader did not take are counted as dropped${why}`);
  assert.equal((await udpQuery(dns.host, dns.port, 'after.stall.test')).packet?.rcode, 'NOERROR', `answered after${why}`);
});
