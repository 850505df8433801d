/**
 * The loop plugin on the real agent: its upstream forwards every query back to the agent, so
 * the start-up probe comes round again and again; the agent must exit non-zero with CoreDNS's
 * fatal loop message. Without the loop (a normal upstream) it keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { freeAddress, freePorts, query, reply, sleep, startAgent, startUpstream, within } from './helpers.ts';

/** A UDP relay on host:port that forwards every query to `to` and relays the answers back. */
async function startRelay(host: string, port: number, to: number): Promise<{ relayed: () => number; close: () => Promise<void> }> {
  const server = dgram.createSocket('udp4');
  const clients = new Set<dgram.Socket>();
  let relayed = 0;
  server.on('message', (msg, rinfo) => {
    relayed++;
    const c = dgram.createSocket('udp4');
    clients.add(c);
    c.on('message', (answer) => {
      server.send(answer, rinfo.port, rinfo.address);
      c.close();
      clients.delete(c);
    });
    c.on('error', () => {});
    c.bind(0, host, () => c.send(msg, to, host));
    setTimeout(() => {
      if (clients.delete(c)) c.close();
    }, 3000).unref();
  });
  await new Promise<void>((r) => server.bind(port, host, () => r()));
  return {
    relayed: () => relayed,
    close: async () => {
      for (const c of clients) c.close();
      clients.clear();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

test('loop: an upstream forwarding back to the agent makes it exit 1 with the loop message', { timeout: 60_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, relayPort] = await freePorts(host, 2);
  const relay = await startRelay(host, relayPort!, dnsPort!);
  t.after(() => relay.close());
  const agent = startAgent(
    `.:${dnsPort} {
    bind ${host}
    loop
    forward . ${host}:${relayPort}
}
`,
    ['-workers', '2'],
  );
  t.after(() => agent.stop());
  const code = await within(agent.exited, 40_000, 'still running');
  assert.equal(code, 1, agent.output());
  const re = new RegExp(
    `^\\[FATAL\\] plugin/loop: Loop \\(${host.replaceAll('.', '\\.')}:\\d+ -> ${host.replaceAll('.', '\\.')}:${dnsPort}\\) ` +
      `detected for zone "\\.", see https://coredns\\.io/plugins/loop#troubleshooting\\. Query: "HINFO \\d+\\.\\d+\\."$`,
    'm',
  );
  assert.match(agent.stderr(), re);
  assert.ok(relay.relayed() >= 2, 'the probe went round through the relay');
});

test('loop: without a loop every worker probe is answered once and the agent keeps serving', { timeout: 60_000 }, async (t) => {
  const { host } = await freeAddress();
  const [dnsPort, upPort] = await freePorts(host, 2);
  const up = await startUpstream(host, upPort!, (q) => reply(q, { rcode: 'NXDOMAIN' }));
  t.after(() => up.close());
  const agent = startAgent(
    `.:${dnsPort} {
    bind ${host}
    loop
    forward . ${host}:${upPort}
}
`,
    ['-workers', '2'],
  );
  t.after(() => agent.stop());
  await agent.waitForOutput(/serving/);
  // Every worker runs its own loop plugin (and so its own probe name).
  const hinfo = () => up.queries.filter((q) => q.endsWith(' HINFO'));
  const start = performance.now();
  while (hinfo().length < 2 && performance.now() - start < 10_000) await sleep(20);
  await sleep(500);
  const probes = hinfo();
  assert.equal(probes.length, 2, 'one probe per worker, answered, then the plugin disables itself');
  assert.equal(new Set(probes).size, 2);
  for (const p of probes) assert.match(p, /^\d+\.\d+ HINFO$/);
  assert.equal((await query(host, dnsPort!, 'x.test', 'A')).rcode, 'NXDOMAIN');
  // The same name again is not counted any more (the plugin disabled itself).
  const probeName = probes[0]!.split(' ')[0]!;
  for (let i = 0; i < 3; i++) assert.equal((await query(host, dnsPort!, probeName, 'HINFO')).rcode, 'NXDOMAIN');
  assert.equal(await agent.stop(), 0);
});
