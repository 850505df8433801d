/**
 * CoreDNS's bufsize README, row by row, against node-local-dns (the real agent, dig, a capturing
 * toy upstream standing in for the README's resolver address). Each row names the README
 * section it comes from; the expectations are what that section says happens.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, startAgent, freeEndpoint, runToExit, rawQuery, udpExchange, type AgentProcess } from '../engine/harness.ts';
import { decodeMessage } from '../../src/wire/codec.ts';
import { startToyUpstream, type ToyUpstream } from './lib/toy-upstream.ts';
import { parseRR } from '../../src/wire/codec.ts';

let toy: ToyUpstream;
const agents: AgentProcess[] = [];

before(async () => {
  toy = await startToyUpstream((q) => [parseRR(`${q.question[0]!.name} 60 IN A 192.0.2.7`)]);
});

after(async () => {
  for (const a of agents) await a.stop();
  await toy?.stop();
});

function sizeSeen(name: string): number | null | undefined {
  const q = toy.queries.find((m) => m.question[0]?.name === name);
  return q === undefined ? undefined : q.edns === null ? null : q.edns.udpSize;
}

interface Row {
  section: string;
  what: string;
  /** The Corefile body (inside `.:PORT { bind HOST ... }`), with UPSTREAM for the toy's address. */
  body: string;
  digArgs: string[];
  /** Instead of dig (which caps what it advertises): a raw UDP query advertising this size. */
  rawSize?: number;
  /** The payload size the upstream must see (null: no OPT). */
  upstreamSize: number | null;
}

const ROWS: Row[] = [
  {
    section: 'Examples (limit the size sent to the resolver)',
    what: 'a 4096-byte client reaches the resolver asking for 1100',
    body: 'bufsize 1100\n    forward . UPSTREAM\n    log',
    digArgs: ['+bufsize=4096'],
    upstreamSize: 1100,
  },
  {
    section: 'Description (it can only reduce)',
    what: 'a client asking for less than the limit keeps its size',
    body: 'bufsize 1100\n    forward . UPSTREAM\n    log',
    digArgs: ['+bufsize=800'],
    upstreamSize: 800,
  },
  {
    section: 'Description (only queries with an OPT RR)',
    what: 'a query without EDNS gets no OPT added',
    body: 'bufsize 1100\n    forward . UPSTREAM\n    log',
    digArgs: ['+noedns'],
    upstreamSize: null,
  },
  {
    section: 'Syntax (default 1232)',
    what: 'bufsize without SIZE limits to 1232',
    body: 'bufsize\n    forward . UPSTREAM',
    digArgs: ['+bufsize=4096'],
    upstreamSize: 1232,
  },
  {
    section: 'Syntax (512 - 4096)',
    what: 'the upper bound 4096 is accepted and applied',
    body: 'bufsize 4096\n    forward . UPSTREAM',
    digArgs: [],
    rawSize: 8192,
    upstreamSize: 4096,
  },
  {
    section: 'Syntax (512 - 4096)',
    what: 'the lower bound 512 is accepted and applied',
    body: 'bufsize 512\n    forward . UPSTREAM',
    digArgs: ['+bufsize=1232'],
    upstreamSize: 512,
  },
];

for (const [i, row] of ROWS.entries()) {
  test(`README ${row.section}: ${row.what}`, async () => {
    const { host, port } = await freeEndpoint();
    const a = await startAgent(`.:${port} {\n    bind ${host}\n    ${row.body.replace('UPSTREAM', toy.addr)}\n}\n`);
    agents.push(a);
    const name = `row${i}.compat.`;
    if (row.rawSize !== undefined) {
      const buf = await udpExchange(host, port, rawQuery(name, 1, 0x7777, row.rawSize));
      assert.ok(buf !== null, 'answered');
      const m = decodeMessage(buf);
      assert.equal(m.rcode, 0);
      assert.equal(m.answer[0]?.data, '192.0.2.7');
    } else {
      const r = await dig(host, port, [name, 'A', ...row.digArgs]);
      assert.equal(r.status, 'NOERROR');
      assert.equal(r.answer[0]?.data, '192.0.2.7');
    }
    assert.equal(sizeSeen(name), row.upstreamSize);
  });
}

test('README Syntax: sizes outside 512 - 4096 and a second argument are rejected at load', async () => {
  for (const [line, word] of [
    ['bufsize 511', '511'],
    ['bufsize 4097', '4097'],
    ['bufsize 1232 1232', '1232'],
  ]) {
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-bufsize-'));
    try {
      writeFileSync(path.join(dir, 'Corefile'), `.:53 {\n    ${line}\n    forward . ${toy.addr}\n}\n`);
      const r = await runToExit(['-conf', path.join(dir, 'Corefile')]);
      assert.equal(r.code, 1);
      assert.match(r.stdout + r.stderr, new RegExp(`Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '${word}'`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
});

test('README Examples (authoritative nameserver with `file`): not runnable, `file` is not part of node-local-dns', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-bufsize-'));
  try {
    writeFileSync(path.join(dir, 'Corefile'), '.:53 {\n    bufsize 1220\n    file db.example.org\n    log\n}\n');
    const r = await runToExit(['-conf', path.join(dir, 'Corefile')]);
    assert.equal(r.code, 1);
    assert.match(r.stdout + r.stderr, /Corefile:3 - Error during parsing: plugin 'file' is not supported by node-local-dns/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
