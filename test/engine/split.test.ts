/**
 * The engine split's contracts (src/engine/): a Server runs only the query-scoped plugins; a
 * ControlPlane validates each config before its back end (a worker pool here, faked) is touched,
 * composes no query chain when the pool serves, runs the process-scoped plugins itself,
 * serializes reloads and hands the cluster zones to the pool with each config.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ControlPlane, type ListenerInfo, type ServingPool } from '../../src/engine/control-plane.ts';
import { Server } from '../../src/engine/server.ts';
import { loadConfig, type LoadedBlock } from '../../src/config/load.ts';
import type { Plugin } from '../../src/plugin.ts';
import { MemoryLogger, TestEngine } from '../lib/metrics-testing.ts';
import { udpQuery } from '../fault/lib/dns.ts';

const COREFILE = `.:0 {
    health 127.0.0.1:0
    whoami
}
`;

function pluginOf(blocks: readonly { plugins: Plugin[] }[], name: string): Plugin {
  const p = blocks[0]!.plugins.find((q) => q.name === name);
  assert.ok(p, `plugin ${name}`);
  return p;
}

class FakePool implements ServingPool {
  readonly applied: { text: string; anyPortZero: boolean; clusterZones: readonly string[] }[] = [];
  live = true;
  stopped = false;
  /** Delays the next apply by this many ms (then resets). */
  delayMs = 0;
  async apply(text: string, anyPortZero: boolean, clusterZones: readonly string[]): Promise<void> {
    const delay = this.delayMs;
    this.delayMs = 0;
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    this.applied.push({ text, anyPortZero, clusterZones: [...clusterZones] });
  }
  serving(): boolean {
    return this.live && !this.stopped;
  }
  listening(): ListenerInfo[] {
    return [{ address: '127.0.0.1', configuredPort: 0, port: 5399, protos: ['udp', 'tcp'] }];
  }
  async stop(): Promise<void> {
    this.stopped = true;
  }
}

test('Server: serves the query chain and starts only query-scoped plugins', async () => {
  const log = new MemoryLogger();
  const cfg = await loadConfig(COREFILE, 'Corefile', {
    defaultBind: ['127.0.0.1'],
    defaultPort: 53,
    env: {},
    clock: () => performance.now(),
    log,
    engine: new TestEngine(),
  });
  const server = new Server({ reusePort: false, clock: () => performance.now(), log });
  await server.apply(cfg);
  try {
    assert.equal(server.serving(), true);
    const port = server.listening()[0]!.port;
    const r = await udpQuery('127.0.0.1', port, 'example.org', 'A');
    assert.equal(r.packet?.rcode, 'NOERROR', 'whoami answers through the chain the Server composed');
    assert.equal((pluginOf(cfg.blocks, 'health') as unknown as { port: number }).port, 0, 'health (process-scoped) is not started by a Server');
  } finally {
    await server.stop();
  }
  assert.equal(server.serving(), false);
  assert.deepEqual(server.listening(), []);
});

test('ControlPlane with a pool: validates before the pool, builds no chain, runs process-scoped plugins, serializes reloads', async () => {
  const pool = new FakePool();
  const log = new MemoryLogger();
  const cp = await ControlPlane.start({
    corefilePath: null,
    corefileText: COREFILE,
    defaultBind: ['127.0.0.1'],
    defaultPort: 53,
    env: {},
    clusterZones: ['cluster.local.'],
    log,
    pool,
  });
  try {
    assert.deepEqual(pool.applied, [{ text: COREFILE, anyPortZero: true, clusterZones: ['cluster.local.'] }]);
    assert.deepEqual(cp.listening(), pool.listening());
    assert.ok(log.lines.includes('INFO .:5399 on 127.0.0.1 (udp, tcp)'), log.lines.join('\n'));
    assert.ok((pluginOf(cp.blocks(), 'health') as unknown as { port: number }).port > 0, 'health runs in the control thread');
    // No chain composed here: the block's chain is the end of a chain, not whoami's handler.
    const block = cp.blocks()[0] as LoadedBlock;
    const composed = await loadConfig(COREFILE, 'Corefile', {
      defaultBind: ['127.0.0.1'],
      defaultPort: 53,
      env: {},
      clock: () => 0,
      log,
      engine: new TestEngine(),
      compose: false,
    });
    assert.equal(block.chain, composed.blocks[0]!.chain);
    assert.equal(cp.isReady(), true);
    pool.live = false;
    assert.equal(cp.isReady(), false, 'not ready while no worker serves');
    pool.live = true;

    // A config that fails validation never reaches the pool; the old one keeps serving.
    await assert.rejects(cp.reloadText('.:0 {\n    forward\n}\n'), /Corefile:2/);
    assert.equal(pool.applied.length, 1);
    assert.equal(cp.corefileText(), COREFILE);

    // Reloads run one at a time, in call order, with the cluster zones set before them.
    cp.setClusterZones(['corp.example.']);
    const a = `${COREFILE}# a\n`;
    const b = `${COREFILE}# b\n`;
    pool.delayMs = 200;
    await Promise.all([cp.reloadText(a), cp.reloadText(b)]);
    assert.deepEqual(
      pool.applied.slice(1).map((x) => [x.text, x.clusterZones]),
      [
        [a, ['corp.example.']],
        [b, ['corp.example.']],
      ],
    );
    assert.equal(cp.corefileText(), b);
  } finally {
    await cp.stop();
  }
  assert.equal(pool.stopped, true);
  assert.equal(cp.isShuttingDown(), true);
  assert.equal(cp.isReady(), false);
  assert.equal((pluginOf(cp.blocks(), 'health') as unknown as { port: number }).port, 0, 'health stopped with the control plane');
});
