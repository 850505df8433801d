/**
 * Test-side plumbing of the hostile-client run: attacker processes (attacker.ts) started and
 * reaped, the agent's RSS sampled from /proc, a probe loop of well-behaved clients, dnsperf as
 * the legitimate load. Every wait is bounded; stop()/kill() are safe to call twice.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NODE } from '../../fault/lib/agent.ts';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { encodeQuery, udpQuery, type Decoded } from '../../fault/lib/dns.ts';
import { parseDnsperf } from '../../soak/lib.ts';
import type { AttackConfig, Stats } from './attack-types.ts';

const ATTACKER = path.join(path.dirname(fileURLToPath(import.meta.url)), 'attacker.ts');

export interface Attacker {
  mode: string;
  pid: number;
  /** The `ready` line's fields (sink: `port`). */
  ready: Record<string, unknown>;
  /** Resolves with the final counters (empty if the process died without reporting). */
  done: Promise<Stats>;
  /** SIGTERM (the attacker reports and exits), SIGKILL after 3 s. */
  stop(): Promise<Stats>;
  output(): string;
}

export async function startAttacker(cfg: AttackConfig): Promise<Attacker> {
  const child: ChildProcess = spawn(NODE, [ATTACKER, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  let stats: Stats | null = null;
  let onReady: (r: Record<string, unknown>) => void = () => {};
  const ready = new Promise<Record<string, unknown>>((r) => (onReady = r));
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (d: string) => {
    out += d;
    let nl: number;
    while ((nl = out.indexOf('\n')) >= 0) {
      const line = out.slice(0, nl);
      out = out.slice(nl + 1);
      try {
        const o = JSON.parse(line) as { event: string; stats?: Stats };
        if (o.event === 'ready') onReady(o as Record<string, unknown>);
        if (o.event === 'done') stats = o.stats ?? {};
      } catch {
        err += line + '\n';
      }
    }
  });
  child.stderr!.on('data', (d) => (err = (err + d).slice(-8192)));
  let exitedHow = '';
  const exited = new Promise<void>((r) =>
    child.once('exit', (code, signal) => {
      exitedHow = `exit ${code ?? signal}`;
      r();
    }),
  );
  const done = exited.then(() => stats ?? {});
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (alive()) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(t);
    }
    return done;
  };
  const r = await Promise.race([ready, exited.then(() => null), new Promise<null>((res) => setTimeout(() => res(null), 15_000).unref())]);
  if (r === null) {
    await stop();
    throw new Error(`attacker ${cfg.mode} did not start: ${err}`);
  }
  return { mode: cfg.mode, pid: child.pid!, ready: r, done, stop, output: () => `${exitedHow}; ${err}` };
}

/** VmRSS and VmHWM (the kernel's peak RSS) of a process in KiB; zeros when gone. */
export async function memKiB(pid: number): Promise<{ rss: number; hwm: number }> {
  try {
    const text = await readFile(`/proc/${pid}/status`, 'utf8');
    const field = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** CPU time (user + system) a process has used so far, in ms; 0 when gone. */
export async function cpuMs(pid: number): Promise<number> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th of them.
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
  } catch {
    return 0;
  }
}

/** The kernel's TcpExt counters of connections dropped at a full accept queue (host-wide, all namespaces share none: this one's). */
export async function listenDrops(): Promise<number> {
  try {
    const lines = (await readFile('/proc/net/netstat', 'utf8')).split('\n').filter((l) => l.startsWith('TcpExt:'));
    const names = lines[0]!.split(/\s+/);
    const values = lines[1]!.split(/\s+/);
    return Number(values[names.indexOf('ListenDrops')] ?? 0);
  } catch {
    return 0;
  }
}

/**
 * Samples the accept queues of the listeners on `host` (`ss -ltn`: Recv-Q of a listening
 * socket is the connections the kernel completed that the process has not accepted yet)
 * every `everyMs`; `peak` keeps each port's longest queue and its backlog.
 */
export class AcceptQueueSampler {
  peak = new Map<number, { queued: number; backlog: number }>();
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(host: string, everyMs: number) {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      execFile('ss', ['-Hltn', `src ${host}`], (err, out) => {
        this.busy = false;
        if (err) return;
        for (const line of out.split('\n')) {
          const f = line.trim().split(/\s+/);
          if (f.length < 4) continue;
          const port = Number(f[3]!.slice(f[3]!.lastIndexOf(':') + 1));
          const queued = Number(f[1]);
          const prev = this.peak.get(port);
          if (!prev || queued > prev.queued) this.peak.set(port, { queued, backlog: Number(f[2]) });
        }
      });
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Samples the RSS every `everyMs`; `onSample` may act on it (the run's safety valve kills
 * an agent that grows far past the bound, so one broken build cannot take the shared host's
 * memory).
 */
export class RssSampler {
  peakKiB = 0;
  samples = 0;
  private readonly timer: NodeJS.Timeout;
  private busy = false;

  constructor(pid: number, everyMs: number, onSample: (rssKiB: number) => void = () => {}) {
    this.timer = setInterval(() => {
      if (this.busy) return;
      this.busy = true;
      void memKiB(pid).then(({ rss }) => {
        this.busy = false;
        if (rss === 0) return;
        this.samples++;
        this.peakKiB = Math.max(this.peakKiB, rss);
        onSample(rss);
      });
    }, everyMs);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface ProbeCounts {
  sent: number;
  answered: number;
  /** Answered, but not with the expected answer. */
  wrong: number;
  /** Unanswered probes by what happened (e.g. `no-connect`, `closed`, `timeout`). */
  failures: Record<string, number>;
}

/**
 * One TCP query on a fresh connection, like fault/lib/dns.ts's tcpQuery, but telling why it
 * got no answer: `no-connect` (not connected within the timeout: SYN queue, accept backlog),
 * `refused`/`reset` (connect or read error), `closed` (the server closed it first),
 * `timeout` (connected, no answer in time).
 */
export function tcpProbe(host: string, port: number, name: string, timeoutMs: number): Promise<{ raw: Buffer | null; why: string }> {
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let buf = Buffer.alloc(0);
    let settled = false;
    let connected = false;
    const finish = (raw: Buffer | null, why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolve({ raw, why });
    };
    const timer = setTimeout(() => finish(null, connected ? 'timeout' : 'no-connect'), timeoutMs);
    c.on('connect', () => (connected = true));
    c.on('error', (err: NodeJS.ErrnoException) =>
      finish(null, err.code === 'ECONNREFUSED' ? 'refused' : err.code === 'ECONNRESET' ? 'reset' : `error:${err.code}`),
    );
    c.on('close', () => finish(null, 'closed'));
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)), '');
    });
    const q = encodeQuery(name, 'A', (Math.random() * 0x10000) & 0xffff);
    const frame = Buffer.alloc(2 + q.length);
    frame.writeUInt16BE(q.length, 0);
    q.copy(frame, 2);
    c.write(frame);
  });
}

/** GET `path`; resolves with the status, or 0 on error or after `timeoutMs` (`why` says which). */
export function httpProbe(host: string, port: number, p: string, timeoutMs: number): Promise<{ status: number; why: string }> {
  return new Promise((resolve) => {
    let settled = false;
    let connected = false;
    const settle = (status: number, why: string) => {
      if (!settled) {
        settled = true;
        clearTimeout(timer);
        resolve({ status, why });
      }
    };
    const req = http.get({ host, port, path: p, agent: false, headers: { connection: 'close' } }, (res) => {
      res.resume();
      res.on('end', () => settle(res.statusCode ?? 0, ''));
      res.on('error', () => settle(0, 'response-error'));
    });
    req.on('socket', (s) => s.once('connect', () => (connected = true)));
    const timer = setTimeout(() => {
      req.destroy();
      settle(0, connected ? 'timeout' : 'no-connect');
    }, timeoutMs);
    req.on('error', (err: NodeJS.ErrnoException) =>
      settle(0, err.code === 'ECONNRESET' ? 'reset' : err.code === 'ECONNREFUSED' ? 'refused' : `error:${err.code ?? err.message}`),
    );
  });
}

/** httpProbe's status alone. */
export async function httpStatus(host: string, port: number, p: string, timeoutMs: number): Promise<number> {
  return (await httpProbe(host, port, p, timeoutMs)).status;
}

export interface ProbeTargets {
  dnsHost: string;
  dnsPort: number;
  name: string;
  /** The A record `name` must answer with. */
  address: string;
  healthHost: string;
  healthPort: number;
  dnsTimeoutMs: number;
  healthTimeoutMs: number;
}

/**
 * Every `everyMs`: a fresh UDP query, a fresh TCP connection with one query, and a GET
 * /health, each on its own with its client timeout (a slow probe does not delay the next).
 */
export class ProbeLoop {
  udp: ProbeCounts = { sent: 0, answered: 0, wrong: 0, failures: {} };
  tcp: ProbeCounts = { sent: 0, answered: 0, wrong: 0, failures: {} };
  health: ProbeCounts = { sent: 0, answered: 0, wrong: 0, failures: {} };
  private readonly pending = new Set<Promise<void>>();
  private readonly timer: NodeJS.Timeout;

  constructor(t: ProbeTargets, everyMs: number) {
    const dnsOk = (p: Decoded | null) => p !== null && p.rcode === 'NOERROR' && (p.answers ?? []).some((a) => a.type === 'A' && a.data === t.address);
    const track = (p: Promise<void>) => {
      this.pending.add(p);
      void p.finally(() => this.pending.delete(p));
    };
    const count = (c: ProbeCounts, answered: boolean, ok: boolean, why: string) => {
      if (answered) c.answered++;
      else c.failures[why] = (c.failures[why] ?? 0) + 1;
      if (answered && !ok) c.wrong++;
    };
    this.timer = setInterval(() => {
      this.udp.sent++;
      this.tcp.sent++;
      this.health.sent++;
      track(
        udpQuery(t.dnsHost, t.dnsPort, t.name, 'A', { timeoutMs: t.dnsTimeoutMs }).then((r) => count(this.udp, r.packet !== null, dnsOk(r.packet), 'timeout')),
      );
      track(
        tcpProbe(t.dnsHost, t.dnsPort, t.name, t.dnsTimeoutMs).then((r) => {
          const p = r.raw === null ? null : decodeOrNull(r.raw);
          count(this.tcp, p !== null, dnsOk(p), r.why || 'undecodable');
        }),
      );
      track(httpProbe(t.healthHost, t.healthPort, '/health', t.healthTimeoutMs).then((r) => count(this.health, r.status !== 0, r.status === 200, r.why)));
    }, everyMs);
  }

  /** Stops sending and waits for the probes in flight (each ends by its timeout). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.pending]);
  }
}

function decodeOrNull(b: Buffer): Decoded | null {
  try {
    return dnsPacket.decode(b) as Decoded;
  } catch {
    return null;
  }
}

export interface DnsperfRun {
  done: Promise<{ code: number; output: string }>;
  kill(): void;
}

/** dnsperf at a fixed rate for `seconds` (query file `file`). */
export function startDnsperf(host: string, port: number, file: string, qps: number, seconds: number, timeoutSec: number): DnsperfRun {
  const p = spawn(
    'dnsperf',
    ['-s', host, '-p', String(port), '-d', file, '-l', String(seconds), '-Q', String(qps), '-c', '4', '-q', '500', '-t', String(timeoutSec)],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  p.stderr!.on('data', (d) => (out += d));
  const done = new Promise<{ code: number; output: string }>((r) => p.once('exit', (code) => r({ code: code ?? -1, output: out })));
  return {
    done,
    kill: () => {
      if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    },
  };
}

export { parseDnsperf };
