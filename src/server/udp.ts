/**
 * UDP listener. One socket per (address, port), `reusePort` so workers and a standby
 * instance can share it. Two I/O paths behind one interface (UdpListener): Node's dgram
 * (DgramUdpListener, here) and the native batched socket (udp-batched.ts); udp-native.ts
 * chooses (NODE_LOCAL_DNS_UDP_IO), createUdpListener builds the chosen one. It is the terminal ResponseWriter of its requests: it truncates
 * answers larger than the client's limit (512 bytes, or the EDNS payload size — RFC 6891
 * §6.2.3/§7) as CoreDNS does, to as many whole records as fit with TC=1 (wire/truncate.ts),
 * cache hits and forwarded answers alike, and sends. Every listener is registered with
 * udp-adopt.ts, which lets a standby serve a peer's listening socket (`adopt(fd)`) beside it.
 */
import dgram from 'node:dgram';
import { closeSync } from 'node:fs';
import type { ResponseWriter } from '../plugin.ts';
import { Request, Proto } from './request.ts';
import { truncateResponse } from '../wire/truncate.ts';
import type { Dispatcher } from './dispatch.ts';
import { BatchedUdpListener } from './udp-batched.ts';
import { trackListener } from './udp-adopt.ts';
import { UdpIo, UdpIoError, type UdpIoValue, loadUdpAddon, udpIoMode } from './udp-native.ts';

/** What the engine uses of a UDP listener, whichever I/O path serves it. */
export interface UdpListener extends ResponseWriter {
  readonly io: UdpIoValue;
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  received: number;
  sent: number;
  sendErrors: number;
  /** Set once close() began. */
  readonly closed: boolean;
  bind(): Promise<number>;
  /** Serves `fd` (a peer's listening socket, udp-adopt.ts) instead of binding; takes the fd over, closed on failure. */
  adopt(fd: number): void | Promise<void>;
  handOver(deadline: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * A listener on the thread's I/O path (udpIoMode), or on `io` when given (tests). Addresses
 * with an IPv6 zone (`fe80::1%eth0`) always use dgram: the addon takes literal addresses only.
 */
export function createUdpListener(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean, io: UdpIoValue = udpIoMode()): UdpListener {
  if (io === UdpIo.BATCHED && !address.includes('%')) {
    const { addon, reason } = loadUdpAddon();
    if (addon === null) throw new UdpIoError(`UDP addon unavailable: ${reason}`);
    return trackListener(
      new BatchedUdpListener(address, port, dispatcher, reusePort, addon),
      () => new BatchedUdpListener(address, port, dispatcher, reusePort, addon),
    );
  }
  return trackListener(new DgramUdpListener(address, port, dispatcher, reusePort), () => new DgramUdpListener(address, port, dispatcher, reusePort));
}

/** Resolves IP literals synchronously: dgram's default lookup defers every send a tick. */
function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

export class DgramUdpListener implements UdpListener {
  readonly io = UdpIo.DGRAM;
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  private readonly socket: dgram.Socket;
  /** Scratch label offsets: only read while routing, synchronously after parsing. */
  private readonly family: 4 | 6;
  /** Datagrams received and answers sent (plain counters). */
  received = 0;
  sent = 0;
  sendErrors = 0;
  /** Set by close() (read by the adoption registry, udp-adopt.ts). */
  closed = false;
  /** While handing over: answers held until the socket is disconnected again (see handOver). */
  private held: { msg: Buffer; port: number; address: string }[] | null = null;

  constructor(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean) {
    this.address = address;
    this.port = port;
    this.dispatcher = dispatcher;
    this.family = address.includes(':') ? 6 : 4;
    this.socket = dgram.createSocket({
      type: this.family === 6 ? 'udp6' : 'udp4',
      reuseAddr: true,
      reusePort,
      ipv6Only: this.family === 6,
      lookup: literalLookup as never,
    });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket.on('error', () => {
      this.sendErrors++;
    });
  }

  bind(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.socket.once('error', onError);
      this.socket.bind({ address: this.address, port: this.port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.port = this.socket.address().port;
        try {
          this.socket.setRecvBufferSize(4 * 1024 * 1024);
          this.socket.setSendBufferSize(4 * 1024 * 1024);
        } catch {
          // Capped by net.core.rmem_max/wmem_max; the kernel default then applies.
        }
        resolve(this.port);
      });
    });
  }

  /** dgram wraps the fd (`bind({ fd })`); see UdpListener.adopt. */
  adopt(fd: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => {
        try {
          closeSync(fd);
        } catch {
          // dgram may have taken it over already
        }
        reject(err);
      };
      this.socket.once('error', onError);
      try {
        this.socket.bind({ fd }, () => {
          this.socket.off('error', onError);
          resolve();
        });
      } catch (err) {
        this.socket.off('error', onError);
        onError(err as Error);
      }
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.received++;
    const req = new Request(msg, msg.length, this);
    req.proto = Proto.UDP;
    req.family = this.family;
    req.remoteAddress = rinfo.address;
    req.remotePort = rinfo.port;
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
    if (this.held !== null) {
      // Connected away (handOver): dgram cannot send to other addresses now; the buffer may be reused.
      this.held.push({ msg: Buffer.from(out.subarray(0, outLen)), port: req.remotePort, address: req.remoteAddress });
    } else if (!this.closed) {
      this.sent++;
      // Without offset/length when the whole buffer goes out: dgram then makes no view of it.
      if (outLen === out.length) this.socket.send(out, req.remotePort, req.remoteAddress);
      else this.socket.send(out, 0, outLen, req.remotePort, req.remoteAddress);
    }
    this.dispatcher.finish(req);
  }

  /**
   * Graceful close of a socket that shares its address through SO_REUSEPORT (other workers, a
   * standby instance), losing none of the datagrams already queued in it. A plain close() drops
   * them: the kernel offers no handover of a reuseport group member's queue.
   *
   *  1. connect() the socket to a local address and port nothing sends from. Linux skips
   *     connected members when it picks a reuseport group member by hash
   *     (reuseport_select_sock_by_hash), so new queries go to the other members; the datagrams
   *     already queued here stay readable.
   *  2. Read and answer everything queued and everything in flight on this listener (until
   *     `deadline`, a performance.now() value). The queue is known to be empty when a whole
   *     event-loop turn, poll phase included, read nothing: the check runs in a setImmediate
   *     callback, after the poll phase, so a thread that was not scheduled for a while cannot
   *     mistake an unread queue for an empty one. Node's dgram refuses to send to other
   *     addresses from a connected socket, so answers are held and flushed every turn:
   *     disconnect, send, connect again, in one synchronous step. A datagram the kernel steers
   *     here during that step is queued and read like the others.
   *  3. Once a turn read nothing, nothing is in flight and every answer is sent, close the
   *     socket while it is still connected: no datagram can be steered to it any more, so none
   *     is lost. (At the deadline, held answers are flushed right before the close; a datagram
   *     steered here during that step would be lost.)
   * When no other member exists, new queries are refused from step 1 on (ICMP port unreachable),
   * as after a close. If connect() fails, this drains in-flight queries and closes as before.
   */
  async handOver(deadline: number): Promise<void> {
    if (this.closed) return;
    this.held = [];
    const wildcard = this.address === '0.0.0.0' || this.address === '::' || this.address === '';
    const away = wildcard ? (this.family === 6 ? '::1' : '127.0.0.1') : this.address;
    let connected = this.connectAway(away);
    if (!connected) this.held = null;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    const afterPoll = () => new Promise((r) => setImmediate(r));
    for (;;) {
      // Flush first: a datagram steered here while disconnected is then read by the turn below.
      if (connected && this.held !== null && this.held.length > 0) {
        this.flushHeld();
        connected = this.connectAway(away);
        if (!connected) this.held = null;
      }
      const before = this.received;
      await sleep(2);
      await afterPoll();
      if (performance.now() >= deadline) break;
      const drained = !connected || this.received === before;
      const nothingHeld = this.held === null || this.held.length === 0;
      if (drained && this.dispatcher.inFlight === 0 && nothingHeld) break;
    }
    // Normally nothing is held here and the socket closes still connected: no datagram can be
    // steered to it any more. Only at the deadline are answers flushed right before the close.
    if (connected && this.held !== null && this.held.length > 0) this.flushHeld();
    this.held = null;
    await this.close();
  }

  /** connect() to `address`:1 (see handOver); false when the socket did not get connected. */
  private connectAway(address: string): boolean {
    try {
      // Synchronous with the literal lookup; a failure is emitted as 'error' (counted, ignored).
      this.socket.connect(1, address);
      this.socket.remoteAddress();
      return true;
    } catch {
      return false;
    }
  }

  /** Disconnects and sends the held answers (the caller reconnects or closes right after). */
  private flushHeld(): void {
    try {
      this.socket.disconnect();
    } catch {
      // Still connected: the held answers cannot be sent.
    }
    const held = this.held ?? [];
    if (this.held !== null) this.held = [];
    for (const h of held) {
      this.sent++;
      try {
        this.socket.send(h.msg, 0, h.msg.length, h.port, h.address);
      } catch {
        this.sendErrors++;
      }
    }
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
