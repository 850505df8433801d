/**
 * Loopback-only networking for the benchmark: port allocation and a tiny DNS probe used for
 * readiness checks and start-up timing. Every address passes `assertLoopback` first: the
 * harness never sends a packet outside 127.0.0.0/8.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { RecordType } from 'dns-packet';

export class NonLoopbackAddressError extends Error {
  readonly code = 'BENCH_NON_LOOPBACK';
  constructor(addr: string) {
    super(`refusing to use non-loopback address ${addr}: the benchmark only talks to 127.0.0.0/8`);
  }
}

export class ProbeTimeoutError extends Error {
  readonly code = 'BENCH_PROBE_TIMEOUT';
}

const LOOPBACK_V4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

export function assertLoopback(addr: string): string {
  const m = LOOPBACK_V4.exec(addr);
  if (m === null || m.slice(1).some((o) => Number(o) > 255)) throw new NonLoopbackAddressError(addr);
  return addr;
}

/**
 * A port that is free for both UDP and TCP on addr right now. There is a window between this
 * check and the server's bind; callers retry a failed start once with a fresh port.
 */
export async function freePort(addr: string): Promise<number> {
  assertLoopback(addr);
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen({ host: addr, port: 0, exclusive: true }, () => {
        const a = srv.address();
        srv.close(() => resolve(typeof a === 'object' && a !== null ? a.port : 0));
      });
    });
    const udpOk = await new Promise<boolean>((resolve) => {
      const s = dgram.createSocket('udp4');
      s.once('error', () => {
        s.close();
        resolve(false);
      });
      s.bind({ address: addr, port, exclusive: true }, () => s.close(() => resolve(true)));
    });
    if (port > 0 && udpOk) return port;
  }
  throw new Error(`no free UDP+TCP port on ${addr}`);
}

export interface ProbeAnswer {
  rcode: string;
  /** Text form of each answer record's data (A/AAAA address, PTR/CNAME target, ...). */
  answers: string[];
  /** Milliseconds from the probe's start to this answer. */
  elapsedMs: number;
}

export interface ProbeOptions {
  addr: string;
  port: number;
  name: string;
  type: RecordType;
  /** Give up after this long. */
  deadlineMs: number;
  /** Re-send (new ID) this often until an acceptable answer arrives. */
  resendEveryMs: number;
  /** Which answers end the probe; default: NOERROR with at least one answer record. */
  accept?: (a: ProbeAnswer) => boolean;
  /** Clock origin for elapsedMs; default: when probe() is called. */
  startedAtMs?: number;
}

function rdataText(data: unknown): string {
  if (typeof data === 'string') return data;
  if (data !== null && typeof data === 'object' && 'target' in data) return String((data as { target: unknown }).target);
  return JSON.stringify(data);
}

/**
 * Sends the question over UDP every resendEveryMs until an accepted answer arrives or the
 * deadline passes. ICMP port-unreachable while the server is still starting is ignored.
 */
export function probe(opts: ProbeOptions): Promise<ProbeAnswer> {
  assertLoopback(opts.addr);
  const start = opts.startedAtMs ?? performance.now();
  const accept = opts.accept ?? ((a: ProbeAnswer) => a.rcode === 'NOERROR' && a.answers.length > 0);
  return new Promise((resolve, reject) => {
    const sock = dgram.createSocket('udp4');
    let id = Math.floor(Math.random() * 0xffff);
    let last: ProbeAnswer | undefined;
    let done = false;
    const finish = (err: Error | undefined, ans?: ProbeAnswer): void => {
      if (done) return;
      done = true;
      clearInterval(resend);
      clearTimeout(deadline);
      sock.close();
      if (err !== undefined) reject(err);
      else resolve(ans!);
    };
    const send = (): void => {
      id = (id + 1) & 0xffff;
      const q = dnsPacket.encode({
        type: 'query',
        id,
        flags: dnsPacket.RECURSION_DESIRED,
        questions: [{ type: opts.type, name: opts.name, class: 'IN' }],
      });
      sock.send(q, opts.port, opts.addr, () => undefined);
    };
    sock.on('error', () => undefined);
    sock.on('message', (msg) => {
      let decoded: ReturnType<typeof dnsPacket.decode>;
      try {
        decoded = dnsPacket.decode(msg);
      } catch {
        return;
      }
      if (decoded.type !== 'response') return;
      const ans: ProbeAnswer = {
        // dns-packet sets rcode on decoded packets; its type declarations omit it.
        rcode: (decoded as { rcode?: string }).rcode ?? 'UNKNOWN',
        answers: (decoded.answers ?? []).filter((r) => r.type === opts.type).map((r) => rdataText((r as { data: unknown }).data)),
        elapsedMs: performance.now() - start,
      };
      last = ans;
      if (accept(ans)) finish(undefined, ans);
    });
    const resend = setInterval(send, opts.resendEveryMs);
    const deadline = setTimeout(() => {
      const seen = last === undefined ? 'no answer' : `last answer ${last.rcode} [${last.answers.join(', ')}]`;
      finish(new ProbeTimeoutError(`${opts.name} ${opts.type} @${opts.addr}:${opts.port}: ${seen} within ${opts.deadlineMs} ms`));
    }, opts.deadlineMs);
    sock.bind({ address: '127.0.0.1', port: 0 }, send);
  });
}
