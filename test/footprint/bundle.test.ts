/**
 * The image's production bundle (docker/bundle.mjs, Dockerfile stage `bundle`; bench/PROFILE.md,
 * Footprint): built here into a directory laid out as the image's /app (bin/, dist/,
 * package.json, build/Release/udp.node) and run with a Corefile against a real Knot upstream.
 * It must answer, load the addon from ../build/Release, write -pidfile (server-mode chunk), keep
 * the on-demand plugins in chunks of their own that load only when a Corefile names them, run
 * -workers N from dist/worker.js, never load a src/ file, and (builtins read through
 * process.getBuiltinModule, read-regular/glob/pidfile on callback fs) never load fs/promises in
 * `-conf` mode. A preload written here records resolved module URLs and, at exit,
 * process.moduleLoadList; it imports nothing itself (an ES import of node:fs would load
 * fs/promises).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, dig, startKnot } from '../engine/harness.ts';
import { CLUSTER_LOCAL, EXAMPLE_NET } from '../engine/zones.ts';
import { freeAddress, waitUntil } from '../lib/net.ts';

const ADDON = path.join(ROOT, 'build/Release/udp.node');

const PRELOAD = `const fs = process.getBuiltinModule('node:fs');
const { registerHooks } = process.getBuiltinModule('node:module');
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); fs.appendFileSync(process.env.RECORD_MODULES_OUT, r.url + '\\n'); return r; } });
process.on('exit', () => fs.writeFileSync(process.env.RECORD_BUILTINS_OUT, process.moduleLoadList.join('\\n')));
`;

/** The bundle in a fresh directory laid out as the image's /app. */
function buildApp(): string {
  const app = mkdtempSync(path.join(tmpdir(), 'nld-bundle-'));
  const r = spawnSync(NODE, [path.join(ROOT, 'docker/bundle.mjs'), app], { encoding: 'utf8' });
  assert.equal(r.status, 0, `docker/bundle.mjs failed:\n${r.stdout}${r.stderr}`);
  copyFileSync(path.join(ROOT, 'package.json'), path.join(app, 'package.json'));
  if (existsSync(ADDON)) {
    mkdirSync(path.join(app, 'build/Release'), { recursive: true });
    copyFileSync(ADDON, path.join(app, 'build/Release/udp.node'));
  }
  return app;
}

/** The dist/ chunk holding `src/<rel>` (esbuild names each module in a comment). */
function chunkOf(app: string, rel: string): string {
  const dist = path.join(app, 'dist');
  const found = readdirSync(dist).filter((f) => readFileSync(path.join(dist, f), 'utf8').includes(`\n// src/${rel}\n`));
  assert.equal(found.length, 1, `one chunk holds src/${rel}: ${found.join(', ')}`);
  return path.join(dist, found[0]!);
}

interface Run {
  pid: number;
  out: () => string;
  loaded: () => string[];
  /** process.moduleLoadList, once the process has exited. */
  builtins: () => string[];
  stop: () => Promise<void>;
}

/** Starts the bundled entry with the image's flags, recording every module URL it resolves. */
async function startBundle(app: string, dir: string, name: string, corefile: string, extra: string[] = []): Promise<Run> {
  const conf = path.join(dir, `${name}.Corefile`);
  writeFileSync(conf, corefile);
  const record = path.join(dir, `${name}.modules.txt`);
  writeFileSync(record, '');
  const builtins = path.join(dir, `${name}.builtins.txt`);
  const preload = path.join(dir, 'record.mjs');
  writeFileSync(preload, PRELOAD);
  const proc = spawn(NODE, ['--max-semi-space-size=4', '--import', preload, path.join(app, 'bin/node-local-dns.js'), '-conf', conf, ...extra], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RECORD_MODULES_OUT: record, RECORD_BUILTINS_OUT: builtins, NODE_COMPILE_CACHE: path.join(dir, 'cache') },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
  };
  try {
    await waitUntil(() => /\] node-local-dns-\S+ .*serving/.test(out) || proc.exitCode !== null, 'the serving line', 45_000);
  } catch (err) {
    await stop();
    throw new Error(`${(err as Error).message}\n${out}`);
  }
  assert.match(out, /serving/, out);
  return {
    pid: proc.pid!,
    out: () => out,
    loaded: () => readFileSync(record, 'utf8').split('\n').filter(Boolean),
    builtins: () => readFileSync(builtins, 'utf8').split('\n'),
    stop,
  };
}

const block = (zone: string, port: number, plugins: string[]): string =>
  `${zone}:${port} {\n${plugins.map((p) => `    ${p}\n`).join('')}    bind 127.0.0.1\n}\n`;

test('the production bundle answers, keeps on-demand plugins lazy, runs workers from dist/ and loads nothing from src/', async (t) => {
  const knot = await startKnot({ 'cluster.local': CLUSTER_LOCAL, 'example.net': EXAMPLE_NET });
  t.after(() => knot.stop());
  const app = buildApp();
  t.after(() => rmSync(app, { recursive: true, force: true }));
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-bundle-run-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  // Same shebang (the image's flags) as the source entry; the worker script beside the chunks.
  assert.equal(
    readFileSync(path.join(app, 'bin/node-local-dns.js'), 'utf8').split('\n')[0],
    readFileSync(path.join(ROOT, 'bin/node-local-dns.js'), 'utf8').split('\n')[0],
  );
  assert.ok(existsSync(path.join(app, 'dist/worker.js')), 'dist/worker.js');
  // Every import.meta.url of a src/ module became its place in the image's layout (../src/...
  // from dist/), never a path into the tree the bundle was built from.
  const metaUrls = readdirSync(path.join(app, 'dist')).flatMap((f) =>
    [...readFileSync(path.join(app, 'dist', f), 'utf8').matchAll(/new URL\("([^"]+\.ts)", import\.meta\.url\)/g)].map((m) => m[1]!),
  );
  assert.ok(metaUrls.includes('../src/version.ts') && metaUrls.includes('../src/server/udp-native.ts'), metaUrls.join(', '));
  assert.deepEqual(
    metaUrls.filter((u) => !/^\.\.\/src\/[\w/.-]+\.ts$/.test(u)),
    [],
  );
  const logChunk = `file://${chunkOf(app, 'plugins/log/setup.ts')}`;
  const whoamiChunk = `file://${chunkOf(app, 'plugins/whoami/setup.ts')}`;
  assert.notEqual(logChunk, whoamiChunk);

  const dns = await freeAddress('127.0.0.1');
  const pidfile = path.join(dir, 'agent.pid');
  const one = await startBundle(app, dir, 'one', block('.', dns.port, ['errors', 'log', 'cache 30', `forward . ${knot.addr}`]), ['-pidfile', pidfile]);
  try {
    const a = await dig('127.0.0.1', dns.port, ['web.default.svc.cluster.local', 'A']);
    assert.deepEqual(
      a.answer.map((r) => r.data),
      ['10.244.1.5'],
    );
    await waitUntil(() => /web\.default\.svc\.cluster\.local\. udp/.test(one.out()), 'the log plugin line', 10_000);
    await waitUntil(() => existsSync(pidfile), '-pidfile written', 10_000);
    assert.equal(readFileSync(pidfile, 'utf8'), `${one.pid}\n`);
    if (existsSync(ADDON)) assert.match(one.out(), /UDP I\/O: batched/, 'the addon loaded from ../build/Release');
    const loaded = one.loaded();
    assert.ok(loaded.includes(logChunk), 'the log chunk is loaded when the Corefile names log');
    assert.equal(loaded.includes(whoamiChunk), false, 'the whoami chunk is not loaded');
    assert.deepEqual(
      loaded.filter((u) => u.startsWith(`file://${ROOT}/src/`)),
      [],
      'nothing from src/',
    );
  } finally {
    await one.stop();
  }
  assert.equal(existsSync(pidfile), false, '-pidfile removed on a clean exit');
  const builtins = one.builtins();
  assert.ok(builtins.includes('NativeModule dgram') && builtins.includes('NativeModule net'), 'the exit hook recorded the builtins');
  assert.deepEqual(
    builtins.filter((m) => /fs\/promises|readline/.test(m)),
    [],
    'no fs/promises (nor the readline code it loads) in -conf mode',
  );

  const dns2 = await freeAddress('127.0.0.1');
  const two = await startBundle(app, dir, 'two', block('.', dns2.port, ['errors', 'whoami']), ['-workers', '2']);
  try {
    const w = await dig('127.0.0.1', dns2.port, ['example.org', 'A']);
    assert.equal(w.status, 'NOERROR');
    assert.ok(
      w.additional.some((r) => r.type === 'A' && r.data === '127.0.0.1'),
      'whoami answered with the client address',
    );
    const loaded = two.loaded();
    assert.ok(loaded.includes(`file://${path.join(app, 'dist/worker.js')}`), 'workers run dist/worker.js');
    assert.ok(loaded.includes(whoamiChunk), 'the whoami chunk is loaded when the Corefile names whoami');
    assert.equal(loaded.includes(logChunk), false, 'the log chunk is not loaded');
  } finally {
    await two.stop();
  }
});
