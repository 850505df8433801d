/**
 * The reload plugin under a continuous query load, on the real agent: a zone added to the
 * Corefile starts answering, a changed cache TTL is loaded, a Corefile that does not parse is
 * only warned about, and one that parses but does not load is rejected and counted in
 * coredns_reload_failed_total, while the old configuration keeps serving. No client query
 * fails at any point.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { freeAddress, freePorts, query, reply, scrape, sleep, startAgent, startUpstream, waitUntil } from './helpers.ts';
import { sampleValue } from '../lib/metrics-testing.ts';
import { configDigestAsync } from '../../src/plugins/reload/digest.ts';

test('reload: add a zone, change a TTL, reject broken configs, with no failed query', { timeout: 120_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, upPort, mPort] = await freePorts(host, 3);
  const up = await startUpstream(host, upPort!, (q) => {
    const name = q.questions![0]!.name;
    return reply(q, { answers: [{ type: 'A', name, ttl: 300, class: 'IN', data: '192.0.2.9' }] });
  });
  t.after(() => up.close());

  const block = (zone: string, cache: string) => `${zone}:${dnsPort} {
    bind ${host}
    errors
    ${cache}
    reload 2s 1s
    forward . ${host}:${upPort}
    prometheus ${host}:${mPort}
}
`;
  const v1 = block('example', 'cache 30');
  const agent = startAgent(v1);
  t.after(() => agent.stop());
  await agent.waitForOutput(/serving/);
  const runningLines = () =>
    agent
      .output()
      .split('\n')
      .filter((l) => l.startsWith('[INFO] plugin/reload: Running configuration SHA512 = '));
  assert.deepEqual(runningLines(), [`[INFO] plugin/reload: Running configuration SHA512 = ${await configDigestAsync(v1, agent.corefile, {})}`]);

  // Client load for the whole test.
  let running = true;
  let sent = 0;
  const failures: string[] = [];
  const names = ['a.example', 'b.example', 'c.example'];
  const loop = (async () => {
    while (running) {
      const n = names[sent++ % names.length]!;
      try {
        const r = await query(host, dnsPort!, n, 'A', { timeoutMs: 2000 });
        if (r.rcode !== 'NOERROR') failures.push(`${n} ${r.rcode}`);
      } catch (e) {
        failures.push(`${n} ${(e as Error).message}`);
      }
      await sleep(5);
    }
  })();
  t.after(async () => {
    running = false;
    await loop;
  });

  // 1. A new zone.
  assert.equal((await query(host, dnsPort!, 'x.added', 'A')).rcode, 'REFUSED');
  const v2 = v1 + block('added', 'cache 30');
  agent.writeCorefile(v2);
  await waitUntil(async () => (await query(host, dnsPort!, 'x.added', 'A')).rcode === 'NOERROR', 'the added zone to answer', 20_000);
  await waitUntil(() => runningLines().length === 2, 'the new configuration digest in the log');
  assert.equal(runningLines()[1], `[INFO] plugin/reload: Running configuration SHA512 = ${await configDigestAsync(v2, agent.corefile, {})}`);

  // 2. A changed cache TTL (cap 30 s → 5 s): the new config is loaded and its answers are capped.
  const v3 = block('example', 'cache 5') + block('added', 'cache 30');
  agent.writeCorefile(v3);
  await waitUntil(() => runningLines().length === 3, 'the TTL change to be loaded', 20_000);
  assert.equal(runningLines()[2], `[INFO] plugin/reload: Running configuration SHA512 = ${await configDigestAsync(v3, agent.corefile, {})}`);
  const fresh = await query(host, dnsPort!, 'fresh.example', 'A');
  const ttl = (fresh.packet.answers?.[0] as { ttl?: number } | undefined)?.ttl;
  assert.ok(fresh.packet.answers!.length === 1 && ttl !== undefined && ttl <= 5, `TTL capped at 5: ${JSON.stringify(fresh.packet.answers)}`);

  // 3. A Corefile that does not parse: rejected with file:line, counted once; the old config serves.
  agent.writeCorefile(v3.slice(0, v3.lastIndexOf('}')));
  await agent.waitForOutput(/\[ERROR\] plugin\/reload: Corefile parse failed: .*:\d+ - Error during parsing: /, 20_000);
  let f = await scrape(host, mPort!);
  assert.equal(sampleValue(f, 'coredns_reload_failed_total'), 1);

  // 4. A Corefile that parses but does not load: rejected, logged and counted once.
  const broken = v3.replace('cache 5', 'cache 5\n    nosuchplugin');
  agent.writeCorefile(broken);
  await agent.waitForOutput(/\[ERROR\] plugin\/reload: Corefile changed but reload failed: .*Unknown directive 'nosuchplugin'/, 20_000);
  await sleep(3000); // more ticks: the same broken file is not retried
  f = await scrape(host, mPort!);
  assert.equal(sampleValue(f, 'coredns_reload_failed_total'), 2);
  assert.equal(sampleValue(f, 'coredns_reload_version_info', { hash: 'sha512', value: await configDigestAsync(broken, agent.corefile, {}) }), 1);
  assert.equal(agent.output().match(/Corefile changed but reload failed/g)!.length, 1);
  assert.equal(runningLines().length, 3, 'no configuration was swapped in');
  assert.equal((await query(host, dnsPort!, 'y.added', 'A')).rcode, 'NOERROR', 'the old configuration still serves');

  running = false;
  await loop;
  assert.ok(sent > 100, `queries sent: ${sent}`);
  assert.deepEqual(failures, []);
  assert.equal(await agent.stop(), 0);
});
