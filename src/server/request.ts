/**
 * One client query in flight. Filled by `parseQuery` (src/wire/query.ts) straight from the
 * received bytes; nothing here is decoded into strings unless a slow path asks (`name()`).
 */
import type { ErrorSink, QueryTap, ResponseWriter } from '../plugin.ts';
import { qnameToString } from '../wire/name.ts';
import { buildEmptyResponse } from '../wire/message.ts';

export const Proto = { UDP: 0, TCP: 1 } as const;
export type ProtoValue = (typeof Proto)[keyof typeof Proto];

export class Request {
  /** The client's message. Valid for the request's lifetime (callers hand over ownership). */
  msg: Buffer;
  msgLen: number;

  /** Header fields. */
  id = 0;
  /** The 16-bit flags word of the query (QR, opcode, RD, CD, ...). */
  flags = 0;
  /** Offset just past the question's qname (the qname itself is msg[12..qnameEnd)). */
  qnameEnd = 0;
  /** Offset just past the question (qnameEnd + 4). */
  questionEnd = 0;
  qtype = 0;
  qclass = 0;
  /** Number of labels in the qname, the root not counted. */
  labelCount = 0;
  /**
   * Offsets of the qname's labels (their length byte) relative to offset 12; only the first
   * `labelCount` entries are meaningful. Used for zone suffix matching without strings.
   */
  labelOffsets: Uint8Array;
  /** FNV-1a hash of the case-folded qname, as a signed 32-bit integer. */
  nameHash = 0;

  /** EDNS(0): whether the query carried an OPT record, and its values (RFC 6891 §6.1). */
  edns = false;
  ednsVersion = 0;
  /** Client's advertised UDP payload size, clamped to >= 512; 512 without EDNS. */
  udpSize = 512;
  /** DNSSEC OK bit (RFC 3225). */
  dnssecOk = false;
  /** Offset of the OPT RR in msg, or -1. */
  optOffset = -1;

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

  private cachedName: string | null = null;

  constructor(msg: Buffer, msgLen: number, writer: ResponseWriter, labelOffsets?: Uint8Array) {
    this.msg = msg;
    this.msgLen = msgLen;
    this.writer = writer;
    this.labelOffsets = labelOffsets ?? new Uint8Array(128);
  }

  get recursionDesired(): boolean {
    return (this.flags & 0x0100) !== 0;
  }

  get checkingDisabled(): boolean {
    return (this.flags & 0x0010) !== 0;
  }

  /** The qname as text, fully qualified, as the client wrote it (slow path: logs, errors). */
  name(): string {
    if (this.cachedName === null) this.cachedName = qnameToString(this.msg, 12, this.qnameEnd);
    return this.cachedName;
  }

  /** After `msg` was replaced and parsed again (rewrite): the qname text to report, or null to read it from msg. */
  resetName(name: string | null = null): void {
    this.cachedName = name;
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
    this.rcode = len >= 4 ? msg[3]! & 0x0f : 2;
    this.responseLen = len;
    this.writer.writeMsg(this, msg, len);
  }
}
