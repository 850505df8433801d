/**
 * Regression tests for bugs found while fuzzing and fault-testing, each named after the bug.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { parseCorefile } from '../../src/corefile/parser.ts';
import { CachePlugin } from '../../src/plugins/cache/cache.ts';
import { parseCacheDirective } from '../../src/plugins/cache/setup.ts';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';
import { Request } from '../../src/server/request.ts';
import type { Handler } from '../../src/plugin.ts';
import { Capture } from './lib.ts';

test('regression: cache `disable` zones are checked on the response path with the label offsets of another query', () => {
  // The UDP and TCP listeners parsed every query into one shared labelOffsets array; the
  // response of a miss arrives later, after other queries were parsed into that array.
  // store() used req.labelOffsets there, so a `disable success` zone could be missed. Each
  // request now owns its parsed query (src/wire/query.ts ParsedQuery); the scenario stays.
  const d = parseCorefile('. {\n cache {\n  disable success example.com\n }\n}\n', 'Corefile', {})[0]!.directives[0]!;
  const cache = new CachePlugin(parseCacheDirective(d, ['.']), { clock: () => 0 });
  const pending: Request[] = [];
  const next: Handler = { serve: (req) => void pending.push(req) };
  const handler = cache.compose(next);
  const ask = (name: string) => {
    const msg = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name, type: 'A' }] });
    const req = new Request(msg, msg.length, new Capture());
    assert.equal(parseQuery(req), ParseResult.OK);
    handler.serve(req);
    return req;
  };
  const disabled = ask('a.example.com');
  ask('xx.other.org');
  const r = disabled;
  const resp = dnsPacket.encode({
    type: 'response',
    id: 1,
    flags: 0x8180,
    questions: [{ name: 'a.example.com', type: 'A' }],
    answers: [{ type: 'A', name: 'a.example.com', ttl: 300, data: '192.0.2.1' }],
  });
  r.reply(resp, resp.length, 'forward');
  assert.equal(cache.entries('success'), 0, 'a.example.com is under a disabled zone: not stored');
});
