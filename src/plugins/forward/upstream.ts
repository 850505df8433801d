/**
 * One upstream (a TO of `forward`): its transports, counters and health state.
 *
 * Health, as CoreDNS's proxy/up packages do it: checking is in-band and lazy. A failed try
 * calls `healthcheck()`, which starts one probe loop unless one is running: send
 * `<domain> IN NS` (RD set unless `no_rec`) over UDP (TCP with `force_tcp`) with a 1 s
 * timeout; on failure count it (`fails`, `healthcheckFailures`) and probe again after the
 * `health_check` interval; the first success resets `fails` to 0 and ends the loop. Any reply
 * with our ID and QR set is a success, whatever its rcode (REFUSED, SERVFAIL... mean the
 * server is alive). The upstream is down while `fails > max_fails` (CoreDNS's Down(): strictly
 * more). `health_check 0` disables probing, so upstreams are then never marked down.
 *
 * A probe whose socket cannot be created, bound or connected (EMFILE, no route, no IPv6)
 * or whose send fails is a failed probe, counted like a timeout, in the turn of the error.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import type { Clock } from '../../plugin.ts';
import { encodeName } from '../../wire/name.ts';
import { Flag, QClass, QType } from '../../wire/codes.ts';
import { isResponseTo } from '../../wire/header.ts';
import { buildQuery } from '../../wire/message.ts';
import { FRAME_PREFIX, FrameReader, framed, setFramedMessageId } from '../../wire/tcp-frame.ts';
import { randomId } from './ids.ts';
import { UpstreamStats } from './stats.ts';
import { TcpPool, type TcpPoolOptions } from './transport-tcp.ts';
import { UdpPool, type UdpPoolOptions, type UpstreamAddress } from './transport-udp.ts';

export interface HealthCheckOptions {
  /** Interval between probes while failing; 0 disables health checking. */
  intervalMs: number;
  recursionDesired: boolean;
  /** Normalised FQDN to ask NS for (`.` by default). */
  domain: string;
  /** Probe over TCP (set by `force_tcp`, as CoreDNS's SetTCPTransport). */
  useTcp: boolean;
  /** Probe timeout (CoreDNS's health client: 1 s read and write timeouts). */
  timeoutMs: number;
}

const MAX_FAILS_COUNTER = 0xffffffff;

/** `<domain> IN NS` query; ID and RD patched per probe. */
function buildProbe(domain: string, recursionDesired: boolean): Buffer {
  const q = buildQuery(encodeName(domain), QType.NS, QClass.IN, 0, recursionDesired ? Flag.RD : 0);
  return framed(q, q.length);
}

function isReplyTo(msg: Buffer, id: number): boolean {
  return isResponseTo(msg, msg.length, id);
}

export class Upstream {
  readonly address: UpstreamAddress;
  readonly to: string;
  readonly stats: UpstreamStats;
  readonly udp: UdpPool;
  readonly tcp: TcpPool;
  /** Consecutive failed health probes. */
  fails = 0;
  private readonly hc: HealthCheckOptions;
  private readonly probe: Buffer;
  private hcRunning = false;
  private hcTimer: NodeJS.Timeout | null = null;
  /** Cleanup of the probe in flight, if any. */
  private hcAbort: (() => void) | null = null;
  private stopped = false;

  constructor(address: UpstreamAddress, clock: Clock, hc: HealthCheckOptions, udpOpts: UdpPoolOptions, tcpOpts: TcpPoolOptions) {
    this.address = address;
    this.to = address.to;
    this.stats = new UpstreamStats(address.to);
    this.udp = new UdpPool(address, this.stats, clock, udpOpts);
    this.tcp = new TcpPool(address, this.stats, clock, tcpOpts);
    this.hc = hc;
    this.probe = buildProbe(hc.domain, hc.recursionDesired);
  }

  /** CoreDNS's Proxy.Down: more failed probes than max_fails (never down when max_fails is 0). */
  down(maxFails: number): boolean {
    return maxFails !== 0 && this.fails > maxFails;
  }

  /** Starts a probe loop unless one is running or checking is disabled. */
  healthcheck(): void {
    if (this.hcRunning || this.stopped || this.hc.intervalMs <= 0) return;
    this.hcRunning = true;
    this.runProbe();
  }

  get healthChecking(): boolean {
    return this.hcRunning;
  }

  private runProbe(): void {
    this.hcTimer = null;
    if (this.stopped) return;
    const id = randomId();
    setFramedMessageId(this.probe, id);
    const done = (ok: boolean): void => {
      this.hcAbort = null;
      if (this.stopped) return;
      if (ok) {
        this.fails = 0;
        this.hcRunning = false;
        return;
      }
      this.stats.healthcheckFailures++;
      if (this.fails < MAX_FAILS_COUNTER) this.fails++;
      this.hcTimer = setTimeout(() => this.runProbe(), this.hc.intervalMs);
      this.hcTimer.unref();
    };
    this.hcAbort = this.hc.useTcp ? this.probeTcp(id, done) : this.probeUdp(id, done);
  }

  private probeUdp(id: number, done: (ok: boolean) => void): () => void {
    const probe = new UdpProbe(this.address, this.probe, id, this.hc.timeoutMs, done);
    return () => probe.abort();
  }

  private probeTcp(id: number, done: (ok: boolean) => void): () => void {
    const probe = new TcpProbe(this.address, this.probe, id, this.hc.timeoutMs, done);
    return () => probe.abort();
  }

  /** Stops probing; sockets are closed by the caller (closeAll on both pools). */
  stop(): void {
    this.stopped = true;
    if (this.hcTimer !== null) clearTimeout(this.hcTimer);
    this.hcTimer = null;
    if (this.hcAbort !== null) this.hcAbort();
    this.hcAbort = null;
    this.hcRunning = false;
  }
}

/**
 * One UDP health probe: its own socket, connected to the upstream, one query, `done(true)` on
 * the first reply with its ID, `done(false)` on a timeout or any socket error. `done` is
 * called at most once, never after abort().
 */
class UdpProbe {
  private readonly socket: dgram.Socket | null;
  private readonly timer: NodeJS.Timeout;
  private readonly query: Buffer;
  private readonly id: number;
  private readonly done: (ok: boolean) => void;
  private finished = false;

  constructor(address: UpstreamAddress, query: Buffer, id: number, timeoutMs: number, done: (ok: boolean) => void) {
    this.query = query;
    this.id = id;
    this.done = done;
    this.timer = setTimeout(this.onTimeout, timeoutMs);
    this.timer.unref();
    let s: dgram.Socket | null = null;
    try {
      s = dgram.createSocket(address.family === 6 ? 'udp6' : 'udp4');
      s.on('error', this.onError);
      s.on('message', this.onMessage);
      s.connect(address.port, address.host, this.onConnect);
    } catch {
      this.socket = s;
      queueMicrotask(this.onError);
      return;
    }
    this.socket = s;
  }

  private readonly onConnect = (err?: Error | null): void => {
    if (this.finished) return;
    if (err) {
      this.finish(false);
      return;
    }
    try {
      this.socket!.send(this.query, FRAME_PREFIX, this.query.length - FRAME_PREFIX, this.onSent);
    } catch {
      this.finish(false);
    }
  };

  private readonly onSent = (err: Error | null): void => {
    if (err) this.finish(false);
  };

  private readonly onMessage = (m: Buffer): void => {
    if (isReplyTo(m, this.id)) this.finish(true);
  };

  private readonly onError = (): void => this.finish(false);
  private readonly onTimeout = (): void => this.finish(false);

  private finish(ok: boolean): void {
    if (this.finished) return;
    this.abort();
    this.done(ok);
  }

  abort(): void {
    this.finished = true;
    clearTimeout(this.timer);
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
  }
}

/** One TCP health probe (see UdpProbe); the query is written before the connect completes. */
class TcpProbe {
  private readonly socket: net.Socket | null = null;
  private readonly timer: NodeJS.Timeout;
  private readonly reader: FrameReader;
  private readonly id: number;
  private readonly done: (ok: boolean) => void;
  private finished = false;

  constructor(address: UpstreamAddress, query: Buffer, id: number, timeoutMs: number, done: (ok: boolean) => void) {
    this.id = id;
    this.done = done;
    this.timer = setTimeout(this.onFailure, timeoutMs);
    this.timer.unref();
    this.reader = new FrameReader(this.onFrame);
    try {
      const sock = net.connect({ host: address.host, port: address.port, family: address.family, noDelay: true });
      this.socket = sock;
      sock.on('data', this.onData);
      sock.on('error', this.onFailure);
      sock.on('close', this.onFailure);
      sock.write(Buffer.from(query));
    } catch {
      queueMicrotask(this.onFailure);
    }
  }

  private readonly onFrame = (f: Buffer): void => {
    if (isReplyTo(f, this.id)) this.finish(true);
  };

  private readonly onData = (c: Buffer): void => {
    if (!this.reader.push(c)) this.finish(false);
  };

  private readonly onFailure = (): void => this.finish(false);

  private finish(ok: boolean): void {
    if (this.finished) return;
    this.abort();
    this.done(ok);
  }

  abort(): void {
    this.finished = true;
    clearTimeout(this.timer);
    this.socket?.destroy();
  }
}
