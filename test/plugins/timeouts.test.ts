/**
 * timeouts end to end: the real agent's TCP listener closes a silent connection after the
 * block's read timeout and an answered one after its idle timeout, while a block without
 * `timeouts` keeps the default (10 s); UDP is unaffected; a bad value stops the agent with
 * CoreDNS's error text.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, freeEndpoint, runToExit, startAgent, startKnot, type AgentProcess, type Authority } from '../engine/harness.ts';
import { connectTimed, waitClosed } from './lib/tcp-client.ts';

const ZONE = `$ORIGIN t.test.
$TTL 300
@ IN SOA ns.t.test. admin.t.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.80
`;

let knot: Authority;
let agent: AgentProcess;
let timed: { host: string; port: number };
let plain: { host: string; port: number };

before(async () => {
  knot = await startKnot({ 't.test': ZONE });
  timed = await freeEndpoint();
  plain = await freeEndpoint();
  agent = await startAgent(
    `.:${timed.port} {\n    bind ${timed.host}\n    timeouts {\n        read 1s\n        idle 2s\n        write 5\n    }\n    forward . ${knot.addr}\n}\n` +
      `.:${plain.port} {\n    bind ${plain.host}\n    forward . ${knot.addr}\n}\n`,
  );
});

after(async () => {
  await agent?.stop();
  await knot?.stop();
});

test('read 1s: a TCP connection that sends nothing is closed after about a second; without timeouts it stays open', async () => {
  const [silent, other] = await Promise.all([connectTimed(timed.host, timed.port), connectTimed(plain.host, plain.port)]);
  const closed = await waitClosed(silent, 4000);
  assert.ok(closed >= 900 && closed < 2500, `closed after ${closed} ms`);
  assert.equal(other.closedAfterMs(), -1, 'the block without timeouts keeps its 10 s default');
  other.destroy();
});

test('idle 2s: after a query the connection lives by the idle timeout (open past the read timeout, closed after ~2 s)', async () => {
  const c = await connectTimed(timed.host, timed.port);
  assert.ok((await c.ask('www.t.test', 1)) > 12, 'answered over TCP');
  await new Promise((r) => setTimeout(r, 1500));
  assert.equal(c.closedAfterMs(), -1, 'not closed by the 1 s read timeout once a query came');
  const closed = await waitClosed(c, 4000);
  assert.ok(closed >= 1900 && closed < 4500, `closed after ${closed} ms`);
});

test('UDP and TCP queries are answered as usual', async () => {
  const udp = await dig(timed.host, timed.port, ['www.t.test', 'A']);
  const tcp = await dig(timed.host, timed.port, ['www.t.test', 'A', '+tcp']);
  assert.deepEqual([udp.status, udp.answer[0]?.data, tcp.status, tcp.answer[0]?.data], ['NOERROR', '192.0.2.80', 'NOERROR', '192.0.2.80']);
});

test("a timeout outside 1s..24h stops the agent with CoreDNS's error text and line", async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-timeouts-'));
  try {
    const file = path.join(dir, 'Corefile');
    writeFileSync(file, `.:${plain.port} {\n    bind ${plain.host}\n    timeouts {\n        idle 25h\n    }\n    forward . ${knot.addr}\n}\n`);
    const r = await runToExit(['-conf', file]);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      new RegExp(`${file.replace(/[.]/g, '\\.')}:4 - Error during parsing: timeout provided '25h0m0s' needs to be between 1 second and 24 hours`),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
