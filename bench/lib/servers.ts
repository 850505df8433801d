/**
 * The servers under test and the upstream, each with the configuration that makes it an
 * equivalent caching forwarder: one loopback address each, the same upstream, room for 10,000
 * cached answers, and (where the server can) TCP to the upstream for the `tcp` mode.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { assertLoopback } from './net.ts';
import type { ZoneSet } from './zones.ts';
import { loadUdpAddon } from '../../src/server/udp-native.ts';

/**
 * node-local-dns serves UDP as it would when installed (NODE_LOCAL_DNS_UDP_IO unset: the batched
 * native path when the addon is built, src/server/udp-native.ts); node-local-dns-dgram is the
 * same build forced onto Node's dgram path, for the I/O paths side by side.
 */
export const SERVER_NAMES = ['node-local-dns', 'node-local-dns-dgram', 'dnsdist', 'unbound', 'dnsmasq', 'node-echo'] as const;
export type ServerName = (typeof SERVER_NAMES)[number];

/** How the server talks to the upstream: `tcp` is the k8s cluster.local shape (force_tcp). */
export type UpstreamMode = 'udp' | 'tcp';

export const UPSTREAM_ADDR = '127.0.0.201';
export const CACHE_ENTRIES = 10000;

export interface Endpoint {
  addr: string;
  port: number;
}

export interface PrepareContext {
  /** A fresh directory for this instance's configuration and state. */
  dir: string;
  listen: Endpoint;
  upstream: Endpoint;
  mode: UpstreamMode;
  projectRoot: string;
  /** node-local-dns -workers N (undefined: flag not passed). */
  workers?: number;
  /** Extra Node.js flags for node-local-dns. */
  nodeFlags?: readonly string[];
  /** A free port on the listen address for node-local-dns's prometheus endpoint. */
  metricsPort: number;
}

export interface Command {
  cmd: string;
  args: string[];
  cwd?: string;
  /** Environment added to the harness's own. */
  env?: Record<string, string>;
  /** The configuration text, kept in the results for reproducibility. */
  config: string;
}

export interface ServerDef {
  readonly name: ServerName;
  readonly addr: string;
  /** The executable that must exist for this server to run. */
  readonly binary: string;
  /** Why a workload (its id and upstream mode) cannot be measured, or null when it can. */
  unsupported(mode: UpstreamMode, workload: string): string | null;
  /**
   * Set for a reference that is not a DNS server (node-echo): its answers are not checked, every
   * rcode counts as expected, and the start-up and memory experiments skip it.
   */
  readonly reference?: string;
  version(projectRoot: string): string;
  prepare(ctx: PrepareContext): Command;
}

/** Runs a version command and extracts the version from its stdout+stderr (exit status ignored). */
function firstMatch(cmd: string, args: string[], re: RegExp): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 });
  return re.exec(`${r.stdout ?? ''}${r.stderr ?? ''}`)?.[1] ?? 'unknown';
}

/**
 * The Node.js flags node-local-dns ships with: those of `npm start` (package.json), which the
 * Dockerfile's NODE_OPTIONS and bin/node-local-dns.js's shebang repeat (test/deploy checks
 * that they agree). The bench runs what users run.
 */
export function shippedNodeFlags(projectRoot: string): string[] {
  const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { scripts?: { start?: string } };
  const m = /^node((?:\s+--\S+)*)\s+bin\/node-local-dns\.js\b/.exec(pkg.scripts?.start ?? '');
  if (m === null) throw new Error(`package.json: scripts.start is not "node [--flags] bin/node-local-dns.js": ${pkg.scripts?.start}`);
  return m[1]!
    .trim()
    .split(/\s+/)
    .filter((f) => f !== '');
}

export function nodeBinary(projectRoot: string): string {
  return path.join(projectRoot, 'node_modules', '.bin', 'node');
}

const nodeLocalDns: ServerDef = {
  name: 'node-local-dns',
  addr: '127.0.0.202',
  binary: 'node',
  unsupported: () => null,
  version(projectRoot) {
    let pkg = 'unknown';
    try {
      pkg = (JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version?: string }).version ?? pkg;
    } catch {
      // reported as unknown
    }
    let rev = firstMatch('git', ['-C', projectRoot, 'rev-parse', '--short', 'HEAD'], /^([0-9a-f]+)/);
    const dirty = spawnSync('git', ['-C', projectRoot, 'status', '--porcelain', '--', 'src', 'package.json'], { encoding: 'utf8' });
    if (dirty.status === 0 && dirty.stdout.trim() !== '') rev += ' + uncommitted changes in src/';
    const node = firstMatch(nodeBinary(projectRoot), ['-v'], /^v?(\S+)/);
    const { addon, reason } = loadUdpAddon();
    return `${pkg} (git ${rev}, Node.js ${node}, UDP I/O ${addon !== null ? 'batched' : `dgram: ${reason}`})`;
  },
  prepare(ctx) {
    const lines = [
      `.:${ctx.listen.port} {`,
      '    errors',
      `    bind ${ctx.listen.addr}`,
      '    cache {',
      `        success ${CACHE_ENTRIES}`,
      `        denial ${CACHE_ENTRIES}`,
      '    }',
    ];
    if (ctx.mode === 'tcp') lines.push(`    forward . ${ctx.upstream.addr}:${ctx.upstream.port} {`, '        force_tcp', '    }');
    else lines.push(`    forward . ${ctx.upstream.addr}:${ctx.upstream.port}`);
    lines.push(`    prometheus ${ctx.listen.addr}:${ctx.metricsPort}`, '}');
    const config = lines.join('\n') + '\n';
    const file = path.join(ctx.dir, 'Corefile');
    fs.writeFileSync(file, config);
    // The installed command's entry (it turns Node's compile cache on before loading the
    // sources), with the flags it ships with; --node-flags come after them and so win.
    const args = [...shippedNodeFlags(ctx.projectRoot), ...(ctx.nodeFlags ?? []), 'bin/node-local-dns.js', '-conf', file];
    if (ctx.workers !== undefined) args.push('-workers', String(ctx.workers));
    return { cmd: nodeBinary(ctx.projectRoot), args, cwd: ctx.projectRoot, config, env: { NODE_LOCAL_DNS_UDP_IO: 'auto' } };
  },
};

/** node-local-dns on Node's dgram UDP path (NODE_LOCAL_DNS_UDP_IO=dgram). */
const nodeLocalDnsDgram: ServerDef = {
  ...nodeLocalDns,
  name: 'node-local-dns-dgram',
  addr: '127.0.0.207',
  prepare(ctx) {
    const cmd = nodeLocalDns.prepare(ctx);
    return { ...cmd, env: { NODE_LOCAL_DNS_UDP_IO: 'dgram' } };
  },
};

const dnsdist: ServerDef = {
  name: 'dnsdist',
  addr: '127.0.0.203',
  binary: 'dnsdist',
  unsupported: () => null,
  version: () => firstMatch('dnsdist', ['-V'], /dnsdist (\S+)/),
  prepare(ctx) {
    const config = [
      '-- No security polling: it would resolve a name on the public Internet.',
      'setSecurityPollSuffix("")',
      `setLocal("${ctx.listen.addr}:${ctx.listen.port}")`,
      `newServer({address="${ctx.upstream.addr}:${ctx.upstream.port}"${ctx.mode === 'tcp' ? ', tcpOnly=true' : ''}})`,
      `pc = newPacketCache(${CACHE_ENTRIES}, {maxTTL=86400, minTTL=0, temporaryFailureTTL=60, staleTTL=60, dontAge=false})`,
      'getPool(""):setCache(pc)',
      '',
    ].join('\n');
    const file = path.join(ctx.dir, 'dnsdist.conf');
    fs.writeFileSync(file, config);
    return { cmd: 'dnsdist', args: ['-C', file, '--supervised', '--disable-syslog'], config };
  },
};

const unbound: ServerDef = {
  name: 'unbound',
  addr: '127.0.0.204',
  binary: 'unbound',
  unsupported: () => null,
  version: () => firstMatch('unbound', ['-V'], /Version (\S+)/),
  prepare(ctx) {
    const config = [
      'server:',
      `  interface: ${ctx.listen.addr}@${ctx.listen.port}`,
      `  port: ${ctx.listen.port}`,
      '  do-daemonize: no',
      '  username: ""',
      '  chroot: ""',
      `  directory: "${ctx.dir}"`,
      '  pidfile: ""',
      '  use-syslog: no',
      '  logfile: ""',
      '  verbosity: 1',
      '  num-threads: 1',
      '  do-ip6: no',
      '  access-control: 127.0.0.0/8 allow',
      '  do-not-query-localhost: no',
      '  module-config: "iterator"',
      // Byte-sized caches, set to hold at least 10,000 answers (msg) and their RRsets.
      '  msg-cache-size: 8m',
      '  rrset-cache-size: 16m',
      '  prefetch: no',
      '  qname-minimisation: no',
      // RFC 6761 .test and RFC 1918 reverse zones are served locally by default; forward them.
      '  local-zone: "test." nodefault',
      '  unblock-lan-zones: yes',
      '  insecure-lan-zones: yes',
      'remote-control:',
      '  control-enable: no',
      'forward-zone:',
      '  name: "."',
      `  forward-addr: ${ctx.upstream.addr}@${ctx.upstream.port}`,
      `  forward-tcp-upstream: ${ctx.mode === 'tcp' ? 'yes' : 'no'}`,
      '',
    ].join('\n');
    const file = path.join(ctx.dir, 'unbound.conf');
    fs.writeFileSync(file, config);
    return { cmd: 'unbound', args: ['-d', '-c', file], config };
  },
};

const dnsmasq: ServerDef = {
  name: 'dnsmasq',
  addr: '127.0.0.205',
  binary: 'dnsmasq',
  unsupported: (mode) => (mode === 'tcp' ? 'dnsmasq has no TCP-only upstream mode' : null),
  version: () => firstMatch('dnsmasq', ['-v'], /Dnsmasq version (\S+)/),
  prepare(ctx) {
    const config = [
      `port=${ctx.listen.port}`,
      `listen-address=${ctx.listen.addr}`,
      'bind-interfaces',
      'no-resolv',
      'no-hosts',
      'no-poll',
      `server=${ctx.upstream.addr}#${ctx.upstream.port}`,
      `cache-size=${CACHE_ENTRIES}`,
      // The default (150 concurrent forwarded queries) drops most of a max-rate miss run.
      'dns-forward-max=1000',
      'user=root',
      'pid-file=',
      'log-facility=-',
      '',
    ].join('\n');
    const file = path.join(ctx.dir, 'dnsmasq.conf');
    fs.writeFileSync(file, config);
    return { cmd: 'dnsmasq', args: ['-C', file, '--keep-in-foreground'], config };
  },
};

const nodeEcho: ServerDef = {
  name: 'node-echo',
  addr: '127.0.0.206',
  binary: 'node',
  reference: 'reference, not a DNS server: a bare Node.js dgram responder that echoes each query with QR set (the Node.js floor)',
  unsupported: (_mode, workload) =>
    workload === 'hit' || workload === 'hit-rate' || workload === 'mixed' ? null : 'reference for answered-locally workloads only (it forwards nothing)',
  version(projectRoot) {
    return `Node.js ${firstMatch(nodeBinary(projectRoot), ['-v'], /^v?(\S+)/)}`;
  },
  prepare(ctx) {
    const script = path.join(ctx.projectRoot, 'bench', 'lib', 'node-echo.ts');
    return {
      cmd: nodeBinary(ctx.projectRoot),
      // The instance directory only tags the command line (the harness finds its processes by it).
      args: [script, ctx.listen.addr, String(ctx.listen.port), ctx.dir],
      cwd: ctx.projectRoot,
      config: `node bench/lib/node-echo.ts ${ctx.listen.addr} ${ctx.listen.port}`,
    };
  },
};

export const SERVERS: Record<ServerName, ServerDef> = {
  'node-local-dns': nodeLocalDns,
  'node-local-dns-dgram': nodeLocalDnsDgram,
  dnsdist,
  unbound,
  dnsmasq,
  'node-echo': nodeEcho,
};

/** NSD as the authoritative upstream: no response-rate limiting, room for many TCP clients. */
export function prepareNsd(dir: string, listen: Endpoint, zs: ZoneSet): Command {
  assertLoopback(listen.addr);
  const config = [
    'server:',
    `  ip-address: ${listen.addr}@${listen.port}`,
    `  port: ${listen.port}`,
    '  username: ""',
    '  chroot: ""',
    `  zonesdir: "${dir}"`,
    `  pidfile: "${dir}/nsd.pid"`,
    '  database: ""',
    `  zonelistfile: "${dir}/zone.list"`,
    `  xfrdfile: "${dir}/xfrd.state"`,
    `  xfrdir: "${dir}"`,
    `  logfile: "${dir}/nsd.log"`,
    '  server-count: 1',
    '  verbosity: 1',
    '  hide-version: yes',
    '  rrl-ratelimit: 0',
    '  tcp-count: 2000',
    '  tcp-query-count: 0',
    'remote-control:',
    '  control-enable: no',
    ...zs.zones.flatMap((z) => ['zone:', `  name: ${z.name}`, `  zonefile: ${z.file}`]),
    '',
  ].join('\n');
  const file = path.join(dir, 'nsd.conf');
  fs.writeFileSync(file, config);
  return { cmd: 'nsd', args: ['-d', '-c', file], config };
}

/**
 * Knot DNS as the authoritative upstream (the default): one process, so nothing is orphaned on
 * stop, and no response-rate limiting unless the rrl module is configured (it is not).
 */
export function prepareKnot(dir: string, listen: Endpoint, zs: ZoneSet): Command {
  assertLoopback(listen.addr);
  const config = [
    'server:',
    `    listen: ${listen.addr}@${listen.port}`,
    `    rundir: "${dir}"`,
    `    pidfile: "${dir}/knot.pid"`,
    '    udp-workers: 1',
    '    tcp-workers: 1',
    '    background-workers: 1',
    'log:',
    '  - target: stderr',
    '    any: warning',
    'database:',
    `    storage: "${dir}"`,
    'template:',
    '  - id: default',
    `    storage: "${dir}"`,
    '    zonefile-sync: -1',
    '    zonefile-load: whole',
    '    journal-content: none',
    'zone:',
    ...zs.zones.flatMap((z) => [`  - domain: ${z.name}`, `    file: ${z.file}`]),
    '',
  ].join('\n');
  const file = path.join(dir, 'knot.conf');
  fs.writeFileSync(file, config);
  return { cmd: 'knotd', args: ['-c', file], config };
}

export function knotVersion(): string {
  return firstMatch('knotd', ['-V'], /version (\S+)/);
}

export function nsdVersion(): string {
  return firstMatch('nsd', ['-v'], /NSD version (\S+)/);
}

export function dnsperfVersion(): string {
  return firstMatch('dnsperf', ['-h'], /Version (\S+)/);
}
