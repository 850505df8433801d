import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { ResponseWriter, SetupContext } from '../../plugin.ts';
import { Request } from '../../server/request.ts';
import { parseQuery, ParseResult } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { decodeMessage, encodeMessage, formatIPv6, parseRR, replyTo } from '../../wire/codec.ts';
import { type LoadBalancePlugin, loadbalanceSetup, parseCidr } from './setup.ts';
import type { Subnet } from '../../wire/shuffle.ts';

/** A parsed subnet as text, to compare with the Corefile's. */
function subnetText(s: Subnet): string {
  return `${s.bytes.length === 4 ? Array.from(s.bytes).join('.') : formatIPv6(s.bytes)}/${s.bits}`;
}

/** These setups read nothing of their context but the logger. */
const ctx = { log: { info() {}, warn() {}, error() {} } } as unknown as SetupContext;

function setup(directive: string): LoadBalancePlugin {
  const [block] = parseCorefile(`.:53 {\n  ${directive}\n}\n`, 'Corefile', {});
  return loadbalanceSetup.setup(block!.directives[0]!, ctx) as LoadBalancePlugin;
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
  assert.deepEqual(setup('loadbalance').prefer, []);
  assert.deepEqual(setup('loadbalance round_robin').prefer, []);
  const p = setup('loadbalance round_robin {\n    prefer 10.9.20.0/24 192.168.1.7/24\n    prefer 2001:db8::/32\n  }');
  assert.deepEqual(p.prefer.map(subnetText), ['10.9.20.0/24', '192.168.1.7/24', '2001:db8::/32']);
  assert.deepEqual(setup('loadbalance {\n    prefer 10.0.0.0/8\n  }').prefer.map(subnetText), ['10.0.0.0/8']);
  assert.equal(p.handler, true);
  assert.equal(p.scope, 'query');
});

test('setup: invalid forms with CoreDNS texts', () => {
  const cases: [string, string][] = [
    ['loadbalance round_robin extra', 'Corefile:2 - Error during parsing: unknown property for round_robin'],
    ['loadbalance random', 'Corefile:2 - Error during parsing: unknown policy: random'],
    ['loadbalance {\n    prefer 10.0.0.0/33\n  }', 'Corefile:3 - Error during parsing: invalid CIDR "10.0.0.0/33": invalid CIDR address: 10.0.0.0/33'],
    ['loadbalance {\n    prefer 10.0.0.1\n  }', 'Corefile:3 - Error during parsing: invalid CIDR "10.0.0.1": invalid CIDR address: 10.0.0.1'],
    ['loadbalance {\n    prefer nonsense/8\n  }', 'Corefile:3 - Error during parsing: invalid CIDR "nonsense/8": invalid CIDR address: nonsense/8'],
    ['loadbalance {\n    reload 10s\n  }', "Corefile:3 - Error during parsing: unknown property 'reload'"],
  ];
  for (const [text, want] of cases) assert.equal(setupError(text), want, text);
});

test('parseCidr follows Go net.ParseCIDR bounds', () => {
  assert.equal(parseCidr('10.0.0.0/32')?.bits, 32);
  assert.equal(parseCidr('10.0.0.0/0')?.bits, 0);
  assert.equal(parseCidr('::/128')?.bits, 128);
  assert.equal(parseCidr('::/129'), null);
  assert.equal(parseCidr('10.0.0.0/-1'), null);
  assert.equal(parseCidr('10.0.0.0/'), null);
  assert.equal(parseCidr('fe80::1%eth0/64'), null);
});

test('handler: wraps the writer, shuffles what comes back (a hit written by a later plugin), restores the writer', () => {
  const got: Buffer[] = [];
  const sink: ResponseWriter = { writeMsg: (_r, m, l) => got.push(Buffer.from(m.subarray(0, l))) };
  const q = dnsPacket.encode({ type: 'query', id: 5, flags: dnsPacket.RECURSION_DESIRED, questions: [{ name: 'www.example', type: 'A', class: 'IN' }] });
  const h = setup('loadbalance').compose({
    serve(req) {
      const m = replyTo(req, { answer: [1, 2, 3, 4, 5, 6].map((i) => parseRR(`www.example. 60 IN A 192.0.2.${i}`)) });
      const out = encodeMessage(m);
      req.reply(out, out.length, 'test');
    },
  });
  const firsts = new Set<string>();
  for (let i = 0; i < 100; i++) {
    const req = new Request(Buffer.from(q), q.length, sink);
    assert.equal(parseQuery(req), ParseResult.OK);
    h.serve(req);
    assert.equal(req.writer, sink);
    const m = decodeMessage(got.pop()!);
    assert.equal(m.answer.length, 6);
    firsts.add(m.answer[0]!.data as string);
  }
  assert.equal(firsts.size, 6);
});
