/**
 * CoreDNS's dnstap README examples (section "Examples"), each run against node-local-dns with
 * NSD as the upstream and fstrm_capture as the receiver, asserting what the README says the
 * example does. Socket paths become temp paths, `tcp://127.0.0.1:6000` a free port,
 * `example.com` becomes `localhost` (resolved from /etc/hosts: no traffic leaves the box).
 * Rows for what node-local-dns does not do (TLS, `listen`) assert the clear config error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { rawQuery, runToExit, startAgent, udpExchange } from '../engine/harness.ts';
import { startNsd } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { haveTools, readExtras, startCapture, type Capture, type DnstapRecord } from './lib/fstrm.ts';

const skip = haveTools() ? false : 'fstrm_capture / dnstap-ldns not installed';

interface Row {
  /** What the README example says, in our words. */
  says: string;
  /** `tcp-localhost`: a TCP receiver on 127.0.0.1 (what `localhost` resolves to). */
  receivers: ('unix' | 'tcp' | 'tcp-localhost')[];
  /** The plugin lines; SOCK0/SOCK1 are the receivers' sockets (`/path`, `unix:///path` or `host:port`). */
  lines: (socks: Capture[]) => string;
  check: (recs: DnstapRecord[][], caps: Capture[]) => void;
}

const bare = (c: Capture): string => c.socketArg.replace(/^unix:\/\//, '');
const hostPort = (c: Capture): string => c.socketArg.replace(/^tcp:\/\//, '');
const kinds = (rs: DnstapRecord[]): string[] => rs.map((r) => r.type);
const CLIENT_ONLY_AND_FORWARD = ['CLIENT_QUERY', 'FORWARDER_QUERY', 'FORWARDER_RESPONSE', 'CLIENT_RESPONSE'];

const ROWS: Row[] = [
  {
    says: 'Examples: client requests and responses logged to a socket given as a path (no wire messages)',
    receivers: ['unix'],
    lines: ([a]) => `dnstap ${bare(a!)}`,
    check: ([r]) => {
      assert.deepEqual(kinds(r!), CLIENT_ONLY_AND_FORWARD);
      assert.ok(r!.every((x) => !x.hasQueryMessage && !x.hasResponseMessage));
    },
  },
  {
    says: 'Examples: custom TCP write buffer (1024 MiB) and queue (2048 x 10000) with full',
    receivers: ['unix'],
    lines: ([a]) => `dnstap ${bare(a!)} full 1024 2048`,
    check: ([r]) => {
      assert.deepEqual(kinds(r!), CLIENT_ONLY_AND_FORWARD);
      assert.ok(r![0]!.hasQueryMessage);
    },
  },
  {
    says: 'Examples: unix:// socket with full: the wire-format messages are included',
    receivers: ['unix'],
    lines: ([a]) => `dnstap ${a!.socketArg} full`,
    check: ([r]) => {
      assert.deepEqual(kinds(r!), CLIENT_ONLY_AND_FORWARD);
      assert.equal(r![0]!.qname, 'www.example.test.');
      assert.ok(r![3]!.hasResponseMessage);
      assert.match(r![3]!.text, /192\.0\.2\.80/);
    },
  },
  {
    says: 'Examples: log to a remote endpoint (tcp://IP:port, full)',
    receivers: ['tcp'],
    lines: ([a]) => `dnstap ${a!.socketArg} full`,
    check: ([r]) => {
      assert.deepEqual(kinds(r!), CLIENT_ONLY_AND_FORWARD);
      assert.equal(r![0]!.qname, 'www.example.test.');
    },
  },
  {
    says: 'Examples: log to a remote endpoint by FQDN (tcp://name:port)',
    receivers: ['tcp-localhost'],
    lines: ([a]) => `dnstap tcp://localhost:${hostPort(a!).split(':')[1]} full`,
    check: ([r]) => assert.deepEqual(kinds(r!), CLIENT_ONLY_AND_FORWARD),
  },
  {
    says: 'Examples: identity and version overridden',
    receivers: ['unix'],
    lines: ([a]) => `dnstap ${bare(a!)} {\n      identity my-dns-server1\n      version MyDNSServer-1.2.3\n    }`,
    check: ([r]) => {
      for (const x of r!) {
        assert.equal(x.identity, 'my-dns-server1');
        assert.equal(x.version, 'MyDNSServer-1.2.3');
      }
    },
  },
  {
    says: 'Examples: "extra" with metadata from other plugins: upstream: {/forward/upstream}',
    receivers: ['unix'],
    lines: ([a]) => `metadata\n    dnstap ${bare(a!)} {\n      extra "upstream: {/forward/upstream}"\n    }`,
    check: (_r, [a]) => {
      const ex = readExtras(a!.file);
      assert.equal(ex.length, 4);
      // CoreDNS: the label is set when forward picks the upstream, so the client query (tapped
      // before) has none; the forwarder messages and the client response name it.
      assert.equal(ex[0]!.extra, 'upstream: -');
      for (const e of ex.slice(1)) assert.match(e.extra ?? '', /^upstream: 127\.0\.0\.\d+:\d+$/);
    },
  },
  {
    says: 'Examples: dnstap more than once: full to a socket and without wire messages to a remote endpoint',
    receivers: ['unix', 'tcp'],
    lines: ([a, b]) => `dnstap ${bare(a!)} full\n    dnstap ${b!.socketArg}`,
    check: ([r1, r2]) => {
      assert.deepEqual(kinds(r1!), CLIENT_ONLY_AND_FORWARD);
      assert.deepEqual(kinds(r2!), CLIENT_ONLY_AND_FORWARD);
      assert.ok(r1![0]!.hasQueryMessage);
      assert.ok(r2!.every((x) => !x.hasQueryMessage && !x.hasResponseMessage));
    },
  },
];

for (const row of ROWS) {
  test(`dnstap README: ${row.says}`, { skip, timeout: 60_000 }, async () => {
    const caps: Capture[] = [];
    const nsd = await startNsd();
    try {
      for (const k of row.receivers) {
        caps.push(k === 'tcp-localhost' ? await startCapture('tcp', await freeAddress('127.0.0.1')) : await startCapture(k));
      }
      const dns = await freeAddress();
      const agent = await startAgent(`.:${dns.port} {\n    bind ${dns.host}\n    ${row.lines(caps)}\n    forward . ${nsd.addr}\n}\n`);
      try {
        const reply = await udpExchange(dns.host, dns.port, rawQuery('www.example.test', 1, 0x0101));
        assert.ok(reply !== null, 'answered');
      } finally {
        await agent.stop();
      }
      const recs: DnstapRecord[][] = [];
      for (const c of caps) recs.push(await c.records());
      row.check(recs, caps);
    } finally {
      for (const c of caps) {
        await c.stop();
        c.cleanup();
      }
      await nsd.stop();
    }
  });
}

const UNSUPPORTED: [string, string, RegExp][] = [
  [
    'Examples: log to a remote TLS endpoint (tls://, skipverify)',
    'dnstap tls://127.0.0.1:6000 full {\n  skipverify\n}',
    /dnstap: tls:\/\/ endpoints are not supported by node-local-dns/,
  ],
  [
    'Examples: listen for sink connections on a Unix socket',
    'dnstap listen /tmp/dnstap.sock full',
    /dnstap listen \(accepting sink connections\) is not supported/,
  ],
  ['Examples: listen on TCP', 'dnstap listen tcp://127.0.0.1:6000 full', /dnstap listen \(accepting sink connections\) is not supported/],
];

for (const [says, line, err] of UNSUPPORTED) {
  test(`dnstap README (not supported, clear error): ${says}`, async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-dnstap-compat-'));
    try {
      const file = path.join(dir, 'Corefile');
      writeFileSync(file, `.:1053 {\n${line}\n}\n`);
      const r = await runToExit(['-conf', file]);
      assert.notEqual(r.code, 0);
      assert.match(r.stdout + r.stderr, /Corefile:2 - Error during parsing: /);
      assert.match(r.stdout + r.stderr, err);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
