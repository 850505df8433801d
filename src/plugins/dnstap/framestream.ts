/**
 * A Frame Streams writer (the fstrm protocol dnstap travels on), bidirectional mode, over a
 * Unix or TCP stream socket.
 *
 * Protocol (fstrm): every frame starts with a 32-bit big-endian length. A data frame is that
 * length (non-zero) and the payload. A control frame is an "escape" length of 0, then its own
 * 32-bit length, a 32-bit control type and fields (32-bit field type, 32-bit length, bytes;
 * field 1 = content type). The writer opens with READY (listing its content type), the
 * reader answers ACCEPT (listing what it takes), the writer sends START (the content type),
 * then data frames, and at the end STOP, which the reader acknowledges with FINISH.
 *
 * DNS must never wait for this: `enqueue` only appends to a bounded queue (or drops and
 * counts when it is full or when there is no connection); everything else happens in socket
 * callbacks. At most `writeBufferBytes` are handed to the socket and not yet flushed; a
 * receiver that does not read fills that, then the queue, then messages are dropped. A
 * receiver that reads nothing for `stallTimeoutMs` while we wait to write, that does not
 * answer READY within `connectTimeoutMs`, that sends garbage, or whose socket errors or closes
 * is disconnected; reconnection follows with exponential backoff (min..max). While there is
 * no connection (between a failure and the next attempt) messages are dropped at once, as
 * CoreDNS's dnstap drops them when it has no output.
 */
import { Buffer } from 'node:buffer';
import net from 'node:net';
import type { Logger } from '../../plugin.ts';

export const CONTENT_TYPE = 'protobuf:dnstap.Dnstap';

const CONTROL_ACCEPT = 1;
const CONTROL_START = 2;
const CONTROL_STOP = 3;
const CONTROL_READY = 4;
const CONTROL_FINISH = 5;
const FIELD_CONTENT_TYPE = 1;
/** fstrm's bound on a control frame. */
const MAX_CONTROL_FRAME = 512;

export type Endpoint = { kind: 'unix'; path: string } | { kind: 'tcp'; host: string; port: number };

export interface FrameStreamOptions {
  endpoint: Endpoint;
  /** Messages held while connecting or while the socket's buffer is full. */
  queueCapacity: number;
  /** Bytes the queue holds, at most (whatever queueCapacity says). */
  queueMaxBytes: number;
  /** Bytes written to the socket but not yet flushed by it, at most. */
  writeBufferBytes: number;
  connectTimeoutMs: number;
  stallTimeoutMs: number;
  backoffMinMs: number;
  backoffMaxMs: number;
  /** How often the count of dropped messages is logged (CoreDNS: 10 s). */
  dropReportMs: number;
  /** How long stop() waits for FINISH. */
  finishTimeoutMs: number;
}

export const FRAMESTREAM_DEFAULTS = {
  connectTimeoutMs: 4000,
  stallTimeoutMs: 4000,
  backoffMinMs: 250,
  backoffMaxMs: 10_000,
  dropReportMs: 10_000,
  finishTimeoutMs: 1000,
} as const;

/** A control frame with the escape and length prefix. */
export function controlFrame(type: number, contentType: string | null): Buffer {
  const ct = contentType === null ? null : Buffer.from(contentType);
  const bodyLen = 4 + (ct === null ? 0 : 8 + ct.length);
  const b = Buffer.alloc(8 + bodyLen);
  b.writeUInt32BE(0, 0);
  b.writeUInt32BE(bodyLen, 4);
  b.writeUInt32BE(type, 8);
  if (ct !== null) {
    b.writeUInt32BE(FIELD_CONTENT_TYPE, 12);
    b.writeUInt32BE(ct.length, 16);
    ct.copy(b, 20);
  }
  return b;
}

/** A parsed control frame: its type and content types. */
export interface Control {
  type: number;
  contentTypes: string[];
}

/**
 * Reads one control frame from the front of buf. Returns the frame and bytes used, null when
 * more bytes are needed, or throws on a frame that is not a well-formed control frame.
 */
export function parseControl(buf: Buffer): { control: Control; used: number } | null {
  if (buf.length < 8) return null;
  if (buf.readUInt32BE(0) !== 0) throw new Error('data frame where a control frame was expected');
  const len = buf.readUInt32BE(4);
  if (len < 4 || len > MAX_CONTROL_FRAME) throw new Error(`control frame length ${len} out of range`);
  if (buf.length < 8 + len) return null;
  const type = buf.readUInt32BE(8);
  const contentTypes: string[] = [];
  let off = 12;
  const end = 8 + len;
  while (off < end) {
    if (end - off < 8) throw new Error('truncated control field');
    const ftype = buf.readUInt32BE(off);
    const flen = buf.readUInt32BE(off + 4);
    off += 8;
    if (flen > end - off) throw new Error('control field runs past its frame');
    if (ftype === FIELD_CONTENT_TYPE) contentTypes.push(buf.toString('latin1', off, off + flen));
    off += flen;
  }
  return { control: { type, contentTypes }, used: end };
}

const IDLE = 0;
const CONNECTING = 1;
const READY = 2;
const DISCONNECTED = 3;
const STOPPING = 4;
const STOPPED = 5;

export class FrameStreamClient {
  readonly opts: FrameStreamOptions;
  /** Data frames handed to the socket. */
  sent = 0;
  /** Messages dropped (queue full, no connection, lost with a connection). */
  dropped = 0;
  /** Successful handshakes. */
  connects = 0;
  private readonly log: Logger;
  private readonly label: string;
  private state = IDLE;
  private socket: net.Socket | null = null;
  private readonly queue: Buffer[] = [];
  private head = 0;
  private queuedBytes = 0;
  private inbuf: Buffer = Buffer.alloc(0);
  private flushScheduled = false;
  private waitingDrain = false;
  private backoffMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  private connectTimer: NodeJS.Timeout | null = null;
  private stallTimer: NodeJS.Timeout | null = null;
  private reportTimer: NodeJS.Timeout | null = null;
  private droppedReported = 0;
  /** Logged the current run of connection failures already. */
  private failureLogged = false;
  private finishResolve: (() => void) | null = null;

  constructor(opts: FrameStreamOptions, log: Logger) {
    this.opts = opts;
    this.log = log;
    this.backoffMs = opts.backoffMinMs;
    const e = opts.endpoint;
    this.label = e.kind === 'unix' ? e.path : `${e.host}:${e.port}`;
  }

  /** Messages waiting in the queue. */
  get queued(): number {
    return this.queue.length - this.head;
  }

  get connected(): boolean {
    return this.state === READY;
  }

  /**
   * Queues one data frame: a buffer whose first 4 bytes are free for the length prefix. Never
   * blocks and never throws; drops (and counts) when it cannot keep the frame.
   */
  enqueue(frame: Buffer): void {
    const s = this.state;
    if (
      (s !== IDLE && s !== CONNECTING && s !== READY) ||
      this.queue.length - this.head >= this.opts.queueCapacity ||
      this.queuedBytes + frame.length > this.opts.queueMaxBytes
    ) {
      this.dropped++;
      return;
    }
    frame.writeUInt32BE(frame.length - 4, 0);
    this.queue.push(frame);
    this.queuedBytes += frame.length;
    if (s === READY && !this.flushScheduled && !this.waitingDrain) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  start(): void {
    if (this.state !== IDLE) return;
    this.reportTimer = setInterval(this.reportDrops, this.opts.dropReportMs);
    this.reportTimer.unref();
    this.connect();
  }

  /** Sends what is queued, STOP, waits for FINISH (bounded), closes. */
  stop(): Promise<void> {
    const s = this.state;
    if (s === STOPPED || s === STOPPING) return Promise.resolve();
    this.clearTimer('retryTimer');
    if (this.reportTimer !== null) clearInterval(this.reportTimer);
    this.reportTimer = null;
    this.reportDrops();
    const sock = this.socket;
    if (s !== READY || sock === null) {
      this.state = STOPPED;
      this.dropQueue();
      this.teardown();
      return Promise.resolve();
    }
    this.state = STOPPING;
    this.clearTimer('stallTimer');
    // Everything still queued goes out now (bounded by the queue's capacity).
    const rest: Buffer[] = [];
    for (let i = this.head; i < this.queue.length; i++) rest.push(this.queue[i]!);
    this.sent += rest.length;
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
    rest.push(controlFrame(CONTROL_STOP, null));
    return new Promise<void>((resolve) => {
      const done = (): void => {
        this.finishResolve = null;
        this.clearTimer('connectTimer');
        this.state = STOPPED;
        this.teardown();
        resolve();
      };
      this.finishResolve = done;
      this.connectTimer = setTimeout(done, this.opts.finishTimeoutMs);
      this.connectTimer.unref();
      try {
        sock.write(Buffer.concat(rest));
      } catch {
        done();
      }
    });
  }

  private connect(): void {
    this.retryTimer = null;
    if (this.state === STOPPING || this.state === STOPPED) return;
    this.state = CONNECTING;
    this.inbuf = Buffer.alloc(0);
    let sock: net.Socket;
    try {
      const e = this.opts.endpoint;
      sock = e.kind === 'unix' ? net.connect({ path: e.path }) : net.connect({ host: e.host, port: e.port });
    } catch (err) {
      this.failed(err);
      return;
    }
    this.socket = sock;
    sock.on('connect', () => {
      if (this.socket !== sock) return;
      try {
        sock.write(controlFrame(CONTROL_READY, CONTENT_TYPE));
      } catch (err) {
        this.failed(err);
      }
    });
    sock.on('data', (chunk: Buffer) => {
      if (this.socket === sock) this.onData(chunk);
    });
    sock.on('drain', () => {
      if (this.socket !== sock) return;
      this.waitingDrain = false;
      this.clearTimer('stallTimer');
      this.flush();
    });
    sock.on('error', (err) => {
      if (this.socket === sock) this.failed(err);
    });
    sock.on('close', () => {
      if (this.socket === sock) this.failed(new Error('connection closed by the receiver'));
    });
    this.connectTimer = setTimeout(() => {
      if (this.socket === sock && this.state === CONNECTING) this.failed(new Error('timeout waiting for the receiver to accept'));
    }, this.opts.connectTimeoutMs);
    this.connectTimer.unref();
  }

  private onData(chunk: Buffer): void {
    try {
      if (this.state === READY) return; // a reader sends nothing between ACCEPT and FINISH
      this.inbuf = this.inbuf.length === 0 ? chunk : Buffer.concat([this.inbuf, chunk]);
      for (;;) {
        const r = parseControl(this.inbuf);
        if (r === null) return;
        this.inbuf = this.inbuf.subarray(r.used);
        this.onControl(r.control);
        if (this.socket === null) return;
      }
    } catch (err) {
      this.failed(err);
    }
  }

  private onControl(c: Control): void {
    if (this.state === CONNECTING && c.type === CONTROL_ACCEPT) {
      if (c.contentTypes.length > 0 && !c.contentTypes.includes(CONTENT_TYPE)) {
        throw new Error(`receiver does not accept content type ${CONTENT_TYPE}`);
      }
      this.clearTimer('connectTimer');
      this.socket!.write(controlFrame(CONTROL_START, CONTENT_TYPE));
      this.state = READY;
      this.connects++;
      this.backoffMs = this.opts.backoffMinMs;
      if (this.failureLogged) this.log.info(`plugin/dnstap: connected to dnstap endpoint ${this.label}`);
      this.failureLogged = false;
      this.flush();
      return;
    }
    if (this.state === STOPPING && c.type === CONTROL_FINISH) {
      this.finishResolve?.();
      return;
    }
    throw new Error(`unexpected control frame type ${c.type}`);
  }

  /** Hands queued frames to the socket until its buffer holds writeBufferBytes. */
  private readonly flush = (): void => {
    this.flushScheduled = false;
    const sock = this.socket;
    if (this.state !== READY || sock === null || this.waitingDrain) return;
    try {
      const limit = this.opts.writeBufferBytes;
      while (this.head < this.queue.length) {
        const room = limit - sock.writableLength;
        if (room <= 0) {
          this.waitForDrain();
          return;
        }
        const batch: Buffer[] = [];
        let bytes = 0;
        while (this.head < this.queue.length && bytes < room && bytes < 65536) {
          const f = this.queue[this.head]!;
          this.queue[this.head++] = undefined as unknown as Buffer;
          batch.push(f);
          bytes += f.length;
          this.queuedBytes -= f.length;
        }
        this.sent += batch.length;
        const more = sock.write(batch.length === 1 ? batch[0]! : Buffer.concat(batch, bytes));
        if (!more && sock.writableLength >= limit) {
          this.compact();
          this.waitForDrain();
          return;
        }
      }
      this.compact();
    } catch (err) {
      this.failed(err);
    }
  };

  private waitForDrain(): void {
    this.waitingDrain = true;
    if (this.stallTimer === null) {
      this.stallTimer = setTimeout(() => {
        this.stallTimer = null;
        if (this.waitingDrain && this.state === READY) this.failed(new Error(`receiver read nothing for ${this.opts.stallTimeoutMs} ms`));
      }, this.opts.stallTimeoutMs);
      this.stallTimer.unref();
    }
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue.length = 0;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
  }

  /** The connection failed or ended: drop what was queued and retry after the backoff. */
  private failed(err: unknown): void {
    if (this.state === STOPPED) return;
    if (this.state === STOPPING) {
      this.finishResolve?.();
      return;
    }
    this.teardown();
    this.dropQueue();
    this.state = DISCONNECTED;
    if (!this.failureLogged) {
      const text = err instanceof Error ? err.message : String(err);
      this.log.error(`plugin/dnstap: No connection to dnstap endpoint: ${this.label}: ${text}`);
      this.failureLogged = true;
    }
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.opts.backoffMaxMs);
    this.retryTimer = setTimeout(() => this.connect(), delay);
    this.retryTimer.unref();
  }

  private dropQueue(): void {
    this.dropped += this.queue.length - this.head;
    this.queue.length = 0;
    this.head = 0;
    this.queuedBytes = 0;
  }

  private teardown(): void {
    this.clearTimer('connectTimer');
    this.clearTimer('stallTimer');
    this.waitingDrain = false;
    const sock = this.socket;
    this.socket = null;
    if (sock !== null) {
      sock.removeAllListeners('data');
      sock.on('error', () => {});
      try {
        sock.destroy();
      } catch {
        // already gone
      }
    }
  }

  private clearTimer(which: 'retryTimer' | 'connectTimer' | 'stallTimer'): void {
    const t = this[which];
    if (t !== null) clearTimeout(t);
    this[which] = null;
  }

  private readonly reportDrops = (): void => {
    const n = this.dropped - this.droppedReported;
    if (n > 0) {
      this.droppedReported = this.dropped;
      this.log.warn(`plugin/dnstap: Dropped dnstap messages: ${n}`);
    }
  };
}
