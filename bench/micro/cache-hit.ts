/**
 * Micro benchmark of the cache hit path: 1e6 hits through CachePlugin's handler, no sockets.
 * Each hit: zone check, key hash, table lookup with a case-insensitive name compare, one Buffer
 * allocation, header/qname/TTL patching, OPT append (EDNS client), req.reply.
 *
 *   npx node bench/micro/cache-hit.ts [hits]
 *
 * Prints ns/hit for a client without EDNS and one with EDNS (DO), on 64 names cycled so the
 * lookup is not a single hot entry. Not a test: numbers depend on the machine.
 */
import type { Handler, ResponseWriter } from '../../src/plugin.ts';
import { Request } from '../../src/server/request.ts';
import { parseQuery, ParseResult } from '../../src/wire/query.ts';
import { CachePlugin } from '../../src/plugins/cache/cache.ts';
import { defaultCacheConfig } from '../../src/plugins/cache/config.ts';
import dnsPacket from 'dns-packet';
import type { Answer } from 'dns-packet';

const HITS = Number(process.argv[2] ?? 1e6);
const NAMES = 64;

let bytesOut = 0;
const sink: ResponseWriter = {
  writeMsg(_req, _msg, len) {
    bytesOut += len;
  },
};

const upstream: Handler = {
  serve(req) {
    const q = dnsPacket.decode(req.msg.subarray(0, req.msgLen));
    const name = q.questions![0]!.name;
    const resp = dnsPacket.encode({
      type: 'response',
      id: req.id,
      flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
      questions: q.questions,
      answers: [
        { type: 'A', name, ttl: 300, class: 'IN', data: '10.96.0.10' },
        { type: 'A', name, ttl: 300, class: 'IN', data: '10.96.0.11' },
      ],
      additionals: req.edns ? [{ type: 'OPT', name: '.', udpPayloadSize: 1232, flags: 0 } as Answer] : [],
    });
    req.reply(resp, resp.length, 'toy');
  },
};

let now = 0;
const cache = new CachePlugin(defaultCacheConfig(['.']), { clock: () => now });
const handler = cache.compose(upstream);

function request(name: string, dnssecOk: boolean): Request {
  const buf = dnsPacket.encode({
    type: 'query',
    id: 1,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name, class: 'IN' }],
    additionals: dnssecOk ? [{ type: 'OPT', name: '.', udpPayloadSize: 4096, flags: dnsPacket.DNSSEC_OK } as Answer] : [],
  });
  const req = new Request(buf, buf.length, sink);
  if (parseQuery(req) !== ParseResult.OK) throw new Error('bad query');
  return req;
}

function run(label: string, dnssecOk: boolean): void {
  const reqs: Request[] = [];
  for (let i = 0; i < NAMES; i++) reqs.push(request(`Svc${i}.Default.Svc.Cluster.Local`, dnssecOk));
  for (const r of reqs) handler.serve(r); // fill
  const pass = (n: number): void => {
    for (let i = 0; i < n; i++) {
      const r = reqs[i & (NAMES - 1)]!;
      r.replied = false;
      r.writer = sink;
      handler.serve(r);
    }
  };
  pass(200_000); // warm-up
  const hitsBefore = cache.hitsSuccess;
  const t0 = process.hrtime.bigint();
  pass(HITS);
  const ns = Number(process.hrtime.bigint() - t0);
  if (cache.hitsSuccess - hitsBefore !== HITS) throw new Error('not every query was a hit');
  console.log(`${label}: ${(ns / HITS).toFixed(1)} ns/hit (${HITS} hits)`);
}

now = 1_000;
run('cache hit, no EDNS ', false);
now = 2_500; // a new second: the stored TTLs get rewritten once per entry
run('cache hit, EDNS+DO ', true);
if (bytesOut === 0) throw new Error('nothing written');
