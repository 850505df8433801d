/**
 * Worker thread for src/server/udp-batched.test.ts: binds a batched UDP listener on
 * workerData.port (SO_REUSEPORT) that answers every query NOERROR, posts {port} when bound
 * and {received} when asked ('count'). The socket stays open until the worker is terminated
 * (the addon's environment cleanup hook closes it).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Dispatcher, Generation, RouteTarget } from '../../src/server/dispatch.ts';
import { BatchedUdpListener } from '../../src/server/udp-batched.ts';
import { loadUdpAddon } from '../../src/server/udp-native.ts';
import { ZoneMatcher } from '../../src/wire/zone-match.ts';
import { getZoneStats } from '../../src/metrics/zone-stats.ts';
import { buildEmptyResponse } from '../../src/wire/message.ts';
import { Rcode } from '../../src/wire/codes.ts';
import type { Request } from '../../src/server/request.ts';

const { addon, reason } = loadUdpAddon();
if (addon === null) throw new Error(`addon: ${reason}`);
const table = new ZoneMatcher<RouteTarget>();
const chain = {
  serve(req: Request) {
    const out = buildEmptyResponse(req, Rcode.NOERROR);
    req.reply(out, out.length, 'test');
  },
};
table.add('.', new RouteTarget(chain, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
const listener = new BatchedUdpListener('127.0.0.1', (workerData as { port: number }).port, new Dispatcher('dns://127.0.0.1:0', table), true, addon);
const port = await listener.bind();
parentPort!.on('message', (m) => {
  if (m === 'count') parentPort!.postMessage({ received: listener.received });
});
parentPort!.postMessage({ port });
