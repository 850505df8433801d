/**
 * OS boundary: the process's own stdout. When the reader of the log pipe goes away (a log
 * collector or container runtime shim that restarts), the next log line fails with EPIPE, which
 * Node emits as an 'error' event on process.stdout: without a listener that is an uncaught
 * exception. The agent must keep serving, say once on stderr that stdout is lost, and not count
 * it as a panic (it is an expected fault of a file, handled where it happens).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { metricSum, scrape, startAgent, type Agent } from './lib/agent.ts';
import { freeAddress, sleep, waitUntil } from './lib/net.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { udpQuery } from './lib/dns.ts';

let nsd: Nsd;
let agent: Agent | undefined;

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['www IN A 192.0.2.80']) });
});
after(async () => {
  await agent?.stop();
  await nsd.stop();
});

test('a broken stdout pipe (EPIPE) neither ends the process nor counts as a panic; stderr says so once', { timeout: 60_000 }, async () => {
  const dns = await freeAddress();
  const metrics = await freeAddress(dns.host);
  agent = await startAgent(`.:${dns.port} {
    bind ${dns.host}
    log
    errors
    prometheus ${metrics.host}:${metrics.port}
    forward . ${nsd.addr}
}
`);
  assert.equal((await udpQuery(dns.host, dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR');
  // The reader goes away: every `log` line from now on is written into a broken pipe.
  agent.child.stdout!.destroy();
  for (let i = 0; i < 20; i++) {
    const r = await udpQuery(dns.host, dns.port, `www.ok.test`);
    assert.ok(agent.alive(), `the agent exited:\n${agent.output()}`);
    assert.equal(r.packet?.rcode, 'NOERROR');
  }
  await waitUntil(() => /writing to stdout failed \(EPIPE\)/.test(agent!.output()) || !agent!.alive(), 'the stderr line');
  await sleep(200);
  assert.ok(agent.alive(), `the agent exited:\n${agent.output()}`);
  assert.equal((agent.output().match(/writing to stdout failed/g) ?? []).length, 1, 'said once');
  assert.equal(metricSum(await scrape(metrics.host, metrics.port), 'coredns_panics_total'), 0);
  assert.equal((await udpQuery(dns.host, dns.port, 'www.ok.test')).packet?.rcode, 'NOERROR');
});
