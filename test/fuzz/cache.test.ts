/**
 * Fuzz target for the cache plugin's store and hit path: random and mutated upstream
 * responses are stored, then random and mutated queries (other IDs, letter case, EDNS, DO,
 * CD) hit them while the clock moves (expiry, prefetch, serve_stale, the stale fallback) and
 * the upstream sometimes fails. The upstream is reached through a stand-in for forward's
 * contract: a reply goes to the client only when its question matches the query (RFC 5452
 * §9.1), with the client's ID; otherwise SERVFAIL.
 *
 * For every query: the handler never throws and writes exactly one message, with the query's
 * ID, QR set and the query's question (byte for byte, the client's letter case, when the
 * cache answered); when every upstream response of the run decoded with dns-packet, every
 * answer to the client decodes too, and a cache answer carries an OPT iff the query had one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import dnsPacket from 'dns-packet';
import type { RecordType } from 'dns-packet';
import type { Handler } from '../../src/plugin.ts';
import { ParseResult, parseQuery } from '../../src/wire/query.ts';
import { buildEmptyResponse, questionMatches } from '../../src/wire/message.ts';
import { Rcode } from '../../src/wire/codes.ts';
import { parseCorefile } from '../../src/corefile/parser.ts';
import { CachePlugin, DEFAULT_STALE_FALLBACK } from '../../src/plugins/cache/cache.ts';
import { parseCacheDirective } from '../../src/plugins/cache/setup.ts';
import { Request } from '../../src/server/request.ts';
import { Capture, arbMutations, arbName, arbResponseSpec, encodeQuerySpec, encodeResponse, mutate, params, type ResponseSpec } from './lib.ts';

const CONFIGS = [
  'cache',
  'cache 30',
  'cache {\n keepttl\n}',
  'cache {\n prefetch 1 1m 10%\n}',
  'cache {\n serve_stale 1h\n}',
  'cache {\n serve_stale 10m verify\n}',
  'cache {\n success 100 60 0\n denial 100 60 0\n}',
  'cache {\n servfail 0\n disable denial\n}',
  'cache 10 {\n prefetch 2 10s 50%\n serve_stale 1m immediate\n}',
];

function cacheFor(body: string, clock: () => number, fallback: boolean): CachePlugin {
  const d = parseCorefile(`. {\n${body}\n}\n`, 'Corefile', {})[0]!.directives.find((x) => x.name === 'cache')!;
  const c = new CachePlugin(parseCacheDirective(d, ['.']), { clock });
  if (fallback) c.setStaleFallback({ zones: ['.'], ...DEFAULT_STALE_FALLBACK, clientTimeoutMs: 0 });
  return c;
}

interface Upstream {
  spec: ResponseSpec;
  muts: Parameters<typeof mutate>[1];
}

const TYPES: RecordType[] = ['A', 'AAAA', 'TXT', 'MX'];
const TYPE_CODES = [1, 28, 16, 15];

const arbStep = fc.record({
  name: fc.nat(3),
  type: fc.nat(TYPES.length - 1),
  caseSeed: fc.nat(),
  id: fc.nat(0xffff),
  edns: fc.option(fc.record({ size: fc.integer({ min: 1, max: 4096 }), do: fc.boolean() }), { nil: null }),
  cd: fc.boolean(),
  advanceMs: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 4_000_000 })),
  fail: fc.integer({ min: 0, max: 4 }).map((x) => x === 0),
  defer: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
  queryMuts: fc.option(arbMutations, { nil: null, freq: 5 }),
});

/** The name with its letters' case flipped by the bits of seed (0x20 mixing). */
function mixCase(name: string, seed: number): string {
  let s = '';
  for (let i = 0; i < name.length; i++) s += (seed >> (i % 30)) & 1 ? name[i]!.toUpperCase() : name[i]!.toLowerCase();
  return s;
}

function decodes(b: Buffer): boolean {
  try {
    dnsPacket.decode(b);
    return true;
  } catch {
    return false;
  }
}

const arbRun = fc.tuple(fc.array(arbName, { minLength: 4, maxLength: 4 }), fc.nat(CONFIGS.length - 1), fc.boolean()).chain(([names, cfg, fallback]) =>
  fc.tuple(
    fc.constant(names),
    fc.constant(cfg),
    fc.constant(fallback),
    // One upstream behaviour per name and type.
    fc.array(
      fc.array(fc.record({ spec: arbResponseSpec(names[0]!), muts: fc.option(arbMutations, { nil: null, freq: 3 }) }), {
        minLength: TYPES.length,
        maxLength: TYPES.length,
      }),
      {
        minLength: 4,
        maxLength: 4,
      },
    ),
    fc.array(arbStep, { minLength: 1, maxLength: 25 }),
  ),
);

test('cache: stored random/mutated responses and random/mutated queries: one well-formed answer each, ID and question patched', () => {
  fc.assert(
    fc.property(arbRun, ([names, cfg, fallback, upstreams, steps]) => {
      let now = 1_000_000;
      const cache = cacheFor(CONFIGS[cfg]!, () => now, fallback);
      let fail = false;
      let defer = false;
      let allDecodable = true;
      let lastUpstream = null as Buffer | null;
      /** Upstream replies held back until after later queries (answers arrive out of order). */
      let held: (() => void)[] = [];
      const reply = (req: Request, out: Buffer, errorReply: boolean) => {
        const send = () => {
          req.errorReply = errorReply;
          req.reply(out, out.length, 'forward');
        };
        if (defer) held.push(send);
        else send();
      };
      const next: Handler = {
        serve(req: Request): void {
          if (fail) {
            reply(req, buildEmptyResponse(req, Rcode.SERVFAIL), true);
            return;
          }
          // The question as parsed (a mutated query need not decode with dns-packet).
          const question = { name: req.name().slice(0, -1) || '.', type: TYPES[TYPE_CODES.indexOf(req.qtype)] ?? 'A' };
          const ni = names.findIndex((n) => n.toLowerCase() === question.name.toLowerCase());
          const ti = Math.max(0, TYPE_CODES.indexOf(req.qtype));
          const up: { spec: ResponseSpec; muts: Upstream['muts'] | null } = upstreams[Math.max(0, ni)]![ti]!;
          // The upstream answers in its own letter case (RFC 5452 §9.1 compares case-insensitively).
          const spec: ResponseSpec = { ...up.spec, answers: up.spec.answers.map((a) => ({ ...a, name: a.name === names[0] ? question.name : a.name })) };
          let resp = encodeResponse(0, question.name.toLowerCase(), question.type, spec, true, (req.flags & 0x10) !== 0);
          if (up.muts) resp = mutate(resp, up.muts, 12);
          lastUpstream = resp;
          // forward's contract: a matching question is passed on with the client's ID, else SERVFAIL.
          if (resp.length < 12 || !questionMatches(req.msg, req.qnameEnd, resp, resp.length)) {
            reply(req, buildEmptyResponse(req, Rcode.SERVFAIL), true);
            return;
          }
          resp[0] = req.id >> 8;
          resp[1] = req.id & 0xff;
          // After the ID is set: a mutated name may point into the header.
          if (!decodes(resp)) allDecodable = false;
          reply(req, resp, false);
        },
      };
      const handler = cache.compose(next);
      const flush = () => {
        const list = held;
        held = [];
        for (const send of list) send();
      };
      const asked: { req: Request; capture: Capture }[] = [];

      for (const step of steps) {
        now += step.advanceMs;
        if (!step.defer) flush();
        fail = step.fail;
        defer = step.defer;
        const type = TYPES[step.type]!;
        let bytes = encodeQuerySpec({ id: step.id, name: mixCase(names[step.name]!, step.caseSeed), type, rd: true, cd: step.cd, edns: step.edns });
        if (step.queryMuts) bytes = mutate(bytes, step.queryMuts);
        const capture = new Capture();
        const req = new Request(bytes, bytes.length, capture);
        // The server answers unparsable queries itself; only accepted ones reach the chain.
        if (parseQuery(req) !== ParseResult.OK) continue;
        handler.serve(req);
        asked.push({ req, capture });
      }
      defer = false;
      flush();

      for (const { req, capture } of asked) {
        assert.equal(capture.sent.length, 1, 'exactly one answer');
        const out = capture.sent[0]!;
        assert.ok(out.length >= req.questionEnd, 'holds the question');
        assert.equal((out[0]! << 8) | out[1]!, req.id, 'the query ID');
        assert.ok((out[2]! & 0x80) !== 0, 'QR set');
        assert.equal((out[4]! << 8) | out[5]!, 1, 'one question');
        const qOut = out.subarray(12, req.questionEnd);
        const qIn = req.msg.subarray(12, req.questionEnd);
        if (req.respondedBy === 'cache') assert.ok(qOut.equals(qIn), 'the client question, byte for byte');
        else assert.ok(Buffer.from(qOut).toString('latin1').toLowerCase() === Buffer.from(qIn).toString('latin1').toLowerCase(), 'the question');
        if (!allDecodable) continue;
        let d: dnsPacket.DecodedPacket;
        try {
          d = dnsPacket.decode(out);
        } catch (e) {
          assert.fail(
            `answer from ${req.respondedBy || 'server'} does not decode: ${(e as Error).message}\nanswer   ${out.toString('hex')}\nupstream ${lastUpstream?.toString('hex')}`,
          );
        }
        if (req.respondedBy === 'cache') {
          const opts = (d.additionals ?? []).filter((r) => r.type === 'OPT');
          assert.equal(opts.length, req.edns ? 1 : 0, 'an OPT iff the query had one');
          if (req.edns) assert.equal(d.additionals![d.additionals!.length - 1]!.type, 'OPT', 'OPT last');
        }
      }
      assert.ok(cache.entries('success') + cache.entries('denial') <= 4 * TYPES.length * 4);
    }),
    params(300),
  );
});
