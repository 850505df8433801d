/**
 * The dnstap handler (CoreDNS plugin/dnstap semantics): for each client query one
 * CLIENT_QUERY message when the query enters the plugin and one CLIENT_RESPONSE after the
 * response was written to the client; `req.tap` is set so that forward reports each upstream
 * exchange as FORWARDER_QUERY / FORWARDER_RESPONSE. Every message goes to every `dnstap` line
 * of the block. Messages are encoded at once (no reference to the request is kept) and queued
 * on the tap's Frame Streams client, which never blocks (framestream.ts).
 */
import { Buffer } from 'node:buffer';
import { PluginScope } from '../../plugin.ts';
import type { BlockInfo, Clock, Handler, MetricsOut, Plugin, QueryTap, ResponseWriter, TapPeer } from '../../plugin.ts';
import { Proto, type Request } from '../../server/request.ts';
import { encodeDnstap, emptyTapMessage, ipToTapAddress, SocketProtocol, TapType, type TapHeader, type TapMessage } from '../../wire/dnstap-proto.ts';
import type { FrameStreamClient } from './framestream.ts';
import { compileExtra, type ExtraFormat } from './extra.ts';
import { collectDnstap, retireDnstap } from './metrics.ts';
import { setMessageId } from '../../wire/header.ts';

export const PLUGIN_NAME = 'dnstap';

/** One `dnstap` line: where to send and what. */
export interface TapConfig {
  /** The SOCKET argument as written (metrics label, logs). */
  socket: string;
  full: boolean;
  identity: Buffer;
  version: Buffer;
  /** `extra` format, or null. */
  extra: string | null;
  skipVerify: boolean;
}

export class Tap {
  readonly config: TapConfig;
  readonly client: FrameStreamClient;
  readonly full: boolean;
  private readonly header: TapHeader;
  private readonly extra: ExtraFormat | null;

  constructor(config: TapConfig, client: FrameStreamClient) {
    this.config = config;
    this.client = client;
    this.full = config.full;
    this.header = { identity: config.identity, version: config.version, extra: null };
    this.extra = config.extra === null ? null : compileExtra(config.extra);
  }

  send(req: Request, m: TapMessage): void {
    const h = this.header;
    h.extra = this.extra === null ? null : Buffer.from(this.extra(req));
    this.client.enqueue(encodeDnstap(h, m, 4));
  }
}

/** Parsed client addresses, so a busy client's address text is parsed once. */
const addrCache = new Map<string, { bytes: Uint8Array; family: number } | null>();
const ADDR_CACHE_MAX = 4096;

function tapAddress(text: string): { bytes: Uint8Array; family: number } | null {
  let a = addrCache.get(text);
  if (a === undefined) {
    a = ipToTapAddress(text);
    if (addrCache.size >= ADDR_CACHE_MAX) addrCache.clear();
    addrCache.set(text, a);
  }
  return a;
}

/** Wall-clock milliseconds with sub-millisecond resolution. */
function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

function clientMessage(type: number, req: Request): TapMessage {
  const m = emptyTapMessage(type);
  const a = tapAddress(req.remoteAddress);
  if (a !== null) {
    m.family = a.family;
    m.queryAddress = a.bytes;
  }
  m.protocol = req.proto === Proto.TCP ? SocketProtocol.TCP : SocketProtocol.UDP;
  m.queryPort = req.remotePort;
  return m;
}

function forwarderMessage(type: number, peer: TapPeer): TapMessage {
  const m = emptyTapMessage(type);
  const a = tapAddress(peer.address);
  if (a !== null) {
    m.family = a.family;
    m.responseAddress = a.bytes;
  }
  m.protocol = peer.proto === 'tcp' ? SocketProtocol.TCP : SocketProtocol.UDP;
  m.responsePort = peer.port;
  return m;
}

/** msg[0..len) with the client's ID (forward sends its own IDs upstream; CoreDNS taps the client's). */
function withClientId(req: Request, msg: Uint8Array, len: number): Buffer {
  const b = Buffer.allocUnsafe(len);
  b.set(msg.subarray(0, len));
  if (len >= 2) setMessageId(b, req.id);
  return b;
}

class TapWriter implements ResponseWriter {
  private readonly inner: ResponseWriter;
  private readonly plugin: DnstapPlugin;
  private readonly queryTimeMs: number;

  constructor(inner: ResponseWriter, plugin: DnstapPlugin, queryTimeMs: number) {
    this.inner = inner;
    this.plugin = plugin;
    this.queryTimeMs = queryTimeMs;
  }

  /** Writes to the client first, then taps the response (as CoreDNS's dnstap ResponseWriter). */
  writeMsg(req: Request, msg: Buffer, len: number): void {
    req.writer = this.inner;
    this.inner.writeMsg(req, msg, len);
    try {
      const now = wallMs();
      for (const t of this.plugin.taps) {
        const m = clientMessage(TapType.CLIENT_RESPONSE, req);
        m.queryTimeMs = this.queryTimeMs;
        m.responseTimeMs = now;
        if (t.full) m.responseMessage = msg.subarray(0, len);
        t.send(req, m);
      }
    } catch (err) {
      this.plugin.internalError(err);
    }
  }
}

export class DnstapPlugin implements Plugin, Handler, QueryTap {
  readonly name = PLUGIN_NAME;
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly taps: Tap[];
  private readonly clock: Clock;
  private readonly onError: (msg: string) => void;
  private next: Handler | null = null;
  /** Stopped: its counts went to the retired totals. */
  private retired = false;

  constructor(taps: Tap[], clock: Clock, onError: (msg: string) => void) {
    this.taps = taps;
    this.clock = clock;
    this.onError = onError;
  }

  compose(next: Handler): Handler {
    this.next = next;
    return this;
  }

  serve(req: Request): void {
    const now = wallMs();
    try {
      for (const t of this.taps) {
        const m = clientMessage(TapType.CLIENT_QUERY, req);
        m.queryTimeMs = now;
        if (t.full) m.queryMessage = req.msg.subarray(0, req.msgLen);
        t.send(req, m);
      }
    } catch (err) {
      this.internalError(err);
    }
    req.tap = this;
    req.writer = new TapWriter(req.writer, this, now);
    this.next!.serve(req);
  }

  forwarderQuery(req: Request, peer: TapPeer, msg: Uint8Array, len: number): void {
    try {
      const now = wallMs();
      for (const t of this.taps) {
        const m = forwarderMessage(TapType.FORWARDER_QUERY, peer);
        m.queryTimeMs = now;
        if (t.full) m.queryMessage = withClientId(req, msg, len);
        t.send(req, m);
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  forwarderResponse(req: Request, peer: TapPeer, msg: Uint8Array, len: number, queryTimeMs: number): void {
    try {
      const now = wallMs();
      const sent = now - (this.clock() - queryTimeMs);
      for (const t of this.taps) {
        const m = forwarderMessage(TapType.FORWARDER_RESPONSE, peer);
        m.queryTimeMs = sent;
        m.responseTimeMs = now;
        if (t.full) m.responseMessage = withClientId(req, msg, len);
        t.send(req, m);
      }
    } catch (err) {
      this.internalError(err);
    }
  }

  start(): void {
    for (const t of this.taps) t.client.start();
  }

  async stop(): Promise<void> {
    await Promise.all(this.taps.map((t) => t.client.stop()));
    if (this.retired) return;
    this.retired = true;
    retireDnstap(this.taps);
  }

  collect(_block: BlockInfo, out: MetricsOut): void {
    if (!this.retired) collectDnstap(this.taps, out);
  }

  internalError(err: unknown): void {
    this.onError(`plugin/dnstap: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  }
}
