/**
 * dnstap receivers for tests:
 *  - startCapture(): Debian's `fstrm_capture` (fstrm-bin) on a Unix socket or a TCP port,
 *    writing a Frame Streams file; `records()` decodes it with `dnstap-ldns -y` (dnstap-ldns);
 *  - readDnstapFile(): our own reader of that file, for the fields dnstap-ldns does not print
 *    (`extra`);
 *  - startStuckReceiver(): a Unix-socket receiver that completes the handshake, then never
 *    reads again (a slow/stalled receiver).
 * Every process, socket and temp dir goes with stop().
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeAddress, sleep } from '../../lib/net.ts';

export const CONTENT_TYPE = 'protobuf:dnstap.Dnstap';

export interface DnstapRecord {
  type: string;
  identity: string;
  version: string;
  socketFamily: string;
  socketProtocol: string;
  queryAddress: string;
  queryPort: number;
  responseAddress: string;
  responsePort: number;
  queryTime: string;
  responseTime: string;
  hasQueryMessage: boolean;
  hasResponseMessage: boolean;
  /** From the wire message printed (query_message or response_message), '' without one. */
  qname: string;
  id: number;
  rcode: string;
  /** The message's text as dnstap-ldns printed it. */
  text: string;
}

export interface Capture {
  /** The SOCKET argument for the Corefile. */
  socketArg: string;
  file: string;
  proc: ChildProcess;
  output(): string;
  /** SIGINT: fstrm_capture closes its file; resolves once it exited. */
  stop(): Promise<void>;
  /** SIGKILL (a receiver that dies). */
  kill(): Promise<void>;
  /** Stops the receiver (if running) and decodes the file with dnstap-ldns. */
  records(): Promise<DnstapRecord[]>;
  /** Removes the temp dir (after stop/kill). */
  cleanup(): void;
}

export function haveTools(): boolean {
  return existsSync('/usr/bin/fstrm_capture') && existsSync('/usr/bin/dnstap-ldns');
}

/** fstrm_capture on `unix` (a socket path in a temp dir, or `at`) or `tcp` (127.0.0.x:port). */
export async function startCapture(kind: 'unix' | 'tcp', at?: { dir?: string; host?: string; port?: number }): Promise<Capture> {
  const dir = at?.dir ?? mkdtempSync(path.join(tmpdir(), 'nld-dnstap-'));
  const file = path.join(dir, `out-${Date.now()}-${Math.random().toString(36).slice(2)}.fstrm`);
  let args: string[];
  let socketArg: string;
  let host = '';
  let port = 0;
  const sock = path.join(dir, 'dnstap.sock');
  if (kind === 'unix') {
    rmSync(sock, { force: true });
    args = ['-t', CONTENT_TYPE, '-u', sock, '-w', file];
    socketArg = `unix://${sock}`;
  } else {
    const a = at?.host !== undefined && at.port !== undefined ? { host: at.host, port: at.port } : await freeAddress();
    host = a.host;
    port = a.port;
    args = ['-t', CONTENT_TYPE, '-a', host, '-p', String(port), '-w', file];
    socketArg = `tcp://${host}:${port}`;
  }
  const proc = spawn('/usr/bin/fstrm_capture', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  let gone = false;
  void exited.then(() => (gone = true));
  const end = performance.now() + 10_000;
  for (;;) {
    if (gone) throw new Error(`fstrm_capture exited: ${out}`);
    if (kind === 'unix' ? existsSync(sock) && out.includes('opened output file') : await tcpListening(host, port)) break;
    if (performance.now() > end) {
      proc.kill('SIGKILL');
      throw new Error(`fstrm_capture did not start: ${out}`);
    }
    await sleep(20);
  }
  const stopWith = async (sig: NodeJS.Signals): Promise<void> => {
    if (!gone) {
      proc.kill(sig);
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
  };
  return {
    socketArg,
    file,
    proc,
    output: () => out,
    stop: () => stopWith('SIGINT'),
    kill: () => stopWith('SIGKILL'),
    records: async () => {
      await stopWith('SIGINT');
      return decodeFile(file);
    },
    cleanup: () => {
      if (at?.dir === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function tcpListening(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    c.on('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** `dnstap-ldns -y -r FILE`, split into records. */
export function decodeFile(file: string): Promise<DnstapRecord[]> {
  if (!existsSync(file)) return Promise.resolve([]);
  return new Promise((resolve, reject) => {
    execFile('/usr/bin/dnstap-ldns', ['-y', '-r', file], { maxBuffer: 256 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`dnstap-ldns: ${err.message} ${stderr}`));
      else resolve(parseYaml(stdout));
    });
  });
}

export function parseYaml(text: string): DnstapRecord[] {
  const out: DnstapRecord[] = [];
  for (const doc of text.split(/^---$/m)) {
    if (!/type: MESSAGE/.test(doc)) continue;
    const field = (name: string): string => {
      const m = new RegExp(`^\\s*${name}: (.*)$`, 'm').exec(doc);
      return m ? m[1]!.replace(/^"(.*)"$/, '$1') : '';
    };
    const msgType = /^message:\n\s+type: (\S+)/m.exec(doc);
    const q = /^\s*;(\S+)\t+IN\t/m.exec(doc);
    const hdr = /opcode: \S+, rcode: (\S+), id: (\d+)/.exec(doc);
    out.push({
      type: msgType ? msgType[1]! : '',
      identity: field('identity'),
      version: field('version'),
      socketFamily: field('socket_family'),
      socketProtocol: field('socket_protocol'),
      queryAddress: field('query_address'),
      queryPort: Number(field('query_port') || -1),
      responseAddress: field('response_address'),
      responsePort: Number(field('response_port') || -1),
      queryTime: field('query_time'),
      responseTime: field('response_time'),
      hasQueryMessage: /^\s*query_message:/m.test(doc),
      hasResponseMessage: /^\s*response_message:/m.test(doc),
      qname: q ? q[1]! : '',
      id: hdr ? Number(hdr[2]) : -1,
      rcode: hdr ? hdr[1]!.replace(/,$/, '') : '',
      text: doc,
    });
  }
  return out;
}

/** Data frames of a Frame Streams file (control frames skipped). */
export function readFrames(file: string): Buffer[] {
  const b = readFileSync(file);
  const frames: Buffer[] = [];
  let off = 0;
  while (off + 4 <= b.length) {
    const len = b.readUInt32BE(off);
    off += 4;
    if (len === 0) {
      const clen = b.readUInt32BE(off);
      off += 4 + clen;
      continue;
    }
    frames.push(b.subarray(off, off + len));
    off += len;
  }
  return frames;
}

/** Top-level protobuf fields of a payload: field number -> bytes/number values. */
export function protoFields(buf: Uint8Array): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let off = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const x = buf[off++]!;
      v += (x & 0x7f) * mul;
      mul *= 128;
      if ((x & 0x80) === 0) return v;
    }
  };
  while (off < buf.length) {
    const key = varint();
    const wt = key & 7;
    let v: number | Buffer;
    if (wt === 0) v = varint();
    else if (wt === 2) {
      const l = varint();
      v = Buffer.from(buf.subarray(off, off + l));
      off += l;
    } else if (wt === 5) {
      v = Buffer.from(buf.subarray(off, off + 4)).readUInt32LE(0);
      off += 4;
    } else throw new Error(`unexpected wire type ${wt}`);
    const f = Math.floor(key / 8);
    out.set(f, [...(out.get(f) ?? []), v]);
  }
  return out;
}

/** (message type, extra) of every payload of a capture file, in order. */
export function readExtras(file: string): { type: number; extra: string | null }[] {
  return readFrames(file).map((f) => {
    const top = protoFields(f);
    const msg = protoFields(top.get(14)![0] as Buffer);
    const extra = top.get(3)?.[0];
    return { type: msg.get(1)![0] as number, extra: extra === undefined ? null : (extra as Buffer).toString() };
  });
}

export interface StuckReceiver {
  socketArg: string;
  /** Bytes read (the handshake only, once stuck). */
  handshakes(): number;
  stop(): Promise<void>;
}

/** Answers READY with ACCEPT, reads START, then stops reading for good (the kernel buffer fills). */
export async function startStuckReceiver(): Promise<StuckReceiver> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-dnstap-stuck-'));
  const sock = path.join(dir, 'stuck.sock');
  const conns = new Set<net.Socket>();
  let handshakes = 0;
  const server = net.createServer((c) => {
    conns.add(c);
    c.on('error', () => {});
    c.on('close', () => conns.delete(c));
    let buf = Buffer.alloc(0);
    let accepted = false;
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (!accepted && buf.length >= 8 && buf.readUInt32BE(0) === 0 && buf.length >= 8 + buf.readUInt32BE(4)) {
        accepted = true;
        buf = buf.subarray(8 + buf.readUInt32BE(4));
        const ct = Buffer.from(CONTENT_TYPE);
        const f = Buffer.alloc(20 + ct.length);
        f.writeUInt32BE(0, 0);
        f.writeUInt32BE(12 + ct.length, 4);
        f.writeUInt32BE(1, 8); // ACCEPT
        f.writeUInt32BE(1, 12);
        f.writeUInt32BE(ct.length, 16);
        ct.copy(f, 20);
        c.write(f);
      }
      if (accepted && buf.length >= 8 && buf.length >= 8 + buf.readUInt32BE(4)) {
        handshakes++;
        c.pause(); // START read: never read again
      }
    });
  });
  await new Promise<void>((r) => server.listen(sock, () => r()));
  return {
    socketArg: `unix://${sock}`,
    handshakes: () => handshakes,
    stop: async () => {
      for (const c of conns) c.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
