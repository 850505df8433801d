import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jitteredIntervalMs, parseReload, reloadSetup } from './setup.ts';
import { ReloadChecker, type ReloadPlugin } from './reload.ts';
import { configDigestAsync } from './digest.ts';
import { MetricsHub } from '../../metrics/hub.ts';
import { ReloadMetrics } from './metrics.ts';
import { MemoryLogger, TestEngine, directiveOf, parseExposition, sampleValue, setupContext } from '../../../test/lib/metrics-testing.ts';

test('reload setup: interval, jitter and CoreDNS minimums', () => {
  const ok: [string, { intervalMs: number; jitterMs: number }][] = [
    ['reload', { intervalMs: 30000, jitterMs: 15000 }],
    ['reload 10s', { intervalMs: 10000, jitterMs: 5000 }],
    ['reload 1m 10s', { intervalMs: 60000, jitterMs: 10000 }],
    ['reload 2s 1s', { intervalMs: 2000, jitterMs: 1000 }],
    ['reload 4s 3s', { intervalMs: 4000, jitterMs: 2000 }],
  ];
  for (const [line, want] of ok) assert.deepEqual(parseReload(directiveOf(line)), want, line);
  const bad: [string, string][] = [
    ['reload 1s', 'Corefile:2 - Error during parsing: interval value must be greater or equal to 2s'],
    ['reload 10s 500ms', 'Corefile:2 - Error during parsing: jitter value must be greater or equal to 1s'],
    ['reload often', 'Corefile:2 - Error during parsing: time: invalid duration "often"'],
    ['reload 10s 2s 3s', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '3s'"],
    ['reload {\n10s\n}', "Corefile:2 - Error during parsing: 'reload' does not take a block"],
  ];
  for (const [line, msg] of bad) assert.throws(() => parseReload(directiveOf(line)), { message: msg }, line);
});

test('reload: the period is INTERVAL plus a draw in [-JITTER/2, JITTER/2)', () => {
  const o = { intervalMs: 30000, jitterMs: 15000 };
  assert.equal(
    jitteredIntervalMs(o, () => 0),
    22500,
  );
  assert.equal(
    jitteredIntervalMs(o, (m) => m - 1),
    37499,
  );
  for (let i = 0; i < 200; i++) {
    const v = jitteredIntervalMs(o);
    assert.ok(v >= 22500 && v < 37500, String(v));
  }
});

test('reload: all blocks of one load share one checker', () => {
  const engine = new TestEngine();
  const shared = new Map<string, unknown>();
  const a = reloadSetup.setup(directiveOf('reload 10s'), setupContext(engine, { shared })) as ReloadPlugin;
  const b = reloadSetup.setup(directiveOf('reload 20s'), setupContext(engine, { shared, blockIndex: 1 })) as ReloadPlugin;
  assert.equal(a.checker, b.checker);
  assert.ok(b.checker.periodMs >= 15000 && b.checker.periodMs < 25000, 'the last block sets the period');
});

test('configuration digest ignores comments and white space, sees changed and moved lines', async () => {
  const d = (t: string) => configDigestAsync(t, 'Corefile', {});
  const base = await d('.:53 {\n    cache 30\n    forward . 127.0.0.1\n}\n');
  assert.match(base, /^[0-9a-f]{128}$/);
  assert.equal(base, await d('.:53 {\n\tcache   30 # seconds\n    forward . 127.0.0.1\n}\n'));
  assert.notEqual(base, await d('.:53 {\n    cache 31\n    forward . 127.0.0.1\n}\n'));
  assert.notEqual(base, await d('# header\n.:53 {\n    cache 30\n    forward . 127.0.0.1\n}\n'), 'line numbers count, as in CoreDNS');
});

test('reload checker: logs the running digest, reloads on change only, counts failures, warns on parse errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nld-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'Corefile');
  const v1 = '.:53 {\n    cache 30\n}\n';
  writeFileSync(path, v1);
  const engine = new TestEngine();
  engine.path = path;
  engine.text = v1;
  const hub = new MetricsHub({ defaultMetrics: false });
  const log = new MemoryLogger();
  const metrics = new ReloadMetrics();
  hub.addCollector({ collect: (out) => metrics.collect(out) });
  const checker = new ReloadChecker(60_000, { engine, env: {}, metrics, log });
  t.after(() => checker.stop());
  await checker.start();
  const d1 = await configDigestAsync(v1, path, {});
  assert.deepEqual(log.lines, [`INFO Running configuration SHA512 = ${d1}`]);

  await checker.check();
  assert.deepEqual(engine.reloads, [], 'unchanged file');

  writeFileSync(path, '.:53 {\n    cache 30 # comment only\n}\n');
  await checker.check();
  assert.deepEqual(engine.reloads, [], 'comment-only change');

  // A change that does not parse: logged with file:line and counted once, not reloaded.
  writeFileSync(path, '.:53 {\n    cache 30\n');
  await checker.check();
  await checker.check();
  assert.deepEqual(engine.reloads, []);
  assert.equal(log.lines.filter((l) => l.startsWith('ERROR Corefile parse failed: ')).length, 1);
  assert.ok(log.lines.some((l) => l.startsWith('ERROR Corefile parse failed: ') && l.includes(`${path}:`)));
  assert.equal(metrics.failed, 1);

  // A change that parses but the engine rejects: logged, counted, not retried.
  engine.reloadResult = async () => {
    throw new Error("Corefile:2 - Error during parsing: Unknown directive 'cahce'");
  };
  writeFileSync(path, '.:53 {\n    cahce 30\n}\n');
  await checker.check();
  await checker.check();
  assert.deepEqual(engine.reloads, ['reload']);
  assert.equal(metrics.failed, 2);
  assert.ok(log.lines.includes("ERROR Corefile changed but reload failed: Corefile:2 - Error during parsing: Unknown directive 'cahce'"));
  const d2 = await configDigestAsync('.:53 {\n    cahce 30\n}\n', path, {});
  let fams = parseExposition(await hub.render());
  assert.equal(sampleValue(fams, 'coredns_reload_failed_total'), 2);
  assert.equal(sampleValue(fams, 'coredns_reload_version_info', { hash: 'sha512', value: d2 }), 1);

  // A good change: reloaded.
  engine.reloadResult = null;
  writeFileSync(path, '.:53 {\n    cache 60\n}\n');
  await checker.check();
  assert.deepEqual(engine.reloads, ['reload', 'reload']);
  assert.equal(metrics.failed, 2);
  fams = parseExposition(await hub.render());
  assert.equal(sampleValue(fams, 'coredns_reload_version_info', { hash: 'sha512', value: d2 }), undefined, 'one version series');

  // After stop nothing more happens.
  checker.stop();
  writeFileSync(path, '.:53 {\n    cache 90\n}\n');
  await checker.check();
  assert.equal(engine.reloads.length, 2);
});

test('reload checker: the timer fires on its period', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nld-reload-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'Corefile');
  writeFileSync(path, '.:53 {\n    cache 30\n}\n');
  const engine = new TestEngine();
  engine.path = path;
  engine.text = '.:53 {\n    cache 30\n}\n';
  const checker = new ReloadChecker(30, { engine, env: {}, metrics: new ReloadMetrics(), log: new MemoryLogger() });
  t.after(() => checker.stop());
  await checker.start();
  writeFileSync(path, '.:53 {\n    cache 40\n}\n');
  const end = performance.now() + 5000;
  while (engine.reloads.length === 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(engine.reloads, ['reload']);
});
