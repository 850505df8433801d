// native/loop.c through udp-native.ts: the batched path turns the event loop's idle-time
// metrics off, and the loop then polls once per wake-up instead of twice.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadUdpAddon } from './udp-native.ts';

const { addon, reason } = loadUdpAddon();

test('loopIdleTimeOff clears the flag once: idle time stops accumulating', { skip: addon === null ? reason : false }, async () => {
  const a = addon!;
  const before = performance.eventLoopUtilization();
  await sleep(60);
  const idleBeforeMs = performance.eventLoopUtilization(before).idle;
  assert.ok(idleBeforeMs > 0, `Node keeps idle time by default (${idleBeforeMs} ms idle of 60)`);
  assert.equal(a.loopIdleTimeOff(), '');
  assert.equal(a.loopIdleTimeOff(), 'idle-time metrics not enabled on this loop');
  const after = performance.eventLoopUtilization();
  await sleep(60);
  assert.equal(performance.eventLoopUtilization(after).idle, 0);
});

/** Counts epoll_pwait calls of a child that sleeps in its loop 20 times (strace). */
function epollCalls(env: NodeJS.ProcessEnv): number {
  const script = `
    import { udpIoMode } from ${JSON.stringify(new URL('./udp-native.ts', import.meta.url).href)};
    udpIoMode();
    let n = 0;
    const tick = () => { if (++n < 20) setTimeout(tick, 2); };
    setTimeout(tick, 2);`;
  const dir = mkdtempSync(join(tmpdir(), 'nld-loop-'));
  try {
    const out = join(dir, 'strace.txt');
    const r = spawnSync('strace', ['-f', '-qq', '-e', 'trace=epoll_pwait,epoll_wait', '-o', out, process.execPath, '--input-type=module', '-e', script], {
      env: { ...process.env, NODE_LOCAL_DNS_UDP_IO: 'batched', ...env },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    return readFileSync(out, 'utf8')
      .split('\n')
      .filter((l) => /epoll_p?wait\(/.test(l)).length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const hasStrace = spawnSync('strace', ['-V']).status === 0;

test('a thread on the batched path polls once per wake-up', { skip: addon === null ? reason : !hasStrace ? 'no strace' : false }, () => {
  const on = epollCalls({ NODE_LOCAL_DNS_LOOP_IDLE_TIME: 'on' });
  const off = epollCalls({});
  // 20 timer wake-ups: with idle-time metrics libuv polls with a zero timeout before every blocking poll.
  assert.ok(on >= off + 15, `epoll calls with idle-time metrics ${on}, without ${off}`);
});
