/**
 * The dns64 handler in a chain: a toy upstream as `next` (answers built with the codec), and
 * the real cache plugin between them for the cache interaction.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Handler, ResponseWriter } from '../../plugin.ts';
import { Proto, Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { decodeMessage, encodeMessage, formatRR, parseRR, type Message, type RR } from '../../wire/codec.ts';
import { Flag, QType, Rcode } from '../../wire/codes.ts';
import { dns64Setup } from './setup.ts';
import { translatedByServer, collectDns64Global } from './metrics.ts';
import { cacheSetup } from '../cache/setup.ts';
import { TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';
import { SnapshotBuilder } from '../../metrics/snapshot.ts';

class Capture implements ResponseWriter {
  readonly sent: Buffer[] = [];
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    this.sent.push(Buffer.from(msg.subarray(0, len)));
  }
  get last(): Message {
    return decodeMessage(this.sent[this.sent.length - 1]!);
  }
}

function clientQuery(name: string, qtype: number, family: 4 | 6 = 6, qclass = 1): { req: Request; out: Capture } {
  const buf = encodeMessage({
    id: 777,
    flags: Flag.RD,
    rcode: 0,
    question: [{ name, type: qtype, class: qclass }],
    answer: [],
    authority: [],
    additional: [],
    edns: null,
  });
  const out = new Capture();
  const req = new Request(buf, buf.length, out);
  assert.equal(parseQuery(req), ParseResult.OK);
  req.proto = Proto.UDP;
  req.family = family;
  req.remoteAddress = family === 6 ? '::1' : '127.0.0.1';
  req.remotePort = 5300;
  req.server = 'dns://[::1]:53';
  return { req, out };
}

/** A toy authority: name -> records; SOA in authority for NODATA, NXDOMAIN for unknown names. */
class Upstream implements Handler {
  readonly asked: string[] = [];
  readonly records = new Map<string, RR[]>();
  failA = false;
  constructor(zone: Record<string, string[]>) {
    for (const [name, rrs] of Object.entries(zone))
      this.records.set(
        name,
        rrs.map((t) => parseRR(t)),
      );
  }
  serve(req: Request): void {
    const name = req.name().toLowerCase();
    this.asked.push(`${name} ${req.qtype}`);
    if (this.failA && req.qtype === QType.A) {
      req.fail('forward', Rcode.SERVFAIL, new Error('upstream down'));
      return;
    }
    const rrs = this.records.get(name);
    const soa = parseRR('example.org. 70 IN SOA ns. host. 1 7200 900 1209600 30');
    const m: Message = {
      id: req.id,
      flags: Flag.QR | Flag.RD | Flag.RA | Flag.AA,
      rcode: rrs ? 0 : Rcode.NXDOMAIN,
      question: [{ name: req.name(), type: req.qtype, class: req.qclass }],
      answer: (rrs ?? []).filter((r) => r.type === req.qtype || r.type === QType.CNAME),
      authority: [],
      additional: [],
      edns: null,
    };
    if (m.answer.length === 0) m.authority.push(soa);
    const out = encodeMessage(m);
    req.reply(out, out.length, 'upstream');
  }
}

const zone = {
  'v4only.example.org.': ['v4only.example.org. 300 IN A 192.0.2.1', 'v4only.example.org. 300 IN A 192.0.2.2'],
  'dual.example.org.': ['dual.example.org. 300 IN A 192.0.2.3', 'dual.example.org. 300 IN AAAA 2001:db8::3'],
  'empty.example.org.': ['empty.example.org. 300 IN TXT "x"'],
  'alias.example.org.': ['alias.example.org. 300 IN CNAME v4only.example.org.'],
};

function chain(line: string, up: Handler, withCache = false): Handler {
  const ctx = setupContext(new TestEngine());
  const cache = withCache ? cacheSetup.setup(directiveOf('cache 30'), ctx).compose(up) : up;
  return dns64Setup.setup(directiveOf(line), ctx).compose(cache);
}

test('dns64: AAAA NODATA over IPv6 gets AAAA synthesized from the A records (well-known prefix), TTL min(A, SOA)', () => {
  const up = new Upstream(zone);
  const { req, out } = clientQuery('v4only.example.org.', QType.AAAA);
  chain('dns64', up).serve(req);
  assert.deepEqual(up.asked, [`v4only.example.org. ${QType.AAAA}`, `v4only.example.org. ${QType.A}`]);
  const m = out.last;
  assert.equal(m.id, 777);
  assert.equal(m.rcode, 0);
  assert.deepEqual(m.question, [{ name: 'v4only.example.org.', type: QType.AAAA, class: 1 }]);
  assert.deepEqual(m.answer.map(formatRR), ['v4only.example.org.\t70\tIN\tAAAA\t64:ff9b::c000:201', 'v4only.example.org.\t70\tIN\tAAAA\t64:ff9b::c000:202']);
  assert.equal(req.respondedBy, 'dns64');
});

test('dns64: what passes through untouched (one next call, no A query)', () => {
  const cases: [string, string, number, 4 | 6, number][] = [
    ['existing AAAA', 'dual.example.org.', QType.AAAA, 6, 1],
    ['NXDOMAIN (RFC 6147 §5.1.2)', 'missing.example.org.', QType.AAAA, 6, 1],
    ['A query', 'v4only.example.org.', QType.A, 6, 1],
    ['MX query', 'v4only.example.org.', QType.MX, 6, 1],
    ['AAAA over IPv4 without allow_ipv4', 'v4only.example.org.', QType.AAAA, 4, 1],
    ['AAAA of class CH', 'v4only.example.org.', QType.AAAA, 6, 3],
  ];
  for (const [what, name, qtype, family, qclass] of cases) {
    const up = new Upstream(zone);
    const { req, out } = clientQuery(name, qtype, family, qclass);
    chain('dns64', up).serve(req);
    assert.equal(up.asked.length, 1, what);
    assert.equal(out.sent.length, 1, what);
    assert.equal(req.respondedBy, 'upstream', what);
  }
});

test('dns64: translate_all synthesizes even over existing AAAA; allow_ipv4 translates IPv4 clients; custom prefix', () => {
  let up = new Upstream(zone);
  let q = clientQuery('dual.example.org.', QType.AAAA);
  chain('dns64 {\ntranslate_all\n}', up).serve(q.req);
  // The AAAA response had no SOA: the TTL bound is 600 s, above the A TTL (300).
  assert.deepEqual(q.out.last.answer.map(formatRR), ['dual.example.org.\t300\tIN\tAAAA\t64:ff9b::c000:203']);
  up = new Upstream(zone);
  q = clientQuery('v4only.example.org.', QType.AAAA, 4);
  chain('dns64 {\nallow_ipv4\nprefix 2001:db8:64::/48\n}', up).serve(q.req);
  assert.deepEqual(
    q.out.last.answer.map((r) => r.data),
    ['2001:db8:64:c000:2:100::', '2001:db8:64:c000:2:200::'],
  );
  up = new Upstream(zone);
  q = clientQuery('v4only.example.org.', QType.AAAA);
  chain('dns64 64:1337::/96', up).serve(q.req);
  assert.deepEqual(
    q.out.last.answer.map((r) => r.data),
    ['64:1337::c000:201', '64:1337::c000:202'],
  );
});

test('dns64: translate_all TTL: without a SOA in the AAAA response the bound is 600 s', () => {
  const up = new Upstream({ 'long.example.org.': ['long.example.org. 9000 IN A 192.0.2.9', 'long.example.org. 9000 IN AAAA 2001:db8::9'] });
  const q = clientQuery('long.example.org.', QType.AAAA);
  chain('dns64 {\ntranslate_all\n}', up).serve(q.req);
  assert.deepEqual(q.out.last.answer.map(formatRR), ['long.example.org.\t600\tIN\tAAAA\t64:ff9b::c000:209']);
});

test('dns64: a CNAME chain is kept, the A records at its end are translated', () => {
  const up = new Upstream({ ...zone, 'alias.example.org.': ['alias.example.org. 300 IN CNAME v4only.example.org.'] });
  // The toy upstream does not chase CNAMEs: the A response holds the CNAME only.
  const q = clientQuery('alias.example.org.', QType.AAAA);
  chain('dns64', up).serve(q.req);
  assert.deepEqual(q.out.last.answer.map(formatRR), ['alias.example.org.\t300\tIN\tCNAME\tv4only.example.org.']);
});

test('dns64: NODATA for both AAAA and A: NOERROR, no answer, the A response authority', () => {
  const up = new Upstream(zone);
  const q = clientQuery('empty.example.org.', QType.AAAA);
  chain('dns64', up).serve(q.req);
  const m = q.out.last;
  assert.equal(m.rcode, 0);
  assert.equal(m.answer.length, 0);
  assert.equal(m.authority[0]?.type, QType.SOA);
});

test('dns64: the A lookup failing leaves the client with the AAAA response; nothing counted', () => {
  const before = translatedByServer.get('dns://[::1]:53') ?? 0;
  const up = new Upstream(zone);
  up.failA = true;
  const errors: string[] = [];
  const q = clientQuery('v4only.example.org.', QType.AAAA);
  q.req.errorSink = (_r, plugin, err) => errors.push(`${plugin}: ${err.message}`);
  chain('dns64', up).serve(q.req);
  const m = q.out.last;
  assert.equal(m.rcode, 0);
  assert.equal(m.answer.length, 0);
  assert.equal(m.authority[0]?.type, QType.SOA);
  assert.deepEqual(errors, ['forward: upstream down'], 'the A lookup error reaches the errors plugin');
  assert.equal(q.req.respondedBy, 'upstream');
  assert.equal(translatedByServer.get('dns://[::1]:53') ?? 0, before);
});

test('dns64: a plugin error on the AAAA query (forward failed) is passed on, no A lookup', () => {
  const up = new Upstream(zone);
  const failing: Handler = {
    serve(req: Request) {
      up.asked.push('aaaa-fail');
      req.fail('forward', Rcode.SERVFAIL, null);
    },
  };
  const q = clientQuery('v4only.example.org.', QType.AAAA);
  chain('dns64', failing).serve(q.req);
  assert.equal(q.out.last.rcode, Rcode.SERVFAIL);
  assert.deepEqual(up.asked, ['aaaa-fail']);
});

test('dns64 before cache: the AAAA response and the A lookup are both cached; the synthesized answer is not', () => {
  const up = new Upstream(zone);
  const h = chain('dns64', up, true);
  for (let i = 0; i < 3; i++) {
    const q = clientQuery('v4only.example.org.', QType.AAAA);
    h.serve(q.req);
    assert.deepEqual(
      q.out.last.answer.map((r) => r.data),
      ['64:ff9b::c000:201', '64:ff9b::c000:202'],
      `query ${i}`,
    );
  }
  assert.deepEqual(up.asked, [`v4only.example.org. ${QType.AAAA}`, `v4only.example.org. ${QType.A}`], 'the upstream saw each question once');
  // A client's own A query is a cache hit of the lookup dns64 made.
  const a = clientQuery('v4only.example.org.', QType.A);
  h.serve(a.req);
  assert.equal(a.req.respondedBy, 'cache');
  // A client AAAA query over IPv4 (no translation) gets the cached upstream NODATA.
  const v4 = clientQuery('v4only.example.org.', QType.AAAA, 4);
  h.serve(v4.req);
  assert.equal(v4.req.respondedBy, 'cache');
  assert.equal(v4.out.last.answer.length, 0);
});

test('dns64 metrics: coredns_dns64_requests_translated_total{server} counts synthesized responses only', () => {
  const server = 'dns://[::1]:9999';
  const up = new Upstream(zone);
  const h = chain('dns64', up);
  for (const name of ['v4only.example.org.', 'dual.example.org.', 'v4only.example.org.']) {
    const q = clientQuery(name, QType.AAAA);
    q.req.server = server;
    h.serve(q.req);
  }
  assert.equal(translatedByServer.get(server), 2);
  const b = new SnapshotBuilder();
  collectDns64Global(b);
  const fam = b.build().families.find((f) => f.name === 'coredns_dns64_requests_translated_total');
  assert.equal(fam?.type, 'counter');
  assert.deepEqual(fam?.samples.find((s) => s.labels.server === server)?.value, 2);
});

test('dns64: with a server (Request.lookup) the A query goes through the whole chain again, as CoreDNS upstream lookups do', () => {
  const up = new Upstream(zone);
  const h = chain('dns64', up);
  const lookedUp: string[] = [];
  const q = clientQuery('v4only.example.org.', QType.AAAA);
  q.req.lookup = (sub: Request) => {
    lookedUp.push(`${sub.name()} ${sub.qtype} ${sub.family}`);
    h.serve(sub);
  };
  h.serve(q.req);
  assert.deepEqual(lookedUp, [`v4only.example.org. ${QType.A} 6`]);
  assert.deepEqual(
    q.out.last.answer.map((r) => r.data),
    ['64:ff9b::c000:201', '64:ff9b::c000:202'],
  );
});
