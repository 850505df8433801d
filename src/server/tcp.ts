/**
 * TCP listener per RFC 7766: 2-byte length framing (§8), several queries per connection
 * answered out of order as they complete (§6.2.1.1), idle timeout (§6.2.3), half-close
 * answered before closing (§6.2.4). What one client can make this thread hold is bounded
 * (TcpLimits; every listener of a thread shares one TcpBudget):
 *  - connections: `maxConnections` in all, `maxConnectionsPerClient` per source address. A
 *    connection over either limit takes the place of the least recently active idle
 *    connection (nothing in flight, nothing unsent) — the same client's one for its share, any
 *    for the global cap; with none idle it is closed at once (refused).
 *  - replies the kernel has not taken: past `unsentHighWaterBytes` on a connection, reading and
 *    parsing stop until they are all taken; past `maxUnsentBytesPerConnection`, or with no
 *    progress for `idleTimeoutMs`, the connection is destroyed.
 *  - queries in flight per connection: `maxInFlightPerConnection`, then reading stops.
 *  - buffered bytes of all connections (unsent replies, unparsed query bytes, and a reserve
 *    for what Node reads ahead on a paused socket): over `maxBufferedBytes`, the connections
 *    holding bytes the longest are destroyed first.
 *  - descriptors: the connection caps shrink to half of the open-files limit (less a reserve
 *    of 64) when that is low (tcpLimitsFor), so TCP clients cannot starve forwarding or HTTP of descriptors.
 *    When accept() still fails with EMFILE/ENFILE (descriptors used elsewhere), libuv closes
 *    the pending connections through a reserved descriptor without telling Node and keeps
 *    listening (no exit, no busy loop; accepting resumes once descriptors free up); accept
 *    errors that do reach the server's 'error' event are counted and logged (throttled).
 * Every closure for a bound is counted in `tcpStats` (exported as nodelocaldns_tcp_*).
 *
 * Timeouts per listener (`setTimeouts`, from the `timeouts` plugin; CoreDNS's read/write/idle of
 * its TCP servers). Unset ones fall back to the budget's `idleTimeoutMs`:
 *  - read: a new connection must deliver its first query within it, and any query whose first
 *    byte arrived must be complete within it (a trickling client is cut: slow_frame);
 *  - idle: after the first query, a connection with nothing in flight is closed after this
 *    long without traffic;
 *  - write: unsent replies that make no progress for this long destroy the connection (write_stall).
 *
 * Adopted sockets (a standby serving the primary's listening sockets, udp-adopt.ts): a listener
 * may also accept from a peer's listening socket of its own address and port (`acceptFrom`,
 * a TcpAcceptor). Those connections are this listener's: same handling, timeouts, dispatcher,
 * and the same TcpBudget bounds; they are drained and destroyed with the listener's own.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import { closeSync, readFileSync } from 'node:fs';
import type { ResponseWriter } from '../plugin.ts';
import { Request, Proto } from './request.ts';
import { FRAME_PREFIX, FrameBuffer, MIN_FRAME, frameInto } from '../wire/tcp-frame.ts';
import type { Dispatcher } from './dispatch.ts';
import { log } from '../util/log.ts';
import type { SnapshotBuilder } from '../metrics/snapshot.ts';
import { listenerDrain, trackTcpListener } from './udp-adopt.ts';

export interface TcpLimits {
  /** Close a connection with nothing in flight after this long without a query (RFC 7766 §6.2.3); also the longest a connection may make no write progress. */
  idleTimeoutMs: number;
  /** Connections open at once on every listener of a thread. */
  maxConnections: number;
  /** Connections open at once from one source address. */
  maxConnectionsPerClient: number;
  /** Queries in flight per connection before reading pauses. */
  maxInFlightPerConnection: number;
  /** Unsent reply bytes on a connection above which reading pauses until they are sent. */
  unsentHighWaterBytes: number;
  /** Unsent reply bytes on a connection above which it is destroyed. */
  maxUnsentBytesPerConnection: number;
  /** Buffered bytes (unsent, unparsed, read-ahead reserve) of all connections of a thread. */
  maxBufferedBytes: number;
}

/**
 * Derived from the 48 MiB the manifests' 256 MiB limit leaves the TCP listener: an idle
 * connection costs ~5.5 KiB of RSS in this process plus ~3 KiB of kernel socket memory
 * (charged to the same cgroup), so 2,048 connections take ~17 MiB; buffered bytes take at most
 * 16 MiB; the rest is slack for replies being written and for GC. Default per client: 1/8.
 * With a low open-files limit the caps shrink to fit it (tcpLimitsFor).
 */
export const DEFAULT_TCP_LIMITS: TcpLimits = {
  idleTimeoutMs: 10_000,
  maxConnections: 2_048,
  maxConnectionsPerClient: 256,
  maxInFlightPerConnection: 100,
  unsentHighWaterBytes: 16 * 1024,
  maxUnsentBytesPerConnection: 256 * 1024,
  maxBufferedBytes: 16 * 1024 * 1024,
};

/** Descriptors kept out of the TCP clients' share: the process's own (~25: runtime, listeners, stdio) and a margin. */
const FD_RESERVE = 64;
/** Share of the other descriptors TCP clients may hold (the rest: upstream sockets, HTTP, files). */
const FD_SHARE = 0.5;
/** A client's share of the connections. */
const CLIENT_SHARE_DIVISOR = 8;

/** The soft open-files limit in /proc/self/limits text (Node raised it to the hard limit at start); Infinity when unknown. */
export function openFilesLimit(limitsText: string | null): number {
  const m = limitsText === null ? null : /^Max open files\s+(\d+|unlimited)/m.exec(limitsText);
  return m === null || m[1] === 'unlimited' ? Infinity : Number(m[1]);
}

/**
 * `base` with the connection caps lowered to fit `openFiles` descriptors: TCP clients may
 * hold half of those beyond FD_RESERVE, so they never starve forwarding, HTTP or reloads of descriptors
 * (an accept that fails with EMFILE is shed silently by libuv; admission here is counted).
 */
export function tcpLimitsFor(openFiles: number, base: TcpLimits = DEFAULT_TCP_LIMITS): TcpLimits {
  const maxConnections = Math.max(1, Math.min(base.maxConnections, Math.floor((openFiles - FD_RESERVE) * FD_SHARE)));
  if (maxConnections === base.maxConnections) return base;
  return {
    ...base,
    maxConnections,
    maxConnectionsPerClient: Math.max(1, Math.min(base.maxConnectionsPerClient, Math.floor(maxConnections / CLIENT_SHARE_DIVISOR))),
  };
}

function readProcLimits(): string | null {
  try {
    return readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return null;
  }
}

/** Readable high-water mark of accepted sockets: what Node buffers beyond one read once paused. */
const READ_HIGH_WATER_BYTES = 4 * 1024;
/** Largest read libuv makes (its 64 KiB allocation), so a paused socket holds at most this plus the high-water mark. */
const MAX_READ_BYTES = 64 * 1024;
/** Counted for a paused connection: Node keeps reading until its buffer passes the high-water mark. */
export const PAUSED_READ_RESERVE_BYTES = MAX_READ_BYTES + READ_HIGH_WATER_BYTES;

/** Written after a partly queued reply: its callback says when the queue before it is sent. */
const EMPTY = Buffer.alloc(0);

/** The listener's reusable framing buffer: a full 64 KiB message and its 2-byte prefix. */
const SCRATCH_BYTES = 65_537;

/** Why the server closed a connection before its client did (nodelocaldns_tcp_connections_closed_total{reason}). */
export const TcpCloseReason = {
  /** A frame shorter than a DNS header: the stream is not DNS. */
  MALFORMED_FRAME: 'malformed_frame',
  /** One frame took longer than the idle timeout to arrive. */
  SLOW_FRAME: 'slow_frame',
  /** Unsent replies passed maxUnsentBytesPerConnection. */
  UNSENT_LIMIT: 'unsent_limit',
  /** Unsent replies made no progress for idleTimeoutMs: the client does not read. */
  WRITE_STALL: 'write_stall',
  /** All connections' buffered bytes passed maxBufferedBytes; this one held bytes longest. */
  BUFFER_BUDGET: 'buffer_budget',
  /** Idle, evicted to admit a new connection of the same client at its share. */
  CLIENT_SHARE: 'client_share',
  /** Idle, evicted to admit a new connection at the global cap. */
  CONNECTION_LIMIT: 'connection_limit',
} as const;
export type TcpCloseReasonValue = (typeof TcpCloseReason)[keyof typeof TcpCloseReason];

/** Why a new connection was closed at once (nodelocaldns_tcp_connections_refused_total{reason}). */
export const TcpRefuseReason = {
  CLIENT_SHARE: 'client_share',
  CONNECTION_LIMIT: 'connection_limit',
} as const;
export type TcpRefuseReasonValue = (typeof TcpRefuseReason)[keyof typeof TcpRefuseReason];

/** Why reading paused on a connection (nodelocaldns_tcp_read_pauses_total{reason}). */
export const TcpPauseReason = {
  IN_FLIGHT: 'in_flight',
  UNSENT: 'unsent',
} as const;
export type TcpPauseReasonValue = (typeof TcpPauseReason)[keyof typeof TcpPauseReason];

/** Counters of a thread's TCP listeners (all of them). */
export class TcpStats {
  readonly closed = new Map<TcpCloseReasonValue, number>();
  readonly refused = new Map<TcpRefuseReasonValue, number>();
  readonly readPauses = new Map<TcpPauseReasonValue, number>();
  /** Accept failures by errno code (EMFILE, ENFILE, ...). */
  readonly acceptErrors = new Map<string, number>();

  count<K>(m: Map<K, number>, key: K): void {
    m.set(key, (m.get(key) ?? 0) + 1);
  }

  closedBy(reason: TcpCloseReasonValue): number {
    return this.closed.get(reason) ?? 0;
  }

  refusedBy(reason: TcpRefuseReasonValue): number {
    return this.refused.get(reason) ?? 0;
  }
}

/** Logs one line per key at most every `intervalMs`, with how many were left out since. */
class ThrottledLog {
  private readonly lastMs = new Map<string, number>();
  private readonly suppressed = new Map<string, number>();
  private readonly intervalMs: number;
  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  warn(key: string, msg: string): void {
    const now = performance.now();
    const last = this.lastMs.get(key);
    if (last !== undefined && now - last < this.intervalMs) {
      this.suppressed.set(key, (this.suppressed.get(key) ?? 0) + 1);
      return;
    }
    const n = this.suppressed.get(key) ?? 0;
    this.lastMs.set(key, now);
    this.suppressed.delete(key);
    log.warn(n > 0 ? `${msg} (${n} more since the last such line)` : msg);
  }
}

const LOG_INTERVAL_MS = 10_000;

/** The connections of one source address. */
class ClientShare {
  readonly address: string;
  count = 0;
  /** Its idle connections, least recently active first. */
  readonly idle = new Set<TcpConnection>();
  constructor(address: string) {
    this.address = address;
  }
}

/**
 * The bounds every TCP listener of a thread shares: connection admission with per-client
 * shares and idle-LRU eviction, and the buffered-bytes budget.
 */
export class TcpBudget {
  readonly limits: TcpLimits;
  readonly stats: TcpStats;
  connections = 0;
  /** Sum of every connection's buffered bytes. */
  bufferedBytes = 0;
  private readonly clients = new Map<string, ClientShare>();
  /** Idle connections, least recently active first. */
  private readonly idle = new Set<TcpConnection>();
  /** Connections holding buffered bytes, longest holding first. */
  private readonly holders = new Set<TcpConnection>();
  readonly logs = new ThrottledLog(LOG_INTERVAL_MS);

  constructor(limits: TcpLimits = DEFAULT_TCP_LIMITS, stats: TcpStats = new TcpStats()) {
    this.limits = limits;
    this.stats = stats;
  }

  /** Makes room for a connection from `address` (evicting an idle one if needed); null: refused. */
  admit(address: string): ClientShare | null {
    const share = this.clients.get(address);
    if (share !== undefined && share.count >= this.limits.maxConnectionsPerClient) {
      const victim = first(share.idle);
      if (victim === null) return this.refuse(TcpRefuseReason.CLIENT_SHARE, address);
      victim.evict(TcpCloseReason.CLIENT_SHARE);
    } else if (this.connections >= this.limits.maxConnections) {
      const victim = first(this.idle);
      if (victim === null) return this.refuse(TcpRefuseReason.CONNECTION_LIMIT, address);
      victim.evict(TcpCloseReason.CONNECTION_LIMIT);
    }
    let s = this.clients.get(address);
    if (s === undefined) {
      s = new ClientShare(address);
      this.clients.set(address, s);
    }
    s.count++;
    this.connections++;
    return s;
  }

  private refuse(reason: TcpRefuseReasonValue, address: string): null {
    this.stats.count(this.stats.refused, reason);
    const what =
      reason === TcpRefuseReason.CLIENT_SHARE
        ? `${this.limits.maxConnectionsPerClient} connections from ${address}`
        : `${this.limits.maxConnections} connections`;
    this.logs.warn(`refuse:${reason}`, `TCP: refused a connection from ${address}: ${what} open, none idle (${reason})`);
    return null;
  }

  /** The connection is gone: its slot, idle entry and buffered bytes are released. */
  release(c: TcpConnection): void {
    this.setIdle(c, false);
    this.setHeld(c, 0);
    const share = c.share;
    share.count--;
    this.connections--;
    if (share.count === 0) this.clients.delete(share.address);
  }

  setIdle(c: TcpConnection, idle: boolean): void {
    if (c.idle === idle) return;
    c.idle = idle;
    if (idle) {
      this.idle.add(c);
      c.share.idle.add(c);
    } else {
      this.idle.delete(c);
      c.share.idle.delete(c);
    }
  }

  /** Records what `c` buffers now; over the budget, the longest holders are destroyed. */
  setHeld(c: TcpConnection, bytes: number): void {
    if (bytes === c.heldBytes) return;
    this.bufferedBytes += bytes - c.heldBytes;
    if (c.heldBytes === 0) this.holders.add(c);
    else if (bytes === 0) this.holders.delete(c);
    c.heldBytes = bytes;
    if (this.bufferedBytes <= this.limits.maxBufferedBytes) return;
    for (const h of this.holders) {
      if (this.bufferedBytes <= this.limits.maxBufferedBytes) break;
      h.abort(TcpCloseReason.BUFFER_BUDGET);
    }
  }

  clientCount(address: string): number {
    return this.clients.get(address)?.count ?? 0;
  }

  get idleCount(): number {
    return this.idle.size;
  }
}

function first<T>(s: Set<T>): T | null {
  for (const x of s) return x;
  return null;
}

/** node-local-dns's own TCP listener metrics (CoreDNS has none for these bounds). */
export const TCP_METRICS = {
  connections: { name: 'nodelocaldns_tcp_connections', help: 'Open TCP connections of the DNS listeners.' },
  bufferedBytes: {
    name: 'nodelocaldns_tcp_buffered_bytes',
    help: 'Bytes held for TCP connections: unsent replies, unparsed queries, read-ahead reserve of paused connections.',
  },
  closed: { name: 'nodelocaldns_tcp_connections_closed_total', help: 'TCP connections closed by the server for a bound, by reason.' },
  refused: {
    name: 'nodelocaldns_tcp_connections_refused_total',
    help: 'TCP connections closed on accept because their client or the listener was at its limit with none idle, by reason.',
  },
  readPauses: { name: 'nodelocaldns_tcp_read_pauses_total', help: 'Times reading paused on a TCP connection, by reason.' },
  acceptErrors: { name: 'nodelocaldns_tcp_accept_errors_total', help: 'Failed accepts on the TCP listeners, by errno code.' },
} as const;

/** Writes a budget's gauges and counters (counters only once non-zero, as for nodelocaldns_dropped_packets_total). */
export function collectTcp(budget: TcpBudget, out: SnapshotBuilder): void {
  const M = TCP_METRICS;
  out.family(M.connections.name, M.connections.help, 'gauge').add({}, budget.connections);
  out.family(M.bufferedBytes.name, M.bufferedBytes.help, 'gauge').add({}, budget.bufferedBytes);
  const s = budget.stats;
  const counters: [{ name: string; help: string }, string, Map<string, number>][] = [
    [M.closed, 'reason', s.closed],
    [M.refused, 'reason', s.refused],
    [M.readPauses, 'reason', s.readPauses],
    [M.acceptErrors, 'code', s.acceptErrors],
  ];
  for (const [m, label, values] of counters) {
    if (values.size === 0) continue;
    const f = out.family(m.name, m.help, 'counter');
    for (const [k, n] of values) f.add({ [label]: k }, n);
  }
}

/** The thread's TCP counters and budget (one per worker thread). */
export const tcpStats = new TcpStats();
export const tcpBudget = new TcpBudget(tcpLimitsFor(openFilesLimit(readProcLimits())), tcpStats);

/** A listener's TCP timeouts (ms); null: the budget's idleTimeoutMs. */
export interface TcpTimeouts {
  readTimeoutMs: number | null;
  writeTimeoutMs: number | null;
  idleTimeoutMs: number | null;
}

export class TcpConnection implements ResponseWriter {
  private readonly socket: net.Socket;
  private readonly listener: TcpListener;
  private readonly budget: TcpBudget;
  private readonly limits: TcpLimits;
  readonly share: ClientShare;
  /** Received bytes not yet parsed into queries (an incomplete frame, or frames left while paused). */
  private readonly received = new FrameBuffer();
  /** When the first byte of `received` arrived (or reading resumed), for the slow-frame check. */
  private chunkSinceMs = 0;
  inFlight = 0;
  /** Bytes of the queries in flight (their messages stay referenced until answered). */
  private inFlightBytes = 0;
  /** Reply bytes handed to the socket and not yet taken by the kernel (last look). */
  unsentBytes = 0;
  /** Size of a listener scratch buffer the socket still holds for this connection's unsent bytes. */
  private scratchHeldBytes = 0;
  private pausedInFlight = false;
  private pausedUnsent = false;
  /** While paused on unsent replies: fires after idleTimeoutMs without a write completing. */
  private stallTimer: NodeJS.Timeout | null = null;
  private parsing = false;
  /** A query was taken since the last idle-LRU update (parse() moves the connection to the recent end). */
  private tookQuery = false;
  /** The client half-closed: answer what it sent, then close. */
  private peerEnded = false;
  /** Close once nothing is in flight; take no more queries. */
  private closing = false;
  /** socket.end() was called. */
  private ended = false;
  /** Destroyed or closed for good: nothing more is read or accounted. */
  dead = false;
  /** In the budget's idle LRU. */
  idle = false;
  /** What the budget counts for this connection. */
  heldBytes = 0;
  private readonly family: 4 | 6;
  private readonly remoteAddress: string;
  private readonly remotePort: number;
  private readonly onFlushed = (err?: Error | null): void => this.flushed(err);
  private readonly onStall = (): void => this.abort(TcpCloseReason.WRITE_STALL);
  /** Timeouts of this connection (the listener's when it was accepted). */
  private readonly readTimeoutMs: number;
  private readonly writeTimeoutMs: number;
  private readonly idleTimeoutMs: number;
  /** Still waiting for its first query (the socket timeout is the read timeout until then). */
  private firstQuery = true;

  constructor(socket: net.Socket, listener: TcpListener, share: ClientShare) {
    this.socket = socket;
    this.listener = listener;
    this.budget = listener.budget;
    this.limits = listener.budget.limits;
    this.share = share;
    this.family = socket.remoteFamily === 'IPv6' ? 6 : 4;
    this.remoteAddress = share.address;
    this.remotePort = socket.remotePort ?? 0;
    this.readTimeoutMs = listener.readTimeoutMs;
    this.writeTimeoutMs = listener.writeTimeoutMs;
    this.idleTimeoutMs = listener.idleTimeoutMs;
    socket.setNoDelay(true);
    socket.setTimeout(this.readTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => this.onTimeout());
    socket.on('error', () => this.destroy());
    socket.on('end', () => {
      this.peerEnded = true;
      this.maybeFinish();
    });
    socket.on('close', () => this.gone());
    this.budget.setIdle(this, true);
  }

  get paused(): boolean {
    return this.pausedInFlight || this.pausedUnsent;
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    if (this.received.bytes > 0 && performance.now() - this.chunkSinceMs > this.readTimeoutMs) {
      // RFC 7766 §6.2.3 idle timeout applied to a whole frame: a client trickling bytes
      // does not keep a connection (and its buffer) forever.
      this.abort(TcpCloseReason.SLOW_FRAME);
      return;
    }
    if (this.received.bytes === 0) this.chunkSinceMs = performance.now();
    this.received.push(chunk);
    this.parse();
  }

  /** Takes complete frames while not paused; keeps the rest. */
  private parse(): void {
    if (this.parsing) return;
    this.parsing = true;
    while (!this.dead && !this.closing && !this.paused && !this.socket.destroyed) {
      const len = this.received.nextLength();
      if (len < 0) break;
      if (len < MIN_FRAME) {
        // Cannot hold a DNS header: the stream is not DNS or is desynchronised.
        this.parsing = false;
        this.abort(TcpCloseReason.MALFORMED_FRAME);
        return;
      }
      const msg = this.received.take(false);
      if (msg === null) break;
      this.query(msg);
    }
    this.parsing = false;
    if (this.dead) return;
    this.updateIdle();
    // Only an incomplete frame left of a larger read: keep a copy, not the whole read (not
    // while paused: the frames left then are taken on resume).
    if (!this.paused || this.received.bytes === 0) this.received.compact();
    this.account();
    this.maybeFinish();
  }

  private query(msg: Buffer): void {
    if (this.firstQuery) {
      this.firstQuery = false;
      if (this.idleTimeoutMs !== this.readTimeoutMs) this.socket.setTimeout(this.idleTimeoutMs);
    }
    this.inFlight++;
    this.inFlightBytes += msg.length;
    this.tookQuery = true;
    if (this.inFlight >= this.limits.maxInFlightPerConnection) this.pause(TcpPauseReason.IN_FLIGHT);
    const req = new Request(msg, msg.length, this);
    req.proto = Proto.TCP;
    req.family = this.family;
    req.remoteAddress = this.remoteAddress;
    req.remotePort = this.remotePort;
    req.startMs = this.listener.dispatcher.clock();
    req.udpSize = 65535;
    const before = this.listener.dispatcher.inFlight;
    this.listener.dispatcher.dispatch(req);
    // A dropped query (e.g. a response sent to us) never reaches writeMsg.
    if (this.listener.dispatcher.inFlight === before && !req.replied) this.done(msg.length);
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    if (!this.dead && this.socket.writable) {
      const framed = len + FRAME_PREFIX;
      if (this.socket.writableLength > 0) {
        // Queued behind other bytes: a buffer of its own, and word once it is sent.
        const out = Buffer.allocUnsafe(framed);
        frameInto(out, msg, len);
        this.socket.write(out, this.onFlushed);
      } else {
        // The listener's scratch buffer: when the kernel takes the reply at once (the usual
        // case) nothing is allocated per reply.
        const out = this.listener.scratch(framed);
        frameInto(out, msg, len);
        this.socket.write(out.subarray(0, framed));
        if (this.socket.writableLength > 0) {
          // Partly queued: the socket keeps the scratch buffer until it is sent, and an empty
          // write behind it reports when that is.
          this.listener.giveAwayScratch();
          this.scratchHeldBytes = out.buffer.byteLength;
          this.socket.write(EMPTY, this.onFlushed);
        }
      }
      this.unsentBytes = this.socket.writableLength;
      if (this.unsentBytes > 0) this.startStallTimer();
      if (this.unsentBytes > this.limits.maxUnsentBytesPerConnection) this.abort(TcpCloseReason.UNSENT_LIMIT);
      else if (this.unsentBytes > this.limits.unsentHighWaterBytes) this.pause(TcpPauseReason.UNSENT);
    }
    this.listener.dispatcher.finish(req);
    this.done(req.msgLen);
  }

  /** A write completed (or failed: the peer is gone): look at what is still queued. */
  private flushed(err: Error | null | undefined): void {
    if (this.dead) return;
    if (err) {
      this.destroy();
      return;
    }
    this.unsentBytes = this.socket.writableLength;
    if (this.unsentBytes === 0) {
      this.scratchHeldBytes = 0;
      this.stopStallTimer();
    }
    if (this.unsentBytes === 0 && this.pausedUnsent) {
      this.pausedUnsent = false;
      this.unpaused();
    } else if (this.stallTimer !== null) {
      // Progress: the client reads.
      this.stallTimer.refresh();
    }
    this.account();
    this.updateIdle();
  }

  private done(queryBytes: number): void {
    this.inFlight--;
    this.inFlightBytes -= queryBytes;
    if (this.pausedInFlight && this.inFlight < this.limits.maxInFlightPerConnection) {
      this.pausedInFlight = false;
      this.unpaused();
    }
    if (this.dead) return;
    this.account();
    // Inside parse() the loop's end updates the LRU once for all the queries it took.
    if (!this.parsing) this.updateIdle();
    this.maybeFinish();
  }

  private pause(reason: TcpPauseReasonValue): void {
    if (reason === TcpPauseReason.IN_FLIGHT) {
      if (this.pausedInFlight) return;
      this.pausedInFlight = true;
    } else {
      if (this.pausedUnsent) return;
      this.pausedUnsent = true;
      this.startStallTimer();
    }
    this.budget.stats.count(this.budget.stats.readPauses, reason);
    this.socket.pause();
  }

  /** One pause reason cleared: read and parse again when none is left. */
  private unpaused(): void {
    if (this.paused || this.dead) return;
    this.socket.resume();
    if (this.received.bytes > 0) this.chunkSinceMs = performance.now();
    this.parse();
  }

  /**
   * Times unsent replies: after the write timeout without a write completing, the connection
   * is destroyed. Node's own socket timeout would wait up to twice as long (it skips once when
   * the write queue changed since the last write), so the stall has its own timer.
   */
  private startStallTimer(): void {
    if (this.stallTimer !== null) return;
    this.stallTimer = setTimeout(this.onStall, this.writeTimeoutMs);
    this.stallTimer.unref();
  }

  private stopStallTimer(): void {
    if (this.stallTimer === null) return;
    clearTimeout(this.stallTimer);
    this.stallTimer = null;
  }

  /** Idle (evictable) when nothing is in flight or unsent; a query taken moves it to the recent end. */
  private updateIdle(): void {
    if (this.dead) return;
    const idle = this.inFlight === 0 && this.unsentBytes === 0;
    if (idle && this.tookQuery) this.budget.setIdle(this, false);
    this.tookQuery = false;
    this.budget.setIdle(this, idle);
  }

  /** Tells the budget what this connection holds now. */
  private account(): void {
    const unsent = Math.max(this.unsentBytes, this.scratchHeldBytes);
    this.budget.setHeld(this, unsent + this.received.bytes + this.inFlightBytes + (this.paused ? PAUSED_READ_RESERVE_BYTES : 0));
  }

  private onTimeout(): void {
    if (this.socket.writableLength > 0) {
      // Unsent replies are timed by the stall timer (the write timeout).
      if (this.stallTimer === null) this.abort(TcpCloseReason.WRITE_STALL);
      return;
    } else if (this.inFlight === 0) this.close();
  }

  /** Closes when nothing is in flight and nothing more will be taken. */
  private maybeFinish(): void {
    if (this.dead || this.ended || this.inFlight > 0) return;
    if (this.closing || this.listener.draining) this.close();
    else if (this.peerEnded && !this.paused && !this.hasCompleteFrame()) this.close();
  }

  private hasCompleteFrame(): boolean {
    return this.received.hasFrame();
  }

  /** Closes once nothing is in flight (used on drain). */
  drain(): void {
    this.closing = true;
    this.maybeFinish();
  }

  /**
   * Ends the connection: FIN after what is queued. With nothing queued the slot is released
   * now; otherwise when the socket closes, or when the queue stalls (onTimeout destroys it).
   */
  close(): void {
    if (this.dead || this.ended) return;
    this.closing = true;
    this.ended = true;
    if (this.socket.writableLength === 0) this.gone();
    this.socket.end();
    this.socket.destroySoon();
  }

  /** Evicted while idle to admit another connection: a clean close (RFC 7766 §6.2.3). */
  evict(reason: TcpCloseReasonValue): void {
    this.count(reason, 'evicted an idle connection to admit a new one');
    this.close();
    this.gone();
  }

  /** Destroyed for a bound: counted, logged (throttled). */
  abort(reason: TcpCloseReasonValue): void {
    if (!this.socket.destroyed) this.count(reason, 'closed a connection');
    this.destroy();
  }

  private count(reason: TcpCloseReasonValue, what: string): void {
    this.budget.stats.count(this.budget.stats.closed, reason);
    this.budget.logs.warn(`close:${reason}`, `TCP ${this.listener.dispatcher.serverLabel}: ${what} from ${this.remoteAddress} (${reason})`);
  }

  destroy(): void {
    this.closing = true;
    this.gone();
    this.socket.destroy();
  }

  /** Leaves the budget and the listener, drops what it buffered (once). */
  private gone(): void {
    if (this.dead) return;
    this.dead = true;
    this.stopStallTimer();
    this.received.clear();
    this.unsentBytes = 0;
    this.scratchHeldBytes = 0;
    this.budget.release(this);
    this.listener.forget(this);
  }
}

export class TcpListener {
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  readonly budget: TcpBudget;
  private readonly server: net.Server;
  private readonly connections = new Set<TcpConnection>();
  private readonly reusePort: boolean;
  draining = false;
  accepted = 0;
  /** Timeouts new connections get (see setTimeouts). */
  readTimeoutMs: number;
  writeTimeoutMs: number;
  idleTimeoutMs: number;
  /** Reused for framing replies while the kernel takes them whole (see TcpConnection.writeMsg). */
  private scratchBuf: Buffer | null = null;
  /** Peers' listening sockets this listener accepts from too (acceptFrom). */
  private readonly acceptors = new Set<TcpAcceptor>();

  constructor(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean, budget: TcpBudget = tcpBudget) {
    this.address = address;
    this.port = port;
    this.dispatcher = dispatcher;
    this.budget = budget;
    this.reusePort = reusePort;
    this.readTimeoutMs = this.writeTimeoutMs = this.idleTimeoutMs = budget.limits.idleTimeoutMs;
    this.server = this.createServer();
  }

  /** A server with this listener's connection options, whose connections and accept errors are this listener's. */
  createServer(): net.Server {
    // Half-open: a client's FIN ends its queries, not our replies (RFC 7766 §6.2.4).
    const server = net.createServer({ noDelay: true, pauseOnConnect: false, allowHalfOpen: true, highWaterMark: READ_HIGH_WATER_BYTES }, (socket) =>
      this.onConnection(socket),
    );
    server.on('error', (err: NodeJS.ErrnoException) => this.onServerError(err));
    return server;
  }

  get limits(): TcpLimits {
    return this.budget.limits;
  }

  /**
   * The read, write and idle timeouts of connections accepted from now on (the `timeouts`
   * plugin of the block(s) served here); a null one is the budget's idleTimeoutMs. Open
   * connections keep the timeouts they were accepted with.
   */
  setTimeouts(t: TcpTimeouts): void {
    const dflt = this.budget.limits.idleTimeoutMs;
    this.readTimeoutMs = t.readTimeoutMs ?? dflt;
    this.writeTimeoutMs = t.writeTimeoutMs ?? dflt;
    this.idleTimeoutMs = t.idleTimeoutMs ?? dflt;
  }

  /** A buffer of at least `bytes` for one write (small replies share a small one). */
  scratch(bytes: number): Buffer {
    if (bytes > SCRATCH_BYTES) return Buffer.allocUnsafe(bytes);
    this.scratchBuf ??= Buffer.allocUnsafeSlow(SCRATCH_BYTES);
    return this.scratchBuf;
  }

  /** The socket kept the scratch buffer (the write was queued): the next write takes a new one. */
  giveAwayScratch(): void {
    this.scratchBuf = null;
  }

  /** A connection accepted on our socket or on an adopted one (TcpAcceptor). */
  onConnection(socket: net.Socket): void {
    this.accepted++;
    socket.on('error', () => socket.destroy());
    const address = socket.remoteAddress;
    if (address === undefined || this.draining) {
      // Already reset by the peer, or the listener is closing.
      socket.destroy();
      return;
    }
    const share = this.budget.admit(address);
    if (share === null) {
      socket.destroy();
      return;
    }
    this.connections.add(new TcpConnection(socket, this, share));
  }

  /** Accept failures (EMFILE, ENFILE, ENOMEM, ...): libuv keeps listening; count and log. */
  onServerError(err: NodeJS.ErrnoException): void {
    const code = err.code ?? 'unknown';
    this.budget.stats.count(this.budget.stats.acceptErrors, code);
    this.budget.logs.warn(`accept:${code}`, `TCP ${this.dispatcher.serverLabel}: accept: ${err.message}`);
  }

  forget(c: TcpConnection): void {
    this.connections.delete(c);
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ host: this.address, port: this.port, reusePort: this.reusePort, ipv6Only: this.address.includes(':'), backlog: 1024 }, () => {
        this.server.off('error', onError);
        const a = this.server.address();
        if (a && typeof a === 'object') this.port = a.port;
        trackTcpListener(this);
        resolve(this.port);
      });
    });
  }

  /**
   * Also accepts from `fd`, a peer's listening socket of this listener's address and port
   * (checked by the caller: native tcpListenerName). Takes the fd over: the acceptor's handle
   * owns it from the listen on (closed on failure and by TcpAcceptor.close). Rejects when the
   * listener is closed (the fd is closed then) or the listen fails.
   */
  acceptFrom(fd: number): Promise<TcpAcceptor> {
    if (this.draining) {
      closeSync(fd);
      return Promise.reject(new Error('listener closed'));
    }
    const acceptor = new TcpAcceptor(this);
    this.acceptors.add(acceptor);
    return acceptor.listen(fd).then(
      () => acceptor,
      (err: Error) => {
        this.acceptors.delete(acceptor);
        throw err;
      },
    );
  }

  /** The acceptor stopped (TcpAcceptor.close). */
  forgetAcceptor(a: TcpAcceptor): void {
    this.acceptors.delete(a);
  }

  /** Stops accepting (adopted sockets included: our copies are closed); open connections close as soon as their queries are answered. */
  close(): Promise<void> {
    this.draining = true;
    for (const a of [...this.acceptors]) void a.close(false);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.connections]) c.drain();
    return closed;
  }

  /** Drops every connection now (second signal, or drain timeout). */
  destroyAll(): void {
    for (const c of [...this.connections]) c.destroy();
  }
}

/** What net.Server gives the sockets it accepts (noDelay is set by TcpConnection). */
function queuedSocketOptions(fd: number): net.SocketConstructorOpts {
  const opts: net.SocketConstructorOpts & { readableHighWaterMark: number; writableHighWaterMark: number } = {
    fd,
    readable: true,
    writable: true,
    allowHalfOpen: true,
    readableHighWaterMark: READ_HIGH_WATER_BYTES,
    writableHighWaterMark: READ_HIGH_WATER_BYTES,
  };
  return opts;
}

/**
 * A peer's listening socket a TcpListener accepts from beside its own (TcpListener.acceptFrom;
 * the adoption side is udp-adopt.ts). Its connections go to the listener. Closing it closes only
 * our descriptor: while another process holds the socket it stays open, listening and queued
 * there; when ours was the last descriptor, connections still in its accept queue are reset by
 * the kernel (hence `drain`).
 */
export class TcpAcceptor {
  readonly listener: TcpListener;
  /** Connections accepted on this socket. */
  accepted = 0;
  closed = false;
  private readonly server: net.Server;

  constructor(listener: TcpListener) {
    this.listener = listener;
    this.server = listener.createServer();
    this.server.prependListener('connection', () => this.accepted++);
  }

  /** Node accepts on an already listening descriptor (listen() again only sets the backlog: the listener's). */
  listen(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.server.once('error', onError);
      this.server.listen({ fd, backlog: 1024 }, () => {
        this.server.off('error', onError);
        resolve();
      });
    });
  }

  /**
   * Stops accepting and closes our descriptor. `drain` (the owner is gone: ours is the last
   * descriptor, so whatever is still queued would be reset at the close): libuv's descriptor is
   * duplicated and closed, then the duplicate's queue is accepted until EAGAIN and closed in
   * one native call (acceptAndClose), and those connections are served here. Only a handshake
   * completing between that last accept and the close (about a microsecond), or still in
   * progress (SYN-ACK sent, last ACK not yet in), is reset (docs/zero-downtime.md; closing
   * after an event-loop poll phase instead reset as many as a plain close under load:
   * test/netns/tcp-release-measure.ts). Connections already accepted stay the listener's.
   */
  close(drain: boolean): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.listener.forgetAcceptor(this);
    const helper = drain ? listenerDrain() : null;
    const fd = (this.server as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
    let dup = -1;
    if (helper !== null && typeof fd === 'number' && fd >= 0) {
      try {
        dup = helper.dupFd(fd);
      } catch {
        // no descriptor left: a plain close
      }
    }
    // Closes libuv's descriptor now (the callback would wait for every connection accepted
    // here, which are the listener's to close).
    this.server.close();
    if (dup >= 0) this.serveQueued(helper!, dup);
    return Promise.resolve();
  }

  /** Accepts what `fd` (our last descriptor of the socket) has queued, closes it, serves those connections. */
  private serveQueued(helper: { acceptAndClose(fd: number): number[] }, fd: number): void {
    let queued: number[];
    try {
      queued = helper.acceptAndClose(fd);
    } catch {
      closeSync(fd);
      return;
    }
    for (const c of queued) {
      let socket: net.Socket;
      try {
        socket = new net.Socket(queuedSocketOptions(c));
      } catch {
        closeSync(c);
        continue;
      }
      this.accepted++;
      this.listener.onConnection(socket);
    }
  }
}
