/**
 * Footprint A/B (issue 16; bench/PROFILE.md, Footprint): node-local-dns from this tree's src/
 * against the image's production bundle (docker/bundle.mjs, built into a temporary directory laid
 * out as the image's /app), optionally against another checkout (--ref DIR, e.g. a `git worktree`
 * of an older commit with node_modules and build/ beside it), with the stock-shaped Corefile of
 * the bench's footprint table (bench/lib/footprint.ts). Variants run interleaved, one fresh
 * instance per sample, after one discarded warm-up round per variant (its own compile cache,
 * warmed by that round). Per sample: start-up (spawn → first answer), CPU ms of the process at
 * that moment, VmRSS 0.3 s after serving, after one /metrics scrape and after 10,000 unique names,
 * and the resident pages of the node binary (.text, read-only data) and anonymous memory.
 *
 *   nice -n 19 node bench/footprint-ab.ts [--samples N] [--ref DIR] [--node-flags "F ..."] [--cpu LIST]
 *
 * Cheap in CPU (no throughput load): the server and the harness share --cpu (default 0).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Bench } from './lib/harness.ts';
import type { BenchOptions } from './lib/options.ts';
import { ProcessRegistry, clockTicksPerSec, treeMemKb } from './lib/proc.ts';
import { FOOTPRINT_ENTRIES, scrapeOnce, stockShapedCorefile } from './lib/footprint.ts';
import { SERVERS, nodeBinary, shippedNodeFlags } from './lib/servers.ts';
import type { Command, PrepareContext, ServerDef } from './lib/servers.ts';
import { freePort } from './lib/net.ts';
import { writeUniqueFile } from './lib/zones.ts';
import { runDnsperf } from './lib/dnsperf.ts';
import { median } from './lib/stats.ts';

const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

interface Variant {
  label: string;
  /** Working directory and the tree whose bin/node-local-dns.js runs. */
  root: string;
  cache: string;
}

interface Sample {
  startMs: number;
  cpuMs: number;
  idleKb: number;
  scrapedKb: number;
  namesKb: number;
  idle: Mapped;
  names: Mapped;
}

/** Resident kB by kind of mapping, from /proc/PID/smaps. */
interface Mapped {
  nodeText: number;
  nodeRo: number;
  anon: number;
  heap: number;
}

function mapped(pid: number): Mapped {
  const out: Mapped = { nodeText: 0, nodeRo: 0, anon: 0, heap: 0 };
  let file = '';
  let perms = '';
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const h = /^[0-9a-f]+-[0-9a-f]+ (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (h !== null) {
      perms = h[1]!;
      file = h[2]!;
      continue;
    }
    const m = /^Rss:\s+(\d+) kB/.exec(line);
    if (m === null) continue;
    const kb = Number(m[1]);
    if (file.endsWith('/bin/node')) {
      if (perms.includes('x')) out.nodeText += kb;
      else if (perms.startsWith('r--')) out.nodeRo += kb;
    } else if (file === '[heap]') out.heap += kb;
    else if (file === '' || file.startsWith('[anon')) out.anon += kb;
  }
  return out;
}

function cpuMs(pid: number): number {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / clockTicksPerSec();
}

/** The bundle in `dir`, laid out as the image's /app (bin/, dist/, package.json, the addon). */
function buildBundle(dir: string): void {
  const r = spawnSync(process.execPath, [path.join(projectRoot, 'docker/bundle.mjs'), dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`docker/bundle.mjs failed:\n${r.stdout}${r.stderr}`);
  fs.copyFileSync(path.join(projectRoot, 'package.json'), path.join(dir, 'package.json'));
  const addon = path.join(projectRoot, 'build/Release/udp.node');
  if (fs.existsSync(addon)) {
    fs.mkdirSync(path.join(dir, 'build/Release'), { recursive: true });
    fs.copyFileSync(addon, path.join(dir, 'build/Release/udp.node'));
  }
}

function def(v: Variant, healthPort: number, nodeFlags: string[]): ServerDef {
  return {
    ...SERVERS['node-local-dns'],
    prepare(ctx: PrepareContext): Command {
      const config = stockShapedCorefile(ctx, healthPort);
      const file = path.join(ctx.dir, 'Corefile');
      fs.writeFileSync(file, config);
      const args = [...shippedNodeFlags(projectRoot), ...nodeFlags, 'bin/node-local-dns.js', '-conf', file];
      return { cmd: nodeBinary(projectRoot), args, cwd: v.root, config, env: { NODE_COMPILE_CACHE: v.cache } };
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { samples: { type: 'string' }, ref: { type: 'string' }, 'node-flags': { type: 'string' }, cpu: { type: 'string' } },
  });
  const samples = Number(values.samples ?? 5);
  const cpu = values.cpu ?? '0';
  const nodeFlags = (values['node-flags'] ?? '').split(/\s+/).filter((f) => f !== '');
  const reg = new ProcessRegistry();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-footprint-ab-'));
  const cleanups = [tmp];
  try {
    // A short path, as the image's /app: a longer install path (31 characters here) makes start-up
    // module resolution hot enough for TurboFan, whose code pages then idle resident (+5 MiB).
    const app = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-'));
    cleanups.push(app);
    buildBundle(app);
    const variants: Variant[] = [
      ...(values.ref === undefined ? [] : [{ label: `ref ${values.ref}`, root: path.resolve(values.ref), cache: path.join(tmp, 'cache-ref') }]),
      { label: 'src/ (npm start)', root: projectRoot, cache: path.join(tmp, 'cache-src') },
      { label: 'bundle (image)', root: app, cache: path.join(tmp, 'cache-bundle') },
    ];
    const opts = {
      servers: ['node-local-dns'],
      workloads: [],
      durationSec: 2,
      reps: 1,
      nodeFlags: [],
      serverCpu: cpu,
      clientCpu: cpu,
      upstream: 'knot',
    } as unknown as BenchOptions;
    const bench = new Bench(opts, reg, tmp, projectRoot);
    await bench.setUp();
    const names = path.join(tmp, 'names.txt');
    writeUniqueFile(names, FOOTPRINT_ENTRIES, 'f');
    const results = new Map<string, Sample[]>(variants.map((v) => [v.label, []]));
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    for (let round = -1; round < samples; round++) {
      for (const v of variants) {
        const inst = await bench.startServer(def(v, await freePort(SERVERS['node-local-dns'].addr), nodeFlags), 'udp', 2);
        const pid = inst.proc.pid;
        try {
          const cpuAtStart = cpuMs(pid);
          const metricsPort = Number(/prometheus \S+:(\d+)/.exec(inst.config)?.[1]);
          await sleep(300);
          const idleKb = treeMemKb(pid, 'VmRSS');
          const idle = mapped(pid);
          await scrapeOnce(inst.listen.addr, metricsPort);
          await sleep(300);
          const scrapedKb = treeMemKb(pid, 'VmRSS');
          await runDnsperf(reg, {
            addr: inst.listen.addr,
            port: inst.listen.port,
            file: names,
            maxRuns: 1,
            clients: 1,
            outstanding: 50,
            timeoutSec: 2,
            perQueryLatency: false,
            cpu,
          });
          await sleep(300);
          const s: Sample = { startMs: inst.startMs, cpuMs: cpuAtStart, idleKb, scrapedKb, namesKb: treeMemKb(pid, 'VmRSS'), idle, names: mapped(pid) };
          if (inst.proc.exitStatus() !== null) throw new Error(`${v.label} exited during the experiment`);
          if (round >= 0) results.get(v.label)!.push(s);
          const mib = (kb: number) => (kb / 1024).toFixed(1);
          process.stdout.write(
            `${round < 0 ? 'warm-up' : `round ${round + 1}`} ${v.label}: start-up ${s.startMs.toFixed(0)} ms (CPU ${s.cpuMs.toFixed(0)} ms), RSS idle ${mib(s.idleKb)}, scraped ${mib(s.scrapedKb)}, ${FOOTPRINT_ENTRIES / 1000}k names ${mib(s.namesKb)} MiB\n`,
          );
        } finally {
          await reg.stop(inst.proc, 5000);
        }
      }
    }
    const mib = (kb: number) => (kb / 1024).toFixed(1);
    const head = [
      'variant',
      'start-up ms',
      'CPU ms',
      'RSS idle',
      'scraped',
      `${FOOTPRINT_ENTRIES / 1000}k names`,
      'idle: .text / ro / anon / [heap]',
      `${FOOTPRINT_ENTRIES / 1000}k: .text / ro / anon / [heap]`,
    ];
    const rows = [...results].map(([label, ss]) => {
      const med = (f: (s: Sample) => number) => median(ss.map(f));
      const split = (k: 'idle' | 'names') =>
        [med((s) => s[k].nodeText), med((s) => s[k].nodeRo), med((s) => s[k].anon), med((s) => s[k].heap)].map(mib).join(' / ');
      return [
        `${label} (median of ${ss.length})`,
        med((s) => s.startMs).toFixed(0),
        med((s) => s.cpuMs).toFixed(0),
        mib(med((s) => s.idleKb)),
        mib(med((s) => s.scrapedKb)),
        mib(med((s) => s.namesKb)),
        split('idle'),
        split('names'),
      ];
    });
    process.stdout.write(`\n| ${head.join(' | ')} |\n|${head.map(() => '---').join('|')}|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
  } finally {
    reg.killAllSync();
    for (const dir of cleanups) fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`footprint-ab failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
