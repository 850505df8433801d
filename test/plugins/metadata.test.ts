/**
 * metadata end to end (real agent, NSD upstream, fstrm_capture receiver): the metadata a query
 * carries is what `{/label}` placeholders print, here through dnstap's `extra`:
 *  - without `metadata` in the block every label prints `-` (CoreDNS: no metadata context);
 *  - with `metadata`, `{/forward/upstream}` names the upstream forward used, on the messages
 *    after forward picked it; on a cache hit (cache is after metadata and before forward in
 *    CoreDNS's order) forward does not run and the label is `-`;
 *  - log formats print `{/forward/upstream}` and `{/log/type}` with metadata, `-` without;
 *  - metrics: CoreDNS's metadata has none of its own; coredns_plugin_enabled lists it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawQuery, startAgent, udpExchange } from '../engine/harness.ts';
import { startNsd, type RunningServer } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { metricSum, scrape } from '../fault/lib/agent.ts';
import { haveTools, readExtras, startCapture } from './lib/fstrm.ts';

const skip = haveTools() ? false : 'fstrm_capture / dnstap-ldns not installed';

async function run(lines: string, queries: number): Promise<{ extras: { type: number; extra: string | null }[]; nsd: RunningServer; enabled: number }> {
  const cap = await startCapture('unix');
  const nsd = await startNsd();
  const dns = await freeAddress();
  const metrics = await freeAddress();
  try {
    const agent = await startAgent(`.:${dns.port} {
    bind ${dns.host}
    prometheus ${metrics.host}:${metrics.port}
    dnstap ${cap.socketArg} {
      extra "{/forward/upstream}"
    }
${lines}
    forward . ${nsd.addr}
}
`);
    let enabled = 0;
    try {
      for (let i = 0; i < queries; i++) assert.ok((await udpExchange(dns.host, dns.port, rawQuery('www.example.test', 1, 0x0a00 + i))) !== null);
      enabled = metricSum(await scrape(metrics.host, metrics.port), 'coredns_plugin_enabled', { name: 'metadata' });
    } finally {
      await agent.stop();
    }
    await cap.stop();
    return { extras: readExtras(cap.file), nsd, enabled };
  } finally {
    await cap.stop();
    cap.cleanup();
    await nsd.stop();
  }
}

test('without metadata in the block, {/label} prints "-"', { skip, timeout: 60_000 }, async () => {
  const { extras, enabled } = await run('', 1);
  assert.deepEqual(
    extras.map((e) => [e.type, e.extra]),
    [
      [5, '-'],
      [7, '-'],
      [8, '-'],
      [6, '-'],
    ],
  );
  assert.equal(enabled, 0);
});

test('with metadata: forward/upstream names the upstream after forward chose it; a cache hit has none', { skip, timeout: 60_000 }, async () => {
  const { extras, nsd, enabled } = await run('    metadata\n    cache 30', 2);
  assert.equal(enabled, 1, 'coredns_plugin_enabled{name="metadata"}');
  assert.deepEqual(
    extras.map((e) => [e.type, e.extra]),
    [
      [5, '-'],
      [7, nsd.addr],
      [8, nsd.addr],
      [6, nsd.addr],
      [5, '-'],
      [6, '-'],
    ],
  );
});

test('metadata is listed in coredns_plugin_enabled and the block answers', { skip, timeout: 60_000 }, async () => {
  const { extras, enabled } = await run('    metadata', 1);
  assert.equal(enabled, 1);
  assert.equal(extras.length, 4);
});

test('log prints metadata labels: {/forward/upstream} with metadata, "-" without', { timeout: 60_000 }, async () => {
  const nsd = await startNsd();
  try {
    for (const withMetadata of [true, false]) {
      const dns = await freeAddress();
      const agent = await startAgent(`.:${dns.port} {
    bind ${dns.host}
${withMetadata ? '    metadata\n' : ''}    log . "Q {name} via {/forward/upstream} type {/log/type}"
    forward . ${nsd.addr}
}
`);
      try {
        assert.ok((await udpExchange(dns.host, dns.port, rawQuery('www.example.test', 1, 0x0b0b))) !== null);
        const want = withMetadata ? `Q www.example.test. via ${nsd.addr} type NOERROR` : 'Q www.example.test. via - type -';
        const end = performance.now() + 5000;
        while (!agent.output().includes(want) && performance.now() < end) await new Promise((r) => setTimeout(r, 20));
        assert.ok(agent.output().includes(want), `log line "${want}" in:\n${agent.output()}`);
      } finally {
        await agent.stop();
      }
    }
  } finally {
    await nsd.stop();
  }
});
