/**
 * The forward plugin's query handler (CoreDNS plugin/forward ServeDNS semantics).
 *
 * Per query that is inside FROM and not under an `except` name:
 *  - `max_concurrent N`: the N+1th concurrent query is answered REFUSED (error reported,
 *    `maxConcurrentRejects` counted), as CoreDNS does; without `max_concurrent`, the
 *    instance's share of the default in-flight budget (budget.ts) is its N;
 *  - the policy orders the upstreams; the loop takes them in turn, wrapping around, until one
 *    answers, the overall deadline (CoreDNS: 5 s, checked before each try) passes, or the try
 *    budget is spent. An upstream that is down (failed health checks) is skipped; when all
 *    are down, one is picked at random anyway and `healthcheckBroken` counted;
 *  - each try sends the client's bytes with a fresh CSPRNG ID over the client's protocol
 *    (`force_tcp` → TCP, else `prefer_udp` → UDP) and waits at most the read timeout
 *    (CoreDNS: 2 s). A failed try kicks the upstream's health check and moves on. A try that
 *    fails to dial (the kernel refuses the socket or the connect: no route, prohibited,
 *    EMFILE, TCP refused) fails in the same event-loop turn as the error, and that upstream
 *    is not tried again by this query; when every upstream failed so, the query ends SERVFAIL
 *    at once, with CoreDNS's error text (`dial udp 198.18.0.1:53: connect: network is
 *    unreachable`). A UDP reply
 *    with TC=1 is retried over TCP to the same upstream; a reused TCP connection closed by the
 *    peer is retried on a new connection to the same upstream (CoreDNS's ErrCachedClosed);
 *  - the accepted reply (ID and question matched by the transport) gets the client's ID back
 *    and goes to `req.reply(buf, len, 'forward')`; the buffer is not touched afterwards. A
 *    header-only error reply (no question, error rcode: see reply.ts) is answered at once
 *    with its rcode and the client's question;
 *  - a try that times out stays registered with its socket/connection (`handOver`) until the
 *    query ends: a late reply to an earlier try is accepted like a reply to the current one
 *    (it is the same question), so an upstream slower than the read timeout but within the
 *    deadline still gets its answer to the client, once;
 *  - when nothing answered: `req.reportError('forward', err)` with a Go-like message (e.g.
 *    `read udp 127.0.0.1:40000->10.96.0.10:53: i/o timeout`) and a SERVFAIL reply.
 *
 * Divergences from CoreDNS, on purpose:
 *  - the number of tries per query is capped (default max(3, 2 × upstreams)) so that
 *    upstreams failing instantly (connection refused) cannot make a query spin until the
 *    deadline;
 *  - a reply with a wrong question is ignored (the query keeps waiting, RFC 5452 §9.1)
 *    instead of being answered FORMERR; a header-only error reply (QDCOUNT=0, e.g. NSD's
 *    REFUSED to class HS, NOTAUTH to an unknown TSIG key) is answered at once with its own
 *    rcode where CoreDNS answers FORMERR;
 *  - an upstream that failed to dial is not tried again by the same query (CoreDNS redials
 *    until the deadline or try cap);
 *  - without `max_concurrent`, a share of a default in-flight budget applies (budget.ts);
 *    CoreDNS has no limit by default;
 *  - a TC=1 UDP reply is always retried over TCP (CoreDNS does so only with `prefer_udp` and
 *    otherwise hands the truncated reply to the client, who retries over TCP itself); if the
 *    TCP retry fails the truncated reply is passed on, so the client sees what CoreDNS gives.
 *    The full answer thus reaches the cache, and an RRL "slip" reply costs the client no retry.
 */
import type { Buffer } from 'node:buffer';
import { PluginScope } from '../../plugin.ts';
import type { BlockInfo, Clock, Handler, Logger, MetricsOut, Plugin } from '../../plugin.ts';
import { Proto, type ProtoValue, type Request } from '../../server/request.ts';
import { Header, Rcode } from '../../wire/codes.ts';
import { ZoneMatcher, qnameInZone, zoneWire } from '../../wire/zone-match.ts';
import { Phase, type Attempt, type AttemptHolder, type PhaseValue, type SendFailure } from './attempt.ts';
import { ForwardError, ForwardErrorCode, dialSyscall, errnoText, type ForwardErrorCodeValue } from './errors.ts';
import type { InflightBudget } from './budget.ts';
import { makePolicy, type Policy, type PolicyName } from './policy.ts';
import { replyFullRcode, restoreQuestion } from '../../wire/reply.ts';
import { ResponseScan } from '../../wire/message.ts';
import { isTruncated, questionCount, setMessageId } from '../../wire/header.ts';
import { framed } from '../../wire/tcp-frame.ts';
import { ForwardStats, retiredForwardTotals } from './stats.ts';
import { collectForward } from './metrics.ts';
import { TimeoutQueue, type TimeoutNode } from './timeouts.ts';
import { TCP_DEFAULTS, type TcpPoolOptions } from './transport-tcp.ts';
import { MAX_UDP_PAYLOAD, UDP_DEFAULTS, type UdpPoolOptions, type UpstreamAddress } from './transport-udp.ts';
import { Upstream } from './upstream.ts';

export const PLUGIN_NAME = 'forward';

/** What the Corefile configures (see setup.ts); defaults are CoreDNS's. */
export interface ForwardSettings {
  /** Normalised zone (lower case, fully qualified). */
  from: string;
  /** Normalised `except` names. */
  ignored: string[];
  upstreams: UpstreamAddress[];
  forceTcp: boolean;
  preferUdp: boolean;
  /** Idle sockets/connections are closed after this (CoreDNS `expire`, default 10 s). */
  expireMs: number;
  /** CoreDNS `max_fails`, default 2; 0 = never down, never health checked. */
  maxFails: number;
  /** CoreDNS `health_check` interval, default 0.5 s; 0 disables. */
  healthCheckMs: number;
  hcRecursionDesired: boolean;
  hcDomain: string;
  policy: PolicyName;
  /** 0 = unlimited; null = not set: the instance's share of the default budget (budget.ts). */
  maxConcurrent: number | null;
}

/** Knobs that are not in the Corefile: CoreDNS's constants, overridable in tests. */
export interface ForwardTuning {
  /** Per-try read timeout (CoreDNS proxy readTimeout: 2 s). */
  readTimeoutMs: number;
  /** Overall time per query, checked before each try (CoreDNS defaultTimeout: 5 s). */
  deadlineMs: number;
  /** Health probe timeout (CoreDNS health client: 1 s). */
  healthCheckTimeoutMs: number;
  /** Most tries per query; 0 = max(3, 2 × number of upstreams). */
  maxTries: number;
  /** Housekeeping period (socket retirement, idle close). */
  sweepIntervalMs: number;
  udp: Partial<UdpPoolOptions>;
  tcp: Partial<TcpPoolOptions>;
  /** The default in-flight budget's total (budget.ts), read by setup. */
  inflightBudgetTotal?: number;
}

const TUNING_DEFAULTS: ForwardTuning = {
  readTimeoutMs: 2000,
  deadlineMs: 5000,
  healthCheckTimeoutMs: 1000,
  maxTries: 0,
  sweepIntervalMs: 1000,
  udp: {},
  tcp: {},
};

const UDP = Proto.UDP;
const TCP = Proto.TCP;
/** CACHED_CLOSED retries on the same upstream per query before it counts as a failure. */
const MAX_CACHED_CLOSED_RETRIES = 2;
const SINGLE = new Uint8Array(1);

/**
 * A timed-out try kept registered for its late reply (see AttemptHolder.handOver): passes the
 * reply to its query if that still waits; a failure is ignored (the try already counted).
 */
class LateTry implements Attempt {
  readonly ex: Exchange;
  readonly up: Upstream;
  readonly proto: ProtoValue;
  readonly startMs: number;
  wireId = 0;
  holder: AttemptHolder | null = null;
  /** The query's next earlier try kept for a late reply (a list: most queries have none). */
  nextLate: LateTry | null;

  constructor(ex: Exchange, up: Upstream, proto: ProtoValue, startMs: number, nextLate: LateTry | null) {
    this.ex = ex;
    this.up = up;
    this.proto = proto;
    this.startMs = startMs;
    this.nextLate = nextLate;
  }

  get req(): Request {
    return this.ex.req;
  }

  get msg(): Buffer {
    return this.ex.req.msg;
  }

  get queryLen(): number {
    return this.ex.queryLen;
  }

  tcpFrame(): Buffer {
    return this.ex.tcpFrame();
  }

  replied(buf: Buffer, len: number): void {
    this.ex.lateReplied(this, buf, len);
  }

  failed(): void {}
}

/**
 * Per-query record: the state of the try loop; also the transports' Attempt and the timeout
 * node. Kept small — it lives as long as the query is in flight (see ForwardPlugin's
 * in-flight bound): no copy of the query for UDP, deadlines in whole milliseconds (small
 * integers, not boxed doubles), earlier tries in a list through LateTry.nextLate.
 */
class Exchange implements Attempt, TimeoutNode {
  readonly fwd: ForwardPlugin;
  readonly req: Request;
  readonly queryLen: number;
  /** The TCP frame ([u16 length][query]), made by the first TCP try. */
  private frame: Buffer | null = null;
  wireId = 0;
  holder: AttemptHolder | null = null;
  tqPrev: TimeoutNode | null = null;
  tqNext: TimeoutNode | null = null;
  tqDeadline = -1;

  private readonly order: Uint8Array;
  private i = 0;
  private fails = 0;
  /** Bit k set: upstream k failed to dial for this query and is not tried again. */
  private dialFailed = 0;
  private upIndex = 0;
  private tries = 0;
  private closedRetries = 0;
  private readonly deadlineMs: number;
  private up: Upstream | null = null;
  private proto: ProtoValue = UDP;
  private tryStartMs = 0;
  private done = false;
  /** Earlier tries still registered for a late reply (newest first), or null. */
  private late: LateTry | null = null;
  /** A TC=1 UDP reply kept while its TCP retry runs. */
  private truncated: Buffer | null = null;
  private truncatedLen = 0;

  private errCode: ForwardErrorCodeValue | null = null;
  private errPhase: PhaseValue = Phase.READ;
  private errErrno = '';
  private errLocal = '';
  private errTo = '';
  private errProto: ProtoValue = UDP;

  constructor(fwd: ForwardPlugin, req: Request, now: number) {
    this.fwd = fwd;
    this.req = req;
    this.queryLen = req.msgLen;
    this.deadlineMs = Math.ceil(now + fwd.tuning.deadlineMs);
    const n = fwd.upstreams.length;
    this.order = n === 1 ? SINGLE : new Uint8Array(n);
    if (n > 1) fwd.policy.order(n, this.order);
  }

  get msg(): Buffer {
    return this.req.msg;
  }

  tcpFrame(): Buffer {
    let f = this.frame;
    if (f === null) {
      f = framed(this.req.msg, this.queryLen);
      this.frame = f;
    }
    return f;
  }

  /** CoreDNS's ServeDNS loop: the next try, or the end. */
  next(): void {
    const f = this.fwd;
    const ups = f.upstreams;
    const n = ups.length;
    for (;;) {
      if (f.stopped) {
        this.record(ForwardErrorCode.STOPPED, Phase.READ, '', '', '');
        this.finishFail();
        return;
      }
      const live = n - popcount(this.dialFailed);
      if (live === 0 || f.clock() >= this.deadlineMs || this.tries >= f.maxTries) {
        this.finishFail();
        return;
      }
      if (this.i >= n) {
        this.i = 0;
        this.fails = 0;
      }
      let k = this.order[this.i++]!;
      if ((this.dialFailed & (1 << k)) !== 0) continue;
      if (ups[k]!.down(f.settings.maxFails)) {
        this.fails++;
        if (this.fails < live) continue;
        // All upstreams down: assume health checking is broken and pick one at random.
        f.stats.healthcheckBroken++;
        k = this.randomLive(n, live);
      }
      const up = ups[k]!;
      this.upIndex = k;
      this.tries++;
      let proto: ProtoValue = f.settings.forceTcp ? TCP : f.settings.preferUdp ? UDP : this.req.proto;
      if (proto === UDP && this.queryLen > MAX_UDP_PAYLOAD) proto = TCP;
      if (this.startTry(up, proto)) return;
      // Synchronous failure (no free ID, no socket): same path as a failed try, without recursion.
      f.kickHealthCheck(up);
      if (this.fails >= n) {
        this.finishFail();
        return;
      }
    }
  }

  /** A uniformly random upstream index among those that did not fail to dial. */
  private randomLive(n: number, live: number): number {
    let skip = (Math.random() * live) | 0;
    for (let k = 0; k < n; k++) {
      if ((this.dialFailed & (1 << k)) !== 0) continue;
      if (skip-- === 0) return k;
    }
    return 0;
  }

  private startTry(up: Upstream, proto: ProtoValue): boolean {
    const f = this.fwd;
    this.up = up;
    this.proto = proto;
    this.tryStartMs = f.clock();
    up.stats.requests++;
    const err: SendFailure | null = proto === TCP ? up.tcp.send(this) : up.udp.send(this);
    if (err !== null) {
      this.holder = null;
      up.stats.networkErrors++;
      this.record(err.code, err.phase, err.errno, '', up.to);
      this.noteDialFailure(err.code, err.phase);
      return false;
    }
    const md = this.req.metadata;
    if (md !== null) md.set('forward/upstream', () => up.to);
    const tap = this.req.tap;
    if (tap !== null)
      tap.forwarderQuery(this.req, { address: up.address.host, port: up.address.port, proto: proto === TCP ? 'tcp' : 'udp' }, this.req.msg, this.queryLen);
    f.timeouts.add(this, f.tuning.readTimeoutMs);
    return true;
  }

  /** A dial that the kernel refused will be refused again now: this query skips that upstream. */
  private noteDialFailure(code: ForwardErrorCodeValue, phase: PhaseValue): void {
    if (code === ForwardErrorCode.NETWORK && phase === Phase.DIAL && this.errErrno !== 'EOF') this.dialFailed |= 1 << this.upIndex;
  }

  private record(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string, local: string, to: string): void {
    this.errCode = code;
    this.errPhase = phase;
    this.errErrno = errno;
    this.errLocal = local;
    this.errTo = to;
    this.errProto = this.proto;
  }

  /** TimeoutNode: the read timeout of the current try passed. */
  onTimeout(): void {
    if (this.done) return;
    const h = this.holder;
    const local = h !== null ? h.local : '';
    const dialing = h !== null && h.dialing;
    this.holder = null;
    const up = this.up!;
    if (h !== null) {
      if (h.handOver !== undefined && !this.fwd.stopped) {
        const late = new LateTry(this, up, this.proto, this.tryStartMs, this.late);
        if (h.handOver(this, late)) this.late = late;
      } else {
        h.release(this, true);
      }
    }
    up.stats.timeouts++;
    if (dialing) this.record(ForwardErrorCode.DIAL_TIMEOUT, Phase.DIAL, '', '', up.to);
    else this.record(ForwardErrorCode.TIMEOUT, Phase.READ, '', local, up.to);
    this.afterError();
  }

  /** Attempt: the transport failed the current try. */
  failed(code: ForwardErrorCodeValue, phase: PhaseValue, errno: string, local: string): void {
    this.fwd.timeouts.remove(this);
    if (this.done) return;
    const up = this.up!;
    if (code === ForwardErrorCode.CACHED_CLOSED && this.closedRetries < MAX_CACHED_CLOSED_RETRIES && !this.fwd.stopped) {
      this.closedRetries++;
      if (this.startTry(up, this.proto)) return;
    }
    up.stats.networkErrors++;
    this.record(code, phase, errno, local, up.to);
    this.noteDialFailure(code, phase);
    this.afterError();
  }

  private afterError(): void {
    const f = this.fwd;
    if (f.stopped) {
      this.finishFail();
      return;
    }
    if (this.truncated !== null) {
      this.deliver(this.truncated, this.truncatedLen);
      return;
    }
    f.kickHealthCheck(this.up!);
    if (this.fails < f.upstreams.length) this.next();
    else this.finishFail();
  }

  /** Attempt: an accepted reply for the current try. */
  replied(buf: Buffer, len: number): void {
    const f = this.fwd;
    f.timeouts.remove(this);
    if (this.done) return;
    const up = this.up!;
    const tap = this.req.tap;
    if (tap !== null)
      tap.forwarderResponse(
        this.req,
        { address: up.address.host, port: up.address.port, proto: this.proto === TCP ? 'tcp' : 'udp' },
        buf,
        len,
        this.tryStartMs,
      );
    up.stats.observeResponse(replyFullRcode(buf, len, scan), (f.clock() - this.tryStartMs) / 1000);
    if (isTruncated(buf) && this.proto === UDP) {
      // TC=1 over UDP: ask the same upstream again over TCP (RFC 7766 §5). Should that fail,
      // the truncated reply is what the client gets (as CoreDNS would pass it on).
      up.stats.truncatedRetries++;
      this.truncated = buf;
      this.truncatedLen = len;
      if (!this.startTry(up, TCP)) this.afterError();
      return;
    }
    this.deliver(buf, len);
  }

  /** A late reply to an earlier try: the current try is dropped and the reply taken. */
  lateReplied(late: LateTry, buf: Buffer, len: number): void {
    if (this.done) return;
    this.fwd.timeouts.remove(this);
    const h = this.holder;
    this.holder = null;
    if (h !== null) h.release(this);
    this.truncated = null;
    this.up = late.up;
    this.proto = late.proto;
    this.tryStartMs = late.startMs;
    this.replied(buf, len);
  }

  private deliver(buf: Buffer, len: number): void {
    if (questionCount(buf) === 0 && this.req.questionEnd > 0) {
      // A header-only error reply (takeReply accepted it): the client's question goes back in.
      buf = restoreQuestion(this.req, buf, replyFullRcode(buf, len, scan));
      len = buf.length;
    }
    setMessageId(buf, this.req.id);
    this.finish();
    this.req.reply(buf, len, PLUGIN_NAME);
  }

  private finish(): void {
    this.done = true;
    this.holder = null;
    let l = this.late;
    this.late = null;
    while (l !== null) {
      const h = l.holder;
      l.holder = null;
      if (h !== null) h.release(l);
      const next = l.nextLate;
      l.nextLate = null;
      l = next;
    }
    this.fwd.concurrent--;
    this.fwd.stats.inflight--;
  }

  finishFail(): void {
    if (this.done) return;
    this.finish();
    this.req.fail(PLUGIN_NAME, Rcode.SERVFAIL, this.error());
  }

  /** Called at stop(): forget the transport and fail now. */
  abort(): void {
    const h = this.holder;
    this.holder = null;
    if (h !== null) h.release(this);
    this.record(ForwardErrorCode.STOPPED, Phase.READ, '', '', '');
    this.finishFail();
  }

  /** The last try's failure as CoreDNS would word it. */
  error(): ForwardError {
    const code = this.errCode;
    const to = this.errTo;
    const p = this.errProto === TCP ? 'tcp' : 'udp';
    const conn = this.errLocal !== '' ? `${this.errLocal}->${to}` : to;
    switch (code) {
      case null:
      case ForwardErrorCode.NO_HEALTHY:
        return new ForwardError(ForwardErrorCode.NO_HEALTHY, 'no healthy proxies');
      case ForwardErrorCode.TIMEOUT:
        return new ForwardError(code, `read ${p} ${conn}: i/o timeout`, to);
      case ForwardErrorCode.DIAL_TIMEOUT:
        return new ForwardError(code, `dial ${p} ${to}: i/o timeout`, to);
      case ForwardErrorCode.NETWORK: {
        if (this.errErrno === 'EOF') return new ForwardError(code, 'EOF', to);
        const text = errnoText(this.errErrno);
        if (this.errPhase === Phase.DIAL) return new ForwardError(code, `dial ${p} ${to}: ${dialSyscall(this.errErrno)}: ${text}`, to);
        if (this.errPhase === Phase.WRITE) return new ForwardError(code, `write ${p} ${conn}: write: ${text}`, to);
        return new ForwardError(code, `read ${p} ${conn}: read: ${text}`, to);
      }
      case ForwardErrorCode.CACHED_CLOSED:
        return new ForwardError(code, 'cached connection was closed by peer', to);
      case ForwardErrorCode.BAD_FRAME:
        return new ForwardError(code, `read tcp ${conn}: invalid DNS message length`, to);
      case ForwardErrorCode.ID_EXHAUSTED:
        return new ForwardError(code, `no free message ID for ${p} ${to}`, to);
      case ForwardErrorCode.STOPPED:
        return new ForwardError(code, 'proxy: transport stopped', to);
      case ForwardErrorCode.LIMIT_EXCEEDED:
        return new ForwardError(code, 'concurrent queries exceeded maximum', to);
    }
  }
}

function popcount(x: number): number {
  let c = 0;
  for (let v = x; v !== 0; v &= v - 1) c++;
  return c;
}

/** Reused for every reply's rcode (replies are handled one at a time, synchronously). */
const scan = new ResponseScan();

const FAIL_NEXT: Handler = {
  serve(req: Request): void {
    req.fail(PLUGIN_NAME, Rcode.SERVFAIL, null);
  },
};

export interface ForwardDeps {
  clock: Clock;
  log: Logger;
  /** The shared default budget; used when settings.maxConcurrent is null (none: unlimited). */
  budget?: InflightBudget;
}

export class ForwardPlugin implements Plugin, Handler {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = PLUGIN_NAME;
  readonly settings: ForwardSettings;
  readonly tuning: ForwardTuning;
  readonly upstreams: Upstream[];
  readonly policy: Policy;
  readonly stats: ForwardStats;
  readonly clock: Clock;
  readonly timeouts: TimeoutQueue;
  /** Effective try budget per query. */
  readonly maxTries: number;
  concurrent = 0;
  stopped = false;
  started = false;
  private next: Handler = FAIL_NEXT;
  private readonly log: Logger;
  /** FROM in wire form, and the `except` names. */
  private readonly from: Uint8Array;
  private readonly ignored: ZoneMatcher<string>;
  private readonly fromIsRootOnly: boolean;
  private readonly budget: InflightBudget | null;
  /** The REFUSED error for the limit in force (made at the first reject). */
  private limitError: ForwardError | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(settings: ForwardSettings, deps: ForwardDeps, tuning: Partial<ForwardTuning> = {}) {
    this.settings = settings;
    this.tuning = { ...TUNING_DEFAULTS, ...tuning };
    this.clock = deps.clock;
    this.log = deps.log;
    this.policy = makePolicy(settings.policy);
    const t = this.tuning;
    const udpOpts: UdpPoolOptions = { ...UDP_DEFAULTS, idleMs: settings.expireMs, ...t.udp };
    const tcpOpts: TcpPoolOptions = {
      ...TCP_DEFAULTS,
      idleMs: settings.expireMs,
      connectTimeoutMs: t.readTimeoutMs,
      readTimeoutMs: t.readTimeoutMs,
      ...t.tcp,
    };
    const onInternalError = (err: unknown): void => this.internalError(err);
    this.upstreams = settings.upstreams.map((a) => {
      const u = new Upstream(
        a,
        deps.clock,
        {
          intervalMs: settings.healthCheckMs,
          recursionDesired: settings.hcRecursionDesired,
          domain: settings.hcDomain,
          useTcp: settings.forceTcp,
          timeoutMs: t.healthCheckTimeoutMs,
        },
        udpOpts,
        tcpOpts,
      );
      u.udp.onInternalError = onInternalError;
      u.tcp.onInternalError = onInternalError;
      return u;
    });
    this.stats = new ForwardStats(
      settings.from,
      this.upstreams.map((u) => u.stats),
    );
    this.timeouts = new TimeoutQueue(deps.clock);
    this.timeouts.onError = onInternalError;
    this.maxTries = t.maxTries > 0 ? t.maxTries : Math.max(3, 2 * this.upstreams.length);
    this.from = zoneWire(settings.from);
    this.ignored = ZoneMatcher.of(settings.ignored);
    this.fromIsRootOnly = this.from.length === 1 && this.ignored.size === 0;
    this.budget = settings.maxConcurrent === null ? (deps.budget ?? null) : null;
    this.budget?.join();
  }

  compose(next: Handler): Handler {
    this.next = next;
    return this;
  }

  /** CoreDNS's match(): inside FROM, and not under an `except` name (FROM itself always matches). */
  matches(req: Request): boolean {
    if (this.fromIsRootOnly) return true;
    if (!qnameInZone(req.msg, req.qnameEnd, this.from)) return false;
    // FROM itself: the qname is exactly the zone's bytes.
    if (req.qnameEnd - Header.SIZE === this.from.length) return true;
    return !this.ignored.contains(req.msg, req.qnameEnd);
  }

  serve(req: Request): void {
    if (!this.matches(req)) {
      this.next.serve(req);
      return;
    }
    const max = this.maxConcurrent;
    if (max > 0 && this.concurrent >= max) {
      this.stats.maxConcurrentRejects++;
      let err = this.limitError;
      if (err === null || err.limit !== max) {
        err = new ForwardError(ForwardErrorCode.LIMIT_EXCEEDED, `concurrent queries exceeded maximum ${max}`, '', max);
        this.limitError = err;
      }
      req.fail(PLUGIN_NAME, Rcode.REFUSED, err);
      return;
    }
    if (this.stopped) {
      req.fail(PLUGIN_NAME, Rcode.SERVFAIL, new ForwardError(ForwardErrorCode.STOPPED, 'proxy: transport stopped'));
      return;
    }
    if (this.sweepTimer === null) this.startSweep();
    this.concurrent++;
    this.stats.inflight++;
    new Exchange(this, req, this.clock()).next();
  }

  /** The concurrency limit in force: max_concurrent, else the default budget's share; 0 = none. */
  get maxConcurrent(): number {
    const b = this.budget;
    return b !== null ? b.perInstance : (this.settings.maxConcurrent ?? 0);
  }

  collect(_block: BlockInfo, out: MetricsOut): void {
    collectForward(this.stats, out);
  }

  /** Health checking runs between start() and stop(), and only with max_fails > 0 (CoreDNS). */
  start(): void {
    this.started = true;
  }

  kickHealthCheck(up: Upstream): void {
    if (this.started && !this.stopped && this.settings.maxFails !== 0) up.healthcheck();
  }

  /** Closes sockets and timers; queries still in flight are answered SERVFAIL. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (let n = this.timeouts.first(); n !== null; n = this.timeouts.first()) {
      this.timeouts.remove(n);
      (n as Exchange).abort();
    }
    this.timeouts.disarm();
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    for (const u of this.upstreams) {
      u.stop();
      u.udp.closeAll(ForwardErrorCode.STOPPED);
      u.tcp.closeAll(ForwardErrorCode.STOPPED);
    }
    // After the queries in flight were failed, so their tries are counted too.
    retiredForwardTotals.add(this.stats);
  }

  private startSweep(): void {
    this.sweepTimer = setInterval(() => this.sweep(), this.tuning.sweepIntervalMs);
    this.sweepTimer.unref();
  }

  /** Retires old UDP sockets, closes idle sockets and connections; stops when nothing is open. */
  sweep(): void {
    const now = this.clock();
    let open = 0;
    for (const u of this.upstreams) {
      u.udp.sweep(now);
      u.tcp.sweep(now);
      open += u.udp.socketCount + u.tcp.connCount;
    }
    if (open === 0 && this.sweepTimer !== null) {
      clearInterval(this.sweepTimer);
      this.sweepTimer = null;
    }
  }

  private internalError(err: unknown): void {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    this.log.error(`plugin/forward: internal error: ${text}`);
  }
}
