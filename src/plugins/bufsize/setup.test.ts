import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { Handler, SetupContext } from '../../plugin.ts';
import { Request, Proto } from '../../server/request.ts';
import { parseQuery, ParseResult } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { type BufsizePlugin, bufsizeSetup } from './setup.ts';

/** These setups read nothing of their context but the logger. */
const ctx = { log: { info() {}, warn() {}, error() {} } } as unknown as SetupContext;

function setup(directive: string): BufsizePlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return bufsizeSetup.setup(block!.directives[0]!, ctx) as BufsizePlugin;
}

function setupError(directive: string): string {
  try {
    setup(directive);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail(`setup accepted ${directive}`);
}

test('setup: valid forms', () => {
  const p = setup('bufsize');
  assert.equal(p.size, 1232);
  assert.equal(p.handler, true);
  assert.equal(p.scope, 'query');
  for (const [arg, want] of [
    ['512', 512],
    ['4096', 4096],
    ['1100', 1100],
    ['+1000', 1000],
    ['01220', 1220],
  ] as const) {
    assert.equal(setup(`bufsize ${arg}`).size, want, arg);
  }
});

test("setup: invalid forms are CoreDNS's ArgErr on the last word", () => {
  const cases: [string, string][] = [
    ['bufsize 511', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '511'"],
    ['bufsize 4097', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '4097'"],
    ['bufsize -1', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '-1'"],
    ['bufsize 1232b', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '1232b'"],
    ['bufsize 1.5', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '1.5'"],
    ['bufsize 1232 1232', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '1232'"],
    ['bufsize 1000 abc', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'abc'"],
    ['bufsize {\n  }', "Corefile:2 - Error during parsing: 'bufsize' does not take a block"],
  ];
  for (const [text, want] of cases) assert.equal(setupError(text), want, text);
});

function request(size: number | null, proto: number = Proto.UDP): Request {
  const msg = dnsPacket.encode({
    type: 'query',
    id: 1,
    questions: [{ name: 'example.org', type: 'A', class: 'IN' }],
    additionals: size === null ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: size } as unknown as dnsPacket.Answer],
  });
  const req = new Request(msg, msg.length, { writeMsg() {} });
  assert.equal(parseQuery(req), ParseResult.OK);
  req.proto = proto as 0 | 1;
  if (proto === Proto.TCP) req.udpSize = 65535;
  return req;
}

function optSize(req: Request): number | null {
  const d = dnsPacket.decode(req.msg) as unknown as { additionals: { type: string; udpPayloadSize: number }[] };
  const o = d.additionals.find((a) => a.type === 'OPT');
  return o ? o.udpPayloadSize : null;
}

test('handler: lowers larger EDNS sizes (request bytes and the UDP limit), passes the rest unchanged', () => {
  const seen: Request[] = [];
  const next: Handler = { serve: (r) => seen.push(r) };
  const h = setup('bufsize 1100').compose(next);
  const cases: [number | null, number, number | null, number][] = [
    // [client size, proto, OPT size sent on, req.udpSize after]
    [4096, Proto.UDP, 1100, 1100],
    [1232, Proto.UDP, 1100, 1100],
    [1100, Proto.UDP, 1100, 1100],
    [1000, Proto.UDP, 1000, 1000],
    [100, Proto.UDP, 100, 512],
    [null, Proto.UDP, null, 512],
    [4096, Proto.TCP, 1100, 65535],
  ];
  for (const [size, proto, sent, limit] of cases) {
    const req = request(size, proto);
    const before = Buffer.from(req.msg);
    h.serve(req);
    assert.equal(seen.pop(), req, 'next called once with the request');
    assert.equal(optSize(req), sent, `client ${size}`);
    assert.equal(req.udpSize, limit, `client ${size} limit`);
    if (size === null || size <= 1100) assert.deepEqual(req.msg, before);
  }
});
