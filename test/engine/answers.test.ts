/**
 * The agent end to end against a real authoritative upstream (Knot DNS) and a real client
 * (dig): record types, negative answers, TTL caps of the seed's cache settings, letter case,
 * CNAMEs leaving the cluster zone, UDP size limits and truncation, TCP, EDNS, REFUSED and
 * FORMERR. The agent runs as `node src/main.ts -conf <Corefile>` on a free 127.0.0.x port.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { dig, freeEndpoint, rawQuery, startAgent, startKnot, tcpExchange, udpExchange, type AgentProcess, type Authority, type DigResult } from './harness.ts';
import { BIG_TXT, CLUSTER_LOCAL, EXAMPLE_NET, REVERSE_10 } from './zones.ts';

let knot: Authority;
let agent: AgentProcess;
let host: string;
let port: number;

before(async () => {
  knot = await startKnot({ 'cluster.local': CLUSTER_LOCAL, '10.in-addr.arpa': REVERSE_10, 'example.net': EXAMPLE_NET });
  ({ host, port } = await freeEndpoint());
  // cluster.local as in the seed article (cache success 9984 30 / denial 9984 5, errors).
  agent = await startAgent(`cluster.local:${port} {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    bind ${host}
    forward . ${knot.addr}
}
in-addr.arpa:${port} example.net:${port} {
    errors
    cache 30
    bind ${host}
    forward . ${knot.addr}
}
`);
});

after(async () => {
  const code = await agent?.stop();
  await knot?.stop();
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

function q(...args: string[]): Promise<DigResult> {
  return dig(host, port, args);
}

function data(r: DigResult, type: string): string[] {
  return r.answer.filter((a) => a.type === type).map((a) => a.data);
}

test('the agent announces every zone on its address and port', () => {
  assert.deepEqual(
    agent.listening.map((l) => `${l.zone}:${l.port} on ${l.address}`),
    [`cluster.local.:${port} on ${host}`, `in-addr.arpa.:${port} on ${host}`, `example.net.:${port} on ${host}`],
  );
});

test('A, AAAA: answers from the upstream, question echoed, QR set, ID kept', async () => {
  const a = await q('web.default.svc.cluster.local', 'A');
  assert.equal(a.status, 'NOERROR');
  assert.deepEqual(data(a, 'A'), ['10.244.1.5']);
  assert.match(a.question[0]!, /^web\.default\.svc\.cluster\.local\.\s+IN\s+A$/);
  assert.ok(a.flags.includes('qr') && a.flags.includes('rd'));
  const aaaa = await q('web.default.svc.cluster.local', 'AAAA');
  assert.equal(aaaa.status, 'NOERROR');
  assert.deepEqual(data(aaaa, 'AAAA'), ['fd00:10:244:1::5']);
});

test('SRV with its targets in the additional section', async () => {
  const r = await q('_http._tcp.web.default.svc.cluster.local', 'SRV');
  assert.equal(r.status, 'NOERROR');
  assert.deepEqual(data(r, 'SRV'), ['0 100 80 web.default.svc.cluster.local.']);
  assert.deepEqual(r.additional.map((x) => `${x.name} ${x.type} ${x.data}`).sort(), [
    'web.default.svc.cluster.local. A 10.244.1.5',
    'web.default.svc.cluster.local. AAAA fd00:10:244:1::5',
  ]);
});

test('PTR through the in-addr.arpa block', async () => {
  const r = await q('-x', '10.96.0.10');
  assert.equal(r.status, 'NOERROR');
  assert.deepEqual(data(r, 'PTR'), ['kube-dns.kube-system.svc.cluster.local.']);
  const w = await q('-x', '10.244.1.5');
  assert.deepEqual(data(w, 'PTR'), ['web.default.svc.cluster.local.']);
});

test('NXDOMAIN and NODATA carry the SOA in authority, its TTL capped by denial 5', async () => {
  for (let i = 0; i < 2; i++) {
    // First a miss (TTLs rewritten to the capped value), then a hit.
    const nx = await q('nope.default.svc.cluster.local', 'A');
    assert.equal(nx.status, 'NXDOMAIN');
    assert.equal(nx.answer.length, 0);
    assert.equal(nx.authority.length, 1);
    assert.equal(nx.authority[0]!.type, 'SOA');
    assert.equal(nx.authority[0]!.name, 'cluster.local.');
    assert.match(nx.authority[0]!.data, /^ns\.dns\.cluster\.local\. hostmaster\.cluster\.local\. 1 7200 1800 86400 60$/);
    assert.ok(nx.authority[0]!.ttl >= 0 && nx.authority[0]!.ttl <= 5, `SOA TTL ${nx.authority[0]!.ttl}`);
    if (i === 0) assert.equal(nx.authority[0]!.ttl, 5);
  }
  const nodata = await q('www.cluster.local', 'AAAA');
  assert.equal(nodata.status, 'NOERROR');
  assert.equal(nodata.answer.length, 0);
  assert.equal(nodata.authority[0]!.type, 'SOA');
  assert.equal(nodata.authority[0]!.ttl, 5);
});

test('success TTLs are capped at 30 (upstream says 300), on the miss and on hits', async () => {
  const miss = await q('kube-dns.kube-system.svc.cluster.local', 'A');
  assert.deepEqual(data(miss, 'A'), ['10.96.0.10']);
  assert.equal(miss.answer[0]!.ttl, 30);
  const hit = await q('kube-dns.kube-system.svc.cluster.local', 'A');
  assert.deepEqual(data(hit, 'A'), ['10.96.0.10']);
  assert.ok(hit.answer[0]!.ttl > 0 && hit.answer[0]!.ttl <= 30, `hit TTL ${hit.answer[0]!.ttl}`);
  // The other block's `cache 30` caps the reverse zone the same way.
  const ptr = await q('-x', '10.96.0.10');
  assert.ok(ptr.answer[0]!.ttl <= 30);
});

test("the client's letter case comes back in the question, on a miss and on a hit", async () => {
  const mixed = 'WwW.ClUsTeR.lOcAl.';
  const miss = await q(mixed, 'A');
  assert.equal(miss.question[0]!.split(/\s+/)[0], mixed);
  assert.deepEqual(data(miss, 'A'), ['10.96.0.80']);
  assert.equal(miss.answer[0]!.name.toLowerCase(), 'www.cluster.local.');
  const lower = await q('www.cluster.local.', 'A');
  assert.equal(lower.question[0]!.split(/\s+/)[0], 'www.cluster.local.');
  const upper = await q('WWW.CLUSTER.LOCAL.', 'A');
  assert.equal(upper.question[0]!.split(/\s+/)[0], 'WWW.CLUSTER.LOCAL.');
  assert.deepEqual(data(upper, 'A'), ['10.96.0.80']);
  assert.equal(upper.answer[0]!.name.toLowerCase(), 'www.cluster.local.');
});

test('CNAME chains: inside the zone the upstream completes it; out of the zone the target resolves through its own block', async () => {
  const inZone = await q('alias.default.svc.cluster.local', 'A');
  assert.deepEqual(
    inZone.answer.map((a) => `${a.name} ${a.type} ${a.data}`),
    ['alias.default.svc.cluster.local. CNAME web.default.svc.cluster.local.', 'web.default.svc.cluster.local. A 10.244.1.5'],
  );
  const ext = await q('ext.default.svc.cluster.local', 'A');
  assert.equal(ext.status, 'NOERROR');
  assert.deepEqual(
    ext.answer.map((a) => `${a.name} ${a.type} ${a.data}`),
    ['ext.default.svc.cluster.local. CNAME db.example.net.'],
  );
  assert.ok(ext.answer[0]!.ttl <= 30);
  // A stub resolver follows the CNAME: the target is in example.net, served by the other block.
  const target = await q(ext.answer[0]!.data, 'A');
  assert.equal(target.status, 'NOERROR');
  assert.deepEqual(data(target, 'A'), ['192.0.2.20']);
});

test('a query over TCP', async () => {
  const r = await q('+tcp', 'web.default.svc.cluster.local', 'AAAA');
  assert.equal(r.proto, 'TCP');
  assert.equal(r.status, 'NOERROR');
  assert.deepEqual(data(r, 'AAAA'), ['fd00:10:244:1::5']);
});

test('an answer over 512 bytes: TC=1 over UDP without EDNS, complete over TCP, complete over UDP with bufsize 4096', async () => {
  const name = 'big.default.svc.cluster.local';
  const tc = await q('+noedns', '+ignore', name, 'TXT');
  assert.equal(tc.proto, 'UDP');
  assert.ok(tc.flags.includes('tc'), `flags ${tc.flags.join(' ')}`);
  assert.equal(tc.status, 'NOERROR');
  assert.ok(tc.size <= 512, `truncated reply is ${tc.size} bytes`);
  assert.equal(tc.edns, null, 'no OPT in a reply to a query without one');
  // dig retries over TCP by itself on TC=1.
  const retried = await q('+noedns', name, 'TXT');
  assert.equal(retried.proto, 'TCP');
  assert.ok(!retried.flags.includes('tc'));
  assert.deepEqual(data(retried, 'TXT'), [BIG_TXT.map((s) => `"${s}"`).join(' ')]);
  const udp = await q('+bufsize=4096', name, 'TXT');
  assert.equal(udp.proto, 'UDP');
  assert.ok(!udp.flags.includes('tc'));
  assert.ok(udp.size > 512, `${udp.size} bytes over UDP`);
  assert.deepEqual(data(udp, 'TXT'), [BIG_TXT.map((s) => `"${s}"`).join(' ')]);
  // EDNS with a small payload size is held to it.
  const small = await q('+bufsize=512', '+ignore', name, 'TXT');
  assert.ok(small.flags.includes('tc'));
  assert.ok(small.size <= 512);
  assert.ok(small.edns !== null, 'the truncated reply to an EDNS query keeps its OPT');
});

test('EDNS: an OPT (version 0) answers an OPT, none answers none, DO is echoed; on misses and hits', async () => {
  for (const name of ['web.default.svc.cluster.local', 'nope2.default.svc.cluster.local']) {
    for (let i = 0; i < 2; i++) {
      const plain = await q('+noedns', name, 'A');
      assert.equal(plain.edns, null, `${name} #${i}: no OPT without EDNS`);
      for (const size of [512, 1232, 4096]) {
        const r = await q(`+bufsize=${size}`, name, 'A');
        assert.ok(r.edns, `${name} bufsize ${size}: OPT present`);
        assert.equal(r.edns.version, 0);
        assert.ok(!r.edns.flags.includes('do'));
        assert.ok(r.edns.udp >= 512, `advertised ${r.edns.udp}`);
      }
      const dnssec = await q('+dnssec', name, 'A');
      assert.ok(dnssec.edns?.flags.includes('do'), `${name}: DO echoed`);
      const tcp = await q('+tcp', '+bufsize=1232', name, 'A');
      assert.ok(tcp.edns, 'OPT over TCP too');
    }
  }
});

test('REFUSED for a name no block serves (and the server keeps serving)', async () => {
  for (const name of ['example.com', 'cluster.local.example.com', 'local', 'ip6.arpa']) {
    const r = await q(name, 'A');
    assert.equal(r.status, 'REFUSED', name);
    assert.equal(r.answer.length, 0);
  }
  const tcp = await q('+tcp', 'example.org', 'A');
  assert.equal(tcp.status, 'REFUSED');
  assert.deepEqual(data(await q('www.cluster.local', 'A'), 'A'), ['10.96.0.80']);
});

test('FORMERR for malformed queries over UDP and TCP; responses and runts are dropped', async () => {
  const good = rawQuery('www.cluster.local', 1, 0x0101);
  const rcodeOf = (b: Buffer | null) => (b === null ? null : b[3]! & 0x0f);
  // QDCOUNT 2 with one question.
  const twoQuestions = Buffer.from(good);
  twoQuestions.writeUInt16BE(0x2222, 0);
  twoQuestions.writeUInt16BE(2, 4);
  // The qname runs past the end of the message.
  const cut = Buffer.from(good.subarray(0, 20));
  cut.writeUInt16BE(0x3333, 0);
  // A label longer than 63 bytes.
  const longLabel = Buffer.concat([good.subarray(0, 12), Buffer.from([64]), Buffer.alloc(64, 0x61), Buffer.from([0, 0, 1, 0, 1])]);
  longLabel.writeUInt16BE(0x4444, 0);
  // An answer record in a query.
  const withAnswer = Buffer.from(good);
  withAnswer.writeUInt16BE(0x5555, 0);
  withAnswer.writeUInt16BE(1, 6);
  for (const [what, msg] of [
    ['two questions', twoQuestions],
    ['cut qname', cut],
    ['long label', longLabel],
    ['answer in query', withAnswer],
  ] as const) {
    const udp = await udpExchange(host, port, msg);
    assert.ok(udp, `${what}: answered over UDP`);
    assert.equal(rcodeOf(udp), 1, `${what}: FORMERR`);
    assert.equal(udp.readUInt16BE(0), msg.readUInt16BE(0), `${what}: ID echoed`);
    assert.ok((udp[2]! & 0x80) !== 0, `${what}: QR set`);
    const tcp = await tcpExchange(host, port, msg);
    assert.equal(rcodeOf(tcp), 1, `${what}: FORMERR over TCP`);
  }
  // A response (QR=1) and a runt are not answered: the next reply on the socket is the good query's.
  const response = Buffer.from(good);
  response[2] = response[2]! | 0x80;
  const s = dgram.createSocket('udp4');
  const first = new Promise<Buffer>((resolve) => s.once('message', (m) => resolve(m)));
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  s.send(response, port, host);
  s.send(Buffer.from([1, 2, 3, 4, 5]), port, host);
  s.send(good, port, host);
  const reply = await Promise.race([first, new Promise<null>((r) => setTimeout(() => r(null), 6000))]);
  s.close();
  assert.ok(reply, 'the good query was answered');
  assert.equal(reply.readUInt16BE(0), 0x0101);
  const decoded = dnsPacket.decode(reply);
  assert.equal((decoded.answers?.[0] as { data?: unknown } | undefined)?.data, '10.96.0.80');
});
