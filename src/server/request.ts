/**
 * One client query in flight: the parsed query (src/wire/query.ts ParsedQuery, filled by
 * `parseQuery` straight from the received bytes) plus what the server and plugins attach to
 * it. Nothing is decoded into strings unless a slow path asks (`name()`).
 *
 * The types a request refers to (ResponseWriter, ErrorSink, QueryTap) live here, and
 * src/plugin.ts re-exports them, so the two modules do not import each other.
 */
import { ParseResult, ParsedQuery, parseQuery } from '../wire/query.ts';
import { buildEmptyResponse } from '../wire/message.ts';
import { replyRcode } from '../wire/header.ts';

export const Proto = { UDP: 0, TCP: 1 } as const;
export type ProtoValue = (typeof Proto)[keyof typeof Proto];

export interface ResponseWriter {
  /**
   * Sends msg[0..len). The message's ID and question must already be the request's
   * (plugins patch them); the terminal writer handles UDP truncation and framing.
   */
  writeMsg(req: Request, msg: Buffer, len: number): void;
}

/** Receives the plugin errors of a block's queries (the `errors` plugin provides one). */
export type ErrorSink = (req: Request, plugin: string, err: Error) => void;

/** An upstream as dnstap and logs name it. */
export interface TapPeer {
  address: string;
  port: number;
  proto: 'udp' | 'tcp';
}

/**
 * Observes the messages a query causes beyond the client's own (dnstap's FORWARDER_*).
 * Set on the request by a plugin early in the chain; forward calls it for each upstream
 * exchange. Must not throw and must not block.
 */
export interface QueryTap {
  forwarderQuery(req: Request, peer: TapPeer, msg: Uint8Array, len: number): void;
  forwarderResponse(req: Request, peer: TapPeer, msg: Uint8Array, len: number, queryTimeMs: number): void;
}

export class Request extends ParsedQuery {
  /** Transport. */
  proto: ProtoValue = Proto.UDP;
  /** 4 or 6. */
  family: 4 | 6 = 4;
  remoteAddress = '';
  remotePort = 0;
  /** Label of the listener, e.g. `dns://127.0.0.1:53`. */
  server = '';
  /** The zone (normalised) of the server block that serves this query, set by routing. */
  zone = '';
  /** Arrival time, ms on the engine's clock (the Clock plugins get; performance.now() by default), 0 when unknown. */
  startMs = 0;

  /** Where the response goes; plugins may wrap it (see ResponseWriter). */
  writer: ResponseWriter;
  /** Name of the plugin that produced the response ("" for the server itself). */
  respondedBy = '';
  /** Rcode of the response sent, -1 until replied. */
  rcode = -1;
  /** Bytes of the response sent. */
  responseLen = 0;
  /**
   * Set by a plugin that answers with an error it made up (forward's SERVFAIL after every
   * upstream failed, REFUSED over max_concurrent). CoreDNS returns such errors instead of
   * writing them, so no cache stores them; caches check this flag to do the same.
   */
  errorReply = false;
  /** True once a response was written (later writes are ignored). */
  replied = false;
  /** Opaque per-transport context (the TCP connection, ...), owned by the transport. */
  transport: unknown = null;
  /** The route serving this request (a server/dispatch.ts RouteTarget), owned by the server. */
  target: unknown = null;
  /**
   * Where plugin errors go (set by the server when the block has `errors`); null drops them.
   * CoreDNS's plugins return errors up the chain; ours report them here before replying.
   */
  errorSink: ErrorSink | null = null;
  /** Observer of the upstream exchanges this query causes (dnstap), set by a plugin; null: none. */
  tap: QueryTap | null = null;
  /**
   * Metadata of this query (CoreDNS's metadata plugin): label -> value function, filled by
   * plugins that provide metadata when the block has `metadata`; null when it does not.
   */
  metadata: Map<string, () => string> | null = null;

  /**
   * Serves an internal query routed as a client's on this request's listener (CoreDNS's
   * upstream lookup through Server.ServeDNS; template follows CNAMEs with it). Set by the server.
   */
  lookup: ((sub: Request) => void) | null = null;

  constructor(msg: Buffer, msgLen: number, writer: ResponseWriter) {
    super(msg, msgLen);
    this.writer = writer;
  }

  /**
   * An internal query on behalf of this one (dns64's A query, template's CNAME lookups): `msg`
   * parsed into a new request with this request's client, listener, zone, arrival time and
   * errors plugin; null when `msg` does not parse. Tap, metadata and routing are the caller's.
   */
  derive(msg: Buffer, writer: ResponseWriter): Request | null {
    const sub = new Request(msg, msg.length, writer);
    if (parseQuery(sub) !== ParseResult.OK) return null;
    sub.proto = this.proto;
    sub.family = this.family;
    sub.remoteAddress = this.remoteAddress;
    sub.remotePort = this.remotePort;
    sub.server = this.server;
    sub.zone = this.zone;
    sub.startMs = this.startMs;
    sub.errorSink = this.errorSink;
    return sub;
  }

  /** Reports a plugin error (e.g. forward's upstream timeout) to the `errors` plugin, if any. */
  reportError(plugin: string, err: Error): void {
    if (this.errorSink !== null) this.errorSink(this, plugin, err);
  }

  /**
   * Answers with an error the plugin made up (CoreDNS: a handler returning an rcode and an
   * error): the client gets `rcode` with the question and no records, no cache stores it, and
   * then `err` goes to the block's errors plugin. `err` null: nothing to report.
   */
  fail(plugin: string, rcode: number, err: Error | null): void {
    if (this.replied) return;
    const out = buildEmptyResponse(this, rcode);
    this.errorReply = true;
    this.reply(out, out.length, plugin);
    // After the reply, so the errors plugin logs the rcode sent, as CoreDNS's does.
    if (err !== null) this.reportError(plugin, err);
  }

  /**
   * Sends the response msg[0..len) through the writer chain, once. `plugin` names who
   * produced it (CoreDNS's `plugin` label of coredns_dns_responses_total).
   */
  reply(msg: Buffer, len: number, plugin: string): void {
    if (this.replied) return;
    this.replied = true;
    this.respondedBy = plugin;
    this.rcode = replyRcode(msg, len);
    this.responseLen = len;
    this.writer.writeMsg(this, msg, len);
  }
}
