/**
 * Forward's counters live for the whole process, as CoreDNS's do (prometheus counters are
 * process globals there): a reload replaces the forward instances, and what the replaced
 * instances counted must stay in coredns_forward_requests_total,
 * coredns_forward_responses_total and coredns_proxy_request_duration_seconds. Real agent,
 * real NSD upstream, reload by SIGUSR1 after the Corefile changed.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { metricSum, scrape, startAgent, type Agent } from '../fault/lib/agent.ts';
import { startNsd, zoneText, type Nsd } from '../fault/lib/nsd.ts';
import { freeAddress, waitUntil } from '../fault/lib/net.ts';
import { udpQuery } from '../fault/lib/dns.ts';

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metricsPort: number;

function corefile(ttl: number): string {
  return `ok.test:${dns.port} {
    bind ${dns.host}
    cache ${ttl}
    forward . ${nsd.addr}
    prometheus ${dns.host}:${metricsPort}
}
`;
}

before(async () => {
  nsd = await startNsd({ 'ok.test.': zoneText('ok.test', ['* IN A 192.0.2.81']) });
  dns = await freeAddress();
  metricsPort = (await freeAddress(dns.host)).port;
  agent = await startAgent(corefile(30));
});

after(async () => {
  await agent?.stop();
  await nsd?.stop();
});

async function forwarded(prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const r = await udpQuery(dns.host, dns.port, `${prefix}${i}.ok.test`, 'A', { timeoutMs: 2_000 });
    assert.equal(r.packet?.rcode, 'NOERROR');
  }
}

test('a reload keeps what the replaced forward instances counted (CoreDNS: counters for the process lifetime)', async () => {
  const to = { to: nsd.addr };
  await forwarded('before', 5);
  const first = await scrape(dns.host, metricsPort);
  assert.equal(metricSum(first, 'coredns_forward_requests_total', to), 5);

  const reloads = () => (agent.output().match(/Reloading complete/g) ?? []).length;
  const reloadsBefore = reloads();
  writeFileSync(agent.corefile, corefile(31));
  assert.notEqual(readFileSync(agent.corefile, 'utf8'), corefile(30));
  process.kill(agent.pid, 'SIGUSR1');
  await waitUntil(() => reloads() > reloadsBefore, 'the reload', 10_000);
  await forwarded('after', 3);

  const fams = await scrape(dns.host, metricsPort);
  assert.equal(metricSum(fams, 'coredns_forward_requests_total', to), 8, 'requests before and after the reload');
  assert.equal(metricSum(fams, 'coredns_forward_responses_total', { ...to, rcode: 'NOERROR' }), 8, 'responses before and after the reload');
  assert.equal(metricSum(fams, 'coredns_proxy_request_duration_seconds_count', { ...to, rcode: 'NOERROR' }), 8, 'durations before and after the reload');
  assert.ok(agent.alive());
});
