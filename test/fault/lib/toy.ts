/**
 * Misbehaving upstreams for fault injection, where a real server cannot misbehave on demand:
 * a UDP socket and a TCP listener on one 127.0.0.x address and port, each driven by a
 * scripted behaviour. `answerTo(query)` builds the honest answer (A 192.0.2.1, TTL 30).
 */
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { freeAddress } from './net.ts';

export const TOY_ANSWER_IP = '192.0.2.1';

/** The honest answer to a query (A TOY_ANSWER_IP, TTL 30), or null when it does not decode. */
export function answerTo(query: Buffer, ip = TOY_ANSWER_IP): Buffer | null {
  let q: dnsPacket.DecodedPacket;
  try {
    q = dnsPacket.decode(query);
  } catch {
    return null;
  }
  const question = q.questions?.[0];
  if (!question) return null;
  return dnsPacket.encode({
    type: 'response',
    id: q.id,
    flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
    questions: [question],
    answers: question.type === 'A' ? [{ type: 'A', name: question.name, ttl: 30, data: ip }] : [],
  });
}

export function frame(msg: Buffer): Buffer {
  const out = Buffer.alloc(2 + msg.length);
  out.writeUInt16BE(msg.length, 0);
  msg.copy(out, 2);
  return out;
}

export interface ToyBehaviour {
  /** A UDP query arrived; `send` replies to its source. Default: no UDP socket at all. */
  udp?: (msg: Buffer, send: (b: Buffer) => void) => void;
  /** A TCP query frame arrived on `sock` (the nth on that connection, from 1). Default: no TCP listener. */
  tcp?: (msg: Buffer, sock: net.Socket, nth: number) => void;
}

export interface Toy {
  host: string;
  port: number;
  addr: string;
  /** UDP datagrams and TCP frames received. */
  udpQueries: number;
  tcpQueries: number;
  tcpAccepted: number;
  /** Closes the sockets at once (the upstream dies: later traffic is refused). */
  close(): Promise<void>;
}

export async function startToy(b: ToyBehaviour): Promise<Toy> {
  const { host, port } = await freeAddress();
  const conns = new Set<net.Socket>();
  let udp: dgram.Socket | null = null;
  let tcp: net.Server | null = null;
  const toy: Toy = {
    host,
    port,
    addr: `${host}:${port}`,
    udpQueries: 0,
    tcpQueries: 0,
    tcpAccepted: 0,
    async close() {
      for (const c of conns) c.destroy();
      await Promise.all([udp ? new Promise<void>((r) => udp!.close(() => r())) : undefined, tcp ? new Promise<void>((r) => tcp!.close(() => r())) : undefined]);
      udp = null;
      tcp = null;
    },
  };
  if (b.udp) {
    const onUdp = b.udp;
    const s = dgram.createSocket('udp4');
    s.on('error', () => {});
    s.on('message', (msg, rinfo) => {
      toy.udpQueries++;
      onUdp(msg, (out) => {
        if (udp !== null) s.send(out, rinfo.port, rinfo.address);
      });
    });
    await new Promise<void>((r) => s.bind(port, host, () => r()));
    udp = s;
  }
  if (b.tcp) {
    const onTcp = b.tcp;
    const srv = net.createServer((sock) => {
      toy.tcpAccepted++;
      conns.add(sock);
      sock.on('close', () => conns.delete(sock));
      sock.on('error', () => {});
      let buf = Buffer.alloc(0);
      let nth = 0;
      sock.on('data', (d) => {
        buf = Buffer.concat([buf, d]);
        while (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
          const len = buf.readUInt16BE(0);
          const msg = buf.subarray(2, 2 + len);
          buf = buf.subarray(2 + len);
          toy.tcpQueries++;
          onTcp(msg, sock, ++nth);
        }
      });
    });
    await new Promise<void>((r) => srv.listen(port, host, () => r()));
    tcp = srv;
  }
  return toy;
}
