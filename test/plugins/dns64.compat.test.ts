/**
 * The examples of CoreDNS's plugin/dns64 README, each run against node-local-dns (real agent,
 * Knot upstream, dig over ::1 or 127.0.0.x), asserting what the README says they do.
 * Rows are written in our own words; `section` names the README section they come from.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, type AgentProcess, type Authority } from '../engine/harness.ts';
import { startDns64Agent, startDns64Knot, type Dns64Block } from './lib/dns64.ts';

interface Row {
  section: string;
  block: Dns64Block;
  client: 'ipv6' | 'ipv4';
  qname: string;
  /** AAAA data expected in the answer, sorted. */
  want: string[];
}

const dflt: Dns64Block = { body: '    dns64' };
const custom: Dns64Block = { body: '    dns64 64:1337::/96' };
const customBlock: Dns64Block = { body: '    dns64 {\n        prefix 64:1337::/96\n    }' };
const all: Dns64Block = { body: '    dns64 {\n        translate_all\n    }' };
const v4: Dns64Block = { body: '    dns64 {\n        allow_ipv4\n    }' };

const rows: Row[] = [
  {
    section: 'Description (only A records found: AAAA synthesized)',
    block: dflt,
    client: 'ipv6',
    qname: 'v4only.dns64.test',
    want: ['64:ff9b::c000:201', '64:ff9b::c000:202'],
  },
  { section: 'Description (only if the query came in via IPv6)', block: dflt, client: 'ipv4', qname: 'v4only.dns64.test', want: [] },
  { section: 'Examples: translate with the default well-known prefix', block: dflt, client: 'ipv6', qname: 'short.dns64.test', want: ['64:ff9b::c633:6407'] },
  {
    section: 'Examples: translate with the default well-known prefix (a name with AAAA keeps it)',
    block: dflt,
    client: 'ipv6',
    qname: 'dual.dns64.test',
    want: ['2001:db8::3'],
  },
  {
    section: 'Examples: use a custom prefix (argument)',
    block: custom,
    client: 'ipv6',
    qname: 'v4only.dns64.test',
    want: ['64:1337::c000:201', '64:1337::c000:202'],
  },
  {
    section: 'Examples: use a custom prefix (or: the prefix property)',
    block: customBlock,
    client: 'ipv6',
    qname: 'v4only.dns64.test',
    want: ['64:1337::c000:201', '64:1337::c000:202'],
  },
  {
    section: 'Examples: translation even if an existing AAAA record is present (translate_all)',
    block: all,
    client: 'ipv6',
    qname: 'dual.dns64.test',
    want: ['64:ff9b::c000:203'],
  },
  {
    section: 'Examples: translation for requests over IPv4 (allow_ipv4)',
    block: v4,
    client: 'ipv4',
    qname: 'v4only.dns64.test',
    want: ['64:ff9b::c000:201', '64:ff9b::c000:202'],
  },
  { section: 'Examples: allow_ipv4 keeps IPv6 clients translated', block: v4, client: 'ipv6', qname: 'short.dns64.test', want: ['64:ff9b::c633:6407'] },
];

let knot: Authority;
let agent: AgentProcess;

before(async () => {
  knot = await startDns64Knot();
  ({ agent } = await startDns64Agent(knot, [dflt, custom, customBlock, all, v4]));
});

after(async () => {
  await agent?.stop();
  await knot?.stop();
});

for (const row of rows) {
  test(`README ${row.section}: ${row.block.body.trim().replace(/\s+/g, ' ')} / ${row.client} AAAA ${row.qname}`, async () => {
    const host = row.client === 'ipv6' ? '::1' : row.block.v4!;
    const r = await dig(host, row.block.port!, [row.qname, 'AAAA']);
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(
      r.answer
        .filter((a) => a.type === 'AAAA')
        .map((a) => a.data)
        .sort(),
      row.want,
    );
    assert.ok(
      r.answer.every((a) => a.type === 'AAAA'),
      'no A records leak into the AAAA answer',
    );
  });
}
