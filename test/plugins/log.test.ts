/**
 * log end to end: the real agent between dig and Knot prints CoreDNS's common log line, every
 * replacer placeholder ({local}, {remote} in brackets over IPv6, {>rflags}, ...), metadata
 * placeholders ({/log/type}, {/log/class} with the metadata plugin; `-` without), and logs
 * cache hits too (log is before cache).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, sleep, type Authority } from '../engine/harness.ts';
import { logLines, startLogAgent, startLogKnot } from './lib/log-agent.ts';

let knot: Authority;
before(async () => {
  knot = await startLogKnot();
});
after(async () => {
  await knot?.stop();
});

async function lines(agent: Parameters<typeof logLines>[0], n: number): Promise<string[]> {
  const end = performance.now() + 5000;
  while (logLines(agent).length < n && performance.now() < end) await sleep(20);
  return logLines(agent);
}

test('default: the common log format, as CoreDNS prints it', async () => {
  const { agent, host, port } = await startLogAgent(knot, '    log');
  try {
    const r = await dig(host, port, ['www.l.test', 'A', '+bufsize=1232']);
    const [line] = await lines(agent, 1);
    const m = /^\[INFO\] (127\.0\.0\.\d+):(\d+) - (\d+) "A IN www\.l\.test\. udp (\d+) false 1232" NOERROR qr,aa,rd (\d+) (\d+(?:\.\d+)?)s$/.exec(line!);
    assert.ok(m, line);
    assert.equal(Number(m[3]), r.id);
    assert.equal(Number(m[5]), r.size);
  } finally {
    await agent.stop();
  }
});

test('every placeholder over IPv6 and IPv4; {/LABEL} is - without the metadata plugin', async () => {
  const fmt = '{type}|{name}|{class}|{proto}|{remote}|{local}|{size}|{rcode}|{rsize}|{>rflags}|{>bufsize}|{>do}|{>id}|{>opcode}|{/log/type}';
  const { agent, host, port } = await startLogAgent(knot, `    log . "${fmt}"`);
  try {
    const a = await dig('::1', port, ['V6.l.test', 'AAAA', '+dnssec', '+tcp']);
    const b = await dig(host, port, ['nope.l.test', 'TXT', '+noedns']);
    const got = await lines(agent, 2);
    assert.match(
      got[0]!,
      new RegExp(
        `^\\[INFO\\] AAAA\\|v6\\.l\\.test\\.\\|IN\\|tcp\\|\\[::1\\]\\|\\[::1\\]\\|\\d+\\|NOERROR\\|${a.size}\\|qr,aa,rd\\|65535\\|true\\|${a.id}\\|0\\|-$`,
      ),
    );
    assert.match(
      got[1]!,
      new RegExp(
        `^\\[INFO\\] TXT\\|nope\\.l\\.test\\.\\|IN\\|udp\\|127\\.0\\.0\\.\\d+\\|${host.replace(/\./g, '\\.')}\\|\\d+\\|NXDOMAIN\\|${b.size}\\|qr,aa,rd\\|512\\|false\\|${b.id}\\|0\\|-$`,
      ),
    );
  } finally {
    await agent.stop();
  }
});

test('with metadata: {/log/type} and {/log/class} name the response type and class', async () => {
  const { agent, host, port } = await startLogAgent(knot, '    metadata\n    log . "{name} {/log/type} {/log/class}"');
  try {
    await dig(host, port, ['www.l.test', 'A']);
    await dig(host, port, ['www.l.test', 'AAAA']);
    await dig(host, port, ['nope.l.test', 'A']);
    await dig(host, port, ['other.test', 'A']);
    assert.deepEqual(await lines(agent, 4), [
      '[INFO] www.l.test. NOERROR success',
      '[INFO] www.l.test. NODATA denial',
      '[INFO] nope.l.test. NXDOMAIN denial',
      '[INFO] other.test. OTHERERROR error',
    ]);
  } finally {
    await agent.stop();
  }
});

test('log is before cache: cache hits are logged too, with the same line as the miss', async () => {
  const { agent, host, port } = await startLogAgent(knot, '    log . "{name} {rcode} {rsize}"\n    cache 30');
  try {
    await dig(host, port, ['www.l.test', 'A']);
    await dig(host, port, ['www.l.test', 'A']);
    const got = await lines(agent, 2);
    assert.equal(got.length, 2, 'the miss and the hit are both logged');
    assert.equal(got[0], got[1]);
  } finally {
    await agent.stop();
  }
});
