/**
 * CoreDNS's metadata README, run against node-local-dns. The README has no worked example of
 * its own beyond the syntax ("Syntax": `metadata [ZONES...]`); its behaviour shows through
 * the plugins that print metadata: dnstap's README example "extra" with {/forward/upstream}
 * is in dnstap.compat.test.ts. Rows: the syntax forms load, serve, and mark requests.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rawQuery, startAgent, udpExchange } from '../engine/harness.ts';
import { startNsd } from '../forward/servers.ts';
import { freeAddress } from '../lib/net.ts';
import { metricSum, scrape } from '../fault/lib/agent.ts';

const ROWS: [string, string][] = [
  ['Syntax: metadata without zones (the server block zones)', 'metadata'],
  ['Syntax: metadata with ZONES', 'metadata example.test cluster.local'],
];

for (const [says, line] of ROWS) {
  test(`metadata README: ${says}`, { timeout: 60_000 }, async () => {
    const nsd = await startNsd();
    const dns = await freeAddress();
    const metrics = await freeAddress();
    try {
      const agent = await startAgent(
        `.:${dns.port} {\n  bind ${dns.host}\n  prometheus ${metrics.host}:${metrics.port}\n  ${line}\n  forward . ${nsd.addr}\n}\n`,
      );
      try {
        const r = await udpExchange(dns.host, dns.port, rawQuery('www.example.test', 1, 0x3131));
        assert.ok(r !== null && (r[3]! & 0x0f) === 0, 'NOERROR through the metadata plugin');
        assert.equal(metricSum(await scrape(metrics.host, metrics.port), 'coredns_plugin_enabled', { name: 'metadata' }), 1);
      } finally {
        await agent.stop();
      }
    } finally {
      await nsd.stop();
    }
  });
}
