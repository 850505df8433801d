/**
 * End-to-end helpers for the observability tests: free loopback addresses, a scripted
 * upstream DNS server (UDP and TCP, dns-packet), a DNS client, and the agent itself run as a
 * child process (`node src/main.ts -conf <temp Corefile>`) with its output captured.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import dnsPacket from 'dns-packet';
import type { Answer, Packet, RecordType } from 'dns-packet';
import { parseExposition, type ParsedFamily } from '../lib/metrics-testing.ts';
import { sleep, waitUntil, freeAddress } from '../lib/net.ts';

export { sleep, waitUntil, freeAddress };

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** `p`, or `fallback` if p has not settled after `ms` (the timer does not outlive the race). */
export async function within<T, F>(p: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<F>((r) => (timer = setTimeout(() => r(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Free ports on one host (distinct). */
export async function freePorts(host: string, n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const { port } = await freeAddress(host);
    if (!out.includes(port)) out.push(port);
  }
  return out;
}

export type Answerer = (q: Packet, proto: 'udp' | 'tcp') => Packet | null | Promise<Packet | null>;

export interface Upstream {
  host: string;
  port: number;
  /** Queries received, as `NAME TYPE`. */
  queries: string[];
  close(): Promise<void>;
}

/** A scripted DNS server on host:port (UDP and TCP). `answer` returning null drops the query. */
export async function startUpstream(host: string, port: number, answer: Answerer): Promise<Upstream> {
  const queries: string[] = [];
  const respond = async (msg: Buffer, proto: 'udp' | 'tcp'): Promise<Buffer | null> => {
    let q: Packet;
    try {
      q = dnsPacket.decode(msg);
    } catch {
      return null;
    }
    const question = q.questions?.[0];
    if (question) queries.push(`${question.name} ${question.type}`);
    const r = await answer(q, proto);
    return r === null ? null : dnsPacket.encode(r);
  };
  const udp = dgram.createSocket('udp4');
  udp.on('message', (msg, rinfo) => {
    void respond(msg, 'udp').then((out) => {
      if (out) udp.send(out, rinfo.port, rinfo.address);
    });
  });
  await new Promise<void>((r) => udp.bind(port, host, () => r()));
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((sock) => {
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 2) {
        const len = buf.readUInt16BE(0);
        if (buf.length < 2 + len) break;
        const pending = respond(Buffer.from(buf.subarray(2, 2 + len)), 'tcp');
        buf = buf.subarray(2 + len);
        void pending.then((out) => {
          if (!out || sock.destroyed) return;
          const frame = Buffer.alloc(2 + out.length);
          frame.writeUInt16BE(out.length, 0);
          out.copy(frame, 2);
          sock.write(frame);
        });
      }
    });
  });
  await new Promise<void>((r) => tcp.listen(port, host, () => r()));
  return {
    host,
    port,
    queries,
    close: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([new Promise<void>((r) => udp.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}

/** A reply to `q` with the given rcode and records. */
export function reply(q: Packet, opts: { rcode?: 'NOERROR' | 'SERVFAIL' | 'NXDOMAIN' | 'REFUSED'; answers?: Answer[]; authorities?: Answer[] } = {}): Packet {
  // dns-packet encodes the rcode from the low bits of `flags` (its `rcode` field is decode-only).
  const rcode = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 }[opts.rcode ?? 'NOERROR'];
  return {
    id: q.id,
    type: 'response',
    flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE | dnsPacket.AUTHORITATIVE_ANSWER | rcode,
    questions: q.questions,
    answers: opts.answers ?? [],
    authorities: opts.authorities ?? [],
  } as Packet;
}

export interface DnsResult {
  rcode: string;
  packet: Packet;
}

/** One query over UDP (or TCP); rejects after timeoutMs. */
export async function query(
  host: string,
  port: number,
  name: string,
  type: RecordType = 'A',
  opts: { tcp?: boolean; timeoutMs?: number; do?: boolean } = {},
): Promise<DnsResult> {
  const id = Math.floor(Math.random() * 65536);
  const msg = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: opts.do ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: dnsPacket.DNSSEC_OK } as Answer] : [],
  });
  const timeoutMs = opts.timeoutMs ?? 5000;
  const decode = (b: Buffer): DnsResult => {
    const packet = dnsPacket.decode(b);
    return { rcode: (packet as { rcode?: string }).rcode ?? 'NOERROR', packet };
  };
  if (opts.tcp) {
    return new Promise((resolve, reject) => {
      const sock = net.connect(port, host);
      let buf = Buffer.alloc(0);
      const t = setTimeout(() => {
        sock.destroy();
        reject(new Error(`TCP query ${name} ${type} timed out`));
      }, timeoutMs);
      sock.on('connect', () => {
        const frame = Buffer.alloc(2 + msg.length);
        frame.writeUInt16BE(msg.length, 0);
        msg.copy(frame, 2);
        sock.write(frame);
      });
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          clearTimeout(t);
          sock.end();
          resolve(decode(buf.subarray(2, 2 + buf.readUInt16BE(0))));
        }
      });
      sock.on('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    const t = setTimeout(() => {
      sock.close();
      reject(new Error(`UDP query ${name} ${type} timed out`));
    }, timeoutMs);
    sock.on('message', (m) => {
      if (m.length < 2 || m.readUInt16BE(0) !== id) return;
      clearTimeout(t);
      sock.close();
      resolve(decode(m));
    });
    sock.on('error', (e) => {
      clearTimeout(t);
      sock.close();
      reject(e);
    });
    sock.send(msg, port, host);
  });
}

export interface Agent {
  proc: ChildProcess;
  dir: string;
  corefile: string;
  output(): string;
  stderr(): string;
  /** Resolves with the exit code (or the signal name) once the process has exited. */
  exited: Promise<number | string>;
  /** Waits until the output matches. */
  waitForOutput(re: RegExp, ms?: number): Promise<void>;
  writeCorefile(text: string): void;
  /** SIGTERM (if still running), then waits for the exit. */
  stop(): Promise<number | string>;
}

/** Runs `node src/main.ts -conf <temp Corefile>`. */
export function startAgent(corefileText: string, extraArgs: string[] = []): Agent {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-obs-'));
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, corefileText);
  const proc = spawn(process.execPath, ['src/main.ts', '-conf', corefile, ...extraArgs], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NLD_DEBUG: '' },
  });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => resolve(code ?? signal ?? -1));
  });
  let done = false;
  void exited.then(() => (done = true));
  return {
    proc,
    dir,
    corefile,
    output: () => out + err,
    stderr: () => err,
    exited,
    waitForOutput: (re, ms = 15_000) =>
      waitUntil(() => re.test(out + err) || done, `output ${re}`, ms).then(() => {
        if (!re.test(out + err)) throw new Error(`agent exited without printing ${re}:\n${out}${err}`);
      }),
    writeCorefile: (text) => writeFileSync(corefile, text),
    stop: async () => {
      if (!done) proc.kill('SIGTERM');
      const code = await within(exited, 30_000, 'timeout' as const);
      if (code === 'timeout') proc.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
      return code === 'timeout' ? 'SIGKILL' : code;
    },
  };
}

/** GETs http://host:port/path. */
export async function httpGet(host: string, port: number, p: string): Promise<{ status: number; body: string }> {
  const r = await fetch(`http://${host}:${port}${p}`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: await r.text() };
}

/** Scrapes and strictly parses /metrics. */
export async function scrape(host: string, port: number): Promise<Map<string, ParsedFamily>> {
  const r = await httpGet(host, port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseExposition(r.body);
}
