/**
 * The cluster zones are a configuration input that travels with every load (issue 14): with
 * worker threads, a change (the agent re-rendering Corefile.base with another cluster domain)
 * reaches the running workers on the next reload. Before, the zones went through
 * process.env, which a worker copies when it starts, so running workers kept the old list.
 *
 * Observed through what the zones decide: a cache in a cluster zone serves stale answers when
 * every upstream fails, other zones get SERVFAIL. Two serving workers, a real NSD upstream.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startServing, type Serving } from '../../src/workers/start.ts';
import { startNsd, zoneText, type Nsd } from '../fault/lib/nsd.ts';
import { freeAddress, sleep } from '../fault/lib/net.ts';
import { udpQuery } from '../fault/lib/dns.ts';

let nsd: Nsd;
let serving: Serving | null = null;
let dir: string;

before(async () => {
  // TTL 1: the cache keeps it for its 5 s minimum, then it is expired (stale).
  nsd = await startNsd({ 'corp.example.': zoneText('corp.example', ['api.default.svc 1 IN A 192.0.2.21']) });
  dir = mkdtempSync(path.join(tmpdir(), 'nld-zones-'));
});

after(async () => {
  await serving?.engine.stop();
  await nsd?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Answers of `n` queries from `n` sockets: the kernel spreads them over both workers. */
async function ask(host: string, port: number, name: string, n = 40): Promise<string[]> {
  const rs = await Promise.all(Array.from({ length: n }, () => udpQuery(host, port, name, 'A', { timeoutMs: 4000 })));
  return rs.map((r) => (r.packet === null ? 'timeout' : `${r.packet.rcode} ${(r.packet.answers ?? []).map((a) => (a as { data: string }).data).join(',')}`));
}

test('with -workers 2, cluster zones set before a reload reach the running workers', async () => {
  const { host, port } = await freeAddress();
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(
    corefile,
    `corp.example:${port} {
    bind ${host}
    cache {
        success 9984 30
        denial 9984 5
    }
    forward . ${nsd.addr} {
        force_tcp
    }
}
`,
  );
  // Started with the stock cluster zones: corp.example is not one of them.
  serving = await startServing({ corefilePath: corefile, defaultBind: [host], defaultPort: port, workers: 2, quiet: true, clusterZones: ['cluster.local.'] });
  assert.notEqual(serving.pool, null, 'two worker threads');
  // The agent's template now names corp.example as the cluster domain: set, then reload.
  serving.engine.setClusterZones(['corp.example.']);
  await serving.engine.reload('test');

  const warm = await ask(host, port, 'api.default.svc.corp.example');
  assert.deepEqual(new Set(warm), new Set(['NOERROR 192.0.2.21']), 'cached in both workers');
  await nsd.stop();
  await sleep(6_000);
  // Every upstream fails and the entries expired: served stale in every worker.
  const stale = await ask(host, port, 'api.default.svc.corp.example');
  assert.deepEqual(new Set(stale), new Set(['NOERROR 192.0.2.21']), `stale answers from both workers: ${stale.join(' | ')}`);
});
