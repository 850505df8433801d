/**
 * A UDP upstream that mirrors EDNS(0) options: it answers every query with `NAME A 192.0.2.99`
 * and an OPT carrying the options the query carried, and keeps the queries it got. Knot and NSD
 * ignore options they do not know (EDNS0_LOCAL), so this is how the rewrite tests see them.
 */
import dgram from 'node:dgram';
import { decodeMessage, encodeMessage, type Message } from '../../../src/wire/codec.ts';
import { freeAddress } from '../../lib/net.ts';

export interface EchoUpstream {
  host: string;
  port: number;
  addr: string;
  queries: Message[];
  stop(): Promise<void>;
}

export async function startEchoUpstream(host?: string): Promise<EchoUpstream> {
  const at = await freeAddress(host);
  const sock = dgram.createSocket('udp4');
  const queries: Message[] = [];
  sock.on('message', (msg, rinfo) => {
    let q: Message;
    try {
      q = decodeMessage(msg);
    } catch {
      return;
    }
    queries.push(q);
    const name = q.question[0]?.name ?? '.';
    const out = encodeMessage({
      id: q.id,
      flags: 0x8400 | (q.flags & 0x0100),
      rcode: 0,
      question: q.question,
      answer: q.question[0]?.type === 1 ? [{ name, type: 1, class: 1, ttl: 60, data: '192.0.2.99' }] : [],
      authority: [],
      additional: [],
      edns: q.edns === null ? null : { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: q.edns.dnssecOk, options: q.edns.options },
    });
    sock.send(out, rinfo.port, rinfo.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(at.port, at.host, () => resolve());
  });
  return {
    host: at.host,
    port: at.port,
    addr: `${at.host}:${at.port}`,
    queries,
    stop: () => new Promise<void>((resolve) => sock.close(() => resolve())),
  };
}
