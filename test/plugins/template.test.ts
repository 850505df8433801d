/**
 * The template plugin end to end: the real agent (`node src/main.ts`), real upstreams (Knot
 * for cluster.local, NSD for example.test) and dig.
 *
 *  1. The field customisation: a node-local-dns Corefile whose cluster.local block has cache +
 *     forward to the cluster DNS and `template ANY AAAA cluster.local { rcode NOERROR }`: A is
 *     answered by the upstream, AAAA gets NOERROR/NODATA (AA set) without the upstream being
 *     asked; the template's answer is cached by the block's `cache` (template comes after
 *     cache), so a repeated AAAA is a cache hit that the template does not see.
 *  2. A `.` block with templates before `forward` to NSD: regex groups, fallthrough to the
 *     upstream, SERVFAIL without fallthrough, a CNAME followed through the block (the target's
 *     A from NSD), SERVFAIL for a failing template or record (not cached: every query reaches
 *     the template again), the errors plugin's line for it.
 *  3. The metrics scraped from /metrics with CoreDNS's names and labels.
 *  4. A Corefile reload (SIGUSR1) replaces the templates; the counters go on (process lifetime).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, startAgent, startKnot, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { CLUSTER_LOCAL } from '../engine/zones.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { writeFileSync } from 'node:fs';
import { metricSum, scrape, startAgent as startFaultAgent } from '../fault/lib/agent.ts';
import { sleep } from '../lib/net.ts';

let nsd: RunningServer;
let knot: Authority;
let agent: AgentProcess;
let host: string;
let port: number;
let metricsPort: number;

before(async () => {
  nsd = await startNsd();
  knot = await startKnot({ 'cluster.local': CLUSTER_LOCAL });
  ({ host, port } = await freeAddress());
  metricsPort = (await freeAddress(host)).port;
  agent = await startAgent(`cluster.local:${port} {
    errors
    cache {
        success 9984 30
        denial 9984 5
    }
    reload
    loop
    bind ${host}
    forward . ${knot.addr} {
        force_tcp
    }
    prometheus ${host}:${metricsPort}
    template ANY AAAA cluster.local {
        rcode NOERROR
    }
}
.:${port} {
    errors
    cache 30
    bind ${host}
    template IN A example.test {
        match "^fixed-(?P<n>[0-9]+)[.]example[.]test[.]$"
        answer "{{ .Name }} 120 IN A 198.18.0.{{ .Group.n }}"
        fallthrough
    }
    template IN A example.test {
        match "^alias[.]example[.]test[.]$"
        answer "{{ .Name }} 60 IN CNAME www.example.test."
        fallthrough
    }
    template IN A example.test {
        match "^tocluster[.]example[.]test[.]$"
        answer "{{ .Name }} 60 IN CNAME web.default.svc.cluster.local."
        fallthrough
    }
    template IN A strict.example.test {
        match "^only[.]"
        answer "{{ .Name }} 60 IN A 198.18.1.1"
    }
    template IN A tfail.test {
        answer "{{ index .Match 4 }}"
    }
    template IN A rrfail.test {
        answer "{{ .Name }} 60 IN A 300.1.2.3"
    }
    forward . ${nsd.addr}
    prometheus ${host}:${metricsPort}
}
`);
});

after(async () => {
  const code = await agent?.stop();
  await nsd?.stop();
  await knot?.stop();
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

const q = (...args: string[]): Promise<DigResult> => dig(host, port, args);
const metrics = () => scrape(host, metricsPort);
const server = () => `dns://${host}:${port}`;

test('field customisation: AAAA blocked in cluster.local, A from the upstream, the NODATA cached', async () => {
  let m = await metrics();
  const forwardedBefore = metricSum(m, 'coredns_forward_requests_total');
  const hitsBefore = metricSum(m, 'coredns_cache_hits_total', { server: server(), zones: 'cluster.local.' });

  const a = await q('web.default.svc.cluster.local', 'A');
  assert.equal(a.status, 'NOERROR');
  assert.deepEqual(
    a.answer.map((r) => r.data),
    ['10.244.1.5'],
  );
  m = await metrics();
  const forwardedAfterA = metricSum(m, 'coredns_forward_requests_total');
  assert.equal(forwardedAfterA, forwardedBefore + 1, 'A went to Knot');

  // Knot has an AAAA for this name: the template answers instead.
  const aaaa = await q('web.default.svc.cluster.local', 'AAAA');
  assert.equal(aaaa.status, 'NOERROR');
  assert.equal(aaaa.answer.length, 0);
  assert.equal(aaaa.authority.length, 0);
  assert.ok(aaaa.flags.includes('aa'), `AA set as CoreDNS's template does: ${aaaa.flags}`);
  assert.ok(!aaaa.flags.includes('ra'));
  m = await metrics();
  assert.equal(metricSum(m, 'coredns_forward_requests_total'), forwardedAfterA, 'AAAA never reached the upstream');
  const match = { server: server(), zone: 'cluster.local.', view: '', class: 'IN', type: 'AAAA' };
  assert.equal(metricSum(m, 'coredns_template_matches_total', match), 1);

  // Same question again: the block's cache answers, the template is not consulted.
  const again = await q('web.default.svc.cluster.local', 'AAAA');
  assert.equal(again.status, 'NOERROR');
  assert.equal(again.answer.length, 0);
  m = await metrics();
  assert.equal(metricSum(m, 'coredns_template_matches_total', match), 1, 'a cache hit does not reach the template');
  assert.equal(metricSum(m, 'coredns_cache_hits_total', { server: server(), zones: 'cluster.local.' }), hitsBefore + 1);
  assert.equal(metricSum(m, 'coredns_forward_requests_total'), forwardedAfterA);

  // Names outside the template's type are untouched: SRV and a reverse-less A still forwarded.
  const srv = await q('_http._tcp.web.default.svc.cluster.local', 'SRV');
  assert.equal(srv.answer[0]?.data, '0 100 80 web.default.svc.cluster.local.');
});

test('. block: regex groups, fallthrough to NSD, a CNAME followed through the block', async () => {
  const fixed = await q('fixed-7.example.test', 'A');
  assert.equal(fixed.status, 'NOERROR');
  assert.ok(fixed.flags.includes('aa'));
  // TTL 120 from the template, capped to 30 by the block's `cache 30` that stored it.
  assert.deepEqual(fixed.answer, [{ name: 'fixed-7.example.test.', ttl: 30, class: 'IN', type: 'A', data: '198.18.0.7' }]);

  // No template's regex matches www; they all fall through: NSD answers.
  const www = await q('www.example.test', 'A');
  assert.equal(www.status, 'NOERROR');
  assert.deepEqual(
    www.answer.map((r) => r.data),
    ['192.0.2.80'],
  );

  // Templates are tried in order: the first two fall through, the third (zone
  // strict.example.test) does not match and has no fallthrough: SERVFAIL, as in CoreDNS.
  assert.equal((await q('x.strict.example.test', 'A')).status, 'SERVFAIL');
  assert.equal((await q('only.strict.example.test', 'A')).answer[0]?.data, '198.18.1.1');

  // AAAA is no template's type: forwarded to NSD (which has no AAAA: NOERROR, its SOA).
  const wwwAaaa = await q('www.example.test', 'AAAA');
  assert.equal(wwwAaaa.status, 'NOERROR');
  assert.equal(wwwAaaa.authority[0]?.type, 'SOA');

  const alias = await q('alias.example.test', 'A');
  assert.equal(alias.status, 'NOERROR');
  assert.deepEqual(
    alias.answer.map((r) => [r.name, r.type, r.data]),
    [
      ['alias.example.test.', 'CNAME', 'www.example.test.'],
      ['www.example.test.', 'A', '192.0.2.80'],
    ],
  );
});

test("a CNAME target in another block's zone is looked up by that block (routed like a client query)", async () => {
  // The target is in cluster.local: the cluster.local block's forward (Knot) answers it, not
  // this block's forward (NSD, which has no cluster.local), as CoreDNS's upstream lookup routes it.
  const r = await q('tocluster.example.test', 'A');
  assert.equal(r.status, 'NOERROR');
  assert.deepEqual(
    r.answer.map((x) => [x.name, x.type, x.data]),
    [
      ['tocluster.example.test.', 'CNAME', 'web.default.svc.cluster.local.'],
      ['web.default.svc.cluster.local.', 'A', '10.244.1.5'],
    ],
  );
});

test('failing templates: SERVFAIL, not cached, counted per section and template', async () => {
  for (let i = 0; i < 2; i++) {
    assert.equal((await q('x.tfail.test', 'A')).status, 'SERVFAIL');
    assert.equal((await q('x.rrfail.test', 'A')).status, 'SERVFAIL');
  }
  const m = await metrics();
  const base = { server: server(), view: '', class: 'IN', type: 'A' };
  assert.equal(
    metricSum(m, 'coredns_template_template_failures_total', { ...base, zone: 'tfail.test.', section: 'answer', template: '{{index .Match 4}}' }),
    2,
  );
  assert.equal(
    metricSum(m, 'coredns_template_rr_failures_total', { ...base, zone: 'rrfail.test.', section: 'answer', template: '{{.Name}} 60 IN A 300.1.2.3' }),
    2,
  );
  assert.equal(metricSum(m, 'coredns_template_matches_total', { ...base, zone: 'rrfail.test.' }), 2, 'SERVFAIL not cached: both queries matched');
  // The templates of zone example.test matched fixed-7, alias and tocluster (www fell through).
  assert.equal(metricSum(m, 'coredns_template_matches_total', { ...base, zone: 'example.test.' }), 3, 'fixed-7, alias and tocluster');
  const text = agent.output();
  assert.match(
    text,
    /\[ERROR\] plugin\/errors: 2 x\.tfail\.test\. A: template: answer:1:3: executing "answer" at <index \.Match 4>: error calling index: index out of range: 4/,
  );
});

test('Corefile reload (SIGUSR1): the new template answers, the match counter goes on', async () => {
  const { host: h, port: p } = await freeAddress();
  const mp = (await freeAddress(h)).port;
  const corefile = (ip: string) => `reload.test:${p} {
    bind ${h}
    template IN A reload.test {
        answer "{{ .Name }} 60 IN A ${ip}"
    }
    prometheus ${h}:${mp}
}
`;
  const a = await startFaultAgent(corefile('198.18.2.1'));
  try {
    const d = (...args: string[]) => dig(h, p, args);
    assert.deepEqual(
      (await d('x.reload.test', 'A')).answer.map((r) => r.data),
      ['198.18.2.1'],
    );
    writeFileSync(a.corefile, corefile('198.18.2.2'));
    a.child.kill('SIGUSR1');
    const until = Date.now() + 15_000;
    let data: string | undefined;
    let queries = 1;
    do {
      data = (await d('x.reload.test', 'A')).answer[0]?.data;
      queries++;
      if (data !== '198.18.2.2') await sleep(50);
    } while (data !== '198.18.2.2' && Date.now() < until);
    assert.equal(data, '198.18.2.2');
    const m = await scrape(h, mp);
    assert.equal(
      metricSum(m, 'coredns_template_matches_total', { server: `dns://${h}:${p}`, zone: 'reload.test.', view: '', class: 'IN', type: 'A' }),
      queries,
    );
    assert.ok(a.alive(), a.output());
  } finally {
    await a.stop();
  }
});
