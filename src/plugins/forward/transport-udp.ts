/**
 * UDP transport to one upstream: a small pool of connected UDP sockets.
 *
 * Why a pool and not a socket per query. RFC 5452 §4.5/§9.2 asks for an unpredictable
 * source port per query (the Kaminsky defence: an off-path spoofer must guess port × ID,
 * ~31 bits, instead of the ID alone). A fresh socket per query gives that fully, but in
 * Node it costs ~45 µs of CPU per query (socket creation, bind, connect, close, measured on
 * this project's machine), i.e. most of a core at a few tens of thousands of queries per
 * second. CoreDNS itself does not do it either: it caches its UDP sockets (one query at a
 * time each) for `expire`, so its ports live for as long as traffic keeps them busy.
 * The middle ground used here:
 *  - each socket is bound to a port the OS picks at random from the ephemeral range and is
 *    `connect()`ed to the upstream, so the kernel drops datagrams from any other source
 *    address/port and reports ICMP errors (ECONNREFUSED) to us;
 *  - each query picks one of up to `socketsPerUpstream` sockets at random and gets a fresh
 *    CSPRNG ID that is not in flight on that socket (RFC 5452 §4.3);
 *  - a socket is retired after `maxQueriesPerSocket` queries or `maxSocketAgeMs`, whichever
 *    comes first (and closed when idle for `idleMs` = forward's `expire`), so a port that a
 *    side channel (e.g. SAD DNS) might reveal stays useful to an attacker only briefly;
 *  - a reply is accepted only if its ID and question both match (RFC 5452 §9.1).
 * At the defaults (4 sockets, 256 queries) socket churn costs ~0.2 µs per query.
 *
 * Every received byte is bounds-checked before use; socket callbacks never throw (errors go
 * to `onInternalError`).
 *
 * Errors. Every socket call and callback handles its error, and an error fails the queries
 * on that socket in the same event-loop turn (the handler moves on to its next try):
 *  - creating the socket throws (rare) → the try fails synchronously (`SendFailure`);
 *  - bind fails (EMFILE, ENFILE: 'error' before connect) or connect fails (no route:
 *    ENETUNREACH/EHOSTUNREACH, `prohibit` route: EACCES, `blackhole` route: EINVAL, no IPv6:
 *    EADDRNOTAVAIL; connect's callback gets the error) → DIAL failure of every query queued on
 *    the socket; nothing is sent on an unconnected socket;
 *  - a send fails (EPERM from a firewall DROP, ECONNREFUSED left pending by an earlier ICMP
 *    port unreachable) → WRITE failure. Sends carry a callback: without one dgram drops
 *    send errors silently, and a pending ICMP error consumed by a send is never seen;
 *  - receiving fails (ICMP port unreachable surfaced by recvmsg) → READ failure.
 *
 * I/O path. When the listeners serve UDP through the native batched socket
 * (src/server/udp-native.ts, native/README.md), the pool's sockets use it too: `socket()`,
 * `bind` and `connect()` are synchronous (a failure fails the try at once, DIAL), a query is
 * sent with one `sendmmsg` call whose error fails the socket's queries right after (WRITE, as
 * dgram's send callback does), and replies arrive in batches
 * (`recvmmsg`), copied out of a receive arena shared by the thread's upstream sockets; a
 * receive error (ICMP) fails the socket's queries (READ) as on dgram. Otherwise Node's dgram.
 */
import dgram from 'node:dgram';
import { constants as osConstants } from 'node:os';
import type { Clock } from '../../plugin.ts';
import { ID_EXHAUSTED_FAILURE, Phase, SendFailure, errnoOf, takeReply, type Attempt, type AttemptHolder, type PhaseValue } from './attempt.ts';
import { ForwardErrorCode, type ForwardErrorCodeValue } from './errors.ts';
import { freeId } from './ids.ts';
import type { UpstreamStats } from './stats.ts';
import { Header } from '../../wire/codes.ts';
import { setMessageId } from '../../wire/header.ts';
import { ipBytes } from '../../wire/ip.ts';
import { type NativeUdpSocket, type UdpAddon, UdpIo, loadUdpAddon, udpIoMode } from '../../server/udp-native.ts';

export interface UdpPoolOptions {
  /** Sockets kept open per upstream under load. */
  socketsPerUpstream: number;
  /** A socket takes no new query after this many. */
  maxQueriesPerSocket: number;
  /** A socket takes no new query after this age. */
  maxSocketAgeMs: number;
  /** A socket without traffic for this long is closed (forward's `expire`). */
  idleMs: number;
}

export const UDP_DEFAULTS: UdpPoolOptions = {
  socketsPerUpstream: 4,
  maxQueriesPerSocket: 256,
  maxSocketAgeMs: 10_000,
  idleMs: 10_000,
};

/** Largest UDP payload over IPv4 (65535 - 20 - 8); larger queries must go over TCP. */
export const MAX_UDP_PAYLOAD = 65507;

export interface UpstreamAddress {
  host: string;
  port: number;
  family: 4 | 6;
  /** `IP:port` label. */
  to: string;
}

function addrLabel(address: string, port: number, family: string | number): string {
  return family === 'IPv6' || family === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Sends at's query bytes; without offset and length when they fill the buffer (no view made). */
function sendQuery(socket: dgram.Socket, at: Attempt, cb: (err: Error | null) => void): void {
  const msg = at.msg;
  if (msg.length === at.queryLen) socket.send(msg, cb);
  else socket.send(msg, 0, at.queryLen, cb);
}

/** errno number -> name ('ECONNREFUSED'), for the native path's errors. */
const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([name, n]) => [n, name]));

function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

/** Replies read per recvmmsg on an upstream socket. */
const NATIVE_SLOTS = 16;
const NATIVE_SLOT_BYTES = 65535;
const META = 8;

/**
 * The thread's buffers for every native upstream socket: the event loop runs one callback at a
 * time and each reply is copied out before its callback returns, so they can be shared.
 */
class NativeBuffers {
  readonly recvArena = Buffer.allocUnsafeSlow(NATIVE_SLOTS * NATIVE_SLOT_BYTES);
  readonly recvMeta = new Int32Array(NATIVE_SLOTS * META);
  readonly sendArena = Buffer.allocUnsafeSlow(MAX_UDP_PAYLOAD);
  readonly sendMeta = new Int32Array(META);
}

let nativeBuffers: NativeBuffers | null = null;

/** The native path for an upstream: the addon and its address words, or null (dgram). */
export interface NativeUpstream {
  addon: UdpAddon;
  /** The upstream address as the int32 words of its bytes (sendMeta a0..a3). */
  words: Int32Array;
}

function nativeUpstreamFor(up: UpstreamAddress): NativeUpstream | null {
  if (udpIoMode() !== UdpIo.BATCHED || up.host.includes('%')) return null;
  const { addon } = loadUdpAddon();
  const bytes = ipBytes(up.host);
  if (addon === null || bytes === null || bytes.length !== (up.family === 6 ? 16 : 4)) return null;
  const words = new Int32Array(4);
  new Uint8Array(words.buffer).set(bytes);
  return { addon, words };
}

class UdpSocket implements AttemptHolder {
  readonly pool: UdpPool;
  /** Node's socket (dgram path), or null on the native path. */
  readonly socket: dgram.Socket | null;
  /** The addon's socket (native path), or null. */
  private readonly native: NativeUdpSocket | null = null;
  readonly inflight = new Map<number, Attempt>();
  /** Attempts queued until `connect` completes (null once connected). */
  waiting: Attempt[] | null = [];
  open = false;
  closed = false;
  retired = false;
  assigned = 0;
  readonly createdMs: number;
  lastUsedMs: number;
  local = '';

  get dialing(): boolean {
    return !this.open;
  }

  /** Throws when the socket cannot be made (dgram refuses synchronously; native: socket, bind or connect fails). */
  constructor(pool: UdpPool, now: number) {
    this.pool = pool;
    this.createdMs = now;
    this.lastUsedMs = now;
    const up = pool.address;
    if (pool.native !== null) {
      this.socket = null;
      this.native = this.openNative(pool.native.addon, up);
      this.open = true;
      this.waiting = null;
      this.local = this.native.localName();
      return;
    }
    this.socket = dgram.createSocket({ type: up.family === 6 ? 'udp6' : 'udp4' });
    try {
      this.socket.on('message', this.onMessage);
      this.socket.on('error', this.onError);
      // Binds to a random port first; a bind failure (EMFILE) comes as 'error'.
      this.socket.connect(up.port, up.host, this.onConnect);
    } catch (err) {
      this.closed = true;
      try {
        this.socket.close();
      } catch {
        // never bound
      }
      throw err;
    }
  }

  /** socket(), bind to a random port, connect() and start reading; throws (errno `code`) on failure. */
  private openNative(addon: UdpAddon, up: UpstreamAddress): NativeUdpSocket {
    const s = new addon.UdpSocket(up.family, false);
    try {
      s.bind(up.family === 6 ? '::' : '0.0.0.0', 0);
      s.connect(up.host, up.port);
      const b = (nativeBuffers ??= new NativeBuffers());
      s.start(NATIVE_SLOTS, NATIVE_SLOT_BYTES, b.recvArena, b.recvMeta, b.sendArena, b.sendMeta, this.onNativeBatch);
    } catch (err) {
      this.closed = true;
      s.close();
      throw err;
    }
    return s;
  }

  /** The addon's callback: n replies in the shared arena, or a receive error (-errno). */
  private readonly onNativeBatch = (n: number): void => {
    try {
      if (this.closed) return;
      if (n < 0) {
        this.fail(ForwardErrorCode.NETWORK, Phase.READ, errnoName(-n));
        return;
      }
      const b = nativeBuffers!;
      for (let i = 0; i < n && !this.closed; i++) {
        const len = b.recvMeta[i * META] ?? 0;
        if (b.recvMeta[i * META + 1] !== 0) {
          this.pool.stats.ignoredGarbage++;
          continue;
        }
        const msg = Buffer.allocUnsafe(len);
        const from = i * NATIVE_SLOT_BYTES;
        b.recvArena.copy(msg, 0, from, from + len);
        this.onMessage(msg);
      }
    } catch (err) {
      this.pool.onInternalError(err);
    }
  };

  /** Sends at's query on the native socket; the errno name when the kernel refused it, else null. */
  private sendNative(at: Attempt): string | null {
    const b = nativeBuffers!;
    const len = at.queryLen;
    b.sendArena.set(len === at.msg.length ? at.msg : at.msg.subarray(0, len), 0);
    const m = b.sendMeta;
    const w = this.pool.native!.words;
    m[0] = 0;
    m[1] = len;
    m[2] = this.pool.address.port;
    m[3] = this.pool.address.family;
    m[4] = w[0]!;
    m[5] = w[1]!;
    m[6] = w[2]!;
    m[7] = w[3]!;
    const r = this.native!.send(1);
    if (r < 0) return errnoName(-r);
    if ((r & 0x7ff) === 1) return null;
    return errnoName(r >>> 22);
  }

  /** connect()'s callback: with an error the socket is not connected and must not send. */
  private readonly onConnect = (err?: Error | null): void => {
    try {
      if (this.closed) return;
      if (err) {
        this.fail(ForwardErrorCode.NETWORK, Phase.DIAL, errnoOf(err));
        return;
      }
      this.open = true;
      const a = this.socket!.address();
      this.local = addrLabel(a.address, a.port, a.family);
      const waiting = this.waiting;
      this.waiting = null;
      if (waiting === null) return;
      for (const at of waiting) {
        if (at.holder === this && !this.closed) this.write(at);
      }
    } catch (e) {
      this.pool.onInternalError(e);
    }
  };

  /** Sends at's query; a synchronous throw fails the socket like an asynchronous send error. */
  private write(at: Attempt): void {
    try {
      sendQuery(this.socket!, at, this.onSent);
    } catch (err) {
      this.fail(ForwardErrorCode.NETWORK, Phase.WRITE, errnoOf(err));
    }
  }

  private readonly onSent = (err: Error | null): void => {
    if (err === null || err === undefined || this.closed) return;
    try {
      this.fail(ForwardErrorCode.NETWORK, Phase.WRITE, errnoOf(err));
    } catch (e) {
      this.pool.onInternalError(e);
    }
  };

  private readonly onMessage = (msg: Buffer): void => {
    try {
      const len = msg.length;
      // RFC 1035 §4.1.1: a reply has a full header.
      if (len < Header.SIZE) {
        this.pool.stats.ignoredGarbage++;
        return;
      }
      const at = takeReply(this.inflight, msg, len, this.pool.stats);
      if (at === null) return;
      this.lastUsedMs = this.pool.clock();
      this.maybeClose();
      at.replied(msg, len);
    } catch (err) {
      this.pool.onInternalError(err);
    }
  };

  /**
   * On a connected socket, errors are about this destination (ICMP port/host unreachable
   * surfaced by recvmsg, EPERM from a firewall...): every query in flight on it fails now
   * instead of waiting for its timeout, and the socket is replaced.
   */
  private readonly onError = (err: Error & { code?: string; syscall?: string }): void => {
    try {
      if (this.closed) return;
      const phase = !this.open ? Phase.DIAL : err.syscall === 'send' ? Phase.WRITE : Phase.READ;
      this.fail(ForwardErrorCode.NETWORK, phase, errnoOf(err));
    } catch (e) {
      this.pool.onInternalError(e);
    }
  };

  /** Retires and closes the socket; every query on it (sent or queued) fails now. */
  fail(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string): void {
    const list = [...this.inflight.values()];
    this.inflight.clear();
    this.waiting = this.open ? null : [];
    this.pool.retire(this);
    this.close();
    for (const at of list) {
      at.holder = null;
      try {
        at.failed(code, phase, errno, this.local);
      } catch (err) {
        this.pool.onInternalError(err);
      }
    }
  }

  send(at: Attempt): SendFailure | null {
    const id = freeId(this.inflight);
    if (id < 0) return ID_EXHAUSTED_FAILURE;
    at.wireId = id;
    setMessageId(at.msg, id);
    at.holder = this;
    this.inflight.set(id, at);
    this.assigned++;
    this.lastUsedMs = this.pool.clock();
    if (!this.open) {
      this.waiting!.push(at);
      return null;
    }
    if (this.native !== null) {
      const errno = this.sendNative(at);
      // Refused (EPERM from a firewall, ECONNREFUSED left by ICMP): fails the socket's queries
      // right after this call, as dgram's send callback does.
      if (errno !== null) queueMicrotask(() => this.failAfterSend(errno));
      return null;
    }
    try {
      sendQuery(this.socket!, at, this.onSent);
    } catch (err) {
      // Synchronous: this try fails by return value; no new query goes to the socket.
      this.inflight.delete(id);
      at.holder = null;
      this.pool.retire(this);
      return new SendFailure(ForwardErrorCode.NETWORK, Phase.WRITE, errnoOf(err));
    }
    return null;
  }

  private failAfterSend(errno: string): void {
    try {
      if (!this.closed) this.fail(ForwardErrorCode.NETWORK, Phase.WRITE, errno);
    } catch (e) {
      this.pool.onInternalError(e);
    }
  }

  release(at: Attempt): void {
    if (this.inflight.get(at.wireId) === at) this.inflight.delete(at.wireId);
    if (at.holder === this) at.holder = null;
    this.maybeClose();
  }

  handOver(at: Attempt, late: Attempt): boolean {
    if (this.closed || this.inflight.get(at.wireId) !== at) {
      this.release(at);
      return false;
    }
    this.inflight.set(at.wireId, late);
    late.wireId = at.wireId;
    late.holder = this;
    if (at.holder === this) at.holder = null;
    return true;
  }

  maybeClose(): void {
    if (this.retired && this.inflight.size === 0) this.close();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.stats.udpSocketsOpen--;
    try {
      if (this.native !== null) this.native.close();
      else this.socket!.close();
    } catch {
      // Already closed by Node after an error: nothing left to release.
    }
  }
}

export class UdpPool {
  readonly address: UpstreamAddress;
  readonly stats: UpstreamStats;
  readonly clock: Clock;
  readonly opts: UdpPoolOptions;
  /** Sockets that take new queries. */
  private active: UdpSocket[] = [];
  /** Retired sockets still waiting for replies. */
  private readonly draining = new Set<UdpSocket>();
  onInternalError: (err: unknown) => void = () => {};
  /** The native batched socket for this upstream (see the header), or null: dgram. */
  readonly native: NativeUpstream | null;

  constructor(address: UpstreamAddress, stats: UpstreamStats, clock: Clock, opts: UdpPoolOptions) {
    this.address = address;
    this.stats = stats;
    this.clock = clock;
    this.opts = opts;
    this.native = nativeUpstreamFor(address);
  }

  /** Number of sockets open (active and draining). */
  get socketCount(): number {
    return this.active.length + this.draining.size;
  }

  /** Sends one try; returns a failure only when it failed synchronously. */
  send(at: Attempt): SendFailure | null {
    let s: UdpSocket;
    if (this.active.length < this.opts.socketsPerUpstream) {
      try {
        s = new UdpSocket(this, this.clock());
      } catch (err) {
        return new SendFailure(ForwardErrorCode.NETWORK, Phase.DIAL, errnoOf(err));
      }
      this.active.push(s);
      this.stats.connCacheMissesUdp++;
      this.stats.udpSocketsOpen++;
      this.stats.udpSocketsOpened++;
    } else {
      s = this.active[(Math.random() * this.active.length) | 0]!;
      this.stats.connCacheHitsUdp++;
    }
    const err = s.send(at);
    if (s.assigned >= this.opts.maxQueriesPerSocket) this.retire(s);
    return err;
  }

  retire(s: UdpSocket): void {
    if (s.retired) return;
    s.retired = true;
    const i = this.active.indexOf(s);
    if (i >= 0) this.active.splice(i, 1);
    if (s.inflight.size > 0 && !s.closed) this.draining.add(s);
    else s.close();
  }

  /** Housekeeping: retires old sockets, closes idle ones, forgets closed draining ones. */
  sweep(now: number): void {
    for (let i = this.active.length - 1; i >= 0; i--) {
      const s = this.active[i]!;
      if (now - s.createdMs >= this.opts.maxSocketAgeMs || (s.inflight.size === 0 && now - s.lastUsedMs >= this.opts.idleMs)) {
        this.retire(s);
      }
    }
    for (const s of this.draining) if (s.closed) this.draining.delete(s);
  }

  /** Closes every socket; attempts still in flight are failed with `code`. */
  closeAll(code: ForwardErrorCodeValue): void {
    const all = [...this.active, ...this.draining];
    this.active = [];
    this.draining.clear();
    for (const s of all) {
      s.retired = true;
      s.fail(code, Phase.READ, '');
    }
  }
}
