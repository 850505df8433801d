/**
 * Late replies: an upstream slower than the per-try read timeout but within the deadline.
 * The timed-out try stays registered (AttemptHolder.handOver), so its reply still answers the
 * client, exactly once; the later tries' replies are ignored; nothing stays registered after.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Proto } from '../../server/request.ts';
import { ToyUpstream, answerFor, clientQuery, decode, makeForward, waitFor } from '../../../test/lib/forward-testing.ts';

async function upstream(t: { after(fn: () => void): void }): Promise<ToyUpstream> {
  const u = await ToyUpstream.start();
  t.after(() => u.close());
  return u;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

for (const proto of ['udp', 'tcp'] as const) {
  test(`${proto}: an answer slower than the read timeout (within the deadline) reaches the client once`, async (t) => {
    const up = await upstream(t);
    // Every try is answered 300 ms after it arrives; the read timeout is 200 ms.
    up.handler = (q) => setTimeout(() => q.reply(answerFor(q.msg, { ip: '192.0.2.7' })), 300);
    const { plugin } = makeForward(`forward . ${up.addr}${proto === 'tcp' ? ' {\nforce_tcp\n}' : ''}`, {
      readTimeoutMs: 200,
      deadlineMs: 1000,
      // One query per socket: a socket closes only once nothing is registered on it.
      udp: { maxQueriesPerSocket: 1 },
    });
    t.after(() => plugin.stop());
    const q = clientQuery('slow.example.org', 'A', { proto: proto === 'tcp' ? Proto.TCP : Proto.UDP });
    plugin.serve(q.req);
    const r = decode(await q.out.response(2000));
    assert.equal(r.rcode, 'NOERROR');
    assert.deepEqual(
      r.answers.map((a) => a.data),
      ['192.0.2.7'],
    );
    assert.equal(r.id, 0x1234);
    // Let the second try's reply come in too: it is ignored, the client got one answer.
    await sleep(500);
    assert.equal(q.out.sent.length, 1);
    const st = plugin.stats.upstreams[0]!;
    assert.ok(up.received.filter((x) => x.name === 'slow.example.org').length >= 2, 'the query was retried');
    assert.equal(st.timeouts, 1);
    // Nothing is left registered: the UDP sockets drain, suspect TCP connections close.
    if (proto === 'udp') {
      await waitFor(() => st.udpSocketsOpen === 0, 2000, 'retired UDP sockets to close');
    } else {
      await waitFor(() => plugin.upstreams[0]!.tcp.suspects.size === 0, 2000, 'suspect connections to close');
    }
  });
}

test('udp: late replies past the deadline do not revive a failed query; stop() releases the late tries', async (t) => {
  const up = await upstream(t);
  up.handler = (q) => setTimeout(() => q.reply(answerFor(q.msg, { ip: '192.0.2.8' })), 400);
  const { plugin } = makeForward(`forward . ${up.addr}`, { readTimeoutMs: 100, deadlineMs: 250 });
  t.after(() => plugin.stop());
  const q = clientQuery('late.example.org');
  plugin.serve(q.req);
  assert.equal(decode(await q.out.response(2000)).rcode, 'SERVFAIL');
  await sleep(600);
  assert.equal(q.out.sent.length, 1);
  const st = plugin.stats.upstreams[0]!;
  assert.ok(st.ignoredUnknownId >= 1, 'the replies after the end were ignored as unknown IDs');

  // A query whose late try is still registered at stop() is answered SERVFAIL, once.
  up.handler = () => {};
  const q2 = clientQuery('stopped.example.org');
  plugin.serve(q2.req);
  await sleep(150);
  plugin.stop();
  assert.equal(decode(await q2.out.response(500)).rcode, 'SERVFAIL');
  assert.equal(q2.out.sent.length, 1);
  assert.equal(st.udpSocketsOpen, 0);
});
