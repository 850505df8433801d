/**
 * pprof end to end: the agent accepts CoreDNS's pprof syntax, starts no listener, logs one
 * warning at load saying what to use instead, and serves DNS as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, freeEndpoint } from '../engine/harness.ts';
import { agentWith, listens } from './lib/warning-agent.ts';

for (const workers of [0, 3])
  test(`pprof ADDRESS { block RATE }, ${workers} workers: one warning line at load, nothing listens on the address, DNS answered`, async () => {
    const addr = await freeEndpoint();
    const { agent, knot, host, port } = await agentWith(`    pprof ${addr.host}:${addr.port} {\n        block 5\n    }`, workers);
    try {
      assert.equal((await dig(host, port, ['www.w.test', 'A'])).answer[0]?.data, '192.0.2.9');
      assert.equal(await listens(addr.host, addr.port), false, 'no profiling endpoint');
      const warnings = agent
        .output()
        .split('\n')
        .filter((l) => l.includes('plugin/pprof'));
      assert.equal(warnings.length, 1, agent.output());
      assert.match(
        warnings[0]!,
        new RegExp(`^\\[WARNING\\] plugin/pprof: .*nothing listens on ${addr.host.replace(/\./g, '\\.')}:${addr.port}.*--cpu-prof.*--heap-prof.*--inspect`),
      );
    } finally {
      await agent.stop();
      await knot.stop();
    }
  });
