/**
 * Graceful shutdown as a load balancer and kubelet see it, with real HTTP and DNS traffic:
 * after SIGTERM, /ready answers 503 "Shutting down", while /health keeps answering 200 OK and
 * DNS keeps being served for the whole lameduck period; a query in flight when SIGTERM arrives
 * is still answered; the process then exits 0.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeAddress, freePorts, httpGet, query, reply, sleep, startAgent, startUpstream, waitUntil } from './helpers.ts';

test('SIGTERM: ready 503, health 200 and DNS served during lameduck, in-flight query answered, exit 0', { timeout: 90_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, upPort, healthPort, readyPort, mPort] = await freePorts(host, 5);
  const up = await startUpstream(host, upPort!, async (q) => {
    const name = q.questions![0]!.name;
    // The in-flight query: answered 1 s after it arrives (forward's read timeout is 2 s).
    if (name === 'slow.example') await sleep(1000);
    return reply(q, { answers: [{ type: 'A', name, ttl: 0, class: 'IN', data: '192.0.2.7' }] });
  });
  t.after(() => up.close());

  const agent = startAgent(`example:${dnsPort} {
    bind ${host}
    forward . ${host}:${upPort}
    health ${host}:${healthPort} {
        lameduck 4s
    }
    ready ${host}:${readyPort}
    prometheus ${host}:${mPort}
}
`);
  t.after(() => agent.stop());
  await agent.waitForOutput(/serving/);
  await waitUntil(async () => (await httpGet(host, readyPort!, '/ready')).status === 200, 'ready 200');
  assert.deepEqual(await httpGet(host, healthPort!, '/health'), { status: 200, body: 'OK' });

  // A client query loop running through the shutdown, each result tagged with the phase it started in.
  let running = true;
  let phase = 'serving';
  const results: { phase: string; rcode: string }[] = [];
  const loop = (async () => {
    for (let i = 0; running; i++) {
      const p = phase;
      try {
        results.push({ phase: p, rcode: (await query(host, dnsPort!, `q${i}.example`, 'A', { timeoutMs: 2000 })).rcode });
      } catch {
        results.push({ phase: p, rcode: 'TIMEOUT' });
      }
      await sleep(10);
    }
  })();

  const slow = query(host, dnsPort!, 'slow.example', 'A', { timeoutMs: 10_000 });
  await waitUntil(() => up.queries.includes('slow.example A'), 'the slow query at the upstream');
  agent.proc.kill('SIGTERM');
  phase = 'shutdown';

  await waitUntil(async () => (await httpGet(host, readyPort!, '/ready')).status === 503, 'ready 503 after SIGTERM', 5000);
  phase = 'lameduck';
  assert.deepEqual(await httpGet(host, readyPort!, '/ready'), { status: 503, body: 'Shutting down' });
  assert.deepEqual(await httpGet(host, healthPort!, '/health'), { status: 200, body: 'OK' }, 'health stays 200 during lameduck');
  assert.equal((await query(host, dnsPort!, 'during.example', 'A')).rcode, 'NOERROR', 'DNS served during lameduck');
  assert.equal((await slow).rcode, 'NOERROR', 'the query in flight at SIGTERM is answered');
  assert.deepEqual(await httpGet(host, healthPort!, '/health'), { status: 200, body: 'OK' });
  phase = 'closing';

  assert.equal(await agent.exited, 0);
  running = false;
  await loop;
  assert.match(agent.output(), /\[INFO\] plugin\/health: Going into lameduck mode for 4s/);
  const failed = results.filter((r) => r.phase !== 'closing' && r.rcode !== 'NOERROR');
  assert.deepEqual(failed, [], 'no query failed before the listeners closed');
  assert.ok(results.filter((r) => r.phase === 'lameduck').length > 0, 'queries ran during lameduck');
  await assert.rejects(httpGet(host, healthPort!, '/health'), 'health closed after exit');
});
