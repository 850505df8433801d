/**
 * Test fixtures for the forward plugin: parsed client Requests with a capturing writer, toy
 * upstreams on 127.0.0.1 (UDP and TCP on one port, scripted per query), and a plugin built
 * from Corefile text.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import type { Answer, RecordType } from 'dns-packet';
import type { EngineHooks, Handler, Logger, ResponseWriter, SetupContext } from '../../src/plugin.ts';
import { Proto, type ProtoValue, Request } from '../../src/server/request.ts';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';
import { parseCorefile } from '../../src/corefile/parser.ts';
import { setupContext as sharedSetupContext } from './metrics-testing.ts';
import type { ForwardPlugin, ForwardTuning } from '../../src/plugins/forward/forward.ts';
import { makeForwardSetup } from '../../src/plugins/forward/setup.ts';
import { FrameReader } from '../../src/wire/tcp-frame.ts';

export class CaptureWriter implements ResponseWriter {
  readonly sent: Buffer[] = [];
  private waiter: ((b: Buffer) => void) | null = null;
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    const b = Buffer.from(msg.subarray(0, len));
    this.sent.push(b);
    if (this.waiter !== null) {
      const w = this.waiter;
      this.waiter = null;
      w(b);
    }
  }
  /** The (first) response, waiting for it up to timeoutMs. */
  response(timeoutMs = 5000): Promise<Buffer> {
    if (this.sent.length > 0) return Promise.resolve(this.sent[0]!);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no response within ${timeoutMs} ms`)), timeoutMs);
      this.waiter = (b) => {
        clearTimeout(t);
        resolve(b);
      };
    });
  }
}

export interface ClientQuery {
  req: Request;
  out: CaptureWriter;
  errors: Error[];
}

export function clientQuery(name: string, type: RecordType = 'A', opts: { id?: number; proto?: ProtoValue; edns?: boolean } = {}): ClientQuery {
  const buf = dnsPacket.encode({
    type: 'query',
    id: opts.id ?? 0x1234,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232 } as Answer] : [],
  });
  const out = new CaptureWriter();
  const req = new Request(buf, buf.length, out);
  if (parseQuery(req) !== ParseResult.OK) throw new Error('test query did not parse');
  req.proto = opts.proto ?? Proto.UDP;
  const errors: Error[] = [];
  req.errorSink = (_r, _p, err) => errors.push(err);
  return { req, out, errors };
}

export interface AnswerSpec {
  ip?: string;
  rcode?: string;
  truncated?: boolean;
  /** Override the ID (default: the query's). */
  id?: number;
  /** Override the question name (default: the query's). */
  name?: string;
  /** TXT strings to add (to make the answer large). */
  txt?: string[];
}

/** A response to the query bytes q, built with dns-packet. */
export function answerFor(q: Buffer, spec: AnswerSpec = {}): Buffer {
  const d = dnsPacket.decode(q);
  const question = d.questions![0]!;
  const name = spec.name ?? question.name;
  const answers: Answer[] = [];
  if (!spec.truncated && spec.ip !== undefined) answers.push({ type: 'A', name, ttl: 30, data: spec.ip } as Answer);
  if (!spec.truncated && spec.txt) answers.push({ type: 'TXT', name, ttl: 30, data: spec.txt } as Answer);
  let flags = dnsPacket.RECURSION_AVAILABLE | (d.flags! & dnsPacket.RECURSION_DESIRED);
  if (spec.truncated) flags |= dnsPacket.TRUNCATED_RESPONSE;
  return dnsPacket.encode({
    type: 'response',
    id: spec.id ?? d.id,
    flags,
    rcode: spec.rcode ?? 'NOERROR',
    questions: [{ ...question, name }],
    answers,
  } as dnsPacket.Packet);
}

/** The fields of a decoded message the tests look at (dns-packet's typings omit some). */
export interface DecodedMsg {
  id: number;
  rcode: string;
  flag_tc: boolean;
  flag_rd: boolean;
  questions: { name: string; type: string }[];
  answers: { name: string; type: string; data: unknown }[];
}

export function decode(b: Buffer): DecodedMsg {
  return dnsPacket.decode(b) as unknown as DecodedMsg;
}

export interface Received {
  proto: 'udp' | 'tcp';
  msg: Buffer;
  id: number;
  name: string;
  /** Source port (UDP) or the TCP connection's remote port. */
  port: number;
  /** Sends a reply to where the query came from. */
  reply(buf: Buffer): void;
  /** TCP only: the connection. */
  conn: net.Socket | null;
}

export type UpstreamHandler = (q: Received) => void;

/** A scriptable DNS server on 127.0.0.1: UDP and TCP on one port. Default: answer A 192.0.2.1. */
export class ToyUpstream {
  readonly received: Received[] = [];
  handler: UpstreamHandler = (q) => q.reply(answerFor(q.msg, { ip: '192.0.2.1' }));
  readonly tcpConns = new Set<net.Socket>();
  tcpAccepted = 0;
  port = 0;
  host = '127.0.0.1';
  private udp: dgram.Socket | null = null;
  private tcp: net.Server | null = null;

  static async start(opts: { udp?: boolean; tcp?: boolean; host?: string } = {}): Promise<ToyUpstream> {
    const u = new ToyUpstream();
    if (opts.host !== undefined) u.host = opts.host;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await u.listen(opts.udp ?? true, opts.tcp ?? true);
        return u;
      } catch {
        u.close();
      }
    }
    throw new Error('could not bind a toy upstream');
  }

  get addr(): string {
    return this.host.includes(':') ? `[${this.host}]:${this.port}` : `${this.host}:${this.port}`;
  }

  private async listen(withUdp: boolean, withTcp: boolean): Promise<void> {
    // Bind TCP first on port 0, then UDP on the same port (or only one of them).
    let port = 0;
    if (withTcp) {
      const srv = net.createServer((c) => this.onConn(c));
      this.tcp = srv;
      await new Promise<void>((res, rej) => {
        srv.once('error', rej);
        srv.listen(0, this.host, () => res());
      });
      port = (srv.address() as net.AddressInfo).port;
    }
    if (withUdp) {
      const s = dgram.createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
      this.udp = s;
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.bind(port, this.host, () => res());
      });
      port = s.address().port;
      s.on('message', (msg, rinfo) => {
        if (msg.length < 12) return;
        this.dispatch({
          proto: 'udp',
          msg,
          id: msg.readUInt16BE(0),
          name: safeName(msg),
          port: rinfo.port,
          reply: (b) => s.send(b, rinfo.port, rinfo.address),
          conn: null,
        });
      });
    }
    this.port = port;
  }

  private onConn(c: net.Socket): void {
    this.tcpAccepted++;
    this.tcpConns.add(c);
    c.on('close', () => this.tcpConns.delete(c));
    c.on('error', () => {});
    const reader = new FrameReader((msg) => {
      this.dispatch({
        proto: 'tcp',
        msg,
        id: msg.readUInt16BE(0),
        name: safeName(msg),
        port: c.remotePort ?? 0,
        reply: (b) => {
          if (c.destroyed) return;
          const len = Buffer.alloc(2);
          len.writeUInt16BE(b.length);
          c.write(Buffer.concat([len, b]));
        },
        conn: c,
      });
    });
    c.on('data', (chunk) => {
      if (!reader.push(chunk)) c.destroy();
    });
  }

  private dispatch(q: Received): void {
    this.received.push(q);
    this.handler(q);
  }

  close(): void {
    for (const c of this.tcpConns) c.destroy();
    this.tcp?.close();
    try {
      this.udp?.close();
    } catch {
      // not bound
    }
    this.tcp = null;
    this.udp = null;
  }
}

function safeName(msg: Buffer): string {
  try {
    return dnsPacket.decode(msg).questions?.[0]?.name ?? '';
  } catch {
    return '';
  }
}

export class CaptureLogger implements Logger {
  readonly lines: string[] = [];
  info(m: string): void {
    this.lines.push(`INFO ${m}`);
  }
  warn(m: string): void {
    this.lines.push(`WARN ${m}`);
  }
  error(m: string): void {
    this.lines.push(`ERROR ${m}`);
  }
}

export function setupContext(log: Logger = new CaptureLogger()): SetupContext {
  // forward does not control the engine: any use fails the test.
  const engine = new Proxy({} as EngineHooks, {
    get(_t, prop) {
      throw new Error(`forward used engine.${String(prop)}`);
    },
  });
  return sharedSetupContext(engine, { log });
}

/** The first `forward` directive of `. { <body> }`. */
export function forwardDirective(body: string) {
  const blocks = parseCorefile(`. {\n${body}\n}\n`, 'Corefile', {});
  const d = blocks[0]!.directives.find((x) => x.name === 'forward');
  if (!d) throw new Error('no forward directive');
  return d;
}

/** Records queries that fell through to the next handler. */
export class NextHandler implements Handler {
  readonly seen: Request[] = [];
  serve(req: Request): void {
    this.seen.push(req);
    const b = Buffer.from(req.msg.subarray(0, req.msgLen));
    b[2] = b[2]! | 0x80;
    b[3] = (b[3]! & 0xf0) | 3; // NXDOMAIN marks "answered by next"
    req.reply(b, b.length, 'next');
  }
}

/** A started ForwardPlugin built from Corefile text; stop it with `t.after(() => p.stop())`. */
export function makeForward(
  body: string,
  tuning: Partial<ForwardTuning> = {},
  log: Logger = new CaptureLogger(),
): { plugin: ForwardPlugin; next: NextHandler } {
  const p = makeForwardSetup(tuning).setup(forwardDirective(body), setupContext(log)) as ForwardPlugin;
  const next = new NextHandler();
  p.compose(next);
  p.start();
  return { plugin: p, next };
}

/** Resolves when cond() is true, polling; rejects after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const end = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
