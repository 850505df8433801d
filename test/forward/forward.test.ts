/**
 * forward against real upstreams started by the test: NSD (UDP+TCP) and Unbound (TCP only).
 * Everything listens on 127.0.0.x; servers are killed and their temp dirs removed in after().
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Proto } from '../../src/server/request.ts';
import { ForwardErrorCode, type ForwardError } from '../../src/plugins/forward/errors.ts';
import { clientQuery, decode, makeForward, waitFor } from '../lib/forward-testing.ts';
import { startNsd, startUnboundTcpOnly, type RunningServer } from './servers.ts';

let nsd: RunningServer;
let unbound: RunningServer;

before(async () => {
  [nsd, unbound] = await Promise.all([startNsd(), startUnboundTcpOnly()]);
});

after(async () => {
  await Promise.all([nsd?.stop(), unbound?.stop()]);
});

test('NSD over UDP: answer, NXDOMAIN with SOA, AA passed through, client ID kept', async (t) => {
  const { plugin } = makeForward(`forward . ${nsd.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('www.example.test', 'A', { id: 0x4242 });
  plugin.serve(q.req);
  const r = decode(await q.out.response());
  assert.equal(r.id, 0x4242);
  assert.equal(r.rcode, 'NOERROR');
  assert.deepEqual(
    r.answers.map((a) => a.data),
    ['192.0.2.80'],
  );
  assert.equal((r as unknown as { flag_aa: boolean }).flag_aa, true);
  const nx = clientQuery('nope.example.test', 'A');
  plugin.serve(nx.req);
  const rn = decode(await nx.out.response()) as unknown as { rcode: string; authorities: { type: string }[] };
  assert.equal(rn.rcode, 'NXDOMAIN');
  assert.equal(rn.authorities[0]!.type, 'SOA');
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.to, nsd.addr);
  assert.equal(st.byRcode[0]!.responses, 1);
  assert.equal(st.byRcode[3]!.responses, 1);
  assert.equal(st.connCacheMissesTcp, 0);
});

test('NSD: a truncated UDP answer (TC=1) is fetched again over TCP', async (t) => {
  const { plugin } = makeForward(`forward . ${nsd.addr}`);
  t.after(() => plugin.stop());
  const q = clientQuery('big.example.test', 'TXT'); // no EDNS: NSD truncates at 512 bytes
  plugin.serve(q.req);
  const buf = await q.out.response();
  const r = decode(buf);
  assert.equal(r.flag_tc, false);
  assert.ok(buf.length > 1500);
  assert.equal(r.answers.length, 1);
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.truncatedRetries, 1);
  assert.equal(st.connCacheMissesUdp, 1);
  assert.equal(st.connCacheMissesTcp, 1);
});

test('NSD over TCP (force_tcp): 100 concurrent queries pipelined on a few connections, all answered right', async (t) => {
  const { plugin } = makeForward(`forward . ${nsd.addr} {\nforce_tcp\n}`);
  t.after(() => plugin.stop());
  const qs = Array.from({ length: 100 }, (_, i) => clientQuery(`h${i}.example.test`, 'A', { id: i }));
  for (const q of qs) plugin.serve(q.req);
  const rs = await Promise.all(qs.map((q) => q.out.response()));
  rs.forEach((b, i) => {
    const r = decode(b);
    assert.equal(r.id, i);
    assert.equal(r.questions[0]!.name, `h${i}.example.test`);
    assert.deepEqual(
      r.answers.map((a) => a.data),
      [`198.51.100.${i + 1}`],
    );
  });
  const st = plugin.stats.upstreams[0]!;
  assert.equal(st.connCacheMissesUdp + st.connCacheHitsUdp, 0);
  assert.ok(st.tcpConnsDialled >= 1 && st.tcpConnsDialled <= 16, `dialled ${st.tcpConnsDialled}`);
  assert.equal(st.connCacheHitsTcp + st.connCacheMissesTcp, 100);
});

test('Unbound listening on TCP only: force_tcp answers a UDP client; without it the UDP try is refused', async (t) => {
  const forced = makeForward(`forward . ${unbound.addr} {\nforce_tcp\n}`).plugin;
  const plain = makeForward(`forward . ${unbound.addr}`, { readTimeoutMs: 1000, deadlineMs: 2000 }).plugin;
  t.after(() => {
    forced.stop();
    plain.stop();
  });
  const q = clientQuery('www.example.test', 'A', { proto: Proto.UDP });
  forced.serve(q.req);
  const r = decode(await q.out.response());
  assert.equal(r.rcode, 'NOERROR');
  assert.deepEqual(
    r.answers.map((a) => a.data),
    ['192.0.2.81'],
  );

  const viaUdp = clientQuery('www.example.test', 'A', { proto: Proto.UDP });
  plain.serve(viaUdp.req);
  assert.equal(decode(await viaUdp.out.response()).rcode, 'SERVFAIL');
  const err = viaUdp.errors[0] as ForwardError;
  assert.equal(err.code, ForwardErrorCode.NETWORK);
  assert.match(err.message, /: read: connection refused$/);

  // The client's own protocol is used by default: a TCP client is answered.
  const viaTcp = clientQuery('www.example.test', 'A', { proto: Proto.TCP });
  plain.serve(viaTcp.req);
  assert.equal(decode(await viaTcp.out.response()).rcode, 'NOERROR');
});

test('NSD stopped: queries fail fast and the upstream is marked down; restarted: it comes back up', async (t) => {
  const own = await startNsd();
  t.after(() => own.stop());
  const { plugin } = makeForward(`forward . ${own.addr} {\nmax_fails 1\nhealth_check 50ms\n}`, {
    readTimeoutMs: 300,
    deadlineMs: 600,
    healthCheckTimeoutMs: 200,
  });
  t.after(() => plugin.stop());
  const u = plugin.upstreams[0]!;
  const ok = clientQuery('www.example.test');
  plugin.serve(ok.req);
  assert.equal(decode(await ok.out.response()).rcode, 'NOERROR');

  await own.stop();
  const fail = clientQuery('www.example.test');
  plugin.serve(fail.req);
  assert.equal(decode(await fail.out.response()).rcode, 'SERVFAIL');
  await waitFor(() => u.down(1), 5000, 'upstream down');

  const again = await startNsd({ host: own.host, port: own.port });
  t.after(() => again.stop());
  await waitFor(() => !u.down(1), 5000, 'upstream up again');
  const back = clientQuery('www.example.test');
  plugin.serve(back.req);
  assert.equal(decode(await back.out.response()).rcode, 'NOERROR');
  assert.ok(plugin.stats.upstreams[0]!.healthcheckFailures >= 2);
});
