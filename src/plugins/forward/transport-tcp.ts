/**
 * TCP transport to one upstream (RFC 7766): a small pool of persistent, pipelined
 * connections. Many queries are in flight on one connection at once (RFC 7766 §6.2.1.1),
 * each with a CSPRNG ID unique on that connection; replies are matched by ID and question and
 * may arrive in any order (§7). Messages carry the 2-byte length prefix of RFC 1035 §4.2.2.
 *
 * Pool policy: a query goes to the open connection with the fewest queries in flight; a new
 * connection is dialled only when every connection already has `pipelineDepth` or more in
 * flight and there are fewer than `maxConns`. The depth is kept small on purpose: CoreDNS
 * (kube-dns, the usual upstream) and other miekg/dns servers answer the queries of one TCP
 * connection one after the other, so a deep pipeline on one connection would put fast
 * queries behind slow ones and would pin all load on one kube-dns pod; a few connections
 * spread it. Connections idle for `idleMs` (forward's `expire`) are closed.
 *
 * Failure handling: a connection that is reset, refused, closed by the peer, or that sends a
 * frame whose length is 0 or shorter than a DNS header is closed and every query in flight on
 * it fails at once (the handler then moves on to its next try) rather than waiting for its
 * read timeout. A graceful close (EOF) of a connection that had already answered is reported
 * as CACHED_CLOSED (CoreDNS's ErrCachedClosed: retry the same upstream). A query that times
 * out on a connection that received nothing during the whole timeout marks it suspect (it
 * may be dead, e.g. half-open): no new query goes to it, it stays open for late replies to
 * the queries on it (handOver), and it is closed once nothing is in flight on it.
 *
 * Errors fail the connection's queries in the same event-loop turn as the 'error' event (not
 * at the 'close' that follows): a connect refused (RST, ICMP), no route, EMFILE at socket
 * creation (net.connect reports them all as 'error' with syscall `connect`) are DIAL
 * failures; a reset of an open connection is a READ failure. A connect that throws fails
 * the try synchronously (`SendFailure`).
 */
import type { Buffer } from 'node:buffer';
import net from 'node:net';
import type { Clock } from '../../plugin.ts';
import { ID_EXHAUSTED_FAILURE, Phase, SendFailure, errnoOf, takeReply, type Attempt, type AttemptHolder, type PhaseValue } from './attempt.ts';
import { ForwardErrorCode, type ForwardErrorCodeValue } from './errors.ts';
import { freeId } from './ids.ts';
import type { UpstreamStats } from './stats.ts';
import type { UpstreamAddress } from './transport-udp.ts';
import { FrameReader, setFramedMessageId, writeFramePrefix } from '../../wire/tcp-frame.ts';

export interface TcpPoolOptions {
  /** Most connections per upstream. */
  maxConns: number;
  /** Dial another connection only when all have at least this many queries in flight. */
  pipelineDepth: number;
  /** Close a connection with nothing in flight after this long (forward's `expire`). */
  idleMs: number;
  /** Give up a connect after this long. */
  connectTimeoutMs: number;
  /** The per-try read timeout, used to tell a dead connection from a slow query. */
  readTimeoutMs: number;
}

export const TCP_DEFAULTS: TcpPoolOptions = {
  maxConns: 16,
  pipelineDepth: 4,
  idleMs: 10_000,
  connectTimeoutMs: 2_000,
  readTimeoutMs: 2_000,
};

function uncork(c: TcpConn): void {
  c.uncork();
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSED = 2;

class TcpConn implements AttemptHolder {
  readonly pool: TcpPool;
  readonly socket: net.Socket;
  readonly inflight = new Map<number, Attempt>();
  private readonly reader: FrameReader;
  state = CONNECTING;
  /** Replies accepted on this connection (a connection that answered before is "cached"). */
  replies = 0;
  /** Out of the pool after a read timeout with nothing received; closed when drained. */
  suspect = false;
  lastUsedMs: number;
  lastRecvMs: number;
  local = '';

  get dialing(): boolean {
    return this.state === CONNECTING;
  }

  /** A cork() is pending its uncork() after the poll phase (setImmediate). */
  private corked = false;
  /** Why we closed it ourselves (set before destroy), else null. */
  private closeCode: ForwardErrorCodeValue | null = null;
  private errno = '';
  private errPhase: PhaseValue = Phase.READ;

  constructor(pool: TcpPool, now: number) {
    this.pool = pool;
    this.lastUsedMs = now;
    this.lastRecvMs = now;
    this.reader = new FrameReader(this.onFrame);
    const up = pool.address;
    this.socket = net.connect({ host: up.host, port: up.port, family: up.family, noDelay: true });
    this.socket.setTimeout(pool.opts.connectTimeoutMs);
    this.socket.on('connect', this.onConnect);
    this.socket.on('data', this.onData);
    this.socket.on('timeout', this.onConnectTimeout);
    this.socket.on('error', this.onError);
    this.socket.on('close', this.onClose);
  }

  private readonly onConnect = (): void => {
    try {
      if (this.state !== CONNECTING) return;
      this.state = OPEN;
      this.socket.setTimeout(0);
      const la = this.socket.localAddress;
      const lp = this.socket.localPort;
      if (la !== undefined && lp !== undefined) this.local = this.socket.localFamily === 'IPv6' ? `[${la}]:${lp}` : `${la}:${lp}`;
    } catch (err) {
      this.pool.onInternalError(err);
    }
  };

  private readonly onConnectTimeout = (): void => {
    if (this.state !== CONNECTING) return;
    this.destroy(ForwardErrorCode.DIAL_TIMEOUT);
  };

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.lastRecvMs = this.pool.clock();
      if (!this.reader.push(chunk)) {
        this.pool.stats.ignoredGarbage++;
        this.destroy(ForwardErrorCode.BAD_FRAME);
      }
    } catch (err) {
      this.pool.onInternalError(err);
    }
  };

  private readonly onFrame = (frame: Buffer): void => {
    if (this.state === CLOSED) return;
    const len = frame.length;
    // FrameReader delivers frames of at least a header (MIN_FRAME).
    const at = takeReply(this.inflight, frame, len, this.pool.stats);
    if (at === null) return;
    this.replies++;
    this.lastUsedMs = this.lastRecvMs;
    try {
      at.replied(frame, len);
    } catch (err) {
      this.pool.onInternalError(err);
    }
    if (this.suspect && this.inflight.size === 0) this.destroy(null);
  };

  /** No new query goes to it, and the queries on it fail now ('close' follows later). */
  private readonly onError = (err: Error & { code?: string }): void => {
    try {
      if (this.errno === '') {
        this.errno = errnoOf(err) || 'EIO';
        this.errPhase = this.state === CONNECTING ? Phase.DIAL : Phase.READ;
      }
      this.pool.forget(this);
      this.failInflight(this.state === CONNECTING);
    } catch (e) {
      this.pool.onInternalError(e);
    }
  };

  private readonly onClose = (): void => {
    try {
      const wasConnecting = this.state === CONNECTING;
      this.state = CLOSED;
      this.pool.forget(this);
      this.pool.suspects.delete(this);
      this.pool.stats.tcpConnsOpen--;
      this.failInflight(wasConnecting);
    } catch (err) {
      this.pool.onInternalError(err);
    }
  };

  /** Fails every query in flight with why the connection ended. */
  private failInflight(wasConnecting: boolean): void {
    if (this.inflight.size === 0) return;
    let code: ForwardErrorCodeValue;
    let phase = this.errPhase;
    if (this.closeCode !== null) {
      code = this.closeCode;
      if (code === ForwardErrorCode.DIAL_TIMEOUT) phase = Phase.DIAL;
    } else if (this.errno !== '') code = ForwardErrorCode.NETWORK;
    else if (this.replies > 0) code = ForwardErrorCode.CACHED_CLOSED;
    else {
      // Closed by the peer before any answer: Go's io.EOF.
      code = ForwardErrorCode.NETWORK;
      this.errno = 'EOF';
      if (wasConnecting) phase = Phase.DIAL;
    }
    this.failAll(code, phase, this.errno);
  }

  private failAll(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string): void {
    if (this.inflight.size === 0) return;
    const list = [...this.inflight.values()];
    this.inflight.clear();
    for (const at of list) {
      at.holder = null;
      try {
        at.failed(code, phase, errno, this.local);
      } catch (err) {
        this.pool.onInternalError(err);
      }
    }
  }

  /** Closes the connection; its in-flight queries fail with `code` once 'close' fires. */
  destroy(code: ForwardErrorCodeValue | null): void {
    if (this.state === CLOSED) return;
    if (this.closeCode === null) this.closeCode = code;
    this.pool.forget(this);
    this.socket.destroy();
  }

  send(at: Attempt): SendFailure | null {
    const id = freeId(this.inflight);
    if (id < 0) return ID_EXHAUSTED_FAILURE;
    const out = at.tcpFrame();
    at.wireId = id;
    writeFramePrefix(out, at.queryLen);
    setFramedMessageId(out, id);
    at.holder = this;
    this.inflight.set(id, at);
    this.lastUsedMs = this.pool.clock();
    // Writes before 'connect' are buffered by net.Socket and flushed on connect. Queries
    // written during one event-loop turn (every datagram the poll phase read) are corked and
    // leave in one writev after the poll phase: one syscall per burst instead of one per query.
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      setImmediate(uncork, this);
    }
    this.socket.write(out);
    return null;
  }

  uncork(): void {
    this.corked = false;
    if (this.state !== CLOSED) this.socket.uncork();
  }

  release(at: Attempt, timedOut = false): void {
    if (this.inflight.get(at.wireId) === at) this.inflight.delete(at.wireId);
    if (at.holder === this) at.holder = null;
    if (this.state === CLOSED) return;
    if (timedOut && this.receivedNothingFor()) this.destroy(ForwardErrorCode.TIMEOUT);
    else if (this.suspect && this.inflight.size === 0) this.destroy(null);
  }

  handOver(at: Attempt, late: Attempt): boolean {
    if (this.state === CLOSED || this.inflight.get(at.wireId) !== at) {
      this.release(at, true);
      return false;
    }
    this.inflight.set(at.wireId, late);
    late.wireId = at.wireId;
    late.holder = this;
    if (at.holder === this) at.holder = null;
    if (!this.suspect && this.receivedNothingFor()) {
      this.suspect = true;
      this.pool.forget(this);
      this.pool.suspects.add(this);
    }
    return true;
  }

  /** Nothing was received on this connection for a whole read timeout. */
  private receivedNothingFor(): boolean {
    return this.pool.clock() - this.lastRecvMs >= this.pool.opts.readTimeoutMs;
  }
}

export class TcpPool {
  readonly address: UpstreamAddress;
  readonly stats: UpstreamStats;
  readonly clock: Clock;
  readonly opts: TcpPoolOptions;
  private conns: TcpConn[] = [];
  /** Suspect connections (out of `conns`), open until their late replies are in or released. */
  readonly suspects = new Set<TcpConn>();
  onInternalError: (err: unknown) => void = () => {};

  constructor(address: UpstreamAddress, stats: UpstreamStats, clock: Clock, opts: TcpPoolOptions) {
    this.address = address;
    this.stats = stats;
    this.clock = clock;
    this.opts = opts;
  }

  get connCount(): number {
    return this.conns.length;
  }

  /** Sends one try; returns a failure only when it failed synchronously. */
  send(at: Attempt): SendFailure | null {
    let best: TcpConn | null = null;
    let bestLoad = Infinity;
    for (const c of this.conns) {
      const load = c.inflight.size;
      if (load < bestLoad) {
        best = c;
        bestLoad = load;
      }
    }
    if (best === null || (bestLoad >= this.opts.pipelineDepth && this.conns.length < this.opts.maxConns)) {
      try {
        best = new TcpConn(this, this.clock());
      } catch (err) {
        return new SendFailure(ForwardErrorCode.NETWORK, Phase.DIAL, errnoOf(err));
      }
      this.conns.push(best);
      this.stats.connCacheMissesTcp++;
      this.stats.tcpConnsOpen++;
      this.stats.tcpConnsDialled++;
    } else {
      this.stats.connCacheHitsTcp++;
    }
    return best.send(at);
  }

  /** Removes a closing connection from the pool (no new queries go to it). */
  forget(c: TcpConn): void {
    const i = this.conns.indexOf(c);
    if (i >= 0) this.conns.splice(i, 1);
  }

  /** Housekeeping: closes connections idle for `idleMs`. */
  sweep(now: number): void {
    for (let i = this.conns.length - 1; i >= 0; i--) {
      const c = this.conns[i]!;
      if (c.inflight.size === 0 && now - c.lastUsedMs >= this.opts.idleMs) c.destroy(null);
    }
  }

  /** Closes every connection; attempts still in flight fail with `code`. */
  closeAll(code: ForwardErrorCodeValue): void {
    const all = [...this.conns, ...this.suspects];
    this.conns = [];
    this.suspects.clear();
    for (const c of all) c.destroy(code);
  }
}
