/**
 * rewrite's query path with a toy upstream: what the next plugin sees (the Request re-parsed
 * from the rewritten message), what the client gets back (its own question, names mapped back
 * per the answer rules, TTL and rcode rules, EDNS(0) options and their revert), the Request put
 * back for the writers ahead, and `cache` in front of rewrite (CoreDNS's order).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Handler, Logger, ResponseWriter, SetupContext } from '../../plugin.ts';
import { Proto, Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { decodeMessage, encodeMessage, type Edns, type Message, type RR } from '../../wire/codec.ts';
import { QClass, QType, Rcode } from '../../wire/codes.ts';
import { rewriteSetup } from './setup.ts';
import type { RewritePlugin } from './rewrite.ts';
import { CachePlugin } from '../cache/cache.ts';
import { parseCacheDirective } from '../cache/setup.ts';

const quiet: Logger = { info() {}, warn() {}, error() {} };
const engine = new TestEngine();
function ctx(): SetupContext {
  return setupContext(engine, { log: quiet });
}

function rewriteFrom(lines: string): RewritePlugin {
  const [block] = parseCorefile(`.:53 {\n${lines}\n}\n`, 'Corefile', {});
  const ds = block!.directives.filter((d) => d.name === 'rewrite');
  return (ds.length > 1 ? rewriteSetup.setupAll!(ds, ctx()) : rewriteSetup.setup(ds[0]!, ctx())) as RewritePlugin;
}

class Capture implements ResponseWriter {
  sent: Buffer[] = [];
  seen: Array<{ name: string; msg: Buffer; nameHash: number }> = [];
  writeMsg(req: Request, msg: Buffer, len: number): void {
    this.sent.push(Buffer.from(msg.subarray(0, len)));
    this.seen.push({ name: req.name(), msg: req.msg, nameHash: req.nameHash });
  }
  last(): Message {
    return decodeMessage(this.sent[this.sent.length - 1]!);
  }
}

interface QOpts {
  type?: number;
  cls?: number;
  edns?: Edns | null;
  remote?: string;
  port?: number;
  proto?: 0 | 1;
  server?: string;
}

function query(name: string, o: QOpts = {}): { req: Request; out: Capture } {
  const buf = encodeMessage({
    id: 0x1234,
    flags: 0x0100,
    rcode: 0,
    question: [{ name, type: o.type ?? QType.A, class: o.cls ?? QClass.IN }],
    answer: [],
    authority: [],
    additional: [],
    edns: o.edns ?? null,
  });
  const out = new Capture();
  const req = new Request(buf, buf.length, out);
  assert.equal(parseQuery(req), ParseResult.OK);
  req.proto = o.proto ?? Proto.UDP;
  req.family = (o.remote ?? '192.0.2.77').includes(':') ? 6 : 4;
  req.remoteAddress = o.remote ?? '192.0.2.77';
  req.remotePort = o.port ?? 40000;
  req.server = o.server ?? 'dns://127.0.0.1:53';
  return { req, out };
}

/** What the upstream saw of a query: the Request's fields and its message decoded. */
interface Seen {
  name: string;
  qtype: number;
  qclass: number;
  nameHash: number;
  edns: boolean;
  msg: Message;
}

/** A toy upstream answering with `answer(query)`; records what each query looked like. */
class Upstream implements Handler {
  seen: Seen[] = [];
  answer: (q: Message) => Partial<Message>;
  constructor(answer: (q: Message) => Partial<Message> = () => ({})) {
    this.answer = answer;
  }
  serve(req: Request): void {
    const q = decodeMessage(req.msg, req.msgLen);
    this.seen.push({ name: req.name(), qtype: req.qtype, qclass: req.qclass, nameHash: req.nameHash, edns: req.edns, msg: q });
    const m: Message = {
      id: q.id,
      flags: 0x8180,
      rcode: 0,
      question: q.question,
      answer: [],
      authority: [],
      additional: [],
      edns: q.edns === null ? null : { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [] },
      ...this.answer(q),
    };
    const out = encodeMessage(m);
    req.reply(out, out.length, 'toy');
  }
}

function rr(name: string, type: number, data: RR['data'], ttl = 300): RR {
  return { name, type, class: QClass.IN, ttl, data };
}

function hashOf(name: string): number {
  return query(name).req.nameHash;
}

test('exact: upstream gets the new name in a re-parsed Request; the client its own question and names', () => {
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
  const h = rewriteFrom('rewrite name a.test b.test').compose(up);
  const { req, out } = query('A.Test.');
  const original = req.msg;
  h.serve(req);
  assert.equal(up.seen.length, 1);
  assert.equal(up.seen[0]!.name, 'b.test.');
  assert.equal(up.seen[0]!.msg.question[0]!.name, 'b.test.');
  assert.equal(up.seen[0]!.nameHash, hashOf('b.test.'));
  const m = out.last();
  assert.equal(m.id, 0x1234);
  assert.deepEqual(m.question, [{ name: 'A.Test.', type: QType.A, class: QClass.IN }]);
  assert.equal(m.answer[0]!.name, 'a.test.');
  assert.equal(m.answer[0]!.data, '192.0.2.1');
  // The writers ahead see the client's own query again.
  assert.equal(out.seen[0]!.name, 'A.Test.');
  assert.equal(out.seen[0]!.msg, original);
  assert.equal(req.nameHash, hashOf('a.test.'));
  assert.equal(req.name(), 'A.Test.');
});

test('no rule applies: the query passes untouched and no writer is swapped in', () => {
  const up = new Upstream();
  const h = rewriteFrom('rewrite name a.test b.test').compose(up);
  const { req, out } = query('c.test.');
  const w = req.writer;
  const msg = req.msg;
  let writerDuring: ResponseWriter | null = null;
  const spy: Handler = {
    serve: (r) => {
      writerDuring = r.writer;
      up.serve(r);
    },
  };
  rewriteFrom('rewrite name a.test b.test').compose(spy).serve(req);
  assert.equal(writerDuring, w);
  assert.equal(up.seen[0]!.msg.question[0]!.name, 'c.test.');
  assert.equal(req.msg, msg);
  assert.equal(out.sent.length, 1);
  void h;
});

test('suffix with answer auto: a domain move (question, owner names and CNAME targets mapped back)', () => {
  const up = new Upstream((q) => {
    const n = q.question[0]!.name;
    return {
      answer: [rr(n, QType.CNAME, 'y.new.test.'), rr('y.new.test.', QType.A, '192.0.2.9')],
      authority: [rr('new.test.', QType.NS, 'ns.new.test.')],
    };
  });
  const h = rewriteFrom('rewrite name suffix .old.test .new.test answer auto').compose(up);
  const { req, out } = query('x.old.test.');
  h.serve(req);
  assert.equal(up.seen[0]!.name, 'x.new.test.');
  const m = out.last();
  assert.equal(m.question[0]!.name, 'x.old.test.');
  assert.deepEqual(
    m.answer.map((r) => [r.name, r.data]),
    [
      ['x.old.test.', 'y.old.test.'],
      ['y.old.test.', '192.0.2.9'],
    ],
  );
  // `.new.test.` as a suffix: `new.test.` itself (no leading dot) is left alone, as in CoreDNS.
  assert.deepEqual(
    m.authority.map((r) => [r.name, r.data]),
    [['new.test.', 'ns.old.test.']],
  );
});

test('suffix without answer rules: question restored, answer names as upstream gave them', () => {
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
  const h = rewriteFrom('rewrite name suffix .schmoogle.com. .google.com.').compose(up);
  const { req, out } = query('www.schmoogle.com.');
  h.serve(req);
  assert.equal(up.seen[0]!.name, 'www.google.com.');
  const m = out.last();
  assert.equal(m.question[0]!.name, 'www.schmoogle.com.');
  assert.equal(m.answer[0]!.name, 'www.google.com.');
});

test('substring, prefix and regex rewrites of the question', () => {
  const cases: Array<[string, string, string]> = [
    ['rewrite name substring service.us-west-1.example.org service.us-west-1.consul', 'ftp.service.us-west-1.example.org.', 'ftp.service.us-west-1.consul.'],
    ['rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul', 'ftp-us-west-1.example.org.', 'ftp.service.us-west-1.consul.'],
    ['rewrite name prefix www api', 'www.example.org.', 'api.example.org.'],
    ['rewrite name exact RED.test BLUE.test', 'red.TEST.', 'blue.test.'],
    // RE2's leading flag group and named groups.
    ['rewrite name regex (?i)^WWW\\.(?P<rest>.*)\\.ORG {1}.net', 'www.example.org.', 'example.net.'],
  ];
  for (const [line, from, to] of cases) {
    const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
    const { req, out } = query(from);
    rewriteFrom(line).compose(up).serve(req);
    assert.equal(up.seen[0]!.name, to, line);
    assert.equal(out.last().question[0]!.name, from, line);
  }
});

test('regex with answer name and answer value (README response rewrites)', () => {
  const up = new Upstream((q) => ({
    answer: [rr(q.question[0]!.name, QType.A, '10.10.10.10', 0), rr(q.question[0]!.name, QType.A, '10.20.20.20', 0)],
  }));
  const h = rewriteFrom(
    'rewrite stop {\n name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul\n answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n}',
  ).compose(up);
  const { req, out } = query('ftp-us-west-1.coredns.rocks.');
  h.serve(req);
  assert.equal(up.seen[0]!.name, 'ftp.service.us-west-1.consul.');
  const m = out.last();
  assert.deepEqual(
    m.answer.map((r) => r.name),
    ['ftp-us-west-1.coredns.rocks.', 'ftp-us-west-1.coredns.rocks.'],
  );

  const ptrUp = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.PTR, 'ftp-us-west-1.service.consul.', 60)] }));
  const p = rewriteFrom('rewrite stop {\n name suffix .arpa .arpa\n answer name auto\n answer value (.*)\\.service\\.consul\\. {1}.coredns.rocks.\n}');
  // CoreDNS reads `answer name auto` as an explicit name rule whose FROM is `auto` (a regex that rarely matches).
  const q2 = query('30.30.30.10.in-addr.arpa.', { type: QType.PTR });
  p.compose(ptrUp).serve(q2.req);
  const m2 = q2.out.last();
  assert.equal(m2.answer[0]!.name, '30.30.30.10.in-addr.arpa.');
  assert.equal(m2.answer[0]!.data, 'ftp-us-west-1.coredns.rocks.');
});

test('answer value rewrites MX, SRV, SOA MNAME, NS and NAPTR replacement', () => {
  const naptr = Uint8Array.from([0, 10, 0, 20, 1, 0x55, 3, 0x53, 0x49, 0x50, 0, 4, 0x5f, 0x73, 0x69, 0x70, 1, 0x62, 4, 0x74, 0x65, 0x73, 0x74, 0]);
  const up = new Upstream(() => ({
    answer: [
      rr('b.test.', QType.MX, { preference: 10, exchange: 'mx.b.test.' }),
      rr('b.test.', QType.SRV, { priority: 1, weight: 2, port: 5060, target: 'sip.b.test.' }),
      rr('b.test.', QType.NAPTR, naptr),
    ],
    authority: [rr('b.test.', QType.SOA, { mname: 'ns.b.test.', rname: 'h.b.test.', serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5 })],
  }));
  const { req, out } = query('a.test.', { type: QType.MX });
  rewriteFrom('rewrite name exact a.test b.test answer value (.*)b\\.test\\. {1}a.test.').compose(up).serve(req);
  const m = out.last();
  assert.equal((m.answer[0]!.data as { exchange: string }).exchange, 'mx.a.test.');
  assert.equal((m.answer[1]!.data as { target: string }).target, 'sip.a.test.');
  // exact rules map names back automatically: b.test. -> a.test.
  assert.ok(m.answer.every((r) => r.name === 'a.test.'));
  assert.equal((m.authority[0]!.data as { mname: string }).mname, 'ns.a.test.');
  assert.equal((m.authority[0]!.data as { rname: string }).rname, 'h.b.test.');
  const nap = m.answer[2]!.data as Uint8Array;
  assert.deepEqual(Buffer.from(nap.subarray(nap.length - 8)), Buffer.from([1, 0x61, 4, 0x74, 0x65, 0x73, 0x74, 0]));
});

test('continue: rules chain in line order, answers are mapped back in reverse order', () => {
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
  const h = rewriteFrom('rewrite continue name a.test b.test\nrewrite name b.test c.test\nrewrite name c.test d.test').compose(up);
  const { req, out } = query('a.test.');
  h.serve(req);
  assert.equal(up.seen[0]!.name, 'c.test.', 'stop after the second rule');
  assert.equal(out.last().answer[0]!.name, 'a.test.');
});

test('type and class rules', () => {
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.HINFO, Uint8Array.from([1, 0x78, 1, 0x79]))] }));
  const { req, out } = query('a.test.', { type: QType.ANY });
  rewriteFrom('rewrite type ANY HINFO').compose(up).serve(req);
  assert.equal(up.seen[0]!.qtype, QType.HINFO);
  assert.equal(up.seen[0]!.msg.question[0]!.type, QType.HINFO);
  assert.equal(out.last().question[0]!.type, QType.ANY);
  assert.equal(req.qtype, QType.ANY);

  const up2 = new Upstream();
  const q2 = query('a.test.', { cls: QClass.CH });
  rewriteFrom('rewrite class CH IN').compose(up2).serve(q2.req);
  assert.equal(up2.seen[0]!.qclass, QClass.IN);
  assert.equal(q2.out.last().question[0]!.class, QClass.CH);
});

test('ttl: a fixed value and ranges, only for matching names', () => {
  const ttls = [5, 100, 1000];
  const up = new Upstream((q) => ({ answer: ttls.map((t, i) => rr(q.question[0]!.name, QType.A, `192.0.2.${i + 1}`, t)) }));
  const run = (line: string, name = 'www.example.com.'): number[] => {
    const { req, out } = query(name);
    rewriteFrom(line).compose(up).serve(req);
    return out.last().answer.map((r) => r.ttl);
  };
  assert.deepEqual(run('rewrite ttl www.example.com. 15'), [15, 15, 15]);
  assert.deepEqual(run('rewrite ttl www.example.com. 30-300'), [30, 100, 300]);
  assert.deepEqual(run('rewrite ttl www.example.com. -30'), [5, 30, 30]);
  assert.deepEqual(run('rewrite ttl www.example.com. 30-'), [30, 100, 1000]);
  assert.deepEqual(run('rewrite ttl regex (.*)\\.example\\.com 15'), [15, 15, 15]);
  assert.deepEqual(run('rewrite ttl suffix example.com 7'), [7, 7, 7]);
  assert.deepEqual(run('rewrite ttl other.test. 15'), [5, 100, 1000]);
});

test('rcode: SERVFAIL becomes NOERROR for matching names, also without records', () => {
  const up = new Upstream(() => ({ rcode: Rcode.SERVFAIL }));
  const { req, out } = query('x.coredns.rocks.');
  rewriteFrom('rewrite continue {\n rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR\n}').compose(up).serve(req);
  assert.equal(out.last().rcode, Rcode.NOERROR);
  assert.equal(req.rcode, Rcode.NOERROR);
  const q2 = query('x.other.test.');
  rewriteFrom('rewrite rcode regex (.*)\\.coredns\\.rocks 2 0').compose(up).serve(q2.req);
  assert.equal(q2.out.last().rcode, Rcode.SERVFAIL);
});

const LOCAL = 0xffee;

function opt(m: Message, code: number): Uint8Array | undefined {
  return m.edns?.options.find((o) => o.code === code)?.data;
}

test('edns0 local: set/append/replace/unset with data; an OPT the client did not send is not returned', () => {
  const up = new Upstream((q) => ({ edns: q.edns === null ? null : { ...q.edns, options: [...q.edns.options] } }));
  const { req, out } = query('a.test.');
  rewriteFrom('rewrite edns0 local set 0xffee 0x61626364').compose(up).serve(req);
  assert.deepEqual(Buffer.from(opt(up.seen[0]!.msg, LOCAL)!).toString(), 'abcd');
  assert.equal(up.seen[0]!.edns, true);
  assert.equal(up.seen[0]!.msg.edns!.udpSize, 4096);
  assert.equal(out.last().edns, null, 'no OPT to a client that sent none');
  assert.equal(req.edns, false);

  const withOpt = (): Edns => ({ udpSize: 1232, extRcode: 0, version: 0, dnssecOk: true, options: [{ code: LOCAL, data: Buffer.from('old') }] });
  const seen = (line: string): Array<[number, string]> => {
    const u = new Upstream();
    const q = query('a.test.', { edns: withOpt() });
    rewriteFrom(line).compose(u).serve(q.req);
    assert.equal(u.seen[0]!.msg.edns!.dnssecOk, true);
    return u.seen[0]!.msg.edns!.options.map((o) => [o.code, Buffer.from(o.data).toString()]);
  };
  assert.deepEqual(seen('rewrite edns0 local set 0xffee abcd'), [[LOCAL, 'abcd']]);
  assert.deepEqual(seen('rewrite edns0 local replace 0xffee abcd'), [[LOCAL, 'abcd']]);
  assert.deepEqual(seen('rewrite edns0 local replace 0xffef abcd'), [[LOCAL, 'old']]);
  assert.deepEqual(seen('rewrite edns0 local append 0xffef abcd'), [
    [LOCAL, 'old'],
    [0xffef, 'abcd'],
  ]);
  assert.deepEqual(seen('rewrite edns0 local unset 0xffee'), []);
});

test('edns0 revert: the response carries no added option, or the client value of a replaced one', () => {
  const echo = new Upstream((q) => ({ edns: { ...q.edns!, options: q.edns!.options.map((o) => ({ ...o })) } }));
  const base = (): Edns => ({ udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [] });
  let q = query('a.test.', { edns: base() });
  rewriteFrom('rewrite edns0 local set 0xffee abcd revert').compose(echo).serve(q.req);
  assert.equal(opt(echo.seen[0]!.msg, LOCAL) !== undefined, true);
  assert.equal(opt(q.out.last(), LOCAL), undefined);

  q = query('a.test.', { edns: base() });
  rewriteFrom('rewrite edns0 local set 0xffee abcd').compose(echo).serve(q.req);
  assert.equal(Buffer.from(opt(q.out.last(), LOCAL)!).toString(), 'abcd', 'without revert the echoed option stays');

  // README "EDNS0 Revert": a first rule sets abcd (no revert), a second replaces it with bcde and reverts.
  q = query('a.test.', { edns: base() });
  rewriteFrom('rewrite continue {\n edns0 local set 0xffee abcd\n}\nrewrite edns0 local replace 0xffee bcde revert').compose(echo).serve(q.req);
  assert.equal(Buffer.from(opt(echo.seen[echo.seen.length - 1]!.msg, LOCAL)!).toString(), 'bcde');
  assert.equal(Buffer.from(opt(q.out.last(), LOCAL)!).toString(), 'abcd');
});

test('edns0 local variables: qname, qtype, client and server address and port, protocol, metadata', () => {
  const val = (v: string, o: QOpts = {}, meta?: Map<string, () => string>): Buffer | undefined => {
    const u = new Upstream();
    const q = query('Foo.Test.', { type: QType.AAAA, ...o });
    if (meta) q.req.metadata = meta;
    rewriteFrom(`rewrite edns0 local set 0xffee ${v}`).compose(u).serve(q.req);
    const d = u.seen[0]!.msg.edns === null ? undefined : opt(u.seen[0]!.msg, LOCAL);
    return d === undefined ? undefined : Buffer.from(d);
  };
  assert.equal(val('{qname}')!.toString(), 'Foo.Test.');
  assert.deepEqual(val('{qtype}'), Buffer.from([0, 28]));
  assert.deepEqual(val('{client_ip}'), Buffer.from([192, 0, 2, 77]));
  assert.deepEqual(val('{client_ip}', { remote: '::ffff:192.0.2.8' }), Buffer.from([192, 0, 2, 8]));
  assert.deepEqual(val('{client_ip}', { remote: '2001:db8::1' }), Buffer.from([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]));
  assert.deepEqual(val('{client_port}'), Buffer.from([0x9c, 0x40]));
  assert.deepEqual(val('{server_ip}'), Buffer.from([127, 0, 0, 1]));
  assert.deepEqual(val('{server_port}', { server: 'dns://127.0.0.1:1053' }), Buffer.from([4, 29]));
  assert.equal(val('{protocol}')!.toString(), 'udp');
  assert.equal(val('{protocol}', { proto: Proto.TCP })!.toString(), 'tcp');
  assert.equal(val('{test/label}', {}, new Map([['test/label', () => 'hello']]))!.toString(), 'hello');
  // No metadata value: the rule does not apply and the query keeps no OPT.
  assert.equal(val('{test/label}'), undefined);
});

test('edns0 subnet: client address cut to the prefix; nsid set; unset', () => {
  const ecs = (line: string, remote: string): Buffer | undefined => {
    const u = new Upstream();
    const q = query('a.test.', { remote });
    rewriteFrom(line).compose(u).serve(q.req);
    const d = opt(u.seen[0]!.msg, 8);
    return d === undefined ? undefined : Buffer.from(d);
  };
  assert.deepEqual(ecs('rewrite edns0 subnet set 24 56', '192.0.2.77'), Buffer.from([0, 1, 24, 0, 192, 0, 2]));
  assert.deepEqual(ecs('rewrite edns0 subnet set 20 56', '192.0.255.77'), Buffer.from([0, 1, 20, 0, 192, 0, 0xf0]));
  assert.deepEqual(ecs('rewrite edns0 subnet set 24 56', '2001:db8:aaaa:bbcc::1'), Buffer.from([0, 2, 56, 0, 0x20, 1, 0xd, 0xb8, 0xaa, 0xaa, 0xbb]));
  assert.deepEqual(ecs('rewrite edns0 subnet set 0 0', '192.0.2.77'), Buffer.from([0, 1, 0, 0]));

  const u = new Upstream();
  const q = query('a.test.');
  rewriteFrom('rewrite edns0 nsid set').compose(u).serve(q.req);
  assert.deepEqual(u.seen[0]!.msg.edns!.options, [{ code: 3, data: new Uint8Array(0) }]);

  const u2 = new Upstream();
  const q2 = query('a.test.', {
    edns: { udpSize: 1232, extRcode: 0, version: 0, dnssecOk: false, options: [{ code: 8, data: Uint8Array.from([0, 1, 8, 0, 10]) }] },
  });
  rewriteFrom('rewrite edns0 subnet unset').compose(u2).serve(q2.req);
  assert.deepEqual(u2.seen[0]!.msg.edns!.options, []);
});

test('a rewrite to an invalid name is SERVFAIL with the client question and the reason reported', () => {
  const up = new Upstream();
  const long = 'x'.repeat(70);
  const { req, out } = query('a.test.');
  const errors: string[] = [];
  req.errorSink = (_r, plugin, err) => errors.push(`${plugin}: ${err.message}`);
  rewriteFrom(`rewrite name a.test ${long}.test`).compose(up).serve(req);
  assert.equal(up.seen.length, 0);
  const m = out.last();
  assert.equal(m.rcode, Rcode.SERVFAIL);
  assert.equal(m.question[0]!.name, 'a.test.');
  assert.deepEqual(errors, [`rewrite: invalid name after rewrite: ${long}.test.`]);
});

test('TCP keeps its 65535 limit and the client ID across the rewrite', () => {
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
  const { req, out } = query('a.test.', { proto: Proto.TCP });
  req.udpSize = 65535;
  let during = 0;
  const spy: Handler = {
    serve: (r) => {
      during = r.udpSize;
      up.serve(r);
    },
  };
  rewriteFrom('rewrite edns0 local set 0xffee abcd').compose(spy).serve(req);
  assert.equal(during, 65535);
  assert.equal(req.udpSize, 65535);
  assert.equal(out.last().id, 0x1234);
});

test('cache before rewrite (CoreDNS order): keyed and stored under the client name, hits never reach rewrite', () => {
  const [block] = parseCorefile('.:53 {\n cache 300\n}\n', 'Corefile', {});
  let now = 1_000_000;
  const cache = new CachePlugin(parseCacheDirective(block!.directives[0]!, ['.']), { clock: () => now });
  const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.CNAME, 'y.new.test.', 120), rr('y.new.test.', QType.A, '192.0.2.9', 120)] }));
  const rewrite = rewriteFrom('rewrite name suffix .old.test .new.test answer auto');
  let reached = 0;
  const counting: Handler = {
    serve: (r) => {
      reached++;
      rewrite.compose(up).serve(r);
    },
  };
  const chain = cache.compose(counting);

  const first = query('x.old.test.');
  chain.serve(first.req);
  assert.equal(reached, 1);
  assert.equal(up.seen[0]!.name, 'x.new.test.');
  assert.equal(cache.entries('success'), 1);
  assert.equal(cache.drops, 0, 'the response matched the client question the cache saw');

  now += 10_000;
  const second = query('X.OLD.test.');
  chain.serve(second.req);
  assert.equal(reached, 1, 'the hit is answered by cache ahead of rewrite');
  assert.equal(up.seen.length, 1);
  const m = second.out.last();
  assert.equal(m.question[0]!.name, 'X.OLD.test.');
  // Names compressed against the question follow the client's spelling on a hit (cache patches the qname bytes).
  assert.deepEqual(
    m.answer.map((r) => [r.name.toLowerCase(), String(r.data).toLowerCase(), r.ttl]),
    [
      ['x.old.test.', 'y.old.test.', 110],
      ['y.old.test.', '192.0.2.9', 110],
    ],
  );
  assert.equal(cache.hitsSuccess, 1);

  // The new name itself is a different cache key: asking x.new.test goes through rewrite (no rule matches).
  const third = query('x.new.test.');
  chain.serve(third.req);
  assert.equal(reached, 2);
  assert.equal(third.out.last().answer[0]!.name, 'x.new.test.');
});

test('match corner cases: FROM/TO get a trailing dot, so prefixes and suffixes are whole-label at the ends', () => {
  const cases: Array<[string, string, string, string]> = [
    // [rule, question, name upstream sees, answer name the client sees]
    ['rewrite name prefix foo bar', 'foo.example.com.', 'bar.example.com.', 'bar.example.com.'],
    ['rewrite name prefix foo bar', 'coredns.foo.', 'coredns.foo.', 'coredns.foo.'],
    ['rewrite name prefix foo bar', 'foobar.example.com.', 'foobar.example.com.', 'foobar.example.com.'],
    ['rewrite name suffix com org', 'foo.example.com.', 'foo.example.org.', 'foo.example.org.'],
    ['rewrite name suffix com org', 'com.coredns.', 'com.coredns.', 'com.coredns.'],
    ['rewrite name substring service svc', 'com.coredns.', 'com.coredns.', 'com.coredns.'],
    [
      'rewrite name suffix .ingress.coredns.rocks nginx.coredns.rocks answer auto',
      'coredns.ingress.coredns.rocks.',
      'corednsnginx.coredns.rocks.',
      'coredns.ingress.coredns.rocks.',
    ],
    ['rewrite name prefix foo bar answer auto', 'foo.example.com.', 'bar.example.com.', 'foo.example.com.'],
    ['rewrite name regex (.*).coredns.rocks {1}.coredns.maps answer auto', 'foo.coredns.rocks.', 'foo.coredns.maps.', 'foo.coredns.rocks.'],
    [
      'rewrite name regex (.*).coredns.rocks {1}.coredns.maps answer name (.*).coredns.maps {1}.coredns.works',
      'foo.coredns.rocks.',
      'foo.coredns.maps.',
      'foo.coredns.works.',
    ],
    ['rewrite name regex (.*).coredns.rocks {1}.coredns.maps', 'foo.coredns.rocks.', 'foo.coredns.maps.', 'foo.coredns.maps.'],
    ['rewrite name exact coredns.org. service.consul.', 'coredns.rocks.', 'coredns.rocks.', 'coredns.rocks.'],
  ];
  for (const [line, question, sent, answered] of cases) {
    const up = new Upstream((q) => ({ answer: [rr(q.question[0]!.name, QType.A, '192.0.2.1')] }));
    const { req, out } = query(question);
    rewriteFrom(line).compose(up).serve(req);
    assert.equal(up.seen[0]!.name, sent, line);
    const m = out.last();
    assert.equal(m.question[0]!.name, question, line);
    assert.equal(m.answer[0]!.name, answered, line);
  }
});
