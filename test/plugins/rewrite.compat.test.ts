/**
 * rewrite compatibility table: the examples of CoreDNS's plugin/rewrite README, each configured
 * in node-local-dns as written there and queried with dig, asserting what the README says the
 * client gets. Each row names the README section it comes from; rows are in our own words.
 *
 * One agent serves every row, one server block per row on its own port, all forwarding to a
 * real Knot DNS serving the zones the examples name (consul, google.com, coredns.rocks,
 * 10.in-addr.arpa, example.com, blue, and a zone Knot fails to load, for SERVFAIL), or, for the
 * EDNS0_LOCAL rows, to an upstream that mirrors the query's EDNS(0) options (Knot ignores
 * options it does not know).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, freeEndpoint, runToExit, startAgent, startKnot, type AgentProcess, type Authority, type DigResult } from '../engine/harness.ts';
import { freeAddress } from '../lib/net.ts';
import { startEchoUpstream, type EchoUpstream } from './lib/echo-upstream.ts';
import { BLUE, BROKEN, CONSUL, COREDNS_ROCKS, EXAMPLE_COM, GOOGLE, REVERSE_10 } from './lib/rewrite-zones.ts';
import type { Message } from '../../src/wire/codec.ts';

interface Row {
  section: string;
  what: string;
  /** The plugin lines of the row's server block (rewrite, and metadata where the README has it). */
  config: string;
  upstream: 'knot' | 'echo';
  dig: string[];
  check(r: DigResult, seen: Message | undefined): void;
}

const rows = (r: DigResult): string[] => r.answer.map((a) => `${a.name} ${a.ttl} ${a.class} ${a.type} ${a.data}`);
const opt = (m: Message | undefined, code: number): string | undefined => {
  const o = m?.edns?.options.find((x) => x.code === code);
  return o === undefined ? undefined : Buffer.from(o.data).toString('hex');
};
const FTP3 = (name: string): string[] => ['10.10.10.10', '10.20.20.20', '10.30.30.30'].map((a) => `${name} 0 IN A ${a}`);

const ROWS: Row[] = [
  {
    section: 'Name Field Rewrites',
    what: 'substring service.us-west-1.example.org -> service.us-west-1.consul: ftp.service.us-west-1.example.org is asked as ftp.service.us-west-1.consul',
    config: 'rewrite name substring service.us-west-1.example.org service.us-west-1.consul',
    upstream: 'knot',
    dig: ['ftp.service.us-west-1.example.org', 'A'],
    check(r) {
      assert.equal(r.status, 'NOERROR');
      assert.match(r.question[0]!, /^ftp\.service\.us-west-1\.example\.org\.\s+IN\s+A$/);
      assert.deepEqual(rows(r).sort(), FTP3('ftp.service.us-west-1.consul.'));
    },
  },
  {
    section: 'Name Field Rewrites',
    what: 'regex (.*)-(us-west-1)\\.example\\.org -> {1}.service.{2}.consul: ftp-us-west-1.example.org is asked as ftp.service.us-west-1.consul',
    config: 'rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul',
    upstream: 'knot',
    dig: ['ftp-us-west-1.example.org', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^ftp-us-west-1\.example\.org\.\s+IN\s+A$/);
      assert.deepEqual(rows(r).sort(), FTP3('ftp.service.us-west-1.consul.'));
    },
  },
  {
    section: 'Name Field Rewrites',
    what: 'suffix .schmoogle.com. -> .google.com.: www.schmoogle.com is answered with www.google.com data',
    config: 'rewrite name suffix .schmoogle.com. .google.com.',
    upstream: 'knot',
    dig: ['www.schmoogle.com', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^www\.schmoogle\.com\.\s+IN\s+A$/);
      assert.deepEqual(rows(r), ['www.google.com. 300 IN A 192.0.2.80']);
    },
  },
  {
    section: 'Name Field Rewrites',
    what: 'a new name that is not a legal domain name: the client gets an error (SERVFAIL)',
    config: 'rewrite name regex (.*)\\.bad\\.test {1}{1}.bad.test',
    upstream: 'knot',
    dig: ['a123456789b123456789c123456789d123456789.bad.test', 'A'],
    check(r) {
      assert.equal(r.status, 'SERVFAIL');
      assert.match(r.question[0]!, /^a123456789b123456789c123456789d123456789\.bad\.test\.\s+IN\s+A$/);
    },
  },
  {
    section: 'Response Rewrites',
    what: 'regex without an answer rule: the question is the client one, the answer names are the consul ones (the mismatch the README shows)',
    config: 'rewrite name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul',
    upstream: 'knot',
    dig: ['ftp-us-west-1.coredns.rocks', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^ftp-us-west-1\.coredns\.rocks\.\s+IN\s+A$/);
      assert.deepEqual(rows(r).sort(), FTP3('ftp.service.us-west-1.consul.'));
    },
  },
  {
    section: 'Auto Response Name Rewrite',
    what: 'suffix .coredns.rocks -> .service.consul with answer auto: the answer names are mapped back to coredns.rocks',
    config: 'rewrite stop {\n        name suffix .coredns.rocks .service.consul answer auto\n    }',
    upstream: 'knot',
    dig: ['ftp.coredns.rocks', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^ftp\.coredns\.rocks\.\s+IN\s+A$/);
      assert.deepEqual(rows(r), ['ftp.coredns.rocks. 0 IN A 10.40.40.40']);
    },
  },
  {
    section: 'Explicit Response Name Rewrite',
    what: 'regex with answer name (.*)\\.service\\.(us-west-1)\\.consul -> {1}-{2}.coredns.rocks: the answer section matches the question',
    config:
      'rewrite stop {\n        name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul\n        answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n    }',
    upstream: 'knot',
    dig: ['ftp-us-west-1.coredns.rocks', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^ftp-us-west-1\.coredns\.rocks\.\s+IN\s+A$/);
      assert.deepEqual(rows(r).sort(), FTP3('ftp-us-west-1.coredns.rocks.'));
    },
  },
  {
    section: 'Example: PTR Response Value Rewrite',
    what: 'suffix .arpa -> .arpa with answer value (.*)\\.service\\.consul\\. -> {1}.coredns.rocks.: the PTR target is rewritten',
    config:
      'rewrite stop {\n        name suffix .arpa .arpa\n        answer name auto\n        answer value (.*)\\.service\\.consul\\. {1}.coredns.rocks.\n    }',
    upstream: 'knot',
    dig: ['30.30.30.10.in-addr.arpa', 'PTR'],
    check(r) {
      assert.match(r.question[0]!, /^30\.30\.30\.10\.in-addr\.arpa\.\s+IN\s+PTR$/);
      assert.deepEqual(rows(r), ['30.30.30.10.in-addr.arpa. 60 IN PTR ftp-us-west-1.coredns.rocks.']);
    },
  },
  {
    section: 'Multiple Response Rewrites',
    what: 'regex with `answer name ... value ...` (second `answer` left out): owner names and the CNAME target are mapped back',
    config: 'rewrite name regex (.*)\\.mr\\.test {1}.service.consul answer name (.*)\\.service\\.consul {1}.mr.test value (.*)\\.service\\.consul {1}.mr.test',
    upstream: 'knot',
    dig: ['www.mr.test', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^www\.mr\.test\.\s+IN\s+A$/);
      assert.deepEqual(rows(r), ['www.mr.test. 0 IN CNAME ftp.mr.test.', 'ftp.mr.test. 0 IN A 10.40.40.40']);
    },
  },
  {
    section: 'Multiple Response Rewrites',
    what: 'exact RED -> BLUE: the client sees only RED, answers included',
    config: 'rewrite name exact RED BLUE',
    upstream: 'knot',
    dig: ['RED', 'A'],
    check(r) {
      assert.match(r.question[0]!, /^RED\.\s+IN\s+A$/);
      assert.deepEqual(rows(r), ['red. 300 IN A 192.0.2.77']);
      assert.doesNotMatch(
        r.raw
          .split('\n')
          .filter((l) => !l.startsWith(';'))
          .join('\n'),
        /blue/i,
      );
    },
  },
  {
    section: 'TTL Field Rewrites',
    what: 'ttl regex (.*)\\.coredns\\.rocks 15 in a continue block: a TTL 0 answer gets 15',
    config: 'rewrite continue {\n        ttl regex (.*)\\.coredns\\.rocks 15\n    }',
    upstream: 'knot',
    dig: ['www.coredns.rocks', 'A'],
    check(r) {
      assert.deepEqual(rows(r), ['www.coredns.rocks. 15 IN A 192.0.2.81']);
    },
  },
  ...ttlRows(),
  {
    section: 'RCODE Field Rewrites',
    what: 'rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR: a SERVFAIL from upstream becomes NOERROR',
    config: 'rewrite continue {\n        rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR\n    }',
    upstream: 'knot',
    dig: ['x.bad.coredns.rocks', 'A'],
    check(r) {
      assert.equal(r.status, 'NOERROR');
      assert.match(r.question[0]!, /^x\.bad\.coredns\.rocks\.\s+IN\s+A$/);
    },
  },
  {
    section: 'RCODE Field Rewrites',
    what: 'the same with numeric rcodes 2 0',
    config: 'rewrite continue {\n        rcode regex (.*)\\.coredns\\.rocks 2 0\n    }',
    upstream: 'knot',
    dig: ['x.bad.coredns.rocks', 'A'],
    check(r) {
      assert.equal(r.status, 'NOERROR');
    },
  },
  {
    section: 'RCODE Field Rewrites',
    what: 'control: without the rule the same query is SERVFAIL',
    config: 'rewrite continue {\n        rcode regex (.*)\\.example\\.net SERVFAIL NOERROR\n    }',
    upstream: 'knot',
    dig: ['x.bad.coredns.rocks', 'A'],
    check(r) {
      assert.equal(r.status, 'SERVFAIL');
    },
  },
  {
    section: 'Syntax (FIELD type)',
    what: 'type ANY HINFO: an ANY question is asked as HINFO (NODATA from Knot) under the client question',
    config: 'rewrite type ANY HINFO',
    upstream: 'knot',
    dig: ['www.google.com', 'ANY'],
    check(r) {
      assert.equal(r.status, 'NOERROR');
      assert.match(r.question[0]!, /^www\.google\.com\.\s+IN\s+ANY$/);
      assert.deepEqual(r.answer, []);
      assert.deepEqual(
        r.authority.map((a) => `${a.name} ${a.type}`),
        ['google.com. SOA'],
      );
    },
  },
  {
    section: 'Syntax (FIELD class)',
    what: 'class CH IN: a CH question is asked in IN and answered under the client question',
    config: 'rewrite class CH IN',
    upstream: 'knot',
    dig: ['-c', 'CH', 'www.google.com', 'A'],
    check(r) {
      assert.equal(r.status, 'NOERROR');
      assert.match(r.question[0]!, /^www\.google\.com\.\s+CH\s+A$/);
      assert.deepEqual(
        r.answer.map((a) => a.data),
        ['192.0.2.80'],
      );
    },
  },
  {
    section: 'EDNS0_LOCAL',
    what: 'local set 0xffee 0x61626364: the upstream gets option 0xffee "abcd"',
    config: 'rewrite edns0 local set 0xffee 0x61626364',
    upstream: 'echo',
    dig: ['a.local.test', 'A'],
    check(r, seen) {
      assert.equal(opt(seen, 0xffee), '61626364');
      assert.match(r.raw, /OPT=65518: 61 62 63 64 \("abcd"\)/);
    },
  },
  {
    section: 'EDNS0_LOCAL',
    what: 'local set 0xffee abcd is the same as the hex form',
    config: 'rewrite edns0 local set 0xffee abcd',
    upstream: 'echo',
    dig: ['b.local.test', 'A'],
    check(_r, seen) {
      assert.equal(opt(seen, 0xffee), '61626364');
    },
  },
  {
    section: 'EDNS0_LOCAL',
    what: 'local set 0xffee {client_ip}: the client address in 4 bytes',
    config: 'rewrite edns0 local set 0xffee {client_ip}',
    upstream: 'echo',
    dig: ['c.local.test', 'A'],
    check(_r, seen) {
      assert.equal(opt(seen, 0xffee), '7f000001');
    },
  },
  {
    section: 'EDNS0_LOCAL',
    what: 'metadata label variable with nobody providing the label: CoreDNS code leaves the option out (the README says empty data)',
    config: 'metadata\n    rewrite edns0 local set 0xffee {some-plugin/some-label}',
    upstream: 'echo',
    dig: ['d.local.test', 'A'],
    check(_r, seen) {
      assert.ok(seen !== undefined);
      assert.equal(opt(seen, 0xffee), undefined);
    },
  },
  {
    section: 'EDNS0_LOCAL',
    what: 'local unset 0xffee: the client option does not reach the upstream',
    config: 'rewrite edns0 local unset 0xffee',
    upstream: 'echo',
    dig: ['e.local.test', 'A', '+ednsopt=65518:6162'],
    check(r, seen) {
      assert.ok(seen !== undefined);
      assert.equal(opt(seen, 0xffee), undefined);
      assert.doesNotMatch(r.raw, /OPT=65518/);
    },
  },
  {
    section: 'EDNS0_NSID',
    what: 'nsid set: an empty NSID option is sent, Knot answers with its NSID',
    config: 'rewrite edns0 nsid set',
    upstream: 'knot',
    dig: ['www.google.com', 'A'],
    check(r) {
      assert.match(r.raw, /; NSID: .*\("knot-compat"\)/);
    },
  },
  {
    section: 'EDNS0_SUBNET',
    what: 'subnet set 24 56: the first 24 bits of the IPv4 client address',
    config: 'rewrite edns0 subnet set 24 56',
    upstream: 'echo',
    dig: ['f.local.test', 'A'],
    check(r, seen) {
      assert.equal(opt(seen, 8), '000118007f0000');
      assert.match(r.raw, /CLIENT-SUBNET: 127\.0\.0\.0\/24\/0/);
    },
  },
  {
    section: 'EDNS0_SUBNET',
    what: 'subnet unset: a client subnet option is removed',
    config: 'rewrite edns0 subnet unset',
    upstream: 'echo',
    dig: ['g.local.test', 'A', '+subnet=10.1.2.0/24'],
    check(_r, seen) {
      assert.ok(seen !== undefined);
      assert.equal(opt(seen, 8), undefined);
    },
  },
  {
    section: 'EDNS0 Revert',
    what: 'local set 0xffee abcd revert: the upstream gets it, the response does not contain it',
    config: 'rewrite edns0 local set 0xffee abcd revert',
    upstream: 'echo',
    dig: ['h.local.test', 'A'],
    check(r, seen) {
      assert.equal(opt(seen, 0xffee), '61626364');
      assert.doesNotMatch(r.raw, /OPT=65518/);
    },
  },
  {
    section: 'EDNS0 Revert',
    what: 'set abcd (continue) then replace bcde with revert: the upstream gets bcde, the response carries abcd',
    config: 'rewrite continue {\n        edns0 local set 0xffee abcd\n    }\n    rewrite edns0 local replace 0xffee bcde revert',
    upstream: 'echo',
    dig: ['i.local.test', 'A'],
    check(r, seen) {
      assert.equal(opt(seen, 0xffee), '62636465');
      assert.match(r.raw, /OPT=65518: 61 62 63 64 \("abcd"\)/);
    },
  },
];

/** TTL Field Rewrites: the range examples on example.com. (A has TTL 10, TXT 3600 at Knot). */
function ttlRows(): Row[] {
  const cases: Array<[string, number, number]> = [
    ['30-300', 30, 300],
    ['-30', 10, 30],
    ['30-', 30, 3600],
    ['30', 30, 30],
  ];
  const out: Row[] = [];
  for (const [range, a, txt] of cases) {
    out.push({
      section: 'TTL Field Rewrites',
      what: `ttl example.com. ${range}: A (TTL 10) gets ${a}`,
      config: `rewrite ttl example.com. ${range}`,
      upstream: 'knot',
      dig: ['example.com', 'A'],
      check(r) {
        assert.deepEqual(
          r.answer.map((x) => x.ttl),
          [a],
        );
      },
    });
    out.push({
      section: 'TTL Field Rewrites',
      what: `ttl example.com. ${range}: TXT (TTL 3600) gets ${txt}`,
      config: `rewrite ttl example.com. ${range}`,
      upstream: 'knot',
      dig: ['example.com', 'TXT'],
      check(r) {
        assert.deepEqual(
          r.answer.map((x) => x.ttl),
          [txt],
        );
      },
    });
  }
  out.push({
    section: 'TTL Field Rewrites',
    what: 'ttl example.com. 30-300 leaves www.example.com (another name) alone',
    config: 'rewrite ttl example.com. 30-300',
    upstream: 'knot',
    dig: ['www.example.com', 'A'],
    check(r) {
      assert.deepEqual(
        r.answer.map((x) => x.ttl),
        [600],
      );
    },
  });
  return out;
}

let knot: Authority;
let echo: EchoUpstream;
let agent: AgentProcess;
let host: string;
const ports: number[] = [];

before(async () => {
  knot = await startKnot(
    {
      consul: CONSUL,
      'google.com': GOOGLE,
      'coredns.rocks': COREDNS_ROCKS,
      '10.in-addr.arpa': REVERSE_10,
      'example.com': EXAMPLE_COM,
      blue: BLUE,
      'bad.coredns.rocks': BROKEN,
    },
    { nsid: 'knot-compat' },
  );
  ({ host } = await freeEndpoint());
  echo = await startEchoUpstream(host);
  const blocks: string[] = [];
  for (const row of ROWS) {
    let p: number;
    do p = (await freeAddress(host)).port;
    while (ports.includes(p) || p === echo.port);
    ports.push(p);
    blocks.push(`.:${p} {\n    bind ${host}\n    errors\n    ${row.config}\n    forward . ${row.upstream === 'knot' ? knot.addr : echo.addr}\n}\n`);
  }
  agent = await startAgent(blocks.join(''));
});

after(async () => {
  const code = await agent?.stop();
  await knot?.stop();
  await echo?.stop();
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

for (const [i, row] of ROWS.entries()) {
  test(`[${row.section}] ${row.what}`, async () => {
    const before = echo.queries.length;
    const r = await dig(host, ports[i]!, row.dig);
    const seen = row.upstream === 'echo' ? echo.queries.slice(before).at(-1) : undefined;
    row.check(r, seen);
  });
}

test('[Name Field Rewrites] the error for the illegal name reaches the errors plugin', async () => {
  const i = ROWS.findIndex((r) => r.config.includes('{1}{1}.bad.test'));
  await dig(host, ports[i]!, ['x123456789y123456789z123456789w123456789.bad.test', 'A']);
  assert.match(
    agent.output(),
    /\[ERROR\] plugin\/errors: 2 x123456789y123456789z123456789w123456789\.bad\.test\. A: invalid name after rewrite: x123456789y123456789z123456789w123456789x123456789y123456789z123456789w123456789\.bad\.test\./,
  );
});

test('[CNAME Field Rewrites] not supported here: the agent refuses the Corefile with a clear error', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-rw-compat-'));
  const file = path.join(dir, 'Corefile');
  writeFileSync(file, `.:${ports[0]} {\n    bind ${host}\n    rewrite cname regex (.*).cdn.example.net. {1}.other.cdn.com.\n    forward . ${knot.addr}\n}\n`);
  try {
    const r = await runToExit(['-conf', file]);
    assert.notEqual(r.code, 0);
    assert.match(r.stdout + r.stderr, /Corefile:3 - Error during parsing: plugin\/rewrite: cname rules are not supported by node-local-dns/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
