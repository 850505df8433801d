/**
 * trace end to end: the agent accepts CoreDNS's trace syntax, sends no spans, logs one warning
 * at load naming the endpoint and what to use instead, and serves DNS as usual.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dig } from '../engine/harness.ts';
import { agentWith } from './lib/warning-agent.ts';

for (const workers of [0, 3])
  test(`trace zipkin ENDPOINT { every; service; client_server }, ${workers} workers: one warning line at load, DNS answered`, async () => {
    const { agent, knot, host, port } = await agentWith(
      '    trace zipkin 127.0.0.1:9411 {\n        every 100\n        service dnsproxy\n        client_server\n    }',
      workers,
    );
    try {
      assert.equal((await dig(host, port, ['www.w.test', 'A'])).answer[0]?.data, '192.0.2.9');
      const warnings = agent
        .output()
        .split('\n')
        .filter((l) => l.includes('plugin/trace'));
      assert.equal(warnings.length, 1, agent.output());
      assert.match(
        warnings[0]!,
        /^\[WARNING\] plugin\/trace: .*no spans are sent to http:\/\/127\.0\.0\.1:9411\/api\/v2\/spans \(zipkin\).*log or dnstap.*--cpu-prof/,
      );
    } finally {
      await agent.stop();
      await knot.stop();
    }
  });
