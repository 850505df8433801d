/**
 * Upstream zone data and dnsperf query files.
 *
 * cluster.local mimics a small Kubernetes cluster: svc-N.default.svc.cluster.local has A and
 * AAAA records, _http._tcp.svc-N... an SRV record, and 96.10.in-addr.arpa the matching PTRs.
 * Negative names are search-path expansions (`*.svc.cluster.local.svc.cluster.local`) that a pod
 * with ndots:5 sends and that answer NXDOMAIN. wild.test has `*.wild.test. A`, so every unique
 * name answers and is a guaranteed cache miss.
 */
import fs from 'node:fs';
import path from 'node:path';

/** TTL of every upstream record and of the SOA minimum (negative TTL, RFC 2308 §5). */
export const ZONE_TTL_SEC = 3600;
export const WILDCARD_ADDR = '10.77.0.1';

export interface ZoneSet {
  /** Zone name → file name inside the zone directory. */
  zones: { name: string; file: string }[];
  /** Names that answer with data: "name TYPE" lines for dnsperf. */
  positive: string[];
  /** Names that answer NXDOMAIN (negative-cacheable: SOA in authority). */
  negative: string[];
  /** A probe target and the A record it must return. */
  readyName: string;
  readyAddr: string;
  /** Spot checks of answer data: one name per record type, and one NXDOMAIN. */
  checks: AnswerCheck[];
}

export interface AnswerCheck {
  name: string;
  type: 'A' | 'AAAA' | 'SRV' | 'PTR';
  /** Expected rdata in dns-packet's text form (SRV: the target), or null for NXDOMAIN. */
  expect: string | null;
}

function svcAddr(n: number): string {
  return `10.96.${n >> 8}.${n & 255}`;
}

/** Writes the zone files into dir; services = number of svc-N names (4 query names each). */
export function writeZones(dir: string, services: number, nsAddr: string): ZoneSet {
  const cluster: string[] = [
    '$ORIGIN cluster.local.',
    `$TTL ${ZONE_TTL_SEC}`,
    `@ IN SOA ns.cluster.local. hostmaster.cluster.local. 1 3600 600 86400 ${ZONE_TTL_SEC}`,
    '@ IN NS ns.cluster.local.',
    `ns IN A ${nsAddr}`,
  ];
  const reverse: string[] = [
    '$ORIGIN 96.10.in-addr.arpa.',
    `$TTL ${ZONE_TTL_SEC}`,
    `@ IN SOA ns.cluster.local. hostmaster.cluster.local. 1 3600 600 86400 ${ZONE_TTL_SEC}`,
    '@ IN NS ns.cluster.local.',
  ];
  const positive: string[] = [];
  const negative: string[] = [];
  for (let n = 1; n <= services; n++) {
    const svc = `svc-${n}.default.svc`;
    cluster.push(`${svc} IN A ${svcAddr(n)}`);
    cluster.push(`${svc} IN AAAA fd00:10:96::${n.toString(16)}`);
    cluster.push(`_http._tcp.${svc} IN SRV 0 100 80 ${svc}.cluster.local.`);
    reverse.push(`${n & 255}.${n >> 8} IN PTR ${svc}.cluster.local.`);
    positive.push(`${svc}.cluster.local A`, `${svc}.cluster.local AAAA`, `_http._tcp.${svc}.cluster.local SRV`);
    positive.push(`${n & 255}.${n >> 8}.96.10.in-addr.arpa PTR`);
    negative.push(`${svc}.cluster.local.svc.cluster.local A`);
  }
  const wild = [
    '$ORIGIN wild.test.',
    `$TTL ${ZONE_TTL_SEC}`,
    `@ IN SOA ns.wild.test. hostmaster.wild.test. 1 3600 600 86400 ${ZONE_TTL_SEC}`,
    '@ IN NS ns.wild.test.',
    `ns IN A ${nsAddr}`,
    `* IN A ${WILDCARD_ADDR}`,
  ];
  fs.writeFileSync(path.join(dir, 'cluster.local.zone'), cluster.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, '96.10.in-addr.arpa.zone'), reverse.join('\n') + '\n');
  fs.writeFileSync(path.join(dir, 'wild.test.zone'), wild.join('\n') + '\n');
  return {
    zones: [
      { name: 'cluster.local', file: 'cluster.local.zone' },
      { name: '96.10.in-addr.arpa', file: '96.10.in-addr.arpa.zone' },
      { name: 'wild.test', file: 'wild.test.zone' },
    ],
    positive,
    negative,
    readyName: 'svc-1.default.svc.cluster.local',
    readyAddr: svcAddr(1),
    checks: [
      { name: `svc-${services}.default.svc.cluster.local`, type: 'A', expect: svcAddr(services) },
      { name: `svc-${services}.default.svc.cluster.local`, type: 'AAAA', expect: `fd00:10:96::${services.toString(16)}` },
      { name: `_http._tcp.svc-${services}.default.svc.cluster.local`, type: 'SRV', expect: `svc-${services}.default.svc.cluster.local` },
      { name: `${services & 255}.${services >> 8}.96.10.in-addr.arpa`, type: 'PTR', expect: `svc-${services}.default.svc.cluster.local` },
      { name: `svc-${services}.default.svc.cluster.local.svc.cluster.local`, type: 'A', expect: null },
    ],
  };
}

/** Streams lines to a file in large chunks; returns the line count. */
function writeLines(file: string, count: number, line: (i: number) => string): number {
  const fd = fs.openSync(file, 'w');
  try {
    let chunk: string[] = [];
    for (let i = 0; i < count; i++) {
      chunk.push(line(i));
      if (chunk.length === 65536) {
        fs.writeSync(fd, chunk.join('\n') + '\n');
        chunk = [];
      }
    }
    if (chunk.length > 0) fs.writeSync(fd, chunk.join('\n') + '\n');
  } finally {
    fs.closeSync(fd);
  }
  return count;
}

export function writeNameFile(file: string, names: readonly string[]): number {
  return writeLines(file, names.length, (i) => names[i]!);
}

/**
 * `count` distinct names under wild.test. The prefix keeps files of different purposes
 * disjoint, so one experiment never warms another's names.
 */
export function writeUniqueFile(file: string, count: number, prefix: string): number {
  return writeLines(file, count, (i) => `${prefix}${i.toString(36)}.wild.test A`);
}

/**
 * Cached names only, in the mixed workload's proportion of positive answers to NXDOMAINs (7:2),
 * interleaved: the mixed workload without its misses.
 */
export function writeCachedFile(file: string, count: number, zs: ZoneSet): number {
  const shape = MIXED_SHAPE.positiveHits + MIXED_SHAPE.negativeHits;
  let pos = 0;
  let neg = 0;
  return writeLines(file, count, (i) =>
    i % shape < MIXED_SHAPE.positiveHits ? zs.positive[pos++ % zs.positive.length]! : zs.negative[neg++ % zs.negative.length]!,
  );
}

/** Share of each query kind in the mixed workload, per 10 queries. */
export const MIXED_SHAPE = { positiveHits: 7, negativeHits: 2, misses: 1 } as const;

/**
 * The mixed workload: out of every 10 queries, 7 cached positive answers, 2 cached NXDOMAINs,
 * 1 unique wildcard name (a miss forwarded upstream), interleaved.
 */
export function writeMixedFile(file: string, count: number, zs: ZoneSet, prefix: string): number {
  let pos = 0;
  let neg = 0;
  let miss = 0;
  return writeLines(file, count, (i) => {
    const slot = i % 10;
    if (slot < MIXED_SHAPE.positiveHits) return zs.positive[pos++ % zs.positive.length]!;
    if (slot < MIXED_SHAPE.positiveHits + MIXED_SHAPE.negativeHits) return zs.negative[neg++ % zs.negative.length]!;
    return `${prefix}${(miss++).toString(36)}.wild.test A`;
  });
}
