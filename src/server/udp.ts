/**
 * UDP listener. One socket per (address, port), `reusePort` so workers and a standby
 * instance can share it. It is the terminal ResponseWriter of its requests: it truncates
 * answers larger than the client's limit (512 bytes, or the EDNS payload size — RFC 6891
 * §6.2.3/§7) to header + question with TC=1, and sends.
 */
import dgram from 'node:dgram';
import type { ResponseWriter } from '../plugin.ts';
import { Request, Proto } from './request.ts';
import { buildTruncated } from '../wire/message.ts';
import type { Dispatcher } from './dispatch.ts';

/** Resolves IP literals synchronously: dgram's default lookup defers every send a tick. */
function literalLookup(address: string, _opts: unknown, cb: (err: Error | null, address: string, family: number) => void): void {
  cb(null, address, address.includes(':') ? 6 : 4);
}

export class UdpListener implements ResponseWriter {
  readonly address: string;
  port: number;
  readonly dispatcher: Dispatcher;
  private readonly socket: dgram.Socket;
  /** Scratch label offsets: only read while routing, synchronously after parsing. */
  private readonly labelOffsets = new Uint8Array(128);
  private readonly family: 4 | 6;
  /** Datagrams received and answers sent (plain counters). */
  received = 0;
  sent = 0;
  sendErrors = 0;
  private closed = false;

  constructor(address: string, port: number, dispatcher: Dispatcher, reusePort: boolean) {
    this.address = address;
    this.port = port;
    this.dispatcher = dispatcher;
    this.family = address.includes(':') ? 6 : 4;
    this.socket = dgram.createSocket({
      type: this.family === 6 ? 'udp6' : 'udp4',
      reuseAddr: true,
      reusePort,
      ipv6Only: this.family === 6,
      lookup: literalLookup as never,
    });
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket.on('error', () => {
      this.sendErrors++;
    });
  }

  bind(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.socket.once('error', onError);
      this.socket.bind({ address: this.address, port: this.port, exclusive: true }, () => {
        this.socket.off('error', onError);
        this.port = this.socket.address().port;
        try {
          this.socket.setRecvBufferSize(4 * 1024 * 1024);
          this.socket.setSendBufferSize(4 * 1024 * 1024);
        } catch {
          // Capped by net.core.rmem_max/wmem_max; the kernel default then applies.
        }
        resolve(this.port);
      });
    });
  }

  private onMessage(msg: Buffer, rinfo: dgram.RemoteInfo): void {
    this.received++;
    const req = new Request(msg, msg.length, this, this.labelOffsets);
    req.proto = Proto.UDP;
    req.family = this.family;
    req.remoteAddress = rinfo.address;
    req.remotePort = rinfo.port;
    req.startMs = performance.now();
    this.dispatcher.dispatch(req);
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    let out = msg;
    let outLen = len;
    if (len > req.udpSize && req.questionEnd > 0) {
      out = buildTruncated(req, msg);
      outLen = out.length;
      req.responseLen = outLen;
    }
    if (!this.closed) {
      this.sent++;
      this.socket.send(out, 0, outLen, req.remotePort, req.remoteAddress);
    }
    this.dispatcher.finish(req);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
