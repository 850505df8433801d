/**
 * Corefile text → loaded server blocks: zones, port, addresses and plugin chain order, or the
 * exact CorefileError (`file:line - Error during parsing: ...`). Loading binds nothing, so the
 * seed article's Corefile (bind 169.254.20.10, forward to 10.96.0.10) loads without that network.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import type { EngineHooks, Logger } from '../plugin.ts';
import { loadConfig, serverLabel, type LoadOptions } from './load.ts';
import { CorefileError } from '../corefile/errors.ts';

const SEED = '/work/shared/seeds/000_f0ec9b0865732a83.txt';

/** The engine hooks plugins see at setup; setup does not call them (no side effects). */
const idleEngine: EngineHooks = {
  reload: () => Promise.resolve(),
  isReady: () => false,
  isShuttingDown: () => false,
  blocks: () => [],
  fatal: (msg: string): never => {
    throw new Error(`fatal during setup: ${msg}`);
  },
  corefilePath: () => null,
  corefileText: () => '',
  pluginSetups: () => [],
};

const quietLog: Logger = { info() {}, warn() {}, error() {} };

function options(over: Partial<LoadOptions> = {}): LoadOptions {
  return {
    defaultBind: ['127.0.0.1'],
    defaultPort: 53,
    env: {},
    clock: () => performance.now(),
    log: quietLog,
    engine: idleEngine,
    ...over,
  };
}

interface Shape {
  zones: string[];
  port: number;
  addresses: string[];
  plugins: string[];
}

async function load(text: string, over: Partial<LoadOptions> = {}): Promise<Shape[]> {
  return (await loadConfig(text, 'Corefile', options(over))).blocks.map((b) => ({
    zones: b.zones,
    port: b.port,
    addresses: b.addresses,
    plugins: b.plugins.map((p) => p.name),
  }));
}

async function loadError(text: string): Promise<string> {
  try {
    await loadConfig(text, 'Corefile', options());
  } catch (err) {
    assert.ok(err instanceof CorefileError, `expected a CorefileError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('the Corefile loaded, an error was expected');
}

const ok: [string, string, Shape[]][] = [
  ['one root block, default port and address', '. {\n  errors\n}\n', [{ zones: ['.'], port: 53, addresses: ['127.0.0.1'], plugins: ['errors'] }]],
  [
    'chain order is plugin.cfg order, not the order of the lines',
    '.:5300 {\n  forward . 127.0.0.1:53\n  cache 30\n  log\n  errors\n}\n',
    [{ zones: ['.'], port: 5300, addresses: ['127.0.0.1'], plugins: ['errors', 'log', 'cache', 'forward'] }],
  ],
  [
    'several zones in one block, normalised to lower case and fully qualified',
    'Cluster.Local:53 in-addr.arpa.:53 {\n  errors\n}\n',
    [{ zones: ['cluster.local.', 'in-addr.arpa.'], port: 53, addresses: ['127.0.0.1'], plugins: ['errors'] }],
  ],
  [
    'keys with different ports in one block become one block per port',
    'a.test:53 b.test:53 c.test:5353 {\n  errors\n}\n',
    [
      { zones: ['a.test.', 'b.test.'], port: 53, addresses: ['127.0.0.1'], plugins: ['errors'] },
      { zones: ['c.test.'], port: 5353, addresses: ['127.0.0.1'], plugins: ['errors'] },
    ],
  ],
  [
    'a key without a port takes the default port; dns:// is accepted',
    'dns://example.test {\n  errors\n}\nexample.test:5301 {\n  errors\n}\n',
    [
      { zones: ['example.test.'], port: 53, addresses: ['127.0.0.1'], plugins: ['errors'] },
      { zones: ['example.test.'], port: 5301, addresses: ['127.0.0.1'], plugins: ['errors'] },
    ],
  ],
  [
    'a CIDR key is its reverse zone',
    '10.0.0.0/8:53 {\n  errors\n}\n',
    [{ zones: ['10.in-addr.arpa.'], port: 53, addresses: ['127.0.0.1'], plugins: ['errors'] }],
  ],
  [
    'bind lines add up; IPv6 literals, bracketed or not',
    '.:53 {\n  bind 127.0.0.1 [::1]\n  bind 127.0.0.2\n  errors\n}\n',
    [{ zones: ['.'], port: 53, addresses: ['127.0.0.1', '::1', '127.0.0.2'], plugins: ['bind', 'errors'] }],
  ],
  [
    'bind except removes an address',
    '.:53 {\n  bind 127.0.0.1 127.0.0.2 {\n    except 127.0.0.1\n  }\n}\n',
    [{ zones: ['.'], port: 53, addresses: ['127.0.0.2'], plugins: ['bind'] }],
  ],
  [
    'the same zone and port on different bind addresses is allowed',
    '.:53 {\n  bind 127.0.0.1\n}\n.:53 {\n  bind 127.0.0.2\n}\n',
    [
      { zones: ['.'], port: 53, addresses: ['127.0.0.1'], plugins: ['bind'] },
      { zones: ['.'], port: 53, addresses: ['127.0.0.2'], plugins: ['bind'] },
    ],
  ],
  ['log may appear twice in a block', '.:53 {\n  log a.test\n  log b.test\n}\n', [{ zones: ['.'], port: 53, addresses: ['127.0.0.1'], plugins: ['log'] }]],
];

for (const [name, text, want] of ok) {
  test(`load: ${name}`, async () => {
    assert.deepEqual(await load(text), want);
  });
}

test('load: default bind addresses and port come from the options (node-cache -localip, -dns.port)', async () => {
  assert.deepEqual(await load('cluster.local {\n  errors\n}\n', { defaultBind: ['169.254.20.10', '10.0.0.10'], defaultPort: 1053 }), [
    { zones: ['cluster.local.'], port: 1053, addresses: ['169.254.20.10', '10.0.0.10'], plugins: ['errors'] },
  ]);
});

test('load: server labels are dns://ADDR:PORT, IPv6 in brackets', async () => {
  const cfg = await loadConfig('.:53 {\n  bind 127.0.0.1 ::1\n}\n', 'Corefile', options());
  assert.deepEqual(cfg.blocks[0]!.serverLabels, ['dns://127.0.0.1:53', 'dns://[::1]:53']);
  assert.equal(serverLabel('fd00::10', 5353), 'dns://[fd00::10]:5353');
  // As Go's TCPAddr prints them (CoreDNS core/dnsserver groups listeners by that text).
  assert.equal(serverLabel('FD00:0:0::10', 53), 'dns://[fd00::10]:53');
  assert.equal(serverLabel('::ffff:198.18.0.10', 53), 'dns://198.18.0.10:53');
});

test('load: bind with an interface name listens on its addresses (link-local IPv6 skipped)', async () => {
  const lo = networkInterfaces().lo;
  assert.ok(lo, 'this machine has a loopback interface named lo');
  const want = lo.filter((a) => !(a.family === 'IPv6' && a.address.startsWith('fe80'))).map((a) => a.address);
  const [block] = await load('.:53 {\n  bind lo\n}\n');
  assert.deepEqual(block!.addresses, want);
  assert.ok(block!.addresses.includes('127.0.0.1'));
});

test("load: the seed article's Corefile (k8s-dns-node-cache 1.x, CoreDNS 1.6.7)", async () => {
  const article = readFileSync(SEED, 'utf8');
  const start = article.indexOf('cluster.local:53 {');
  // The Corefile is printed by node-cache between `Using config file:` and its next log line.
  const end = article.indexOf('\n2020/', start);
  assert.ok(start > 0 && end > start, 'the seed article holds the Corefile');
  const text = article.slice(start, end);
  const cfg = await loadConfig(text, 'Corefile', options());
  const common = ['reload', 'bind', 'prometheus', 'errors', 'cache', 'loop', 'forward'];
  assert.deepEqual(
    cfg.blocks.map((b) => ({ zones: b.zones, port: b.port, addresses: b.addresses, plugins: b.plugins.map((p) => p.name) })),
    [
      {
        zones: ['cluster.local.'],
        port: 53,
        addresses: ['169.254.20.10'],
        plugins: ['reload', 'bind', 'health', 'prometheus', 'errors', 'cache', 'loop', 'forward'],
      },
      { zones: ['in-addr.arpa.'], port: 53, addresses: ['169.254.20.10'], plugins: common },
      { zones: ['ip6.arpa.'], port: 53, addresses: ['169.254.20.10'], plugins: common },
      { zones: ['.'], port: 53, addresses: ['169.254.20.10'], plugins: common },
    ],
  );
  assert.deepEqual(
    cfg.blocks.map((b) => b.line),
    [1, 16, 27, 38],
  );
  assert.ok(
    cfg.blocks.every((b) => b.errorSink !== null),
    'every block has errors, so errors are reported',
  );
});

const bad: [string, string, string][] = [
  ['unknown directive', '.:53 {\n  errors\n  foo bar\n}\n', "Corefile:3 - Error during parsing: Unknown directive 'foo'"],
  [
    'CoreDNS plugin not implemented here',
    '.:53 {\n  kubernetes cluster.local\n}\n',
    "Corefile:2 - Error during parsing: plugin 'kubernetes' is not supported by node-local-dns",
  ],
  [
    'CoreDNS plugin not implemented here (file)',
    '.:53 {\n  errors\n\n  file db.example.org example.org\n}\n',
    "Corefile:4 - Error during parsing: plugin 'file' is not supported by node-local-dns",
  ],
  [
    'duplicate plugin in a block',
    '.:53 {\n  cache 30\n  errors\n  cache 10\n}\n',
    'Corefile:4 - Error during parsing: plugin/cache: this plugin can only be used once per Server Block',
  ],
  [
    'duplicate errors in a block',
    '.:53 {\n  errors\n  errors\n}\n',
    'Corefile:3 - Error during parsing: plugin/errors: this plugin can only be used once per Server Block',
  ],
  [
    'same zone twice on the same address and port',
    '.:53 {\n  errors\n}\n\n.:53 {\n  log\n}\n',
    'Corefile:5 - Error during parsing: cannot serve dns://.:53 on 127.0.0.1 - it is already defined',
  ],
  [
    'same zone twice on the same address and port, spelled differently',
    'Cluster.Local:53 {\n  errors\n}\ncluster.local.:53 {\n  errors\n}\n',
    'Corefile:4 - Error during parsing: cannot serve dns://cluster.local.:53 on 127.0.0.1 - it is already defined',
  ],
  [
    'same zone on overlapping bind addresses',
    '.:53 {\n  bind 127.0.0.1 127.0.0.2\n}\n.:53 {\n  bind 127.0.0.2\n}\n',
    'Corefile:4 - Error during parsing: cannot serve dns://.:53 on 127.0.0.2 - it is already defined',
  ],
  [
    'same zone twice in one block',
    'a.test:53 A.test.:53 {\n  errors\n}\n',
    'Corefile:1 - Error during parsing: cannot serve dns://a.test.:53 - it is already defined',
  ],
  [
    'bind with a bad address',
    '.:53 {\n  bind 1.2.3.4.5\n}\n',
    'Corefile:2 - Error during parsing: failed to bind on 1.2.3.4.5: not an IP address or a network interface name',
  ],
  ['bind with no argument', '.:53 {\n  bind\n}\n', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'bind'"],
  [
    'bind except leaving nothing',
    '.:53 {\n  bind 127.0.0.1 {\n    except 127.0.0.1\n  }\n}\n',
    'Corefile:2 - Error during parsing: bind: no address left to listen on after except',
  ],
  ['bind with an unknown property', '.:53 {\n  bind 127.0.0.1 {\n    only 127.0.0.1\n  }\n}\n', "Corefile:3 - Error during parsing: unknown property 'only'"],
  ['port out of range', '.:99999 {\n  errors\n}\n', "Corefile:1 - Error during parsing: port 99999 out of range 0..65535 in server key '.:99999'"],
  ['a non-numeric port', '.:dns {\n  errors\n}\n', "Corefile:1 - Error during parsing: invalid port 'dns' in server key '.:dns'"],
  [
    'tls:// is not served',
    'tls://.:853 {\n  errors\n}\n',
    "Corefile:1 - Error during parsing: scheme 'tls://' in server key 'tls://.:853': only dns:// is served by node-local-dns",
  ],
  [
    'an error inside a plugin setup keeps its line',
    '.:53 {\n  errors\n  cache {\n    success 9984 30\n    denial\n  }\n}\n',
    "Corefile:5 - Error during parsing: Wrong argument count or unexpected line ending after 'denial'",
  ],
];

for (const [name, text, want] of bad) {
  test(`load error: ${name}`, async () => {
    assert.equal(await loadError(text), want);
  });
}

test('load error: the file name given is the one in the message', async () => {
  await assert.rejects(loadConfig('.:53 {\n  nope\n}\n', '/etc/coredns/Corefile', options()), {
    message: "/etc/coredns/Corefile:2 - Error during parsing: Unknown directive 'nope'",
  });
});
