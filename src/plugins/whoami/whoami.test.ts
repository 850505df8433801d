import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { ResponseWriter, SetupContext } from '../../plugin.ts';
import { Request, Proto } from '../../server/request.ts';
import { parseQuery, ParseResult } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { decodeMessage, formatRR, type Message } from '../../wire/codec.ts';
import { Flag } from '../../wire/codes.ts';
import { whoamiSetup, type WhoamiPlugin } from './setup.ts';

/** These setups read nothing of their context but the logger. */
const ctx = { log: { info() {}, warn() {}, error() {} } } as unknown as SetupContext;

function setup(directive: string): WhoamiPlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return whoamiSetup.setup(block!.directives[0]!, ctx) as WhoamiPlugin;
}

function setupError(directive: string): string {
  try {
    setup(directive);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail(`setup accepted ${directive}`);
}

test('setup: `whoami` alone; arguments and blocks refused', () => {
  assert.equal(setup('whoami').handler, true);
  assert.equal(setup('whoami').scope, 'query');
  assert.equal(setupError('whoami extra'), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'");
  assert.equal(setupError('whoami a b'), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'a'");
  assert.equal(setupError('whoami {\n  }'), "Corefile:2 - Error during parsing: 'whoami' does not take a block");
});

interface Q {
  name: string;
  type?: string;
  klass?: string;
  edns?: number;
  addr: string;
  family: 4 | 6;
  port: number;
  proto?: number;
}

function ask(q: Q): { m: Message; by: string } {
  let out: Buffer | null = null;
  const sink: ResponseWriter = { writeMsg: (_r, m, l) => (out = Buffer.from(m.subarray(0, l))) };
  const msg = dnsPacket.encode({
    type: 'query',
    id: 0x2222,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name: q.name, type: (q.type ?? 'A') as 'A', class: (q.klass ?? 'IN') as 'IN' }],
    additionals: q.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: q.edns, flags: dnsPacket.DNSSEC_OK } as unknown as dnsPacket.Answer],
  });
  const req = new Request(msg, msg.length, sink);
  assert.equal(parseQuery(req), ParseResult.OK);
  req.remoteAddress = q.addr;
  req.family = q.family;
  req.remotePort = q.port;
  req.proto = (q.proto ?? Proto.UDP) as 0 | 1;
  let next = 0;
  setup('whoami')
    .compose({ serve: () => next++ })
    .serve(req);
  assert.equal(next, 0, 'terminal: never calls next');
  assert.ok(out !== null);
  return { m: decodeMessage(out), by: req.respondedBy };
}

test('IPv4 client over UDP: empty answer, A and _udp SRV in additional, TTL 0, AA, case preserved', () => {
  const { m, by } = ask({ name: 'Example.ORG', addr: '10.240.0.1', family: 4, port: 40212 });
  assert.equal(by, 'whoami');
  assert.equal(m.id, 0x2222);
  assert.equal(m.rcode, 0);
  assert.ok((m.flags & Flag.QR) !== 0 && (m.flags & Flag.AA) !== 0 && (m.flags & Flag.RD) !== 0);
  assert.equal(m.answer.length, 0);
  assert.equal(m.authority.length, 0);
  assert.deepEqual(m.additional.map(formatRR), ['Example.ORG.\t0\tIN\tA\t10.240.0.1', '_udp.Example.ORG.\t0\tIN\tSRV\t0 0 40212 .']);
  assert.equal(m.edns, null);
});

test('IPv6 client over TCP: AAAA and _tcp SRV; IPv4-mapped IPv6 counts as IPv4; the root name; other qtypes and classes', () => {
  assert.deepEqual(ask({ name: 'example.org', type: 'TXT', addr: '2001:db8::1', family: 6, port: 53000, proto: Proto.TCP }).m.additional.map(formatRR), [
    'example.org.\t0\tIN\tAAAA\t2001:db8::1',
    '_tcp.example.org.\t0\tIN\tSRV\t0 0 53000 .',
  ]);
  assert.deepEqual(ask({ name: 'x.example', addr: '::ffff:192.0.2.9', family: 6, port: 1 }).m.additional.map(formatRR), [
    'x.example.\t0\tIN\tA\t192.0.2.9',
    '_udp.x.example.\t0\tIN\tSRV\t0 0 1 .',
  ]);
  assert.deepEqual(ask({ name: '.', type: 'NS', addr: '127.0.0.1', family: 4, port: 2 }).m.additional.map(formatRR), [
    '.\t0\tIN\tA\t127.0.0.1',
    '_udp.\t0\tIN\tSRV\t0 0 2 .',
  ]);
  assert.deepEqual(ask({ name: 'id.server', type: 'TXT', klass: 'CH', addr: '127.0.0.1', family: 4, port: 3 }).m.additional.map(formatRR), [
    'id.server.\t0\tCH\tA\t127.0.0.1',
    '_udp.id.server.\t0\tCH\tSRV\t0 0 3 .',
  ]);
});

test("EDNS mirrored (size and DO) as CoreDNS's scrub writer does", () => {
  const { m } = ask({ name: 'example.org', edns: 4000, addr: '10.0.0.1', family: 4, port: 9 });
  assert.deepEqual(m.edns, { udpSize: 4000, extRcode: 0, version: 0, dnssecOk: true, options: [] });
});

test('a name too long for the _udp. prefix: SERVFAIL, not a crash', () => {
  const long = Array.from({ length: 4 }, () => 'a'.repeat(62)).join('.'); // 253 bytes on the wire, 258 with _udp.
  const { m, by } = ask({ name: long, addr: '10.0.0.1', family: 4, port: 9 });
  assert.equal(by, 'whoami');
  assert.equal(m.rcode, 2);
});
