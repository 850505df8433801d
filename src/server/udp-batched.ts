/**
 * UDP listener on the native batched socket (native/udp.c): the same contract as the dgram
 * listener (src/server/udp.ts), with one JS call per batch of up to SLOTS datagrams
 * (recvmmsg) and one per batch of replies (sendmmsg).
 *
 * Receive: the addon reads into `recvArena` (slot i at i * SLOT_BYTES) and writes each
 * datagram's length and sender into `recvMeta`; each datagram is copied out into its own
 * (pooled) Buffer before dispatch, because a query outlives the batch when it is forwarded.
 * Send: replies are copied into `sendArena` and described in `sendMeta`; they go out when the
 * batch that produced them ends, or, for replies produced outside a batch (forwarded answers),
 * at the end of the current microtask checkpoint, and at once when the arena or the table is
 * full. A reply the kernel refuses because the socket's send buffer is full (EAGAIN/ENOBUFS) is
 * dropped and counted (nodelocaldns_udp_send_dropped_total{reason="buffer_full"}): the client
 * retries, and a queue of unsent replies would be another unbounded resource.
 * Bounds: recvArena SLOTS × 65535 bytes (virtual; only the pages datagrams touch are resident),
 * sendArena SEND_ARENA_BYTES, both per listener and fixed.
 */
import { closeSync } from 'node:fs';
import type { ResponseWriter } from '../plugin.ts';
import { Request, Proto } from './request.ts';
import { truncateResponse } from '../wire/truncate.ts';
import { ipv6GroupsText } from '../wire/ip.ts';
import type { Dispatcher } from './dispatch.ts';
import { type NativeUdpSocket, type UdpAddon, udpIoStats } from './udp-native.ts';

/** Datagrams per recvmmsg. */
const SLOTS = 64;
/** Bytes per receive slot: any UDP datagram fits (larger is impossible; it would be dropped as truncated). */
const SLOT_BYTES = 65535;
/** Replies per sendmmsg. */
const SEND_MAX = 64;
/** Reply bytes buffered before a send (at least one largest datagram). */
const SEND_ARENA_BYTES = 256 * 1024;
const META = 8;
const EAGAIN = 11;
const ENOBUFS = 105;

/** IPv4 sender text by its 32-bit value (as read from memory), bounded: cleared when full. */
const v4Text = new Map<number, string>();
const V4_TEXT_MAX = 4096;

function ipv4Text(a: number): string {
  let s = v4Text.get(a);
  if (s === undefined) {
    s = `${a & 255}.${(a >>> 8) & 255}.${(a >>> 16) & 255}.${a >>> 24}`;
    if (v4Text.size >= V4_TEXT_MAX) v4Text.clear();
    v4Text.set(a, s);
  }
  return s;
}

/** RFC 5952 text of an IPv6 address given as four int32 read from memory (network byte order). */
export function ipv6Text(w: ArrayLike<number>): string {
  const groups: number[] = [];
  for (let i = 0; i < 4; i++) {
    const x = w[i] ?? 0;
    // Memory order bytes b0 b1 b2 b3 (little-endian int): groups b0b1, b2b3.
    groups.push(((x & 255) << 8) | ((x >>> 8) & 255), (((x >>> 16) & 255) << 8) | ((x >>> 24) & 255));
  }
  if (groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0 && groups[5] === 0xffff) {
    const x = w[3] ?? 0;
    return `::ffff:${x & 255}.${(x >>> 8) & 255}.${(x >>> 16) & 255}.${x >>> 24}`;
  }
  return ipv6GroupsText(groups);
}

/** The sender of a UDP request on this path (Request.transport): IPv4 as a number, IPv6 as its four words. */
type Peer = number | Int32Array;

export class BatchedUdpListener implements ResponseWriter {
  readonly io = 'batched';
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  private readonly addon: UdpAddon;
  private readonly reusePort: boolean;
  private readonly family: 4 | 6;
  private socket: NativeUdpSocket | null = null;
  /** Datagrams received and answers sent (plain counters). */
  received = 0;
  sent = 0;
  sendErrors = 0;
  /** Set by close() (read by the adoption registry, udp-adopt.ts). */
  closed = false;
  private readonly recvArena = Buffer.allocUnsafeSlow(SLOTS * SLOT_BYTES);
  private readonly recvMeta = new Int32Array(SLOTS * META);
  private readonly sendArena = Buffer.allocUnsafeSlow(SEND_ARENA_BYTES);
  private readonly sendMeta = new Int32Array(SEND_MAX * META);
  /** Replies described in sendMeta, and the first free byte of sendArena. */
  private pending = 0;
  private sendOffset = 0;
  /** True while a batch is dispatched (its replies go out when it ends). */
  private inBatch = false;
  private flushQueued = false;

  constructor(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean, addon: UdpAddon) {
    this.address = address;
    this.port = port;
    this.dispatcher = dispatcher;
    this.reusePort = reusePort;
    this.addon = addon;
    this.family = address.includes(':') ? 6 : 4;
  }

  /** Creates, binds and starts the socket; rejects with the bind error (EADDRINUSE, EMFILE, ...). */
  bind(): Promise<number> {
    let sock: NativeUdpSocket | null = null;
    let bound = false;
    try {
      sock = new this.addon.UdpSocket(this.family, this.reusePort);
      this.port = sock.bind(this.address === '' ? (this.family === 6 ? '::' : '0.0.0.0') : this.address, this.port);
      bound = true;
      // Capped by net.core.rmem_max/wmem_max; the kernel default then applies.
      sock.setBufferSizes(4 * 1024 * 1024, 4 * 1024 * 1024);
      sock.start(SLOTS, SLOT_BYTES, this.recvArena, this.recvMeta, this.sendArena, this.sendMeta, this.onBatch);
      this.socket = sock;
      if (this.closed) this.closeSocket();
      return Promise.resolve(this.port);
    } catch (err) {
      try {
        sock?.close();
      } catch {
        // never opened
      }
      // As Node's dgram words it: `bind EADDRNOTAVAIL 198.18.255.123:53`.
      const e = err as NodeJS.ErrnoException & { address?: string; port?: number };
      if (sock !== null && !bound && typeof e.code === 'string') {
        e.message = `bind ${e.code} ${this.address}:${this.port}`;
        e.address = this.address;
        e.port = this.port;
      }
      return Promise.reject(err);
    }
  }

  /**
   * Serves `fd`, a bound listening socket received from a peer instance (udp-adopt.ts),
   * instead of binding one. Takes the fd over in every case: closed on failure.
   */
  adopt(fd: number): void {
    let sock: NativeUdpSocket;
    try {
      sock = new this.addon.UdpSocket(this.family, this.reusePort, fd);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    try {
      sock.start(SLOTS, SLOT_BYTES, this.recvArena, this.recvMeta, this.sendArena, this.sendMeta, this.onBatch);
    } catch (err) {
      sock.close();
      throw err;
    }
    this.socket = sock;
    if (this.closed) this.closeSocket();
  }

  /** The native socket (tests set tiny buffers through it); null before bind and after close. */
  get nativeSocket(): NativeUdpSocket | null {
    return this.socket;
  }

  /** The addon's callback: datagrams 0..n-1 of the arena are new. */
  private readonly onBatch = (n: number): void => {
    if (n < 0) return; // a receive error (-errno): nothing was read; an unconnected socket has none to report
    const meta = this.recvMeta;
    this.inBatch = true;
    try {
      for (let i = 0; i < n && !this.closed; i++) this.receiveOne(meta, i);
    } finally {
      this.inBatch = false;
      this.flush();
    }
  };

  private receiveOne(meta: Int32Array, i: number): void {
    const b = i * META;
    const len = meta[b] ?? 0;
    const family = meta[b + 3];
    if (meta[b + 1] !== 0 || (family !== 4 && family !== 6)) {
      udpIoStats.receiveDropped++;
      return;
    }
    this.received++;
    const msg = Buffer.allocUnsafe(len);
    const from = i * SLOT_BYTES;
    this.recvArena.copy(msg, 0, from, from + len);
    const req = new Request(msg, len, this);
    req.proto = Proto.UDP;
    req.family = this.family;
    req.remotePort = meta[b + 2] ?? 0;
    if (family === 4) {
      const a = (meta[b + 4] ?? 0) >>> 0;
      req.remoteAddress = ipv4Text(a);
      req.transport = a;
    } else {
      const w = meta.slice(b + 4, b + 8);
      req.remoteAddress = ipv6Text(w);
      req.transport = w;
    }
    req.startMs = this.dispatcher.clock();
    this.dispatcher.dispatch(req);
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    let out = msg;
    let outLen = len;
    if (len > req.udpSize && req.questionEnd > 0) {
      out = truncateResponse(req, msg, len, req.udpSize);
      outLen = out.length;
      req.responseLen = outLen;
    }
    if (!this.closed) this.enqueue(req.transport as Peer, req.remotePort, out, outLen);
    this.dispatcher.finish(req);
  }

  /** Copies a reply into the send arena; sends now when full, else when the batch or microtask ends. */
  private enqueue(peer: Peer, port: number, out: Buffer, outLen: number): void {
    if (outLen > SEND_ARENA_BYTES || outLen <= 0) {
      this.sendErrors++;
      udpIoStats.sendFailed++;
      return;
    }
    if (this.pending === SEND_MAX || this.sendOffset + outLen > SEND_ARENA_BYTES) this.flush();
    this.sendArena.set(outLen === out.length ? out : out.subarray(0, outLen), this.sendOffset);
    const m = this.sendMeta;
    const b = this.pending * META;
    m[b] = this.sendOffset;
    m[b + 1] = outLen;
    m[b + 2] = port;
    if (typeof peer === 'number') {
      m[b + 3] = 4;
      m[b + 4] = peer | 0;
    } else {
      m[b + 3] = 6;
      m[b + 4] = peer[0] ?? 0;
      m[b + 5] = peer[1] ?? 0;
      m[b + 6] = peer[2] ?? 0;
      m[b + 7] = peer[3] ?? 0;
    }
    this.pending++;
    this.sendOffset += outLen;
    if (!this.inBatch && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushTask);
    }
  }

  private readonly flushTask = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  /** Sends the queued replies with one sendmmsg and counts what the kernel refused. */
  private flush(): void {
    const count = this.pending;
    if (count === 0) return;
    this.pending = 0;
    this.sendOffset = 0;
    const sock = this.socket;
    if (sock === null) return;
    const r = sock.send(count);
    if (r < 0) return; // closed meanwhile
    const sent = r & 0x7ff;
    const dropped = (r >>> 11) & 0x7ff;
    this.sent += sent;
    if (dropped === 0) return;
    this.sendErrors += dropped;
    const errno = r >>> 22;
    if (errno === EAGAIN || errno === ENOBUFS) udpIoStats.sendBufferFull += dropped;
    else udpIoStats.sendFailed += dropped;
  }

  /**
   * Graceful close within a SO_REUSEPORT group, as the dgram listener's handOver (udp.ts, whose
   * comment gives the reasoning): connect() the socket away so the kernel steers new queries to
   * the other members, answer what is queued and in flight, close once a whole event-loop turn
   * read nothing and nothing is in flight (or at `deadline`). Linux lets a connected UDP socket
   * send to any address (sendmmsg names each destination), so unlike dgram nothing is held.
   */
  async handOver(deadline: number): Promise<void> {
    if (this.closed || this.socket === null) return this.close();
    const wildcard = this.address === '0.0.0.0' || this.address === '::' || this.address === '';
    const away = wildcard ? (this.family === 6 ? '::1' : '127.0.0.1') : this.address;
    let connected = true;
    try {
      this.socket.connect(away, 1);
    } catch {
      connected = false;
    }
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const afterPoll = () => new Promise((r) => setImmediate(r));
    for (;;) {
      const before = this.received;
      await sleep(2);
      await afterPoll();
      if (performance.now() >= deadline || this.closed) break;
      const drained = !connected || this.received === before;
      if (drained && this.dispatcher.inFlight === 0) break;
    }
    await this.close();
  }

  private closeSocket(): void {
    const sock = this.socket;
    this.socket = null;
    try {
      sock?.close();
    } catch {
      // already closed
    }
  }

  /** Sends what is queued, then closes; safe inside a batch (the rest of the batch is dropped). */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.flush();
    this.closed = true;
    this.closeSocket();
    return Promise.resolve();
  }
}
