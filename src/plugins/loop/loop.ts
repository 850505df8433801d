/**
 * `loop` (CoreDNS plugin/loop): detects a forwarding loop at start-up and stops the process.
 *
 * When the block starts, the plugin sends `HINFO <random>.<random>.<zone>` over UDP to the
 * block's first listen address, and counts how often that probe comes back through this plugin
 * (it sits before `forward` in the chain, so it sees its own probe again only if the forward
 * path leads back to us). Seen more than twice: `engine.fatal` with CoreDNS's message
 *   plugin/loop: Loop (127.0.0.1:55953 -> :53) detected for zone ".", see
 *   https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO 4547991504243258144.3688648895315093531."
 * (the remote address of the looping query, then the probed address).
 *
 * Timing as CoreDNS: probes for up to 30 s; a probe that gets no answer within 2 s (or fails)
 * resets the count, and the next one goes out 1 s later; once one probe is answered, or the
 * 30 s are over, the plugin disables itself. Queries other than the probe (any non-HINFO
 * query, and every query once disabled) pass through after one integer compare.
 */
import { createSocket, type Socket } from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { PluginScope } from '../../plugin.ts';
import type { EngineHooks, Handler, Plugin } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { encodeName, equalBytesCI } from '../../wire/name.ts';
import { Flag, Header, QClass, QType } from '../../wire/codes.ts';
import { dialHost, splitHostPort } from '../../metrics/http-endpoints.ts';
import { buildQuery } from '../../wire/message.ts';
import { isResponseTo } from '../../wire/header.ts';

const PROBE_WINDOW_MS = 30_000;
const PROBE_TIMEOUT_MS = 2_000;
const PROBE_RETRY_MS = 1_000;

/** A decimal like Go's rand.Int(): a non-negative 63-bit integer. */
function randomInt63(): string {
  return (randomBytes(8).readBigUInt64BE() & 0x7fffffffffffffffn).toString();
}

/** `<rand>.<rand>.<zone>` (dnsutil.Join: the root zone adds only the final dot). */
export function probeName(zone: string): string {
  const z = zone === '.' ? '' : zone;
  return `${randomInt63()}.${randomInt63()}.${z}`;
}

/** The query miekg/dns's SetQuestion builds: RD set, one question, no EDNS. */
export function buildProbe(qname: string, id: number): Buffer {
  return buildQuery(encodeName(qname), QType.HINFO, QClass.IN, id, Flag.RD);
}

/** Go's %q for the zone (names are ASCII). */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export interface LoopOptions {
  zone: string;
  /** The probed address as CoreDNS prints it: `169.254.20.10:53`, `:53`, `[::1]:53`. */
  address: string;
}

export interface LoopDeps {
  engine: EngineHooks;
  windowMs?: number;
  timeoutMs?: number;
  retryMs?: number;
}

class LoopHandler implements Handler {
  private readonly loop: LoopPlugin;
  private readonly next: Handler;
  constructor(loop: LoopPlugin, next: Handler) {
    this.loop = loop;
    this.next = next;
  }
  serve(req: Request): void {
    if (req.qtype === QType.HINFO && !this.loop.disabled) this.loop.inspect(req);
    this.next.serve(req);
  }
}

export class LoopPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = 'loop';
  readonly zone: string;
  readonly address: string;
  readonly qname: string;
  /** Times the probe came back through this plugin. */
  seen = 0;
  disabled = false;
  private readonly wire: Buffer;
  private readonly deps: LoopDeps;
  private stopped = false;
  private socket: Socket | null = null;
  private probing: Promise<void> | null = null;

  constructor(opts: LoopOptions, deps: LoopDeps) {
    this.zone = opts.zone;
    this.address = opts.address;
    this.qname = probeName(opts.zone);
    this.wire = encodeName(this.qname);
    this.deps = deps;
  }

  compose(next: Handler): Handler {
    return new LoopHandler(this, next);
  }

  /** Counts the probe (slow path: HINFO queries while probing). */
  inspect(req: Request): void {
    const len = req.qnameEnd - Header.SIZE;
    if (len !== this.wire.length || !equalBytesCI(req.msg, Header.SIZE, this.wire, 0, len)) return;
    this.seen++;
    if (this.seen > 2) {
      const remote = hostPort(req.remoteAddress, req.remotePort);
      this.deps.engine.fatal(
        `plugin/loop: Loop (${remote} -> ${this.address}) detected for zone ${goQuote(this.zone)}, ` +
          `see https://coredns.io/plugins/loop#troubleshooting. Query: "HINFO ${this.qname}"`,
      );
    }
  }

  start(): void {
    if (this.probing === null) this.probing = this.probe();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.socket?.close();
    this.socket = null;
    if (this.probing) await this.probing;
  }

  /** Resolves when probing has ended (the plugin is then disabled). */
  async done(): Promise<void> {
    if (this.probing) await this.probing;
  }

  private async probe(): Promise<void> {
    const deadline = performance.now() + (this.deps.windowMs ?? PROBE_WINDOW_MS);
    const { host, port } = splitHostPort(this.address);
    const target = dialHost(host);
    while (!this.stopped && performance.now() < deadline) {
      const ok = await this.exchange(target, Number(port));
      if (ok) break;
      this.seen = 0;
      await new Promise((r) => setTimeout(r, this.deps.retryMs ?? PROBE_RETRY_MS).unref());
    }
    this.disabled = true;
  }

  /** Sends the probe and waits for any reply with its ID (dns.Exchange). */
  private exchange(host: string, port: number): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.stopped) return resolve(false);
      const id = randomBytes(2).readUInt16BE();
      const sock = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
      this.socket = sock;
      let settled = false;
      const finish = (ok: boolean) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        if (this.socket === sock) this.socket = null;
        try {
          sock.close();
        } catch {
          // already closed by stop()
        }
        resolve(ok);
      };
      const timer = setTimeout(() => finish(false), this.deps.timeoutMs ?? PROBE_TIMEOUT_MS);
      timer.unref();
      sock.on('error', () => finish(false));
      sock.on('close', () => finish(false));
      sock.on('message', (msg) => {
        if (isResponseTo(msg, msg.length, id)) finish(true);
      });
      // dgram hands a failed connect (no route, EACCES, ...) to this callback, not to 'error':
      // sending on the unconnected socket would then throw from the callback.
      sock.connect(port, host, (connectErr?: Error) => {
        if (connectErr || settled) return finish(false);
        try {
          sock.send(buildProbe(this.qname, id), (err) => {
            if (err) finish(false);
          });
        } catch {
          finish(false);
        }
      });
    });
  }
}
