/**
 * CoreDNS's loadbalance README, row by row, against node-local-dns: the real agent forwarding to
 * Knot (standing in for the README's public resolvers: no traffic leaves the machine), dig as the
 * client. Each row names the README section; the expectations are what the section states.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, startAgent, startKnot, freeEndpoint, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { LB_ZONE, EXAMPLE_COM, topCounts } from './lib/lb-zone.ts';

let knot: Authority;
const agents: AgentProcess[] = [];

before(async () => {
  knot = await startKnot({ 'lb.test': LB_ZONE });
});

after(async () => {
  for (const a of agents) await a.stop();
  await knot?.stop();
});

interface Row {
  section: string;
  what: string;
  /** Corefile body; UPSTREAM is Knot's address. */
  body: string;
  qname: string;
  qtype: string;
  check(rs: DigResult[]): void;
}

const varies = (rs: DigResult[], pick: (r: DigResult) => string, min: number) => {
  const seen = new Set(rs.map(pick));
  assert.ok(seen.size >= min, `only ${[...seen].join(' | ')}`);
};

const ROWS: Row[] = [
  {
    section: 'Examples (load balance replies coming back from a resolver)',
    what: 'A records come back in varying order, all of them',
    body: 'loadbalance round_robin\n    forward . UPSTREAM',
    qname: 'multi.lb.test.',
    qtype: 'A',
    check: (rs) => {
      for (const r of rs) assert.equal(r.answer.length, 6);
      varies(rs, (r) => r.answer[0]!.data, 3);
    },
  },
  {
    section: 'Description (randomizes A, AAAA and MX)',
    what: 'AAAA records are shuffled',
    body: 'loadbalance\n    forward . UPSTREAM',
    qname: 'multi.lb.test.',
    qtype: 'AAAA',
    check: (rs) => varies(rs, (r) => r.answer.map((x) => x.data).join(), 3),
  },
  {
    section: 'Description (randomizes A, AAAA and MX)',
    what: 'MX records are shuffled',
    body: 'loadbalance\n    forward . UPSTREAM',
    qname: 'lb.test.',
    qtype: 'MX',
    check: (rs) => varies(rs, (r) => r.answer.map((x) => x.data).join(), 3),
  },
  {
    section: 'Description (CNAMEs sorted before address records)',
    what: 'a CNAME chain stays ahead of the shuffled addresses',
    body: 'loadbalance\n    forward . UPSTREAM',
    qname: 'chain.lb.test.',
    qtype: 'A',
    check: (rs) => {
      for (const r of rs)
        assert.deepEqual(
          r.answer.slice(0, 2).map((x) => x.type),
          ['CNAME', 'CNAME'],
        );
      varies(rs, (r) => r.answer[2]!.data, 3);
    },
  },
  {
    section: 'Subnet Prioritization',
    what: 'with prefer 10.9.20.0/24 192.168.1.0/24 those addresses come first, in that order',
    body: 'loadbalance round_robin {\n        prefer 10.9.20.0/24 192.168.1.0/24\n    }\n    forward . UPSTREAM',
    qname: 'pref.lb.test.',
    qtype: 'A',
    check: (rs) => {
      for (const r of rs) {
        assert.deepEqual(
          r.answer.slice(0, 2).map((x) => x.data),
          ['10.9.20.30', '192.168.1.10'],
        );
        assert.deepEqual(
          r.answer
            .slice(2)
            .map((x) => x.data)
            .sort(),
          ['172.16.0.1', '172.16.0.2', '172.16.0.3'],
        );
      }
      varies(rs, (r) => r.answer[2]!.data, 2);
    },
  },
];

for (const row of ROWS) {
  test(`README ${row.section}: ${row.what}`, async () => {
    const { host, port } = await freeEndpoint();
    agents.push(await startAgent(`lb.test:${port} {\n    bind ${host}\n    ${row.body.replace('UPSTREAM', knot.addr)}\n}\n`));
    const rs: DigResult[] = [];
    for (let i = 0; i < 25; i++) {
      const r = await dig(host, port, [row.qname, row.qtype]);
      assert.equal(r.status, 'NOERROR');
      rs.push(r);
    }
    row.check(rs);
  });
}

test('README Examples (weighted policy with a weight file): top record frequencies converge to 3 : 1 : 2', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-lb-'));
  const ex = await startKnot({ 'example.com': EXAMPLE_COM });
  try {
    // The README's weight file, as written there.
    writeFileSync(path.join(dir, 'db.example.com.weights'), 'www.example.com\n100.64.1.1 3\n100.64.1.2 1\n100.64.1.3 2\n');
    const { host, port } = await freeEndpoint();
    // The README serves the zone with `file`; here Knot serves it and forward asks it.
    agents.push(
      await startAgent(
        `example.com:${port} {\n    bind ${host}\n    forward . ${ex.addr}\n    loadbalance weighted ${path.join(dir, 'db.example.com.weights')} {\n        reload 10s\n    }\n}\n`,
      ),
    );
    const counts = await topCounts(host, port, 'www.example.com', 600);
    const n = 600;
    assert.ok(Math.abs((counts.get('100.64.1.1') ?? 0) / n - 3 / 6) < 0.08, [...counts].join());
    assert.ok(Math.abs((counts.get('100.64.1.2') ?? 0) / n - 1 / 6) < 0.08, [...counts].join());
    assert.ok(Math.abs((counts.get('100.64.1.3') ?? 0) / n - 2 / 6) < 0.08, [...counts].join());
    // "there should be twice as many answers with 100.64.1.3 in the top A record than with 100.64.1.2"
    assert.ok((counts.get('100.64.1.3') ?? 0) > (counts.get('100.64.1.2') ?? 0) * 1.4, [...counts].join());
  } finally {
    await ex.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
