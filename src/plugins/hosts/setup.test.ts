import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCorefile } from '../../corefile/parser.ts';
import { loadConfig } from '../../config/load.ts';
import { MemoryLogger, TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { parseHosts, hostsSetup } from './setup.ts';

const dir = mkdtempSync(join(tmpdir(), 'nld-hosts-setup-'));
process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
const FIXTURE = join(dir, 'hosts');
writeFileSync(FIXTURE, '10.0.0.1 example.org\n');

/** The hosts directive of `. { ... }` (the directive starts on line 2 of `Corefile`). */
function hostsOf(text: string, zones: string[] = ['.']) {
  const d = parseCorefile(`. {\n${text}\n}\n`, 'Corefile', {})[0]!.directives[0]!;
  return parseHosts(d, zones);
}

test("hosts setup: defaults are CoreDNS's (/etc/hosts, ttl 3600, reload 5s, PTR on, no fallthrough)", () => {
  const { options, warnings } = hostsOf('hosts');
  assert.deepEqual(options, {
    path: '/etc/hosts',
    zones: ['.'],
    ttlSec: 3600,
    autoReverse: true,
    reloadMs: 5000,
    fall: null,
    fallthroughUnsupported: false,
    inline: [],
  });
  assert.deepEqual(warnings, [], 'the default file is not looked at during setup');
});

test('hosts setup: valid forms', () => {
  const rows: [string, Partial<ReturnType<typeof hostsOf>['options']>][] = [
    [`hosts ${FIXTURE}`, { path: FIXTURE, zones: ['.'] }],
    [`hosts ${FIXTURE} miek.nl.`, { zones: ['miek.nl.'] }],
    [`hosts ${FIXTURE} Miek.NL pun.gent.`, { zones: ['miek.nl.', 'pun.gent.'] }],
    [`hosts ${FIXTURE} miek.nl 10.0.0.9/8 {\nfallthrough\n}`, { zones: ['miek.nl.', '10.in-addr.arpa.'], fall: ['.'] }],
    [`hosts ${FIXTURE} 10.0.0.0/15`, { zones: ['0.10.in-addr.arpa.', '1.10.in-addr.arpa.'] }],
    [`hosts ${FIXTURE} example.org:53 dns://example.net`, { zones: ['example.org.', 'example.net.'] }],
    ['hosts {\nfallthrough\n}', { fall: ['.'] }],
    ['hosts {\nfallthrough in-addr.arpa ip6.arpa\n}', { fall: ['in-addr.arpa.', 'ip6.arpa.'] }],
    ['hosts {\nttl 60\n}', { ttlSec: 60 }],
    ['hosts {\nttl 65535\n}', { ttlSec: 65535 }],
    ['hosts {\nttl +5 ignored\n}', { ttlSec: 5 }],
    ['hosts {\nreload 0\n}', { reloadMs: 0 }],
    ['hosts {\nreload 0s\n}', { reloadMs: 0 }],
    ['hosts {\nreload 1.5h\n}', { reloadMs: 5_400_000 }],
    ['hosts {\nreload 300ms\n}', { reloadMs: 300 }],
    ['hosts {\nno_reverse\n}', { autoReverse: false }],
    ['hosts {\nfallthrough\nfallthrough_unsupported\n}', { fall: ['.'], fallthroughUnsupported: true }],
    ['hosts {\nfallthrough_unsupported\nfallthrough example.org\n}', { fall: ['example.org.'], fallthroughUnsupported: true }],
    // Lines before fallthrough that are no property are hosts lines; properties may follow fallthrough.
    ['hosts {\n10.0.0.1 example.org\n  ::1   a b \nfallthrough\nttl 5\n}', { inline: ['10.0.0.1 example.org', '::1 a b'], fall: ['.'], ttlSec: 5 }],
  ];
  for (const [text, want] of rows) {
    const { options } = hostsOf(text);
    for (const [k, v] of Object.entries(want)) assert.deepEqual(options[k as keyof typeof options], v, `${text}: ${k}`);
  }
});

test('hosts setup: each invalid form and its CoreDNS error text', () => {
  const rows: [string, string][] = [
    ['hosts {\nttl\n}', 'Corefile:3 - Error during parsing: ttl needs a time in second'],
    ['hosts {\nttl abc\n}', 'Corefile:3 - Error during parsing: ttl needs a number of second'],
    ['hosts {\nttl 0\n}', 'Corefile:3 - Error during parsing: ttl provided is invalid'],
    ['hosts {\nttl -1\n}', 'Corefile:3 - Error during parsing: ttl provided is invalid'],
    ['hosts {\nttl 65536\n}', 'Corefile:3 - Error during parsing: ttl provided is invalid'],
    ['hosts {\nreload\n}', 'Corefile:3 - Error during parsing: reload needs a duration (zero seconds to disable)'],
    ['hosts {\nreload 1s 2s\n}', 'Corefile:3 - Error during parsing: reload needs a duration (zero seconds to disable)'],
    ['hosts {\nreload often\n}', "Corefile:3 - Error during parsing: invalid duration for reload 'often'"],
    ['hosts {\nreload 5\n}', "Corefile:3 - Error during parsing: invalid duration for reload '5'"],
    ['hosts {\nreload -5s\n}', "Corefile:3 - Error during parsing: invalid negative duration for reload '-5s'"],
    ['hosts {\nfallthrough\n10.0.0.1 example.org\n}', "Corefile:4 - Error during parsing: unknown property '10.0.0.1'"],
    ['hosts {\nfallthrough\nbogus\n}', "Corefile:4 - Error during parsing: unknown property 'bogus'"],
    ['hosts {\nfallthrough_unsupported\n}', 'Corefile:3 - Error during parsing: fallthrough_unsupported requires fallthrough'],
    [
      'hosts {\nfallthrough\nfallthrough_unsupported example.org\n}',
      "Corefile:4 - Error during parsing: Wrong argument count or unexpected line ending after 'example.org'",
    ],
  ];
  for (const [text, msg] of rows) assert.throws(() => hostsOf(text), { message: msg }, text);
});

test('hosts setup: a file that cannot be looked at is an error', () => {
  // A regular file used as a directory: ENOTDIR, which is no "does not exist".
  assert.throws(() => hostsOf(`hosts ${FIXTURE}/x`), {
    message: `Corefile:2 - Error during parsing: unable to access hosts file '${FIXTURE}/x': stat ${FIXTURE}/x: not a directory`,
  });
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked');
    mkdirSync(locked);
    chmodSync(locked, 0o000);
    try {
      assert.throws(() => hostsOf(`hosts ${locked}/hosts`), {
        message: `Corefile:2 - Error during parsing: unable to access hosts file '${locked}/hosts': stat ${locked}/hosts: permission denied`,
      });
    } finally {
      chmodSync(locked, 0o755);
    }
  }
});

test('hosts setup: a missing file or a directory is a warning, not an error', () => {
  const missing = join(dir, 'nope');
  const a = hostsOf(`hosts ${missing}`);
  assert.deepEqual(a.warnings, [`plugin/hosts: File does not exist: ${missing}`]);
  assert.equal(a.missing, true);
  const b = hostsOf(`hosts ${dir}`);
  assert.deepEqual(b.warnings, [`plugin/hosts: Hosts file ${JSON.stringify(dir)} is a directory`]);
  const c = hostsOf(`hosts ${FIXTURE}`);
  assert.deepEqual(c.warnings, []);
  // The setup logs them through the context's logger.
  const log = new MemoryLogger();
  const d = parseCorefile(`. {\nhosts ${missing}\n}\n`, 'Corefile', {})[0]!.directives[0]!;
  hostsSetup.setup(d, setupContext(new TestEngine(), { log }));
  assert.deepEqual(log.lines, [`WARNING plugin/hosts: File does not exist: ${missing}`]);
});

test("hosts setup: once per server block (the loader's rule)", async () => {
  const text = `.:0 {\n  hosts ${FIXTURE}\n  hosts ${FIXTURE}\n}\n`;
  await assert.rejects(
    async () =>
      loadConfig(text, 'Corefile', { defaultBind: ['127.0.0.1'], defaultPort: 0, env: {}, clock: () => 0, log: new MemoryLogger(), engine: new TestEngine() }),
    { message: 'Corefile:3 - Error during parsing: plugin/hosts: this plugin can only be used once per Server Block' },
  );
});
