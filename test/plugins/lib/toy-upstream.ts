/**
 * A capturing UDP upstream for the wire helper's plugin tests (bufsize, loadbalance): records
 * every query it receives (decoded) and answers with what `answer` returns, built with the
 * codec, over UDP and TCP. Listens on a free 127.0.0.x port; stop() closes it.
 */
import dgram from 'node:dgram';
import net from 'node:net';
import { freeEndpoint } from '../../engine/harness.ts';
import { decodeMessage, encodeMessage, type Message, type RR } from '../../../src/wire/codec.ts';
import { Flag } from '../../../src/wire/codes.ts';

export interface ToyUpstream {
  host: string;
  port: number;
  addr: string;
  /** Every query received, decoded, in arrival order. */
  queries: Message[];
  stop(): Promise<void>;
}

/** The records to answer a query with (answer section); null: no answer at all (drop). */
export type Answerer = (q: Message) => RR[] | null;

export async function startToyUpstream(answer: Answerer): Promise<ToyUpstream> {
  const { host, port } = await freeEndpoint();
  const sock = dgram.createSocket('udp4');
  const queries: Message[] = [];
  const respond = (buf: Buffer): Buffer | null => {
    let q: Message;
    try {
      q = decodeMessage(buf);
    } catch {
      return null;
    }
    queries.push(q);
    const rrs = answer(q);
    if (rrs === null) return null;
    const r: Message = {
      id: q.id,
      flags: Flag.QR | Flag.AA | (q.flags & Flag.RD),
      rcode: 0,
      question: q.question,
      answer: rrs,
      authority: [],
      additional: [],
      // Mirrors the query's OPT (advertising 4096) like an authoritative server; never truncates.
      edns: q.edns === null ? null : { udpSize: 4096, extRcode: 0, version: 0, dnssecOk: false, options: [] },
    };
    return encodeMessage(r);
  };
  sock.on('message', (buf, rinfo) => {
    const out = respond(buf);
    if (out !== null) sock.send(out, rinfo.port, rinfo.address);
  });
  const conns = new Set<net.Socket>();
  const tcp = net.createServer((c) => {
    conns.add(c);
    c.on('close', () => conns.delete(c));
    c.on('error', () => {});
    let acc = Buffer.alloc(0);
    c.on('data', (d) => {
      acc = Buffer.concat([acc, d]);
      while (acc.length >= 2 && acc.length >= 2 + acc.readUInt16BE(0)) {
        const out = respond(acc.subarray(2, 2 + acc.readUInt16BE(0)));
        acc = acc.subarray(2 + acc.readUInt16BE(0));
        if (out === null) continue;
        const len = Buffer.alloc(2);
        len.writeUInt16BE(out.length);
        c.write(Buffer.concat([len, out]));
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(port, host, () => resolve());
  });
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  return {
    host,
    port,
    addr: `${host}:${port}`,
    queries,
    stop: async () => {
      for (const c of conns) c.destroy();
      await Promise.all([new Promise<void>((r) => sock.close(() => r())), new Promise<void>((r) => tcp.close(() => r()))]);
    },
  };
}
