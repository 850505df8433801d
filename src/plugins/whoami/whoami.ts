/**
 * The whoami handler (CoreDNS plugin/whoami): answers every query itself, authoritatively, with
 * an empty answer section and, in the additional section, the client's address (an A or AAAA
 * record owned by the query name) and its source port as an SRV record `_udp.QNAME` or
 * `_tcp.QNAME` (target `.`), both with TTL 0 and the query's class. Slow path: built with the
 * codec (a whoami server is a test endpoint, not a hot path).
 */
import type { Handler } from '../../plugin.ts';
import { Proto, type Request } from '../../server/request.ts';
import { encodeMessage, replyTo, type RR } from '../../wire/codec.ts';
import { Flag, QType } from '../../wire/codes.ts';

/** The client's address as CoreDNS's state.Family/IP sees it: IPv4-mapped IPv6 is IPv4. */
function clientAddress(req: Request): { type: number; address: string } {
  const a = req.remoteAddress;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (mapped !== null) return { type: QType.A, address: mapped[1]! };
  return req.family === 6 || a.includes(':') ? { type: QType.AAAA, address: a.replace(/%.*$/, '') } : { type: QType.A, address: a };
}

export class WhoamiHandler implements Handler {
  serve(req: Request): void {
    const qname = req.name();
    const { type, address } = clientAddress(req);
    const proto = req.proto === Proto.TCP ? 'tcp' : 'udp';
    const additional: RR[] = [
      { name: qname, type, class: req.qclass, ttl: 0, data: address },
      {
        name: qname === '.' ? `_${proto}.` : `_${proto}.${qname}`,
        type: QType.SRV,
        class: req.qclass,
        ttl: 0,
        data: { priority: 0, weight: 0, port: req.remotePort, target: '.' },
      },
    ];
    const m = replyTo(req, { additional });
    m.flags |= Flag.AA;
    let out: Buffer;
    try {
      out = encodeMessage(m, { maxSize: req.proto === Proto.TCP ? 0xffff : Math.max(512, req.udpSize) });
    } catch (err) {
      // A qname of 250+ bytes cannot take the `_udp.` prefix (a name is at most 255 bytes).
      req.fail('whoami', 2, err as Error);
      return;
    }
    req.reply(out, out.length, 'whoami');
  }
}
