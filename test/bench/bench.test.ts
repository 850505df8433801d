/**
 * End-to-end run of the benchmark harness: `node bench/run.ts --quick --only dnsdist,node-local-dns`
 * against real servers on loopback. Checks the results JSON has, for every server and workload,
 * a measured row with numbers (no timing thresholds), and that nothing is left running.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SERVERS = ['node-local-dns', 'dnsdist'] as const;
/** The Node.js floor reference: the answered-locally workloads only, no start-up or memory experiment. */
const REFERENCE = 'node-echo';
const WORKLOADS = ['hit', 'hit-rate', 'miss-tcp', 'miss-udp', 'mixed'] as const;

const have = (cmd: string): boolean => {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const missing = ['dnsperf', 'dnsdist', 'knotd', 'taskset'].filter((c) => !have(c));
const skip = missing.length > 0 ? `not installed: ${missing.join(', ')}` : os.cpus().length < 2 ? 'needs 2 CPUs' : false;

const outDir = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-bench-test-'));
after(() => fs.rmSync(outDir, { recursive: true, force: true }));

interface Summary {
  server: string;
  workload: string;
  status: string;
  error?: string;
  qps?: number | null;
  cpuPct?: number | null;
  cpuUsPerQuery?: number | null;
  peakRssKb?: number | null;
  p50Ms?: number | null;
  p99Ms?: number | null;
  lost?: number | null;
}

interface Results {
  summary: Summary[];
  runs: { server: string; workload: string; status: string }[];
  startup: { server: string; medianMs?: number | null; error?: string }[];
  rss10k: { server: string; rssKb?: number | null; error?: string }[];
  machine: Record<string, unknown>;
  versions: Record<string, string>;
}

let results: Results | undefined;
let harnessOutput = '';

function runHarness(): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['bench/run.ts', '--quick', '--only', [...SERVERS, REFERENCE].join(','), '--out', outDir], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (c: Buffer) => (harnessOutput += c.toString()));
    child.stderr.on('data', (c: Buffer) => (harnessOutput += c.toString()));
    // Generous deadline: the quick run takes well under a minute on 2 cores.
    const deadline = setTimeout(() => child.kill('SIGINT'), 150_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(deadline);
      resolve(code);
    });
  });
}

test('bench/run.ts --quick end to end', { skip, timeout: 180_000 }, async (t) => {
  const code = await runHarness();
  // 0: every cell measured; 2: finished with error rows (checked per server below).
  assert.ok(code === 0 || code === 2, `harness exit ${code}\n${harnessOutput.slice(-3000)}`);
  const tmp = / temp (\S+)$/m.exec(harnessOutput)?.[1];
  assert.ok(tmp !== undefined && tmp.includes('nld-bench-'), 'harness did not print its temp directory');
  assert.equal(fs.existsSync(tmp), false, `harness left ${tmp} behind`);
  const files = fs.readdirSync(outDir).filter((f) => f.endsWith('.json'));
  assert.equal(files.length, 1, `one results JSON expected in ${outDir}`);
  results = JSON.parse(fs.readFileSync(path.join(outDir, files[0]!), 'utf8')) as Results;
  assert.match(String(results.machine['CPU model']), /\S/);
  assert.match(results.versions.dnsdist ?? '', /^\d+\.\d+/);
  assert.match(results.versions['node-local-dns'] ?? '', /Node\.js v?24\./);

  for (const server of SERVERS) {
    await t.test(`${server}: a measured row per workload`, () => {
      for (const workload of WORKLOADS) {
        const row = results!.summary.find((r) => r.server === server && r.workload === workload);
        assert.ok(row !== undefined, `no summary row for ${server}/${workload}`);
        assert.equal(row.status, 'ok', `${server}/${workload}: ${row.status}: ${row.error ?? ''}`);
        for (const k of ['qps', 'cpuPct', 'cpuUsPerQuery', 'peakRssKb', 'lost'] as const) {
          const v = row[k];
          assert.ok(typeof v === 'number' && Number.isFinite(v) && v >= 0, `${server}/${workload}.${k} = ${v}`);
        }
        assert.ok(row.qps! > 0 && row.peakRssKb! > 0, `${server}/${workload}: qps ${row.qps}, rss ${row.peakRssKb}`);
        if (workload === 'mixed' || workload === 'hit-rate') {
          assert.ok(typeof row.p50Ms === 'number' && typeof row.p99Ms === 'number' && row.p99Ms >= row.p50Ms);
        }
      }
      const st = results!.startup.find((r) => r.server === server);
      assert.ok(st !== undefined && typeof st.medianMs === 'number' && st.medianMs > 0, `startup: ${JSON.stringify(st)}`);
      const rss = results!.rss10k.find((r) => r.server === server);
      assert.ok(rss !== undefined && typeof rss.rssKb === 'number' && rss.rssKb > 0, `rss10k: ${JSON.stringify(rss)}`);
    });
  }

  await t.test(`${REFERENCE}: measured on hit, hit-rate and mixed, n/a elsewhere, not in the start-up table`, () => {
    for (const workload of WORKLOADS) {
      const row = results!.summary.find((r) => r.server === REFERENCE && r.workload === workload);
      assert.ok(row !== undefined, `no summary row for ${REFERENCE}/${workload}`);
      if (workload === 'hit' || workload === 'hit-rate' || workload === 'mixed') {
        assert.equal(row.status, 'ok', `${REFERENCE}/${workload}: ${row.status}: ${row.error ?? ''}`);
        assert.ok(typeof row.qps === 'number' && row.qps > 0);
      } else {
        assert.equal(row.status, 'n/a');
      }
    }
    assert.equal(
      results!.startup.find((r) => r.server === REFERENCE),
      undefined,
    );
    assert.equal(
      results!.rss10k.find((r) => r.server === REFERENCE),
      undefined,
    );
  });

  await t.test('no process of this run left running', () => {
    // Every server's command line names a config file inside the run's temp directory.
    const ps = execFileSync('ps', ['-eo', 'stat=,args='], { encoding: 'utf8' });
    const live = ps
      .split('\n')
      .filter((l) => !l.trimStart().startsWith('Z'))
      .filter((l) => l.includes(tmp));
    assert.deepEqual(live, []);
  });
});
