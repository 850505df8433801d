/**
 * CoreDNS's whoami README, row by row, against node-local-dns: the README's Corefile
 * (`example.org { whoami }`) on the real agent, queried with dig from a known source port. Each
 * row names the README section; the expectations are what it states.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, startAgent, freeEndpoint, type AgentProcess } from '../engine/harness.ts';
import { portFree } from '../lib/net.ts';

let agent: AgentProcess;
let host: string;
let port: number;

before(async () => {
  ({ host, port } = await freeEndpoint());
  // The README's example, on a test address and port.
  agent = await startAgent(`example.org:${port} {\n    bind ${host}\n    whoami\n}\n`);
});

after(async () => {
  await agent?.stop();
});

async function sourcePort(): Promise<number> {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 30000);
    if (await portFree('127.0.0.1', p)) return p;
  }
}

interface Row {
  section: string;
  what: string;
  qname: string;
  qtype: string;
  tcp?: boolean;
}

const ROWS: Row[] = [
  { section: 'Examples', what: '"example.org A" gets the client address as an A record and the port as _udp SRV, TTL 0', qname: 'example.org.', qtype: 'A' },
  {
    section: 'Description (every A or AAAA query, regardless of the name)',
    what: 'another name in the zone, AAAA',
    qname: 'anything.example.org.',
    qtype: 'AAAA',
  },
  { section: 'Description (transport can be "tcp" or "udp")', what: 'over TCP the SRV record is _tcp', qname: 'example.org.', qtype: 'A', tcp: true },
];

for (const row of ROWS) {
  test(`README ${row.section}: ${row.what}`, async () => {
    const p = await sourcePort();
    const r = await dig(host, port, ['-b', `127.0.0.1#${p}`, ...(row.tcp ? ['+tcp'] : []), row.qname, row.qtype]);
    assert.equal(r.status, 'NOERROR');
    // Description: the reply always has an empty answer section.
    assert.equal(r.answer.length, 0);
    const proto = row.tcp ? 'tcp' : 'udp';
    assert.deepEqual(
      r.additional.map((x) => `${x.name} ${x.ttl} ${x.class} ${x.type} ${x.data}`),
      [`${row.qname} 0 IN A 127.0.0.1`, `_${proto}.${row.qname} 0 IN SRV 0 0 ${p} .`],
    );
  });
}
