/**
 * The zone matcher (server routing, cache, forward, template, log): the longest zone that is a
 * suffix of the qname on label boundaries wins (CoreDNS's rule), compared on the wire bytes
 * without regard to ASCII case; the text form gives the same answers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dnsPacket from 'dns-packet';
import { ZoneMatcher, nameInZone, qnameInZone, zoneWire } from './zone-match.ts';
import { Request, type ResponseWriter } from '../server/request.ts';
import { ParseResult, parseQuery } from './query.ts';

const discard: ResponseWriter = { writeMsg() {} };

function request(name: string): Request {
  const msg = dnsPacket.encode({ type: 'query', id: 1, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type: 'A', class: 'IN', name }] });
  const req = new Request(msg, msg.length, discard);
  assert.equal(parseQuery(req), ParseResult.OK, `query for ${name} parses`);
  return req;
}

function route(table: ZoneMatcher<string>, name: string): string | null {
  const req = request(name);
  return table.match(req.msg, req.qnameEnd)?.target ?? null;
}

function tableOf(...zones: string[]): ZoneMatcher<string> {
  const t = new ZoneMatcher<string>();
  for (const z of zones) t.add(z, z);
  return t;
}

test('zones: the longest matching suffix wins, whatever the order zones were added in', () => {
  for (const zones of [
    ['.', 'cluster.local.', 'svc.cluster.local.', 'in-addr.arpa.'],
    ['svc.cluster.local.', 'in-addr.arpa.', 'cluster.local.', '.'],
  ]) {
    const t = tableOf(...zones);
    assert.equal(route(t, 'kube-dns.kube-system.svc.cluster.local'), 'svc.cluster.local.');
    assert.equal(route(t, 'svc.cluster.local'), 'svc.cluster.local.');
    assert.equal(route(t, 'pod.cluster.local'), 'cluster.local.');
    assert.equal(route(t, 'cluster.local'), 'cluster.local.');
    assert.equal(route(t, '10.0.96.10.in-addr.arpa'), 'in-addr.arpa.');
    assert.equal(route(t, 'example.org'), '.');
    assert.equal(route(t, 'local'), '.');
  }
});

test('zones: matching is case-insensitive on both sides', () => {
  const t = tableOf('cluster.local.');
  assert.equal(route(t, 'WwW.ClUsTeR.lOcAl'), 'cluster.local.');
  assert.equal(route(t, 'CLUSTER.LOCAL'), 'cluster.local.');
  const upper = new ZoneMatcher<string>();
  upper.add('Cluster.LOCAL.', 'z');
  assert.equal(route(upper, 'www.cluster.local'), 'z');
});

test('zones: only whole labels match', () => {
  const t = tableOf('cluster.local.');
  assert.equal(route(t, 'mycluster.local'), null);
  assert.equal(route(t, 'www.xcluster.local'), null);
  assert.equal(route(t, 'local'), null);
  assert.equal(route(t, 'cluster.local.evil'), null);
});

test('zones: the root zone matches every name, including the root itself', () => {
  const t = tableOf('.');
  assert.equal(route(t, '.'), '.');
  assert.equal(route(t, 'com'), '.');
  assert.equal(route(t, 'a.b.c.d.e.f.example.com'), '.');
});

test('zones: no match gives null (the server answers REFUSED)', () => {
  const t = tableOf('cluster.local.', 'in-addr.arpa.');
  assert.equal(route(t, 'example.com'), null);
  assert.equal(route(t, '.'), null);
  assert.equal(route(t, 'ip6.arpa'), null);
  const req = request('example.com');
  assert.equal(new ZoneMatcher<string>().match(req.msg, req.qnameEnd), null);
});

test('zones: a label holding a dot (\\.) is one label, not two', () => {
  const t = tableOf('local.');
  // One label "cluster.local" under the root: its last label is not "local".
  const msg = Buffer.from([0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 13, ...Buffer.from('cluster.local'), 0, 0, 1, 0, 1]);
  const req = new Request(msg, msg.length, discard);
  assert.equal(parseQuery(req), ParseResult.OK);
  assert.equal(t.match(req.msg, req.qnameEnd), null);
});

test('zones: same label count, different zones', () => {
  const t = tableOf('a.test.', 'bb.test.', 'test.');
  assert.equal(route(t, 'x.a.test'), 'a.test.');
  assert.equal(route(t, 'x.bb.test'), 'bb.test.');
  assert.equal(route(t, 'x.c.test'), 'test.');
  assert.deepEqual(
    t.all().map((r) => r.zone),
    ['bb.test.', 'a.test.', 'test.'],
  );
  assert.equal(t.size, 3);
});

test('zoneMatches (text): label-wise, case-insensitive suffix match', () => {
  const cases: Array<[qname: string, zone: string, expected: boolean]> = [
    ['kubernetes.default.svc.cluster.local.', 'cluster.local.', true],
    ['Kubernetes.Default.SVC.Cluster.Local', 'cluster.local', true],
    ['cluster.local.', 'cluster.local.', true],
    ['cluster.local', 'Cluster.Local.', true],
    ['mycluster.local.', 'cluster.local.', false],
    ['local.', 'cluster.local.', false],
    ['example.org.', '.', true],
    ['.', '.', true],
    ['.', 'org.', false],
    ['10.0.96.10.in-addr.arpa.', 'in-addr.arpa.', true],
    ['a.ip6.arpa.', 'in-addr.arpa.', false],
    ['foo\\.cluster.local.', 'cluster.local.', false],
    ['foo\\\\.cluster.local.', 'cluster.local.', true],
  ];
  for (const [qname, zone, expected] of cases) assert.equal(nameInZone(qname, zone), expected, `${qname} in ${zone}`);
});

test('zone match: wire and text forms agree, and a zone longer than the name never matches', () => {
  const names = ['a.b.example.com', 'example.com', 'com', '.', 'xexample.com', 'a.example.co', 'EXAMPLE.COM'];
  const zones = ['.', 'com.', 'example.com.', 'b.example.com.', 'a.b.example.com.', 'Example.Com.', 'ample.com.'];
  for (const n of names) {
    const req = request(n);
    for (const z of zones) assert.equal(qnameInZone(req.msg, req.qnameEnd, zoneWire(z)), nameInZone(n, z), `${n} in ${z}`);
  }
  assert.equal(nameInZone('example.com.', 'a.b.c.d.example.com.'), false);
});

test('zone match: contains() and matchesAll', () => {
  const m = ZoneMatcher.of(['cluster.local.', 'in-addr.arpa.']);
  assert.equal(m.matchesAll, false);
  assert.equal(m.contains(request('a.cluster.local').msg, request('a.cluster.local').qnameEnd), true);
  const other = request('example.org');
  assert.equal(m.contains(other.msg, other.qnameEnd), false);
  m.add('.', '.');
  assert.equal(m.matchesAll, true);
  assert.equal(m.contains(other.msg, other.qnameEnd), true);
});
