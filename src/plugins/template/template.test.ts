/**
 * The template handler on parsed Requests with a toy next handler: which queries it answers
 * and how (rcode, AA, sections, EDNS, EDE), fallthrough, SERVFAIL as a plugin error, template
 * and record failures with their metrics, the data fields, CNAME following through the chain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import type { Answer, RecordType } from 'dns-packet';
import { Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { CaptureWriter } from '../../../test/lib/cache-testing.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import type { Handler } from '../../plugin.ts';
import { SnapshotBuilder } from '../../metrics/snapshot.ts';
import { decodeMessage } from '../../wire/codec.ts';
import { parseEde } from '../../wire/ede.ts';
import { makeQuery, makeResponse, a, ToyNext } from '../../../test/lib/cache-testing.ts';
import { parseTemplateDirective } from './setup.ts';
import { TemplatePlugin } from './template.ts';
import { collectTemplateGlobal, templateMetrics } from './metrics.ts';

const ANY = 'ANY' as unknown as RecordType;

function plugin(body: string, zones = ['.']): TemplatePlugin {
  const blocks = parseCorefile(`. {\n${body}\n}\n`, 'Corefile', {});
  return new TemplatePlugin(blocks[0]!.directives.filter((d) => d.name === 'template').map((d) => parseTemplateDirective(d, zones)));
}

function serve(p: TemplatePlugin, name: string, type: RecordType = 'A', opts: Parameters<typeof makeQuery>[2] = {}, next?: ToyNext) {
  const toy = next ?? new ToyNext((req) => makeResponse(req, { answers: [a(req.name(), 30, '192.0.2.99')] }));
  const { req, out } = makeQuery(name, type, opts);
  req.server = 'dns://127.0.0.1:53';
  p.compose(toy).serve(req);
  assert.equal(out.sent.length, 1, 'exactly one reply');
  return { req, toy, msg: decodeMessage(out.sent[0]!) };
}

function metric(name: string): { labels: Record<string, string>; value: number }[] {
  const b = new SnapshotBuilder();
  collectTemplateGlobal(b);
  return b.build().families.find((f) => f.name === name)?.samples ?? [];
}

test('a name outside the zones, or a class/type no template takes, goes to the next plugin', () => {
  const p = plugin('template IN AAAA example {\n rcode NOERROR\n}');
  for (const [name, type] of [
    ['a.other.', 'AAAA'],
    ['a.example.', 'A'],
    ['a.example.', 'MX'],
  ] as const) {
    const { toy, msg, req } = serve(p, name, type);
    assert.equal(toy.calls.length, 1, `${name} ${type}`);
    assert.equal(req.respondedBy, 'toy');
    assert.equal(msg.flags & 0x0400, 0);
  }
});

test('AAAA blocked: NOERROR, no records, AA set, RA clear, RD and EDNS mirrored, upstream not asked', () => {
  const p = plugin('template ANY AAAA cluster.local {\n rcode NOERROR\n}', ['cluster.local.']);
  const { toy, msg, req } = serve(p, 'kubernetes.default.svc.Cluster.Local.', 'AAAA', { edns: true, dnssecOk: true, udpSize: 4000 });
  assert.equal(toy.calls.length, 0);
  assert.equal(req.respondedBy, 'template');
  assert.equal(req.errorReply, false);
  assert.equal(msg.rcode, 0);
  assert.equal(msg.flags & 0x8000, 0x8000, 'QR');
  assert.equal(msg.flags & 0x0400, 0x0400, 'AA');
  assert.equal(msg.flags & 0x0080, 0, 'RA');
  assert.equal(msg.flags & 0x0100, 0x0100, 'RD');
  assert.deepEqual([msg.answer.length, msg.authority.length, msg.additional.length], [0, 0, 0]);
  assert.equal(msg.question[0]!.name, 'kubernetes.default.svc.Cluster.Local.');
  assert.deepEqual(msg.edns && { udpSize: msg.edns.udpSize, dnssecOk: msg.edns.dnssecOk, options: msg.edns.options.length }, {
    udpSize: 4000,
    dnssecOk: true,
    options: 0,
  });
  // A in the same zone is not this template's.
  assert.equal(serve(p, 'kubernetes.default.svc.cluster.local.', 'A').toy.calls.length, 1);
  // A query of type ANY matches every template type.
  assert.equal(serve(p, 'x.cluster.local.', ANY).toy.calls.length, 0);
});

test('answer, additional and authority from Go templates, with regex groups', () => {
  const p = plugin(`template IN MX example {
 match ^ip-10-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$
 answer "{{ .Name }} 60 IN MX 10 {{ .Name }}"
 additional "{{ .Name }} 60 IN A 10.{{ .Group.b }}.{{ .Group.c }}.{{ .Group.d }}"
 authority  "example. 60 IN NS ns0.example."
 authority  "example. 60 IN NS ns1.example."
}`);
  const { msg } = serve(p, 'IP-10-1-2-3.example.', 'MX');
  assert.deepEqual(msg.answer, [{ name: 'ip-10-1-2-3.example.', type: 15, class: 1, ttl: 60, data: { preference: 10, exchange: 'ip-10-1-2-3.example.' } }]);
  assert.deepEqual(
    msg.additional.map((r) => [r.name, r.data]),
    [['ip-10-1-2-3.example.', '10.1.2.3']],
  );
  assert.deepEqual(
    msg.authority.map((r) => r.data),
    ['ns0.example.', 'ns1.example.'],
  );
});

test('the data fields: Zone, Name, Class, Type, Match, Group, Question, Message, Remote, Meta', () => {
  const p = plugin(`template ANY ANY example {
 match "^(?P<first>[^.]+)[.](x)?"
 answer "{{ .Zone }} 0 IN TXT \\"{{ .Name }}\\" \\"{{ .Class }}/{{ .Type }}\\" \\"{{ index .Match 1 }}|{{ index .Match 2 }}|{{ .Group.first }}|{{ .Group.zz }}\\" \\"{{ .Question.Name }} {{ .Question.Qtype }} {{ (index .Message.Question 0).Qclass }} {{ .Message.Id }} {{ .Message.RecursionDesired }}\\" \\"{{ .Remote }}\\" \\"{{ .Meta \\"k/v\\" }}{{ .Meta \\"none\\" }}\\" \\"{{ .Regex }}\\""
}`);
  const { req, out } = makeQuery('Host.Example.', 'TXT', { id: 777 });
  req.metadata = new Map([['k/v', () => 'meta-value']]);
  p.compose(new ToyNext(() => Buffer.alloc(0))).serve(req);
  const msg = decodeMessage(out.sent[0]!);
  assert.deepEqual(msg.answer[0]!.data, [
    'host.example.',
    'IN/TXT',
    'host||host|<no value>',
    'Host.Example. 16 1 777 true',
    '127.0.0.1',
    'meta-value',
    '^(?P<first>[^.]+)[.](x)?',
  ]);
  assert.equal(msg.answer[0]!.name, 'example.');
  assert.equal(msg.answer[0]!.ttl, 0);
  // A query class/type of ANY is reported as the template's.
  const q = plugin('template IN A example {\n answer "{{ .Name }} IN TXT {{ .Class }}-{{ .Type }}"\n}');
  const r = serve(q, 'x.example.', ANY);
  assert.deepEqual(r.msg.answer[0]!.data, ['IN-A']);
  assert.equal(r.msg.answer[0]!.ttl, 3600, 'no TTL in the record: 3600');
});

test('no regex match: SERVFAIL as a plugin error without fallthrough; next template or plugin with it', () => {
  const strict = plugin('template IN A example {\n match ^a[.]\n answer "{{ .Name }} 60 IN A 192.0.2.1"\n}');
  const s = serve(strict, 'b.example.');
  assert.equal(s.msg.rcode, 2);
  assert.equal(s.req.errorReply, true, 'a made-up error: no cache stores it');
  assert.equal(s.toy.calls.length, 0);

  const chained = plugin(`template IN A example {
 match ^a[.]
 answer "{{ .Name }} 60 IN A 192.0.2.1"
 fallthrough
}
template IN A example {
 match ^b[.]
 answer "{{ .Name }} 60 IN A 192.0.2.2"
 fallthrough
}`);
  assert.equal(serve(chained, 'b.example.').msg.answer[0]!.data, '192.0.2.2');
  const c = serve(chained, 'c.example.');
  assert.equal(c.toy.calls.length, 1);
  assert.equal(c.msg.answer[0]!.data, '192.0.2.99');

  // fallthrough limited to zones: only names in them go on.
  const limited = plugin('template IN A example in-addr.arpa {\n match ^a[.]\n fallthrough in-addr.arpa\n}');
  assert.equal(serve(limited, 'b.example.').msg.rcode, 2);
  assert.equal(serve(limited, '4.3.2.1.in-addr.arpa.').toy.calls.length, 1);
});

test('rcode: NXDOMAIN with an SOA answers; SERVFAIL is a plugin error; ederror adds EDE with DO as CoreDNS', () => {
  const nx = plugin(`template ANY ANY invalid {
 rcode NXDOMAIN
 authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"
 ederror 21 "Blocked according to RFC2606"
}`);
  const r = serve(nx, 'foo.invalid.', 'A');
  assert.equal(r.msg.rcode, 3);
  assert.equal(r.req.errorReply, false);
  assert.equal(r.msg.authority[0]!.type, 6);
  assert.equal(r.msg.edns?.dnssecOk, true);
  assert.equal(r.msg.edns?.udpSize, 4096, 'no EDNS in the query: 4096 as SetEdns0(4096, true)');
  assert.deepEqual(parseEde(r.msg.edns!.options[0]!.data), { infoCode: 21, extraText: 'Blocked according to RFC2606' });
  const withEdns = serve(nx, 'foo.invalid.', 'A', { edns: true, udpSize: 1400 });
  assert.equal(withEdns.msg.edns?.udpSize, 1400);

  const sf = plugin('template ANY ANY example {\n rcode SERVFAIL\n answer "x.example. 60 IN A 192.0.2.1"\n}');
  const f = serve(sf, 'x.example.');
  assert.equal(f.msg.rcode, 2);
  assert.equal(f.msg.answer.length, 0);
  assert.equal(f.req.errorReply, true);
});

test('template and record failures: SERVFAIL reported to errors, counted with CoreDNS labels', () => {
  const p = plugin(`template IN A fail.example {
 answer "{{ index .Match 3 }}"
}
template IN A rr.example {
 additional "{{ .Name }} 60 IN A not-an-address"
}`);
  const errors: string[] = [];
  const before = templateMetrics.templateFailures.series.size;
  const { req, out } = makeQuery('x.fail.example.', 'A');
  req.server = 'dns://127.0.0.1:53';
  req.errorSink = (_r, plugin, err) => errors.push(`${plugin}: ${err.message}`);
  p.compose(new ToyNext(() => Buffer.alloc(0))).serve(req);
  assert.equal(decodeMessage(out.sent[0]!).rcode, 2);
  assert.match(errors[0]!, /^template: template: answer:1:3: executing "answer" at <index \.Match 3>: error calling index: index out of range: 3$/);
  assert.ok(templateMetrics.templateFailures.series.size > before);
  const tf = metric('coredns_template_template_failures_total').find((s) => s.labels.zone === 'fail.example.');
  assert.deepEqual(tf, {
    labels: { class: 'IN', section: 'answer', server: 'dns://127.0.0.1:53', template: '{{index .Match 3}}', type: 'A', view: '', zone: 'fail.example.' },
    value: 1,
  });

  const r = serve(p, 'y.rr.example.');
  assert.equal(r.msg.rcode, 2);
  const rf = metric('coredns_template_rr_failures_total').find((s) => s.labels.zone === 'rr.example.');
  assert.deepEqual(rf, {
    labels: {
      class: 'IN',
      section: 'additional',
      server: 'dns://127.0.0.1:53',
      template: '{{.Name}} 60 IN A not-an-address',
      type: 'A',
      view: '',
      zone: 'rr.example.',
    },
    value: 1,
  });
  const m = metric('coredns_template_matches_total').find((s) => s.labels.zone === 'rr.example.');
  assert.deepEqual(m, { labels: { class: 'IN', server: 'dns://127.0.0.1:53', type: 'A', view: '', zone: 'rr.example.' }, value: 1 });
});

test('a CNAME answer to an A query is followed through the block chain and its records appended', () => {
  const p = plugin('template IN ANY foogle.com {\n match "^foogle\\.com\\.$"\n answer "foogle.com 60 IN CNAME google.com"\n}');
  const toy = new ToyNext((req) => makeResponse(req, { answers: [a(req.name(), 300, '192.0.2.80')] }));
  const chain: Handler = p.compose(toy);
  const { req, out } = makeQuery('foogle.com.', 'A');
  req.target = { chain };
  chain.serve(req);
  const msg = decodeMessage(out.sent[0]!);
  assert.deepEqual(
    msg.answer.map((r) => [r.name, r.type, r.data]),
    [
      ['foogle.com.', 5, 'google.com.'],
      ['google.com.', 1, '192.0.2.80'],
    ],
  );
  assert.equal(toy.calls.length, 1);
  assert.equal(toy.calls[0]!.name(), 'google.com.');
  // Not for other types (CoreDNS follows only for A and AAAA).
  const mx = makeQuery('foogle.com.', 'MX');
  mx.req.target = { chain };
  chain.serve(mx.req);
  assert.equal(decodeMessage(mx.out.sent[0]!).answer.length, 1);
  assert.equal(toy.calls.length, 1);
});

test("the query's NSID/COOKIE/padding options are echoed as CoreDNS's server does; others are not; ederror replaces them", () => {
  const cookie = Buffer.from('0102030405060708', 'hex');
  const buf = dnsPacket.encode({
    type: 'query',
    id: 9,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'AAAA', name: 'x.cluster.local', class: 'IN' }],
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        options: [
          { code: 10, data: cookie },
          { code: 8, data: Buffer.from('00011800c0000200', 'hex') },
          { code: 3, data: Buffer.alloc(0) },
        ],
      } as unknown as Answer,
    ],
  });
  const run = (p: TemplatePlugin) => {
    const out = new CaptureWriter();
    const req = new Request(buf, buf.length, out);
    assert.equal(parseQuery(req), ParseResult.OK);
    p.compose(new ToyNext(() => Buffer.alloc(0))).serve(req);
    return decodeMessage(out.sent[0]!);
  };
  const plain = run(plugin('template ANY AAAA cluster.local {\n rcode NOERROR\n}', ['cluster.local.']));
  assert.deepEqual(
    plain.edns!.options.map((o) => [o.code, Buffer.from(o.data).toString('hex')]),
    [
      [10, '0102030405060708'],
      [3, ''],
    ],
  );
  const ede = run(plugin('template ANY AAAA cluster.local {\n ederror 15\n}', ['cluster.local.']));
  assert.deepEqual(
    ede.edns!.options.map((o) => o.code),
    [15],
  );
});

test('unexported state is not a field: {{ .md }} fails as Go does', () => {
  const p = plugin('template IN A example {\n answer "{{ .Name }} 60 IN TXT {{ .md }}"\n}');
  const r = serve(p, 'x.example.');
  assert.equal(r.msg.rcode, 2);
  const q = plugin('template IN A example {\n answer "{{ .Name }} 60 IN TXT \\"{{ .Question }}\\""\n}');
  assert.deepEqual(serve(q, 'x.example.').msg.answer[0]!.data, [';x.example.\tIN\t A']);
});
