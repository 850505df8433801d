/**
 * TCP listener per RFC 7766: 2-byte length framing (§8), several queries per connection
 * answered out of order as they complete (§6.2.1.1), idle timeout (§6.2.3), limits on
 * connections and on queries in flight per connection (reading pauses at the limit).
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import type { ResponseWriter } from '../plugin.ts';
import { Request, Proto } from './request.ts';
import type { Dispatcher } from './dispatch.ts';

export interface TcpLimits {
  /** Close a connection with nothing in flight after this long without a query (RFC 7766 §6.2.3). */
  idleTimeoutMs: number;
  /** Connections accepted at once; further connections are refused by the kernel backlog. */
  maxConnections: number;
  /** Queries in flight per connection before reading pauses. */
  maxInFlightPerConnection: number;
}

export const DEFAULT_TCP_LIMITS: TcpLimits = {
  idleTimeoutMs: 10_000,
  maxConnections: 10_000,
  maxInFlightPerConnection: 100,
};

const MIN_QUERY = 12;

class TcpConnection implements ResponseWriter {
  private readonly socket: net.Socket;
  private readonly listener: TcpListener;
  /** Start of an incomplete frame (null when none), its pieces, their total size, and since when. */
  private pending: Buffer | null = null;
  private pendingChunks: Buffer[] = [];
  private pendingBytes = 0;
  private pendingSinceMs = 0;
  private inFlight = 0;
  private paused = false;
  private closing = false;
  private readonly family: 4 | 6;
  private readonly labelOffsets = new Uint8Array(128);
  private readonly remoteAddress: string;
  private readonly remotePort: number;

  constructor(socket: net.Socket, listener: TcpListener) {
    this.socket = socket;
    this.listener = listener;
    this.family = socket.remoteFamily === 'IPv6' ? 6 : 4;
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    socket.setNoDelay(true);
    socket.setTimeout(listener.limits.idleTimeoutMs);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('timeout', () => {
      if (this.inFlight === 0) this.close();
    });
    socket.on('error', () => this.destroy());
    socket.on('end', () => {
      // Client half-closed: answer what is in flight, then close (RFC 7766 §6.2.4).
      this.closing = true;
      if (this.inFlight === 0) this.close();
    });
    socket.on('close', () => this.listener.forget(this));
  }

  private onData(chunk: Buffer): void {
    let buf = chunk;
    if (this.pending !== null) {
      // A frame split over chunks: keep the pieces and join them once, when the frame is
      // complete, so a frame sent a byte at a time costs O(n), not O(n²) copying.
      this.pendingChunks.push(chunk);
      this.pendingBytes += chunk.length;
      if (performance.now() - this.pendingSinceMs > this.listener.limits.idleTimeoutMs) {
        // RFC 7766 §6.2.3 idle timeout applied to a whole frame: a client trickling bytes
        // does not keep a connection (and its buffer) forever.
        this.listener.slowFrames++;
        this.destroy();
        return;
      }
      if (this.pendingBytes < 2) return;
      const first = this.pendingChunks[0]!;
      const need = 2 + (first.length >= 2 ? (first[0]! << 8) | first[1]! : (first[0]! << 8) | this.pendingChunks[1]![0]!);
      if (this.pendingBytes < need) return;
      buf = Buffer.concat(this.pendingChunks, this.pendingBytes);
      this.pending = null;
      this.pendingChunks = [];
      this.pendingBytes = 0;
    }
    let pos = 0;
    while (buf.length - pos >= 2) {
      const len = (buf[pos]! << 8) | buf[pos + 1]!;
      if (len < MIN_QUERY) {
        // Cannot hold a DNS header: the stream is not DNS or is desynchronised.
        this.listener.malformedFrames++;
        this.destroy();
        return;
      }
      if (buf.length - pos - 2 < len) break;
      const msg = buf.subarray(pos + 2, pos + 2 + len);
      pos += 2 + len;
      this.query(msg);
      if (this.closing) return;
    }
    if (pos < buf.length) {
      const rest = pos === 0 ? buf : Buffer.from(buf.subarray(pos));
      this.pending = rest;
      this.pendingChunks = [rest];
      this.pendingBytes = rest.length;
      this.pendingSinceMs = performance.now();
    }
  }

  private query(msg: Buffer): void {
    this.inFlight++;
    if (this.inFlight >= this.listener.limits.maxInFlightPerConnection && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    const req = new Request(msg, msg.length, this, this.labelOffsets);
    req.proto = Proto.TCP;
    req.family = this.family;
    req.remoteAddress = this.remoteAddress;
    req.remotePort = this.remotePort;
    req.startMs = this.listener.dispatcher.clock();
    req.udpSize = 65535;
    const before = this.listener.dispatcher.inFlight;
    this.listener.dispatcher.dispatch(req);
    // A dropped query (e.g. a response sent to us) never reaches writeMsg.
    if (this.listener.dispatcher.inFlight === before && !req.replied) this.done();
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    if (!this.socket.destroyed && this.socket.writable) {
      const out = Buffer.allocUnsafe(len + 2);
      out[0] = len >>> 8;
      out[1] = len & 0xff;
      msg.copy(out, 2, 0, len);
      this.socket.write(out);
    }
    this.listener.dispatcher.finish(req);
    this.done();
  }

  private done(): void {
    this.inFlight--;
    if (this.paused && this.inFlight < this.listener.limits.maxInFlightPerConnection) {
      this.paused = false;
      this.socket.resume();
    }
    if (this.inFlight === 0 && (this.closing || this.listener.draining)) this.close();
  }

  /** Closes once nothing is in flight (used on drain). */
  drain(): void {
    this.closing = true;
    if (this.inFlight === 0) this.close();
  }

  close(): void {
    this.closing = true;
    this.socket.end();
    this.socket.destroySoon();
  }

  destroy(): void {
    this.closing = true;
    this.socket.destroy();
  }
}

export class TcpListener {
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  readonly limits: TcpLimits;
  private readonly server: net.Server;
  private readonly connections = new Set<TcpConnection>();
  private readonly reusePort: boolean;
  draining = false;
  /** Connections closed for a frame shorter than a DNS header. */
  malformedFrames = 0;
  /** Connections closed because one frame took longer than the idle timeout to arrive. */
  slowFrames = 0;
  accepted = 0;

  constructor(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean, limits: TcpLimits = DEFAULT_TCP_LIMITS) {
    this.address = address;
    this.port = port;
    this.dispatcher = dispatcher;
    this.limits = limits;
    this.reusePort = reusePort;
    this.server = net.createServer({ noDelay: true, pauseOnConnect: false }, (socket) => {
      this.accepted++;
      this.connections.add(new TcpConnection(socket, this));
    });
    this.server.maxConnections = limits.maxConnections;
    this.server.on('error', () => {});
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
        resolve(this.port);
      });
    });
  }

  /** Stops accepting; open connections close as soon as their queries are answered. */
  close(): Promise<void> {
    this.draining = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) c.drain();
    return closed;
  }

  /** Drops every connection now (second signal, or drain timeout). */
  destroyAll(): void {
    for (const c of this.connections) c.destroy();
  }
}
