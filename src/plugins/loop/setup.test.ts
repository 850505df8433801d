import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';
import type { Handler } from '../../plugin.ts';
import { Request } from '../../server/request.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { buildEmptyResponse } from '../../wire/message.ts';
import { Rcode } from '../../wire/codes.ts';
import { loopSetup } from './setup.ts';
import { LoopPlugin, buildProbe, probeName } from './loop.ts';
import { TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';

test('loop setup: no arguments; the zone is the first of the block, the address the first listener', () => {
  assert.throws(() => loopSetup.setup(directiveOf('loop now'), setupContext(new TestEngine())), {
    message: "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'now'",
  });
  const p = loopSetup.setup(
    directiveOf('loop'),
    setupContext(new TestEngine(), { zones: ['cluster.local.', 'in-addr.arpa.'], serverLabels: ['dns://169.254.20.10:53', 'dns://10.0.0.10:53'] }),
  ) as LoopPlugin;
  assert.equal(p.zone, 'cluster.local.');
  assert.equal(p.address, '169.254.20.10:53');
  assert.match(p.qname, /^\d{1,19}\.\d{1,19}\.cluster\.local\.$/);
  assert.match(probeName('.'), /^\d{1,19}\.\d{1,19}\.$/);
});

/** A server running [loop → next] on every query, as the engine would. */
async function serve(loop: LoopPlugin, next: (server: Socket, req: Request) => void): Promise<{ server: Socket; port: number }> {
  const server = createSocket('udp4');
  const tail: Handler = { serve: (req) => next(server, req) };
  const chain = loop.compose(tail);
  server.on('message', (msg, rinfo) => {
    const req = new Request(Buffer.from(msg), msg.length, {
      writeMsg: (_r, out, len) => server.send(out.subarray(0, len), rinfo.port, rinfo.address),
    });
    req.remoteAddress = rinfo.address;
    req.remotePort = rinfo.port;
    if (parseQuery(req) !== ParseResult.OK) return;
    try {
      chain.serve(req);
    } catch {
      // TestEngine.fatal throws once the loop is detected (the real one exits the process).
    }
  });
  await new Promise<void>((r) => server.bind(0, '127.0.0.1', () => r()));
  return { server, port: (server.address() as AddressInfo).port };
}

test('loop: a forward path that comes back to us is fatal, with CoreDNS message', async (t) => {
  const engine = new TestEngine();
  const sockets: Socket[] = [];
  t.after(() => sockets.forEach((s) => s.close()));
  let port = 0;
  // Forward = send the query on to ourselves and relay whatever comes back.
  const loop = new LoopPlugin({ zone: '.', address: '' }, { engine, timeoutMs: 500, retryMs: 50, windowMs: 5000 });
  const { server, port: p } = await serve(loop, (_srv, req) => {
    if (engine.fatals.length > 0) return;
    const up = createSocket('udp4');
    sockets.push(up);
    up.on('message', (m) => req.reply(m, m.length, 'forward'));
    up.send(req.msg.subarray(0, req.msgLen), port, '127.0.0.1');
  });
  sockets.push(server);
  port = p;
  (loop as { address: string }).address = `127.0.0.1:${port}`;
  loop.start();
  const end = performance.now() + 5000;
  while (engine.fatals.length === 0 && performance.now() < end) await new Promise((r) => setTimeout(r, 5));
  const seenAtFatal = loop.seen;
  await loop.stop();
  assert.equal(engine.fatals.length, 1);
  const re = new RegExp(
    `^plugin/loop: Loop \\(127\\.0\\.0\\.1:\\d+ -> 127\\.0\\.0\\.1:${port}\\) detected for zone "\\.", ` +
      `see https://coredns\\.io/plugins/loop#troubleshooting\\. Query: "HINFO \\d+\\.\\d+\\."$`,
  );
  assert.match(engine.fatals[0]!, re);
  assert.ok(engine.fatals[0]!.endsWith(`"HINFO ${loop.qname}"`));
  assert.equal(seenAtFatal, 3);
});

test('loop: an answered probe disables the plugin without a fatal; other queries pass untouched', async (t) => {
  const engine = new TestEngine();
  const loop = new LoopPlugin({ zone: 'cluster.local.', address: '' }, { engine });
  const passed: string[] = [];
  const { server, port } = await serve(loop, (_srv, req) => {
    passed.push(`${req.qtype} ${req.name()}`);
    const out = buildEmptyResponse(req, Rcode.NXDOMAIN);
    req.reply(out, out.length, 'forward');
  });
  t.after(() => server.close());
  (loop as { address: string }).address = `127.0.0.1:${port}`;
  loop.start();
  await loop.done();
  assert.equal(loop.disabled, true);
  assert.equal(loop.seen, 1);
  assert.deepEqual(engine.fatals, []);
  assert.deepEqual(passed, [`13 ${loop.qname}`]);

  // Once disabled, even the probe name is not counted.
  const client = createSocket('udp4');
  t.after(() => client.close());
  const got = new Promise<void>((r) => client.once('message', () => r()));
  client.send(buildProbe(loop.qname, 7), port, '127.0.0.1');
  await got;
  assert.equal(loop.seen, 1);
});

test('loop: probes are counted only for the probe name and type', async (t) => {
  const engine = new TestEngine();
  const loop = new LoopPlugin({ zone: '.', address: '127.0.0.1:1' }, { engine });
  let forwarded = 0;
  const { server, port } = await serve(loop, (_srv, req) => {
    forwarded++;
    const out = buildEmptyResponse(req, Rcode.NOERROR);
    req.reply(out, out.length, 'forward');
  });
  t.after(() => server.close());
  const client = createSocket('udp4');
  t.after(() => client.close());
  const ask = (msg: Buffer) =>
    new Promise<void>((r) => {
      client.once('message', () => r());
      client.send(msg, port, '127.0.0.1');
    });
  // Same name, other type; other name, HINFO; the probe in upper case.
  const a = buildProbe(loop.qname, 1);
  a.writeUInt16BE(1, a.length - 4);
  await ask(a);
  await ask(buildProbe(probeName('.'), 2));
  await ask(buildProbe(loop.qname.toUpperCase(), 3));
  assert.equal(forwarded, 3);
  assert.equal(loop.seen, 1);
});

test('loop: an address nobody answers on disables the plugin after the probe window', async () => {
  const engine = new TestEngine();
  // A bound socket that never answers: every probe times out.
  const silent = createSocket('udp4');
  await new Promise<void>((r) => silent.bind(0, '127.0.0.1', () => r()));
  const port = (silent.address() as AddressInfo).port;
  try {
    const loop = new LoopPlugin({ zone: '.', address: `127.0.0.1:${port}` }, { engine, windowMs: 300, timeoutMs: 80, retryMs: 20 });
    loop.start();
    await loop.done();
    assert.equal(loop.disabled, true);
    assert.deepEqual(engine.fatals, []);
  } finally {
    silent.close();
  }
});

test('loop: stop() ends probing at once', async () => {
  const engine = new TestEngine();
  const loop = new LoopPlugin({ zone: '.', address: '127.0.0.1:9' }, { engine, windowMs: 30_000, timeoutMs: 2000, retryMs: 1000 });
  loop.start();
  const t0 = performance.now();
  await loop.stop();
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(loop.disabled, true);
});

test('loop: a probe address that cannot be connected (EACCES: broadcast) ends that try, never throws', async () => {
  // dgram's connect callback receives the error; sending on the unconnected socket then throws
  // ERR_INVALID_ARG_TYPE from a socket callback: an uncaught exception (before: the process exited).
  const engine = new TestEngine();
  const escaped: unknown[] = [];
  const onUncaught = (err: unknown) => escaped.push(err);
  const saved = process.listeners('uncaughtException');
  process.removeAllListeners('uncaughtException');
  process.on('uncaughtException', onUncaught);
  try {
    const loop = new LoopPlugin({ zone: '.', address: '255.255.255.255:53' }, { engine, windowMs: 300, timeoutMs: 80, retryMs: 20 });
    loop.start();
    await loop.done();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(loop.disabled, true);
    assert.deepEqual(engine.fatals, []);
    assert.deepEqual(escaped.map(String), []);
  } finally {
    process.off('uncaughtException', onUncaught);
    for (const l of saved) process.on('uncaughtException', l);
  }
});
