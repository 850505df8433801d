import { freeAddress, freePorts, startUpstream, reply, startAgent, query, httpGet } from './helpers.ts';
const { host } = await freeAddress();
const [dnsPort, upPort, deadPort, mPort] = await freePorts(host, 4);
const up = await startUpstream(host, upPort!, (q) => {
  const name = q.questions![0]!.name;
  if (name === 'hit.example') return reply(q, { answers: [{ type: 'A', name, ttl: 300, class: 'IN', data: '192.0.2.1' }] });
  return reply(q, { rcode: 'NXDOMAIN', authorities: [{ type: 'SOA', name: 'example', ttl: 60, class: 'IN', data: { mname: 'ns.example', rname: 'h.example', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 60 } }] });
});
const agent = startAgent(`example:${dnsPort} {
    bind ${host}
    errors
    cache 30
    forward . ${host}:${upPort}
    prometheus ${host}:${mPort}
}
dead:${dnsPort} {
    bind ${host}
    errors
    forward . ${host}:${deadPort}
    prometheus ${host}:${mPort}
}
`);
await agent.waitForOutput(/serving/);
for (const n of ['hit.example', 'hit.example', 'hit.example', 'nx.example', 'nx.example']) console.log(n, (await query(host, dnsPort!, n)).rcode);
let t0 = performance.now();
try { console.log('dead', (await query(host, dnsPort!, 'x.dead', 'A', { timeoutMs: 20000 })).rcode, performance.now() - t0); } catch (e) { console.log('dead err', (e as Error).message, performance.now()-t0); }
console.log('other', (await query(host, dnsPort!, 'x.other')).rcode);
const m = await httpGet(host, mPort!, '/metrics');
console.log(m.body.split('\n').filter((l) => l.startsWith('coredns_') && !l.includes('_bucket')).join('\n'));
console.log(await agent.stop());
console.log(agent.output());
await up.close();
