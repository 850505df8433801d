/**
 * `dnstap` and `metadata` lines through the real config loader: the taps configured for valid
 * forms (CoreDNS's defaults: hostname identity, not full, 10,000-message queue, 1 MiB write
 * buffer), and each invalid form's exact `Corefile:N - Error during parsing:` text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import type { EngineHooks, Logger } from '../../plugin.ts';
import { loadConfig } from '../../config/load.ts';
import { CorefileError } from '../../corefile/errors.ts';
import { VERSION } from '../../version.ts';
import type { DnstapPlugin } from './dnstap.ts';
import type { MetadataPlugin } from '../metadata/metadata.ts';

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

async function load(body: string) {
  const cfg = await loadConfig(`.:53 {\n${body}\n}\n`, 'Corefile', {
    defaultBind: ['127.0.0.1'],
    defaultPort: 53,
    env: {},
    clock: () => performance.now(),
    log: quietLog,
    engine: idleEngine,
  });
  return cfg.blocks[0]!.plugins;
}

async function taps(body: string) {
  const p = (await load(body)).find((x) => x.name === 'dnstap') as DnstapPlugin;
  return p.taps.map((t) => ({
    socket: t.config.socket,
    endpoint: t.client.opts.endpoint,
    full: t.config.full,
    identity: t.config.identity.toString(),
    version: t.config.version.toString(),
    extra: t.config.extra,
    skipVerify: t.config.skipVerify,
    queue: t.client.opts.queueCapacity,
    writeBuffer: t.client.opts.writeBufferBytes,
  }));
}

const BASE = { full: false, identity: hostname(), version: `node-local-dns-${VERSION}`, extra: null, skipVerify: false, queue: 10_000, writeBuffer: 1 << 20 };

test('dnstap: valid forms', async () => {
  assert.deepEqual(await taps('dnstap /tmp/dnstap.sock'), [{ ...BASE, socket: '/tmp/dnstap.sock', endpoint: { kind: 'unix', path: '/tmp/dnstap.sock' } }]);
  assert.deepEqual(await taps('dnstap unix:///tmp/dnstap.sock full'), [
    { ...BASE, full: true, socket: 'unix:///tmp/dnstap.sock', endpoint: { kind: 'unix', path: '/tmp/dnstap.sock' } },
  ]);
  assert.deepEqual(await taps('dnstap tcp://127.0.0.1:6000 full'), [
    { ...BASE, full: true, socket: 'tcp://127.0.0.1:6000', endpoint: { kind: 'tcp', host: '127.0.0.1', port: 6000 } },
  ]);
  assert.deepEqual((await taps('dnstap tcp://[::1]:6000'))[0]!.endpoint, { kind: 'tcp', host: '::1', port: 6000 });
  assert.deepEqual((await taps('dnstap tcp://example.com:6000 full'))[0]!.endpoint, { kind: 'tcp', host: 'example.com', port: 6000 });
  // Only the exact word `full` turns wire messages on; another second word is ignored (CoreDNS).
  assert.equal((await taps('dnstap /tmp/s nofull'))[0]!.full, false);
  const big = (await taps('dnstap /tmp/dnstap.sock full 1024 2048'))[0]!;
  assert.equal(big.writeBuffer, 1024 << 20);
  assert.equal(big.queue, 2048 * 10_000);
  assert.deepEqual(
    await taps('dnstap /tmp/dnstap.sock {\n identity my-dns-server1\n version MyDNSServer-1.2.3\n extra "upstream: {/forward/upstream}"\n skipverify\n}'),
    [
      {
        ...BASE,
        socket: '/tmp/dnstap.sock',
        endpoint: { kind: 'unix', path: '/tmp/dnstap.sock' },
        identity: 'my-dns-server1',
        version: 'MyDNSServer-1.2.3',
        extra: 'upstream: {/forward/upstream}',
        skipVerify: true,
      },
    ],
  );
  // Several lines: several taps, in order, one handler.
  const two = await taps('dnstap /tmp/dnstap.sock full\ndnstap tcp://127.0.0.1:6000');
  assert.deepEqual(
    two.map((t) => [t.socket, t.full]),
    [
      ['/tmp/dnstap.sock', true],
      ['tcp://127.0.0.1:6000', false],
    ],
  );
  assert.equal((await load('dnstap /tmp/a\ndnstap /tmp/b')).filter((p) => p.name === 'dnstap').length, 1);
});

test('dnstap: invalid forms and their errors', async () => {
  const cases: [string, string][] = [
    ['dnstap', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'dnstap'"],
    ['dnstap /tmp/s full x', 'Corefile:2 - Error during parsing: dnstap: invalid MultipleTcpWriteBuf "x": strconv.Atoi: parsing "x": invalid syntax'],
    ['dnstap /tmp/s full 0', 'Corefile:2 - Error during parsing: dnstap: MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 0'],
    ['dnstap /tmp/s full 1025', 'Corefile:2 - Error during parsing: dnstap: MultipleTcpWriteBuf must be between 1 and 1024 (MiB units): 1025'],
    ['dnstap /tmp/s full 1 y', 'Corefile:2 - Error during parsing: dnstap: invalid MultipleQueue "y": strconv.Atoi: parsing "y": invalid syntax'],
    ['dnstap /tmp/s full 1 0', 'Corefile:2 - Error during parsing: dnstap: MultipleQueue must be between 1 and 4096 (x10k messages): 0'],
    ['dnstap /tmp/s full 1 4097', 'Corefile:2 - Error during parsing: dnstap: MultipleQueue must be between 1 and 4096 (x10k messages): 4097'],
    ['dnstap /tmp/s {\n identity\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'identity'"],
    ['dnstap /tmp/s {\n version\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'version'"],
    ['dnstap /tmp/s {\n extra\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'extra'"],
    ['dnstap /tmp/s {\n identity a b\n}', "Corefile:3 - Error during parsing: unknown property 'b'"],
    ['dnstap /tmp/s {\n foo bar\n}', "Corefile:3 - Error during parsing: unknown property 'foo'"],
    ['dnstap /tmp/s {\n tls a b\n}', 'Corefile:3 - Error during parsing: tls directive only valid for listeners'],
    ['dnstap listen', 'Corefile:2 - Error during parsing: dnstap listen requires an endpoint argument'],
    [
      'dnstap listen /tmp/s',
      'Corefile:2 - Error during parsing: dnstap listen (accepting sink connections) is not supported by node-local-dns; give the address of a receiver to connect to',
    ],
    [
      'dnstap tls://127.0.0.1:6000',
      'Corefile:2 - Error during parsing: dnstap: tls:// endpoints are not supported by node-local-dns: tls://127.0.0.1:6000 (use unix:// or tcp://)',
    ],
    ['dnstap tcp://127.0.0.1', 'Corefile:2 - Error during parsing: dnstap: missing port in address "127.0.0.1"'],
    ['dnstap tcp://[::1', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'tcp://[::1'"],
  ];
  for (const [body, message] of cases) {
    await assert.rejects(load(body), (e: unknown) => e instanceof CorefileError && e.message === message, body);
  }
});

test('metadata: valid forms and errors', async () => {
  const md = async (body: string) => ((await load(body)).find((p) => p.name === 'metadata') as MetadataPlugin).zones;
  assert.deepEqual(await md('metadata'), ['.']);
  assert.deepEqual(await md('metadata example.org Cluster.Local.'), ['example.org.', 'cluster.local.']);
  assert.deepEqual(await md('metadata {\n}'), ['.']);
  await assert.rejects(
    load('metadata {\n  foo\n}'),
    (e: unknown) => e instanceof CorefileError && e.message === "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'foo'",
  );
});
