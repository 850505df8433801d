/**
 * The footprint experiment (issue 16): node-local-dns with the shape of node-cache's stock
 * Corefile (four blocks: cluster.local, in-addr.arpa, ip6.arpa, `.`; errors, cache, reload,
 * loop, bind, forward, prometheus, health), on loopback, against the bench's upstream. Per
 * sample, a fresh instance: start-up (spawn → first correct answer), RSS when idle, RSS after one
 * /metrics scrape (Prometheus scrapes every node), RSS after 10,000 unique names went through
 * the `.` block. VmRSS of the process tree, read from /proc.
 *
 * node-cache itself is not installed here: its figures are the ones issue 16 reports (measured
 * with the same Corefile shape), printed as a labelled reference, never as a measurement.
 *
 * This table measures src/ as `npm start` runs it; the image runs the production bundle
 * (docker/bundle.mjs), ~10 MiB lower when idle: bench/footprint-ab.ts compares the two.
 */
import http from 'node:http';
import path from 'node:path';
import fs from 'node:fs';
import type { ServerDef, PrepareContext, Command } from './servers.ts';
import { nodeBinary, shippedNodeFlags } from './servers.ts';
import { median } from './stats.ts';

/** Unique names sent before the last RSS reading (harness.ts RSS_ENTRIES, the same file). */
export const FOOTPRINT_ENTRIES = 10_000;

/** Issue 16's targets for node-local-dns. */
export const FOOTPRINT_TARGETS = { idleMiB: 48, entriesMiB: 64, startupMs: 300 } as const;

/** Figures from issue 16 (same Corefile shape, measured on this machine type, not by this bench). */
export const NODE_CACHE_REFERENCE: readonly { server: string; idleMiB: number; entriesMiB: number }[] = [
  { server: 'node-cache 1.23.1 (reference from issue 16, not measured here)', idleMiB: 30, entriesMiB: 45 },
  { server: 'node-cache 1.15.16 (reference from issue 16, not measured here)', idleMiB: 25, entriesMiB: 37 },
];

export interface FootprintSample {
  startMs: number;
  idleRssKb: number;
  scrapedRssKb: number;
  rssKb: number;
  warmLost: number;
}

export interface FootprintResult {
  server: string;
  samples: FootprintSample[];
  error?: string;
}

/** node-cache's stock Corefile (src/agent/testdata/nodelocaldns-configmap.Corefile) on loopback. */
export function stockShapedCorefile(ctx: PrepareContext, healthPort: number): string {
  const up = `${ctx.upstream.addr}:${ctx.upstream.port}`;
  const block = (zone: string, cache: string[], tcp: boolean, health: boolean): string[] => [
    `${zone}:${ctx.listen.port} {`,
    '    errors',
    ...cache,
    '    reload',
    '    loop',
    `    bind ${ctx.listen.addr}`,
    ...(tcp ? [`    forward . ${up} {`, '        force_tcp', '    }'] : [`    forward . ${up}`]),
    `    prometheus ${ctx.listen.addr}:${ctx.metricsPort}`,
    ...(health ? [`    health ${ctx.listen.addr}:${healthPort}`] : []),
    '}',
  ];
  const cache30 = ['    cache 30'];
  return [
    ...block('cluster.local', ['    cache {', '        success 9984 30', '        denial 9984 5', '    }'], true, true),
    ...block('in-addr.arpa', cache30, true, false),
    ...block('ip6.arpa', cache30, true, false),
    ...block('.', cache30, false, false),
    '',
  ].join('\n');
}

/** node-local-dns as the bench runs it (shipped flags, bin entry), with the stock-shaped Corefile. */
export function stockShapedNodeLocalDns(base: ServerDef, healthPort: number): ServerDef {
  return {
    ...base,
    prepare(ctx: PrepareContext): Command {
      const config = stockShapedCorefile(ctx, healthPort);
      const file = path.join(ctx.dir, 'Corefile');
      fs.writeFileSync(file, config);
      const args = [...shippedNodeFlags(ctx.projectRoot), ...(ctx.nodeFlags ?? []), 'bin/node-local-dns.js', '-conf', file];
      return { cmd: nodeBinary(ctx.projectRoot), args, cwd: ctx.projectRoot, config };
    },
  };
}

/** GET /metrics once and read the whole body. */
export function scrapeOnce(addr: string, port: number, timeoutMs = 5000): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: addr, port, path: '/metrics', timeout: timeoutMs }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => {
        n += c.length;
      });
      res.on('end', () => (res.statusCode === 200 ? resolve(n) : reject(new Error(`/metrics answered ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`/metrics: no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}

const mib = (kb: number): string => (kb / 1024).toFixed(1);

/** The table rows: medians of ours, then the reference rows and the targets. */
function rows(r: FootprintResult): string[][] {
  const out: string[][] = [];
  const s = r.samples;
  if (s.length > 0) {
    out.push([
      `${r.server} (median of ${s.length})`,
      mib(median(s.map((x) => x.idleRssKb))),
      mib(median(s.map((x) => x.scrapedRssKb))),
      mib(median(s.map((x) => x.rssKb))),
      median(s.map((x) => x.startMs)).toFixed(0),
    ]);
  }
  if (r.error !== undefined) out.push([`${r.server}: ERROR ${r.error.split('\n')[0]}`, '—', '—', '—', '—']);
  for (const ref of NODE_CACHE_REFERENCE) out.push([ref.server, String(ref.idleMiB), '—', String(ref.entriesMiB), '—']);
  out.push(['target (issue 16)', `≤ ${FOOTPRINT_TARGETS.idleMiB}`, '—', `≤ ${FOOTPRINT_TARGETS.entriesMiB}`, `≤ ${FOOTPRINT_TARGETS.startupMs}`]);
  return out;
}

const HEAD = ['server (stock-shaped Corefile: 4 blocks)', 'RSS idle MiB', 'after 1 scrape MiB', `after ${FOOTPRINT_ENTRIES / 1000}k names MiB`, 'start-up ms'];

export function footprintText(r: FootprintResult): string {
  const all = [HEAD, ...rows(r)];
  const w = HEAD.map((_, i) => Math.max(...all.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ');
  return [line(HEAD), w.map((n) => '-'.repeat(n)).join('  '), ...rows(r).map(line)].join('\n');
}

export function footprintMarkdown(r: FootprintResult): string {
  return [`| ${HEAD.join(' | ')} |`, `|${HEAD.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows(r).map((row) => `| ${row.join(' | ')} |`)].join(
    '\n',
  );
}
