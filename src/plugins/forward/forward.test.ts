import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import dgram from 'node:dgram';
import { Proto } from '../../server/request.ts';
import { ForwardErrorCode, type ForwardError } from './errors.ts';
import { ToyUpstream, answerFor, clientQuery, decode, makeForward, waitFor, type Received } from '../../../test/lib/forward-testing.ts';

async function upstream(t: { after(fn: () => void): void }, opts?: { udp?: boolean; tcp?: boolean; host?: string }): Promise<ToyUpstream> {
  const u = await ToyUpstream.start(opts);
  t.after(() => u.close());
  return u;
}

/** A port on 127.0.0.1 where nothing listens (UDP and TCP). */
async function closedPort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('UDP: reply passes through with the client ID restored; the upstream saw a fresh ID and the same question', async (t) => {
  const up = await upstream(t);
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('example.org', 'A', { id: 0xbeef });
  plugin.serve(q.req);
  const resp = decode(await q.out.response());
  assert.equal(resp.id, 0xbeef);
  assert.equal(resp.rcode, 'NOERROR');
  assert.deepEqual(
    resp.answers!.map((a) => a.data),
    ['192.0.2.1'],
  );
  assert.equal(up.received.length, 1);
  assert.equal(up.received[0]!.proto, 'udp');
  assert.equal(up.received[0]!.name, 'example.org');
  assert.equal(q.req.respondedBy, 'forward');
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.to, up.addr);
  assert.equal(st.requests, 1);
  assert.equal(st.byRcode[0]!.responses, 1);
  assert.equal(st.byRcode[0]!.duration.count, 1);
  assert.equal(st.connCacheMissesUdp, 1);
  assert.equal(plugin.stats.inflight, 0);
});

test('upstream IDs are random, never the client ID pattern, distinct among in-flight queries', async (t) => {
  const up = await upstream(t);
  const held: Received[] = [];
  up.handler = (q) => held.push(q);
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const qs = Array.from({ length: 200 }, (_, i) => clientQuery(`n${i}.example.org`, 'A', { id: 7 }));
  for (const q of qs) plugin.serve(q.req);
  await waitFor(() => held.length === 200, 5000, '200 queries at the upstream');
  // In-flight IDs are unique per socket.
  const perPort = new Map<number, Set<number>>();
  for (const q of held) {
    const s = perPort.get(q.port) ?? new Set<number>();
    assert.ok(!s.has(q.id), `duplicate in-flight id ${q.id} on port ${q.port}`);
    s.add(q.id);
    perPort.set(q.port, s);
  }
  const ids = held.map((q) => q.id);
  assert.ok(new Set(ids).size >= 190, 'IDs look random');
  let sequential = 0;
  for (let i = 1; i < ids.length; i++) if (ids[i] === ((ids[i - 1]! + 1) & 0xffff)) sequential++;
  assert.ok(sequential < 5, 'IDs are not sequential');
  for (const q of held) q.reply(answerFor(q.msg, { ip: '192.0.2.7' }));
  const resps = await Promise.all(qs.map((q) => q.out.response()));
  for (let i = 0; i < qs.length; i++) {
    const r = decode(resps[i]!);
    assert.equal(r.id, 7);
    assert.equal(r.questions![0]!.name, `n${i}.example.org`);
  }
});

test('wrong ID, garbage and wrong question are ignored and counted; the query keeps waiting', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => {
    q.reply(Buffer.from([1, 2, 3])); // shorter than a header
    q.reply(answerFor(q.msg, { ip: '203.0.113.66', id: q.id ^ 0x5a5a })); // wrong ID
    q.reply(answerFor(q.msg, { ip: '203.0.113.66', name: 'evil.example' })); // right ID, wrong question
    const noQr = Buffer.from(q.msg);
    q.reply(noQr); // our own query echoed: QR not set
    setTimeout(() => q.reply(answerFor(q.msg, { ip: '192.0.2.9' })), 30);
  };
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('example.org');
  plugin.serve(q.req);
  const r = decode(await q.out.response());
  assert.deepEqual(
    r.answers!.map((a) => a.data),
    ['192.0.2.9'],
  );
  assert.equal(q.out.sent.length, 1);
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.ignoredGarbage, 2);
  assert.equal(st.ignoredUnknownId, 1);
  assert.equal(st.ignoredWrongQuestion, 1);
});

test('question match is case-insensitive (0x20 mixed case)', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => q.reply(answerFor(q.msg, { ip: '192.0.2.1', name: q.name.toUpperCase() }));
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('Example.Org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'NOERROR');
});

test('a UDP reply with TC=1 is retried over TCP to the same upstream', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => {
    if (q.proto === 'udp') q.reply(answerFor(q.msg, { truncated: true }));
    else q.reply(answerFor(q.msg, { ip: '192.0.2.44', txt: ['x'.repeat(200), 'y'.repeat(200), 'z'.repeat(200)] }));
  };
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('big.example.org', 'TXT');
  plugin.serve(q.req);
  const r = decode(await q.out.response());
  assert.equal(r.flag_tc, false);
  assert.equal(r.answers!.length, 2);
  assert.deepEqual(
    up.received.map((x) => x.proto),
    ['udp', 'tcp'],
  );
  assert.equal(plugin.stats.upstreams[0]!.truncatedRetries, 1);
});

test('TC=1 and the upstream has no TCP: the truncated reply is passed on', async (t) => {
  const up = await upstream(t, { tcp: false });
  up.handler = (q) => q.reply(answerFor(q.msg, { truncated: true }));
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('tc.example.org', 'TXT', { id: 99 });
  plugin.serve(q.req);
  const r = decode(await q.out.response());
  assert.equal(r.flag_tc, true);
  assert.equal(r.id, 99);
  assert.equal(r.rcode, 'NOERROR');
  assert.equal(plugin.stats.upstreams[0]!.truncatedRetries, 1);
  assert.equal(plugin.stats.upstreams[0]!.networkErrors, 1);
});

test('protocol: client protocol by default, force_tcp → TCP, prefer_udp → UDP', async (t) => {
  const up = await upstream(t);
  const plain = makeForward(`forward . ${up.addr}`).plugin;
  const forced = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`).plugin;
  const prefer = makeForward(`forward . ${up.addr} {\nprefer_udp\n}`).plugin;
  t.after(() => [plain, forced, prefer].forEach((p) => p.stop()));
  const cases: [typeof plain, number, string][] = [
    [plain, Proto.UDP, 'udp'],
    [plain, Proto.TCP, 'tcp'],
    [forced, Proto.UDP, 'tcp'],
    [prefer, Proto.TCP, 'udp'],
  ];
  for (const [p, proto, want] of cases) {
    const before = up.received.length;
    const q = clientQuery('proto.example.org', 'A', { proto: proto as 0 | 1 });
    p.serve(q.req);
    await q.out.response();
    assert.equal(up.received.length, before + 1);
    assert.equal(up.received[before]!.proto, want);
  }
});

test('TCP: pipelined on one connection, answers out of order, split frames and several frames per chunk', async (t) => {
  const up = await upstream(t);
  const held: Received[] = [];
  up.handler = (q) => {
    held.push(q);
    if (held.length < 5) return;
    // Answer in reverse order: first two byte-by-byte (split inside the length prefix), the rest in one chunk.
    const frames = held.reverse().map((h) => {
      const a = answerFor(h.msg, { ip: '192.0.2.' + h.name.slice(1, 2) });
      const len = Buffer.alloc(2);
      len.writeUInt16BE(a.length);
      return Buffer.concat([len, a]);
    });
    const c = q.conn!;
    const slow = Buffer.concat(frames.slice(0, 2));
    let i = 0;
    const drip = (): void => {
      if (i < slow.length) {
        c.write(slow.subarray(i, i + 1));
        i++;
        setImmediate(drip);
      } else c.write(Buffer.concat(frames.slice(2)));
    };
    drip();
  };
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`, { tcp: { pipelineDepth: 100 } });
  t.after(() => plugin.stop());
  const qs = [1, 2, 3, 4, 5].map((i) => clientQuery(`h${i}.example.org`));
  for (const q of qs) plugin.serve(q.req);
  const rs = await Promise.all(qs.map((q) => q.out.response()));
  rs.forEach((b, i) => {
    const r = decode(b);
    assert.equal(r.questions![0]!.name, `h${i + 1}.example.org`);
    assert.deepEqual(
      r.answers!.map((a) => a.data),
      [`192.0.2.${i + 1}`],
    );
  });
  assert.equal(up.tcpAccepted, 1);
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.tcpConnsDialled, 1);
  assert.equal(st.connCacheMissesTcp, 1);
  assert.equal(st.connCacheHitsTcp, 4);
  // The connection is kept for the next query.
  const again = clientQuery('h9.example.org');
  up.handler = (q) => q.reply(answerFor(q.msg, { ip: '192.0.2.9' }));
  plugin.serve(again.req);
  await again.out.response();
  assert.equal(up.tcpAccepted, 1);
});

test('TCP: a new connection only when the others have pipelineDepth in flight, up to maxConns', async (t) => {
  const up = await upstream(t);
  const held: Received[] = [];
  up.handler = (q) => held.push(q);
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`, { tcp: { pipelineDepth: 2, maxConns: 3 } });
  t.after(() => plugin.stop());
  const qs = Array.from({ length: 10 }, (_, i) => clientQuery(`c${i}.example.org`));
  for (const q of qs) plugin.serve(q.req);
  await waitFor(() => held.length === 10, 5000, 'queries at upstream');
  assert.equal(up.tcpAccepted, 3);
  for (const h of held) h.reply(answerFor(h.msg, { ip: '192.0.2.3' }));
  await Promise.all(qs.map((q) => q.out.response()));
});

test('TCP: a reset mid-pipeline fails every query on that connection over to the next upstream at once', async (t) => {
  const bad = await upstream(t);
  const good = await upstream(t);
  let seen = 0;
  bad.handler = (q) => {
    if (++seen === 3) q.conn!.resetAndDestroy();
  };
  const { plugin } = makeForward(`forward . ${bad.addr} ${good.addr} {\nforce_tcp\npolicy sequential\n}`, {
    readTimeoutMs: 8000,
    deadlineMs: 20000,
    tcp: { pipelineDepth: 100 },
  });
  t.after(() => plugin.stop());
  const start = performance.now();
  const qs = [1, 2, 3].map((i) => clientQuery(`r${i}.example.org`));
  for (const q of qs) plugin.serve(q.req);
  const rs = await Promise.all(qs.map((q) => q.out.response(4000)));
  const elapsed = performance.now() - start;
  for (const b of rs) assert.equal(decode(b).rcode, 'NOERROR');
  assert.equal(good.received.length, 3);
  assert.ok(elapsed < 4000, `failover took ${elapsed} ms, the read timeout is 8000 ms`);
  assert.equal(plugin.stats.upstreams[0]!.networkErrors, 3);
});

test('TCP: a frame of length 0 closes the connection and the query fails over', async (t) => {
  const bad = await upstream(t);
  const good = await upstream(t);
  bad.handler = (q) => q.conn!.write(Buffer.from([0, 0, 1, 2, 3]));
  const { plugin } = makeForward(`forward . ${bad.addr} ${good.addr} {\nforce_tcp\npolicy sequential\n}`, { readTimeoutMs: 8000, deadlineMs: 20000 });
  t.after(() => plugin.stop());
  const q = clientQuery('frame.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response(4000)).rcode, 'NOERROR');
  assert.equal(good.received.length, 1);
  await waitFor(() => bad.tcpConns.size === 0, 2000, 'bad connection closed');
});

test('TCP: graceful close by the upstream after answering → retried on a new connection to the same upstream', async (t) => {
  const up = await upstream(t);
  let n = 0;
  up.handler = (q) => {
    n++;
    if (n === 1) q.reply(answerFor(q.msg, { ip: '192.0.2.1' }));
    else if (n === 2)
      q.conn!.end(); // like miekg/dns after max queries
    else q.reply(answerFor(q.msg, { ip: '192.0.2.2' }));
  };
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`, { readTimeoutMs: 8000, deadlineMs: 20000 });
  t.after(() => plugin.stop());
  const q1 = clientQuery('a.example.org');
  plugin.serve(q1.req);
  await q1.out.response();
  const q2 = clientQuery('b.example.org');
  plugin.serve(q2.req);
  const r = decode(await q2.out.response(4000));
  assert.deepEqual(
    r.answers!.map((a) => a.data),
    ['192.0.2.2'],
  );
  assert.equal(up.tcpAccepted, 2);
  assert.equal(plugin.stats.upstreams[0]!.networkErrors, 0);
});

test('max_concurrent: beyond N in flight the query is REFUSED and counted; stop() SERVFAILs the rest', async (t) => {
  const up = await upstream(t);
  up.handler = () => {};
  const { plugin } = makeForward(`forward . ${up.addr} {\nmax_concurrent 2\n}`);
  t.after(() => plugin.stop());
  const qs = [1, 2, 3].map((i) => clientQuery(`m${i}.example.org`));
  for (const q of qs) plugin.serve(q.req);
  const third = decode(await qs[2]!.out.response(100));
  assert.equal(third.rcode, 'REFUSED');
  assert.equal(plugin.stats.maxConcurrentRejects, 1);
  assert.equal((qs[2]!.errors[0] as ForwardError).code, ForwardErrorCode.LIMIT_EXCEEDED);
  assert.equal(qs[2]!.errors[0]!.message, 'concurrent queries exceeded maximum 2');
  assert.equal(qs[0]!.out.sent.length, 0);
  plugin.stop();
  for (const q of qs.slice(0, 2)) {
    assert.equal(decode(await q.out.response(100)).rcode, 'SERVFAIL');
    assert.equal((q.errors[0] as ForwardError).code, ForwardErrorCode.STOPPED);
  }
  assert.equal(plugin.stats.upstreams[0]!.udpSocketsOpen, 0);
  // After stop, new queries are answered SERVFAIL at once.
  const late = clientQuery('late.example.org');
  plugin.serve(late.req);
  assert.equal(decode(await late.out.response(100)).rcode, 'SERVFAIL');
});

test('deadline: a silent upstream → SERVFAIL with an i/o timeout error, after a bounded number of tries', async (t) => {
  const up = await upstream(t);
  up.handler = () => {};
  const { plugin } = makeForward(`forward . ${up.addr}`, { readTimeoutMs: 100, deadlineMs: 250 });
  t.after(() => plugin.stop());
  const q = clientQuery('slow.example.org');
  plugin.serve(q.req);
  const r = decode(await q.out.response(3000));
  assert.equal(r.rcode, 'SERVFAIL');
  assert.equal(r.id, 0x1234);
  assert.equal(r.questions![0]!.name, 'slow.example.org');
  const err = q.errors[0] as ForwardError;
  assert.equal(err.code, ForwardErrorCode.TIMEOUT);
  assert.match(err.message, new RegExp(`^read udp 127\\.0\\.0\\.1:\\d+->${up.addr.replace(/\./g, '\\.')}: i/o timeout$`));
  // Three tries (the health probes, `. NS`, are not counted).
  assert.equal(up.received.filter((r) => r.name === 'slow.example.org').length, 3);
  assert.equal(plugin.stats.upstreams[0]!.timeouts, 3);
});

test('connection refused (closed UDP port) fails fast with a Go-like error', async (t) => {
  const port = await closedPort();
  const { plugin } = makeForward(`forward . 127.0.0.1:${port}`, { readTimeoutMs: 8000, deadlineMs: 20000 });
  t.after(() => plugin.stop());
  const q = clientQuery('refused.example.org');
  plugin.serve(q.req);
  const r = decode(await q.out.response(4000));
  assert.equal(r.rcode, 'SERVFAIL');
  const err = q.errors[0] as ForwardError;
  assert.equal(err.code, ForwardErrorCode.NETWORK);
  assert.match(err.message, /^read udp 127\.0\.0\.1:\d+->127\.0\.0\.1:\d+: read: connection refused$/);
});

test('TCP connect refused: dial error text', async (t) => {
  const port = await closedPort();
  const { plugin } = makeForward(`forward . 127.0.0.1:${port} {\nforce_tcp\n}`, { readTimeoutMs: 8000, deadlineMs: 20000 });
  t.after(() => plugin.stop());
  const q = clientQuery('refused.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response(4000)).rcode, 'SERVFAIL');
  assert.equal(q.errors[0]!.message, `dial tcp 127.0.0.1:${port}: connect: connection refused`);
});

test('a failing upstream is skipped for the next one (sequential)', async (t) => {
  const port = await closedPort();
  const good = await upstream(t);
  const { plugin } = makeForward(`forward . 127.0.0.1:${port} ${good.addr} {\npolicy sequential\n}`);
  t.after(() => plugin.stop());
  const q = clientQuery('skip.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'NOERROR');
  assert.equal(good.received.length, 1);
});

test('health check: down after more than max_fails failed probes, back up after one success', async (t) => {
  const up = await upstream(t);
  let alive = false;
  let probes = 0;
  up.handler = (q) => {
    if (q.name === '' || q.name === '.') probes++;
    if (alive) q.reply(answerFor(q.msg, { ip: '192.0.2.1' }));
  };
  const { plugin } = makeForward(`forward . ${up.addr} {\nmax_fails 1\nhealth_check 20ms\n}`, {
    readTimeoutMs: 50,
    deadlineMs: 120,
    healthCheckTimeoutMs: 30,
  });
  t.after(() => plugin.stop());
  const u = plugin.upstreams[0]!;
  const q = clientQuery('hc.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'SERVFAIL');
  await waitFor(() => u.down(1), 5000, 'upstream marked down');
  assert.ok(u.fails >= 2);
  assert.ok(plugin.stats.upstreams[0]!.healthcheckFailures >= 2);
  // The probe is `. IN NS` with RD set.
  const probe = up.received.find((r) => r.name === '.' || r.name === '')!;
  const pd = decode(probe.msg);
  assert.equal(pd.questions![0]!.type, 'NS');
  assert.equal(pd.flag_rd, true);
  // All upstreams down: one is still tried, and healthcheck broken is counted.
  alive = true;
  assert.ok(u.down(1));
  const broken = plugin.stats.healthcheckBroken;
  const q2 = clientQuery('hc2.example.org');
  plugin.serve(q2.req);
  assert.equal(plugin.stats.healthcheckBroken, broken + 1);
  assert.equal(decode(await q2.out.response()).rcode, 'NOERROR');
  await waitFor(() => !u.down(1) && u.fails === 0, 5000, 'upstream back up');
  assert.ok(probes >= 3);
});

test('health_check no_rec and domain: the probe asks NS for the domain with RD clear; force_tcp probes over TCP', async (t) => {
  const up = await upstream(t);
  let alive = false;
  up.handler = (q) => {
    if (alive) q.reply(answerFor(q.msg, { ip: '192.0.2.1' }));
  };
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\nhealth_check 20ms no_rec domain Example.NET\n}`, {
    readTimeoutMs: 50,
    deadlineMs: 60,
    healthCheckTimeoutMs: 30,
  });
  t.after(() => plugin.stop());
  const q = clientQuery('p.example.org');
  plugin.serve(q.req);
  await q.out.response();
  await waitFor(() => up.received.some((r) => r.name === 'example.net'), 3000, 'probe');
  const probe = up.received.find((r) => r.name === 'example.net')!;
  assert.equal(probe.proto, 'tcp');
  const pd = decode(probe.msg);
  assert.equal(pd.questions![0]!.type, 'NS');
  assert.equal(pd.flag_rd, false);
  alive = true;
  await waitFor(() => !plugin.upstreams[0]!.healthChecking, 3000, 'probe loop ends on success');
  assert.equal(plugin.upstreams[0]!.fails, 0);
});

test('all upstreams down: healthcheck broken is counted and a random one is tried anyway', async (t) => {
  const up = await upstream(t);
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  plugin.upstreams[0]!.fails = 10; // down as far as the loop can tell
  const q = clientQuery('broken.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'NOERROR');
  assert.equal(plugin.stats.healthcheckBroken, 1);
});

test('FROM and except: outside FROM or under an except name → next plugin; FROM itself is forwarded', async (t) => {
  const up = await upstream(t);
  const { plugin, next } = makeForward(`forward example.org ${up.addr} {\nexcept internal.example.org\n}`);
  t.after(() => plugin.stop());
  const cases: [string, boolean][] = [
    ['www.example.org', true],
    ['EXAMPLE.org', true],
    ['other.com', false],
    ['org', false],
    ['a.internal.example.org', false],
    ['internal.example.org', false],
    ['notexample.org', false],
  ];
  for (const [name, forwarded] of cases) {
    const q = clientQuery(name);
    plugin.serve(q.req);
    await q.out.response();
    assert.equal(q.req.respondedBy, forwarded ? 'forward' : 'next', name);
  }
  assert.equal(next.seen.length, 5);
});

test('policies: sequential always in order; round_robin rotates; random spreads over upstreams', async (t) => {
  const ups = await Promise.all([0, 1, 2].map(() => upstream(t)));
  const addrs = ups.map((u) => u.addr).join(' ');
  for (const policy of ['sequential', 'round_robin', 'random']) {
    const { plugin } = makeForward(`forward . ${addrs} {\npolicy ${policy}\n}`);
    t.after(() => plugin.stop());
    const before = ups.map((u) => u.received.length);
    const order: number[] = [];
    for (let i = 0; i < 30; i++) {
      const q = clientQuery(`p${i}.example.org`);
      plugin.serve(q.req);
      await q.out.response();
      order.push(ups.findIndex((u, k) => u.received.length > before[k]! + order.filter((o) => o === k).length));
    }
    if (policy === 'sequential') assert.deepEqual(new Set(order), new Set([0]));
    if (policy === 'round_robin') assert.deepEqual(order.slice(0, 6), [1, 2, 0, 1, 2, 0]);
    if (policy === 'random') assert.equal(new Set(order).size, 3);
  }
});

test('UDP sockets are retired after maxQueriesPerSocket: queries leave from several source ports', async (t) => {
  const up = await upstream(t);
  const { plugin } = makeForward(`forward . ${up.addr}`, { udp: { socketsPerUpstream: 2, maxQueriesPerSocket: 5 } });
  t.after(() => plugin.stop());
  for (let i = 0; i < 40; i++) {
    const q = clientQuery(`s${i}.example.org`);
    plugin.serve(q.req);
    await q.out.response();
  }
  const ports = new Set(up.received.map((r) => r.port));
  assert.ok(ports.size >= 8, `only ${ports.size} source ports`);
  const st = plugin.stats.upstreams[0]!;
  assert.ok(st.udpSocketsOpened >= 8);
  assert.ok(st.udpSocketsOpen <= 2);
  assert.equal(st.connCacheHitsUdp + st.connCacheMissesUdp, 40);
});

test('idle TCP connections are closed after expire', async (t) => {
  const up = await upstream(t);
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\nexpire 50ms\n}`, { sweepIntervalMs: 20 });
  t.after(() => plugin.stop());
  const q = clientQuery('idle.example.org');
  plugin.serve(q.req);
  await q.out.response();
  assert.equal(plugin.upstreams[0]!.tcp.connCount, 1);
  await waitFor(() => plugin.upstreams[0]!.tcp.connCount === 0 && up.tcpConns.size === 0, 3000, 'idle close');
});

test('a TCP connection that receives nothing for a whole read timeout is dropped', async (t) => {
  const up = await upstream(t);
  let answer = false;
  up.handler = (q) => {
    if (answer) q.reply(answerFor(q.msg, { ip: '192.0.2.1' }));
  };
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`, { readTimeoutMs: 60, deadlineMs: 100 });
  t.after(() => plugin.stop());
  const q = clientQuery('dead.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'SERVFAIL');
  answer = true;
  const q2 = clientQuery('alive.example.org');
  plugin.serve(q2.req);
  assert.equal(decode(await q2.out.response()).rcode, 'NOERROR');
  assert.ok(up.tcpAccepted >= 2);
});

test('the TCP test server helper is a real TCP listener', async (t) => {
  const up = await upstream(t, { udp: false });
  await new Promise<void>((res, rej) => {
    const c = net.connect(up.port, up.host, () => {
      c.destroy();
      res();
    });
    c.on('error', rej);
  });
});

test('IPv6 upstream [::1]:port over UDP and TCP', async (t) => {
  const up = await upstream(t, { host: '::1' });
  const { plugin } = makeForward(`forward . ${up.addr}`);
  t.after(() => plugin.stop());
  assert.equal(plugin.stats.upstreams[0]!.to, `[::1]:${up.port}`);
  for (const proto of [Proto.UDP, Proto.TCP]) {
    const q = clientQuery('v6.example.org', 'A', { proto });
    plugin.serve(q.req);
    assert.equal(decode(await q.out.response()).rcode, 'NOERROR');
  }
  assert.deepEqual(
    up.received.map((r) => r.proto),
    ['udp', 'tcp'],
  );
});

test('timeout error over TCP names the connection', async (t) => {
  const up = await upstream(t);
  up.handler = () => {};
  const { plugin } = makeForward(`forward . ${up.addr} {\nforce_tcp\n}`, { readTimeoutMs: 50, deadlineMs: 40 });
  t.after(() => plugin.stop());
  const q = clientQuery('t.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response()).rcode, 'SERVFAIL');
  assert.match(q.errors[0]!.message, new RegExp(`^read tcp 127\\.0\\.0\\.1:\\d+->127\\.0\\.0\\.1:${up.port}: i/o timeout$`));
});
