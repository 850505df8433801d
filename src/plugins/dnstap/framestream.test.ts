/**
 * The Frame Streams writer against scripted receivers on Unix sockets: the exact handshake
 * bytes (READY, START with the content type), data frames, STOP and FINISH; a receiver that
 * accepts another content type, sends garbage, or never answers READY is dropped and retried
 * with backoff; the queue bound drops and counts; nothing is queued without a connection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CONTENT_TYPE, FRAMESTREAM_DEFAULTS, FrameStreamClient, controlFrame, parseControl, type FrameStreamOptions } from './framestream.ts';
import type { Logger } from '../../plugin.ts';

const log: Logger & { lines: string[] } = {
  lines: [],
  info(m) {
    this.lines.push(`I ${m}`);
  },
  warn(m) {
    this.lines.push(`W ${m}`);
  },
  error(m) {
    this.lines.push(`E ${m}`);
  },
};

function opts(sock: string, over: Partial<FrameStreamOptions> = {}): FrameStreamOptions {
  return {
    ...FRAMESTREAM_DEFAULTS,
    endpoint: { kind: 'unix', path: sock },
    queueCapacity: 100,
    queueMaxBytes: 1 << 20,
    writeBufferBytes: 1 << 20,
    backoffMinMs: 20,
    backoffMaxMs: 80,
    connectTimeoutMs: 300,
    ...over,
  };
}

async function until(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A receiver that records everything it reads and answers per `script`. */
async function receiver(script: { accept?: string | null; finish?: boolean; silent?: boolean; garbage?: boolean }, at?: string) {
  const dir = at === undefined ? mkdtempSync(path.join(tmpdir(), 'fstrm-unit-')) : path.dirname(at);
  const sock = at ?? path.join(dir, 's');
  rmSync(sock, { force: true });
  const received: Buffer[] = [];
  let conns = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    conns++;
    sockets.add(c);
    c.on('error', () => {});
    c.on('close', () => sockets.delete(c));
    let buf = Buffer.alloc(0);
    let stage = 0;
    c.on('data', (d: Buffer) => {
      received.push(d);
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 8 && buf.length >= 8 + buf.readUInt32BE(4)) {
        stage = 1;
        buf = buf.subarray(8 + buf.readUInt32BE(4));
        if (script.silent) return;
        if (script.garbage) c.write(Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
        else c.write(controlFrame(1, script.accept === undefined ? CONTENT_TYPE : script.accept));
      }
      // STOP: escape, length 4, type 3 at the end of what was read.
      const all = Buffer.concat(received);
      if (script.finish !== false && all.length >= 12 && all.subarray(all.length - 12).equals(controlFrame(3, null))) c.write(controlFrame(5, null));
    });
  });
  await new Promise<void>((r) => server.listen(sock, () => r()));
  return {
    sock,
    conns: () => conns,
    bytes: () => Buffer.concat(received),
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      if (at === undefined) rmSync(dir, { recursive: true, force: true });
    },
  };
}

function frame(payload: string): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.write(payload, 4);
  return b;
}

test('control frames: encoding and parsing, bounds', () => {
  const r = controlFrame(4, CONTENT_TYPE);
  assert.equal(
    r.toString('hex'),
    '00000000' +
      (12 + CONTENT_TYPE.length).toString(16).padStart(8, '0') +
      '00000004' +
      '00000001' +
      CONTENT_TYPE.length.toString(16).padStart(8, '0') +
      Buffer.from(CONTENT_TYPE).toString('hex'),
  );
  assert.deepEqual(parseControl(r), { control: { type: 4, contentTypes: [CONTENT_TYPE] }, used: r.length });
  assert.equal(parseControl(r.subarray(0, 10)), null);
  assert.throws(() => parseControl(Buffer.from('0000000500000004', 'hex')), /data frame/);
  assert.throws(() => parseControl(Buffer.from('0000000000100000', 'hex')), /out of range/);
  assert.throws(() => parseControl(Buffer.from('000000000000000c0000000100000001000000ff', 'hex')), /runs past/);
});

test('handshake, data frames in order, STOP then FINISH', async () => {
  const rx = await receiver({});
  const c = new FrameStreamClient(opts(rx.sock), log);
  c.enqueue(frame('early')); // queued while connecting
  c.start();
  await until(() => c.connected, 'connected');
  c.enqueue(frame('one'));
  c.enqueue(frame('two'));
  await until(() => c.sent === 3, 'sent');
  await c.stop();
  const expected = Buffer.concat([
    controlFrame(4, CONTENT_TYPE),
    controlFrame(2, CONTENT_TYPE),
    Buffer.from('00000005', 'hex'),
    Buffer.from('early'),
    Buffer.from('00000003', 'hex'),
    Buffer.from('one'),
    Buffer.from('00000003', 'hex'),
    Buffer.from('two'),
    controlFrame(3, null),
  ]);
  await until(() => rx.bytes().length >= expected.length, 'all bytes');
  assert.deepEqual(rx.bytes(), expected);
  assert.equal(c.dropped, 0);
  assert.equal(c.connects, 1);
  c.enqueue(frame('late'));
  assert.equal(c.dropped, 1, 'after stop, messages are dropped');
  await rx.stop();
});

test('stop() without FINISH from the receiver ends after the finish timeout', async () => {
  const rx = await receiver({ finish: false });
  const c = new FrameStreamClient(opts(rx.sock, { finishTimeoutMs: 100 }), log);
  c.start();
  await until(() => c.connected, 'connected');
  const t0 = performance.now();
  await c.stop();
  assert.ok(performance.now() - t0 < 1000);
  await rx.stop();
});

for (const [what, script] of [
  ['a receiver accepting another content type', { accept: 'protobuf:other' }],
  ['a receiver answering garbage', { garbage: true }],
  ['a receiver that never answers READY', { silent: true }],
] as const) {
  test(`${what} is disconnected and retried with backoff; messages meanwhile are dropped`, async () => {
    log.lines.length = 0;
    const rx = await receiver(script);
    const c = new FrameStreamClient(opts(rx.sock), log);
    c.start();
    await until(() => rx.conns() >= 3, 'retries', 5000);
    assert.equal(c.connected, false);
    assert.equal(c.connects, 0);
    for (let i = 0; i < 5; i++) c.enqueue(frame('x'));
    await until(() => c.queued === 0, 'queue emptied by a failure or dropped at once', 3000);
    assert.equal(c.dropped, 5);
    assert.equal(log.lines.filter((l) => l.startsWith('E plugin/dnstap: No connection')).length, 1, 'one error per run of failures');
    await c.stop();
    await rx.stop();
  });
}

test('no receiver: dropped at once; queue capacity bound while connecting', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fstrm-none-'));
  const c = new FrameStreamClient(opts(path.join(dir, 'nobody')), log);
  // Before start (IDLE) frames queue up to the capacity, then drop.
  for (let i = 0; i < 150; i++) c.enqueue(frame('q'));
  assert.equal(c.queued, 100);
  assert.equal(c.dropped, 50);
  c.start();
  await until(() => c.queued === 0, 'failed connect drops the queue');
  assert.equal(c.dropped, 150);
  c.enqueue(frame('q'));
  assert.equal(c.dropped, 151);
  await c.stop();
  rmSync(dir, { recursive: true, force: true });
});

test('queue byte bound', () => {
  const c = new FrameStreamClient(opts('/nonexistent', { queueMaxBytes: 100 }), log);
  c.enqueue(Buffer.alloc(60));
  c.enqueue(Buffer.alloc(60));
  assert.equal(c.queued, 1);
  assert.equal(c.dropped, 1);
});

test('a receiver that goes away and comes back: reconnect, later frames delivered', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'fstrm-back-'));
  const sock = path.join(dir, 's');
  const rx = await receiver({}, sock);
  const c = new FrameStreamClient(opts(sock), log);
  c.start();
  await until(() => c.connected, 'connected');
  await rx.stop();
  await until(() => !c.connected, 'noticed');
  c.enqueue(frame('lost'));
  assert.equal(c.dropped, 1, 'no connection: dropped at once');
  const rx2 = await receiver({}, sock);
  await until(() => c.connected, 'reconnected', 5000);
  assert.equal(c.connects, 2);
  c.enqueue(frame('again'));
  await until(() => rx2.bytes().includes(Buffer.from('again')), 'delivered');
  assert.ok(!rx2.bytes().includes(Buffer.from('lost')));
  await c.stop();
  await rx2.stop();
  rmSync(dir, { recursive: true, force: true });
});
