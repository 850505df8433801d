/**
 * End-to-end harness for the engine: a real authoritative upstream (Knot DNS, several zones),
 * the agent itself as a child process (`node src/main.ts -conf <temp Corefile>`), a real client
 * (`dig`, output parsed) and raw DNS over node sockets for what dig cannot express.
 * Everything listens on 127.0.0.x; every process and temp dir is removed by its stop().
 * NSD and Unbound upstreams come from test/forward/servers.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { sleep, freeAddress } from '../lib/net.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** The Node.js 24 the project runs on (never the system node). */
export const NODE = path.join(ROOT, 'node_modules/.bin/node');

export { sleep };

/** A random 127.0.0.x (x in 20..249) with a port free there for UDP and TCP; `host` pins the address. */
export const freeEndpoint = freeAddress;

// ---------------------------------------------------------------- raw DNS over sockets

/** Sends msg over UDP and resolves with the first datagram back (or null after timeoutMs). */
export function udpExchange(host: string, port: number, msg: Buffer, timeoutMs = 6000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(t);
      s.close();
      resolve(b);
    };
    s.on('error', () => done(null));
    s.on('message', (m) => done(m));
    s.send(msg, port, host);
  });
}

/** Sends msg over TCP (RFC 1035 §4.2.2 framing) and resolves with the first framed reply. */
export function tcpExchange(host: string, port: number, msg: Buffer, timeoutMs = 6000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let buf = Buffer.alloc(0);
    const t = setTimeout(() => done(null), timeoutMs);
    const done = (b: Buffer | null) => {
      clearTimeout(t);
      c.destroy();
      resolve(b);
    };
    c.on('error', () => done(null));
    c.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      c.write(Buffer.concat([len, msg]));
    });
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) done(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  });
}

/** `NAME TYPE IN` query bytes, RD set, optional EDNS(0) OPT with the given payload size. */
export function rawQuery(name: string, qtype: number, id: number, ednsSize?: number): Buffer {
  const labels = name.split('.').filter(Boolean);
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, ednsSize === undefined ? 0 : 1])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l, 'latin1'));
  parts.push(Buffer.from([0, qtype >> 8, qtype & 0xff, 0, 1]));
  if (ednsSize !== undefined) parts.push(Buffer.from([0, 0, 41, ednsSize >> 8, ednsSize & 0xff, 0, 0, 0, 0, 0, 0]));
  return Buffer.concat(parts);
}

// ---------------------------------------------------------------- Knot DNS upstream

export interface Authority {
  host: string;
  port: number;
  /** `host:port`, for a Corefile's forward line. */
  addr: string;
  log(): string;
  stop(): Promise<void>;
}

/** Waits until a UDP query for `name` SOA gets any reply. */
async function answersSoa(host: string, port: number, name: string): Promise<boolean> {
  const r = await udpExchange(host, port, rawQuery(name, 6, 0x5151), 200);
  return r !== null && r.length >= 12;
}

function killer(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** Server options of startKnot beyond the defaults. */
export interface KnotOptions {
  /** NSID text Knot sends to queries that ask for it (RFC 5001). */
  nsid?: string;
  /** Answer ECS queries with an ECS option (`edns-client-subnet: on`, RFC 7871). */
  ecs?: boolean;
}

/**
 * Knot DNS serving the given zones (apex → zone file text) over UDP and TCP on a free
 * 127.0.0.x port. Knot does no response rate limiting unless configured.
 */
export async function startKnot(zones: Record<string, string>, opts: KnotOptions = {}): Promise<Authority> {
  const names = Object.keys(zones);
  for (let attempt = 0; ; attempt++) {
    const { host, port } = await freeEndpoint();
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-knot-'));
    for (const [apex, text] of Object.entries(zones)) writeFileSync(path.join(dir, `${apex}.zone`), text);
    writeFileSync(
      path.join(dir, 'knot.conf'),
      `server:
    listen: ${host}@${port}
    rundir: "${dir}"
    user: root:root
    background-workers: 1
    udp-workers: 1
    tcp-workers: 1
${opts.nsid !== undefined ? `    nsid: "${opts.nsid}"\n` : ''}${opts.ecs ? '    edns-client-subnet: on\n' : ''}log:
  - target: stderr
    any: warning
database:
    storage: "${dir}/db"
template:
  - id: default
    storage: "${dir}"
    file: "%s.zone"
    journal-content: none
zone:
${names.map((n) => `  - domain: ${n}`).join('\n')}
`,
    );
    let out = '';
    const child = spawn('knotd', ['-c', path.join(dir, 'knot.conf')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const stop = killer(child, dir);
    const end = performance.now() + 10_000;
    let ready = false;
    while (performance.now() < end && child.exitCode === null) {
      if (await answersSoa(host, port, names[0]!)) {
        ready = true;
        break;
      }
      await sleep(30);
    }
    if (ready) return { host, port, addr: `${host}:${port}`, log: () => out, stop };
    await stop();
    if (attempt === 2) throw new Error(`knotd did not start: ${out}`);
  }
}

// ---------------------------------------------------------------- the agent

export interface Listening {
  zone: string;
  port: number;
  address: string;
}

export interface AgentProcess {
  proc: ChildProcess;
  /** `zone:port on address` lines printed at start. */
  listening: Listening[];
  output(): string;
  /** Resolves with the exit code, or the signal name, once the process exited. */
  exited: Promise<number | string>;
  /** Sends `signal` (default SIGTERM) if still running and waits for the exit (SIGKILL after 15 s). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

const LISTEN_LINE = /^\[INFO\] (\S+):(\d+) on (\S+) \(udp, tcp\)$/gm;

/**
 * Starts `node src/main.ts ARGS` (after `prefix`, e.g. `ip netns exec NS`, which execs it) and
 * resolves once it printed its `serving` line (rejects with its output if it exits or stays
 * silent for 45 s).
 */
export async function spawnAgent(args: string[], cleanup?: () => void, prefix: string[] = []): Promise<AgentProcess> {
  const argv = [...prefix, NODE, 'src/main.ts', ...args];
  const proc = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NLD_DEBUG: '' } });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let code: number | string | null = null;
  const exited = new Promise<number | string>((resolve) => proc.on('exit', (c, s) => resolve((code = c ?? s ?? -1))));
  // Generous: on a loaded 2-core machine a cold start (type stripping, worker threads) is slow.
  const end = performance.now() + 45_000;
  while (!/\] node-local-dns-\S+ .*serving/.test(out)) {
    if (code !== null || performance.now() > end) {
      if (code === null) proc.kill('SIGKILL');
      cleanup?.();
      throw new Error(`agent did not start (exit ${code}):\n${out}`);
    }
    await sleep(25);
  }
  const listening = [...out.matchAll(LISTEN_LINE)].map((m) => ({ zone: m[1]!, port: Number(m[2]), address: m[3]! }));
  return {
    proc,
    listening,
    output: () => out,
    exited,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (code === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 15_000);
      const c = await exited;
      clearTimeout(t);
      cleanup?.();
      return c;
    },
  };
}

/** Runs `node src/main.ts ARGS` to its exit (SIGKILL after 45 s): exit code and output. */
export function runToExit(args: string[]): Promise<{ code: number | string; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(NODE, ['src/main.ts', ...args], { cwd: ROOT, timeout: 45_000, killSignal: 'SIGKILL' }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number | string; signal?: string }) | null;
      resolve({ code: e === null ? 0 : (e.signal ?? e.code ?? -1), stdout, stderr });
    });
  });
}

/** Writes the Corefile to a temp dir and starts the agent on it; the dir goes with stop(). */
export async function startAgent(corefile: string): Promise<AgentProcess> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-engine-'));
  const file = path.join(dir, 'Corefile');
  writeFileSync(file, corefile);
  return spawnAgent(['-conf', file], () => rmSync(dir, { recursive: true, force: true }));
}

// ---------------------------------------------------------------- dig

export interface DigRecord {
  name: string;
  ttl: number;
  class: string;
  type: string;
  data: string;
}

export interface DigResult {
  status: string;
  id: number;
  flags: string[];
  counts: { query: number; answer: number; authority: number; additional: number };
  /** EDNS line of the response, when it had an OPT. */
  edns: { version: number; flags: string[]; udp: number } | null;
  question: string[];
  answer: DigRecord[];
  authority: DigRecord[];
  additional: DigRecord[];
  /** Transport dig reports for the answer it printed. */
  proto: 'UDP' | 'TCP' | null;
  size: number;
  /** dig's own `Query time` (ms): the exchange only, without dig's start-up. */
  queryMs: number;
  raw: string;
}

function parseRecord(line: string): DigRecord {
  const [name, ttl, cls, type, ...rest] = line.split(/\s+/);
  return { name: name!, ttl: Number(ttl), class: cls!, type: type!, data: rest.join(' ') };
}

/** Parses dig's default output (one response). Throws when dig got no answer. */
export function parseDig(raw: string): DigResult {
  const header = /->>HEADER<<- opcode: \S+, status: (\S+), id: (\d+)/.exec(raw);
  if (!header) throw new Error(`dig got no response:\n${raw}`);
  const flagsLine = /;; flags:([^;]*); QUERY: (\d+), ANSWER: (\d+), AUTHORITY: (\d+), ADDITIONAL: (\d+)/.exec(raw)!;
  const edns = /; EDNS: version: (\d+), flags:([^;]*); udp: (\d+)/.exec(raw);
  const section = (title: string): string[] => {
    const m = new RegExp(`;; ${title} SECTION:\\n([\\s\\S]*?)(?:\\n\\n|$)`).exec(raw);
    return m ? m[1]!.split('\n').filter((l) => l.length > 0) : [];
  };
  const server = /;; SERVER: .*\((UDP|TCP)\)/.exec(raw);
  const size = /;; MSG SIZE {2}rcvd: (\d+)/.exec(raw);
  const time = /;; Query time: (\d+) msec/.exec(raw);
  return {
    status: header[1]!,
    id: Number(header[2]),
    flags: flagsLine[1]!.trim().split(/\s+/).filter(Boolean),
    counts: { query: Number(flagsLine[2]), answer: Number(flagsLine[3]), authority: Number(flagsLine[4]), additional: Number(flagsLine[5]) },
    edns: edns ? { version: Number(edns[1]), flags: edns[2]!.trim().split(/\s+/).filter(Boolean), udp: Number(edns[3]) } : null,
    question: section('QUESTION').map((l) => l.replace(/^;/, '')),
    answer: section('ANSWER').map(parseRecord),
    authority: section('AUTHORITY').map(parseRecord),
    additional: section('ADDITIONAL').map(parseRecord),
    proto: server ? (server[1] as 'UDP' | 'TCP') : null,
    size: size ? Number(size[1]) : 0,
    queryMs: time ? Number(time[1]) : NaN,
    raw,
  };
}

/** Runs `dig @host -p port ARGS` (one try, 6 s) and parses its output. */
export function dig(host: string, port: number, args: string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@${host}`, '-p', String(port), '+tries=1', '+time=6', '+nocookie', ...args], { timeout: 15_000 }, (err, stdout, stderr) => {
      try {
        resolve(parseDig(stdout));
      } catch (e) {
        reject(new Error(`${(e as Error).message}${err ? `\n${err.message}` : ''}\n${stderr}`));
      }
    });
  });
}
