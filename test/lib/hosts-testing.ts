/** Test fixtures for the hosts plugin: parsed client queries and a writer that keeps replies. */
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';
import type { Handler, ResponseWriter } from '../../src/plugin.ts';
import { Proto, Request } from '../../src/server/request.ts';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';

export type Decoded = DecodedPacket & { rcode: string };

export class CaptureWriter implements ResponseWriter {
  sent: Buffer[] = [];
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    this.sent.push(Buffer.from(msg.subarray(0, len)));
  }
  get last(): Decoded {
    const b = this.sent[this.sent.length - 1];
    if (!b) throw new Error('nothing was sent');
    return dnsPacket.decode(b) as Decoded;
  }
}

export function makeQuery(
  name: string,
  type: RecordType = 'A',
  opts: { edns?: boolean; udpSize?: number; tcp?: boolean } = {},
): { req: Request; out: CaptureWriter } {
  const buf = dnsPacket.encode({
    type: 'query',
    id: 4242,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type, name, class: 'IN' }],
    additionals: opts.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: opts.udpSize ?? 1232, flags: 0 } as Answer] : [],
  });
  const out = new CaptureWriter();
  const req = new Request(buf, buf.length, out);
  if (parseQuery(req) !== ParseResult.OK) throw new Error('test query did not parse');
  req.proto = opts.tcp ? Proto.TCP : Proto.UDP;
  return { req, out };
}

/** The next plugin: answers REFUSED (so a test sees it was reached) and counts the calls. */
export class NextHandler implements Handler {
  calls = 0;
  serve(req: Request): void {
    this.calls++;
    req.fail('next', 5, null);
  }
}
