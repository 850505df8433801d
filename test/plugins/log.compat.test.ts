/**
 * The examples of CoreDNS's plugin/log README against node-local-dns (real agent, Knot
 * upstream, dig). Each row: the README section, the directive, the queries sent and the log
 * lines the README says appear (in our own words). Knot answers NOERROR for www.l.test A,
 * NODATA for www.l.test AAAA, NXDOMAIN for nope.l.test and REFUSED for zones it does not serve.
 * The README's first example pairs log with whoami; forward to Knot stands in for it here.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, sleep, type Authority } from '../engine/harness.ts';
import { logLines, startLogAgent, startLogKnot } from './lib/log-agent.ts';

interface Row {
  section: string;
  body: string;
  queries: [string, string][];
  /** One regular expression per expected log line, in order (the whole line after `[INFO] `). */
  want: RegExp[];
}

const common = (name: string, type: string, rcode: string) =>
  new RegExp(`^127\\.0\\.0\\.\\d+:\\d+ - \\d+ "${type} IN ${name.replace(/\./g, '\\.')}\\. udp \\d+ false \\d+" ${rcode} qr,aa,rd \\d+ [0-9.]+s$`);
const combined = (name: string, type: string, rcode: string, flags = 'qr,aa,rd') =>
  new RegExp(`^127\\.0\\.0\\.\\d+:\\d+ - \\d+ "${type} IN ${name.replace(/\./g, '\\.')}\\. udp \\d+ false \\d+" ${rcode} ${flags} \\d+ [0-9.]+s "0"$`);

const all: [string, string][] = [
  ['www.l.test', 'A'],
  ['www.l.test', 'AAAA'],
  ['nope.l.test', 'A'],
  ['elsewhere.test', 'A'],
];

const rows: Row[] = [
  {
    section: 'Examples: log all requests to stdout',
    body: '    log',
    queries: [
      ['www.l.test', 'A'],
      ['nope.l.test', 'A'],
    ],
    want: [common('www.l.test', 'A', 'NOERROR'), common('nope.l.test', 'A', 'NXDOMAIN')],
  },
  {
    section: 'Examples: custom log format, for all zones',
    body: '    log . "{proto} Request: {name} {type} {>id}"',
    queries: [['www.l.test', 'A']],
    want: [/^udp Request: www\.l\.test\. A \d+$/],
  },
  {
    section: 'Examples: only log denials (NXDOMAIN and nodata) for example.org and below (l.test here)',
    body: '    log l.test {\n        class denial\n    }',
    queries: all,
    want: [common('www.l.test', 'AAAA', 'NOERROR'), common('nope.l.test', 'A', 'NXDOMAIN')],
  },
  {
    section: 'Examples: log queries not resolved successfully in the Combined Log Format',
    body: '    log . {combined} {\n        class denial error\n    }',
    queries: all,
    want: [combined('www.l.test', 'AAAA', 'NOERROR'), combined('nope.l.test', 'A', 'NXDOMAIN'), combined('elsewhere.test', 'A', 'REFUSED', 'qr,rd')],
  },
  {
    section: 'Examples: log all queries on which we did not get errors',
    body: '    log . {\n        class denial success\n    }',
    queries: all,
    want: [common('www.l.test', 'A', 'NOERROR'), common('www.l.test', 'AAAA', 'NOERROR'), common('nope.l.test', 'A', 'NXDOMAIN')],
  },
  {
    section: 'Examples: the same, with the classes OR-ed over two class lines',
    body: '    log . {\n        class denial\n        class success\n    }',
    queries: all,
    want: [common('www.l.test', 'A', 'NOERROR'), common('www.l.test', 'AAAA', 'NOERROR'), common('nope.l.test', 'A', 'NXDOMAIN')],
  },
  {
    section: 'Additional metadata: {/log/class} and {/log/type} (with the metadata plugin, which CoreDNS needs for any {/LABEL})',
    body: '    metadata\n    log . "{proto} Request: {name} {type} {/log/class} {/log/type}"',
    queries: [
      ['www.l.test', 'A'],
      ['www.l.test', 'AAAA'],
      ['nope.l.test', 'A'],
    ],
    want: [
      /^udp Request: www\.l\.test\. A success NOERROR$/,
      /^udp Request: www\.l\.test\. AAAA denial NODATA$/,
      /^udp Request: nope\.l\.test\. A denial NXDOMAIN$/,
    ],
  },
  {
    section: 'Log Format: {/LABEL} is - when the label is not defined (no metadata plugin)',
    body: '    log . "{name} {/log/class} {/log/type}"',
    queries: [['www.l.test', 'A']],
    want: [/^www\.l\.test\. - -$/],
  },
];

let knot: Authority;
before(async () => {
  knot = await startLogKnot();
});
after(async () => {
  await knot?.stop();
});

for (const row of rows) {
  test(`README ${row.section}`, async () => {
    const { agent, host, port } = await startLogAgent(knot, row.body);
    try {
      for (const [name, type] of row.queries) await dig(host, port, [name, type]);
      await sleep(300);
      const got = logLines(agent).map((l) => l.slice('[INFO] '.length));
      assert.equal(got.length, row.want.length, got.join('\n'));
      row.want.forEach((re, i) => assert.match(got[i]!, re));
    } finally {
      await agent.stop();
    }
  });
}
