/**
 * DNS clients for the resilience tests: one-shot UDP and TCP queries with a timeout (the
 * result says whether and when an answer came), and a UDP client that keeps many queries in
 * flight on one socket (matched by ID and question) for floods.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { DecodedPacket, RecordType } from 'dns-packet';

export type Decoded = DecodedPacket & { rcode: string };

export interface QueryResult {
  /** Decoded answer, or null when none came within the timeout (or it did not decode). */
  packet: Decoded | null;
  raw: Buffer | null;
  /** Milliseconds until the answer (or the timeout). */
  ms: number;
  /** Answers received for this query (a duplicate shows as 2). */
  count: number;
}

export function encodeQuery(name: string, type: RecordType, id: number, edns = false): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
    additionals: edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as dnsPacket.Answer] : [],
  });
}

function decodeOrNull(b: Buffer): Decoded | null {
  try {
    return dnsPacket.decode(b) as Decoded;
  } catch {
    return null;
  }
}

/**
 * One UDP query on its own socket. Waits `lingerMs` after the first answer to count
 * duplicates (0: return at once).
 */
export function udpQuery(
  host: string,
  port: number,
  name: string,
  type: RecordType = 'A',
  opts: { timeoutMs?: number; lingerMs?: number; edns?: boolean } = {},
): Promise<QueryResult> {
  const id = (Math.random() * 0x10000) & 0xffff;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    let raw: Buffer | null = null;
    let ms = opts.timeoutMs ?? 8_000;
    let count = 0;
    let linger: NodeJS.Timeout | null = null;
    const done = () => {
      clearTimeout(timer);
      if (linger) clearTimeout(linger);
      s.close();
      resolve({ packet: raw ? decodeOrNull(raw) : null, raw, ms, count });
    };
    const timer = setTimeout(done, opts.timeoutMs ?? 8_000);
    s.on('error', () => {});
    s.on('message', (msg) => {
      if (msg.length < 2 || msg.readUInt16BE(0) !== id) return;
      count++;
      if (raw !== null) return;
      raw = msg;
      ms = performance.now() - t0;
      if (!opts.lingerMs) done();
      else linger = setTimeout(done, opts.lingerMs);
    });
    s.send(encodeQuery(name, type, id, opts.edns), port, host);
  });
}

/** One TCP query on its own connection. */
export function tcpQuery(host: string, port: number, name: string, type: RecordType = 'A', opts: { timeoutMs?: number } = {}): Promise<QueryResult> {
  const id = (Math.random() * 0x10000) & 0xffff;
  const t0 = performance.now();
  return new Promise((resolve) => {
    const c = net.connect(port, host);
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (raw: Buffer | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolve({ packet: raw ? decodeOrNull(raw) : null, raw, ms: performance.now() - t0, count: raw ? 1 : 0 });
    };
    const timer = setTimeout(() => finish(null), opts.timeoutMs ?? 8_000);
    c.on('error', () => finish(null));
    c.on('close', () => finish(null));
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
    const q = encodeQuery(name, type, id);
    const frame = Buffer.alloc(2 + q.length);
    frame.writeUInt16BE(q.length, 0);
    q.copy(frame, 2);
    c.write(frame);
  });
}

/**
 * Many UDP queries in flight on one socket. `query()` resolves with the answer or null at
 * the timeout; IDs are unique among queries in flight.
 */
export class UdpClient {
  private readonly socket: dgram.Socket;
  private readonly pending = new Map<number, { resolve: (b: Buffer | null) => void; timer: NodeJS.Timeout }>();
  private nextId = 1;
  readonly host: string;
  readonly port: number;
  received = 0;

  constructor(host: string, port: number) {
    this.host = host;
    this.port = port;
    this.socket = dgram.createSocket('udp4');
    this.socket.on('error', () => {});
    this.socket.on('message', (msg) => {
      if (msg.length < 12) return;
      const p = this.pending.get(msg.readUInt16BE(0));
      if (!p) return;
      this.received++;
      this.pending.delete(msg.readUInt16BE(0));
      clearTimeout(p.timer);
      p.resolve(msg);
    });
  }

  async ready(): Promise<void> {
    await new Promise<void>((r) => this.socket.bind(0, '127.0.0.1', () => r()));
    try {
      this.socket.setRecvBufferSize(4 * 1024 * 1024);
    } catch {
      // Capped by net.core.rmem_max: the default then applies.
    }
  }

  get inFlight(): number {
    return this.pending.size;
  }

  query(name: string, type: RecordType = 'A', timeoutMs = 3_000): Promise<Buffer | null> {
    let id = this.nextId;
    while (this.pending.has(id)) id = (id + 1) & 0xffff;
    this.nextId = (id + 1) & 0xffff;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(null);
      }, timeoutMs);
      this.pending.set(id, { resolve, timer });
      this.socket.send(encodeQuery(name, type, id), this.port, this.host);
    });
  }

  close(): void {
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.resolve(null);
    }
    this.pending.clear();
    this.socket.close();
  }
}

/**
 * Keeps querying `name` at `host:port` every `intervalMs` until stopped (a well-behaved
 * client beside the faults): records every query's latency and the ones not answered.
 */
export class Prober {
  latencies: number[] = [];
  unanswered = 0;
  wrong = 0;
  private running = true;
  private loop: Promise<void>;

  /** `timeoutMs`: how long a query may take before it counts as unanswered (a stub resolver's timeout). */
  constructor(host: string, port: number, name: string, check: (p: Decoded) => boolean, intervalMs = 50, proto: 'udp' | 'tcp' = 'udp', timeoutMs = 2_000) {
    this.loop = (async () => {
      while (this.running) {
        const r = proto === 'udp' ? await udpQuery(host, port, name, 'A', { timeoutMs }) : await tcpQuery(host, port, name, 'A', { timeoutMs });
        if (r.packet === null) this.unanswered++;
        else {
          this.latencies.push(r.ms);
          if (!check(r.packet)) this.wrong++;
        }
        await new Promise((res) => setTimeout(res, intervalMs));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  get maxMs(): number {
    return this.latencies.reduce((m, x) => Math.max(m, x), 0);
  }

  summary(): string {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    const p = (q: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!.toFixed(1) : '-');
    return `${sorted.length} answered, ${this.unanswered} unanswered, ${this.wrong} wrong, p50 ${p(0.5)} ms, p99 ${p(0.99)} ms, max ${this.maxMs.toFixed(1)} ms`;
  }
}
