/**
 * The contract between the forward handler and its transports. One `Attempt` is one try of
 * one client query against one upstream over one protocol; the handler's per-query record
 * implements it and is reused for every try of that query.
 *
 * Transport duties: pick a socket/connection, draw a message ID that is not in flight on it
 * (`randomId`), write the ID into the bytes it sends — UDP: the client's own query bytes
 * (`msg`, no copy); TCP: `tcpFrame()`, a copy with the RFC 1035 §4.2.2 length prefix — send, and later call exactly one of `replied`/`failed` — after forgetting the
 * attempt (`holder = null`) — unless the handler called `holder.release(a)` first (timeout,
 * stop). A reply is accepted only by `takeReply` (ID in flight and question equal, or a
 * header-only error reply). Transports never call back synchronously from `send`: a failure
 * they know of at once (no free ID, a socket that cannot be created) is returned as a
 * `SendFailure` instead.
 */
import type { Request } from '../../server/request.ts';
import { ResponseScan, questionMatches } from '../../wire/message.ts';
import { ForwardErrorCode, type ForwardErrorCodeValue } from './errors.ts';
import { isHeaderOnlyError } from '../../wire/reply.ts';
import { isResponse, messageId } from '../../wire/header.ts';
import type { UpstreamStats } from './stats.ts';

/**
 * Where a try failed, for Go-like error texts (`dial tcp ...`, `read udp ...`). DIAL covers
 * everything before the first byte could leave: socket creation (EMFILE), bind, connect
 * (no route, prohibited, refused over TCP).
 */
export const Phase = { DIAL: 0, WRITE: 1, READ: 2 } as const;
export type PhaseValue = (typeof Phase)[keyof typeof Phase];

/** A try that failed before `send` returned (nothing was registered, no callback follows). */
export class SendFailure {
  readonly code: ForwardErrorCodeValue;
  readonly phase: PhaseValue;
  /** Node error code (EMFILE, ...) or ''. */
  readonly errno: string;
  constructor(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string) {
    this.code = code;
    this.phase = phase;
    this.errno = errno;
  }
}

export const ID_EXHAUSTED_FAILURE = new SendFailure(ForwardErrorCode.ID_EXHAUSTED, Phase.WRITE, '');

/** The Node error code of something thrown by a socket call ('' when it has none). */
export function errnoOf(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

export interface AttemptHolder {
  /** Local `IP:port` of the socket ('' until known), for error texts. */
  readonly local: string;
  /** Still connecting: a timeout now is a dial timeout (`dial tcp ...: i/o timeout`). */
  readonly dialing: boolean;
  /**
   * Forgets the attempt without calling it back. `timedOut` tells a TCP connection that the
   * read timeout passed, so it can judge whether it is dead.
   */
  release(a: Attempt, timedOut?: boolean): void;
  /**
   * At the read timeout of `a`'s try: keeps that try's ID registered, now calling back `late`
   * (a reply to an earlier try of the same query is as good as one to the current try), and
   * forgets `a`. The handler releases `late` when the query ends. Returns false when the
   * holder could not (then `a` was released as by `release(a, true)`).
   */
  handOver?(a: Attempt, late: Attempt): boolean;
}

export interface Attempt {
  /** The client's query; its question is req.msg[12..req.qnameEnd + 4). */
  readonly req: Request;
  /** The client's query bytes msg[0..queryLen); the UDP transport overwrites the ID in place. */
  readonly msg: Buffer;
  readonly queryLen: number;
  /** [u16 length][message]: the query for TCP (made on first use, then reused by every TCP try). */
  tcpFrame(): Buffer;
  /** The ID on the wire for the current try (set by the transport). */
  wireId: number;
  /** The socket/connection holding the current try, or null. */
  holder: AttemptHolder | null;
  /** The accepted reply buf[0..len); buf is the callee's to keep or modify. */
  replied(buf: Buffer, len: number): void;
  /**
   * The try failed. `errno` is a Node error code (ECONNREFUSED, ...) or '' ; `local` is the
   * local `IP:port` of the socket when known ('' otherwise).
   */
  failed(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string, local: string): void;
}

/**
 * The reply acceptance rule shared by the transports (RFC 5452 §9.1): `msg[0..len)` is taken
 * only when it is a response (QR set; callers have checked len >= 12), its ID is in flight in
 * `inflight` (the socket is connected to the upstream, or it is the upstream's TCP
 * connection), and its question equals the query's — or it has no question at all and an
 * error rcode (NSD and BIND answer FORMERR/NOTAUTH/REFUSED so, e.g. to a TSIG-signed query
 * or class NONE/HS): such a reply is the upstream's final word on this ID, and waiting
 * would only cost the client the whole deadline. A NOERROR reply without the question, or
 * with another question, is ignored. Returns the attempt, removed from `inflight` and with
 * `holder` cleared, or null after counting why the message was ignored.
 */
/** Reused by takeReply (replies are taken one at a time, synchronously). */
const scan = new ResponseScan();

export function takeReply(inflight: Map<number, Attempt>, msg: Buffer, len: number, stats: UpstreamStats): Attempt | null {
  if (!isResponse(msg)) {
    stats.ignoredGarbage++;
    return null;
  }
  const id = messageId(msg);
  const at = inflight.get(id);
  if (at === undefined) {
    stats.ignoredUnknownId++;
    return null;
  }
  if (!questionMatches(at.req.msg, at.req.qnameEnd, msg, len)) {
    if (!isHeaderOnlyError(msg, len, scan)) {
      stats.ignoredWrongQuestion++;
      return null;
    }
    stats.headerOnlyErrors++;
  }
  inflight.delete(id);
  at.holder = null;
  return at;
}
