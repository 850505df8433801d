import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { PanicGuard, PANIC_EXIT_CODE, type PanicSource } from './panic.ts';

function setup(opts: { maxPanics?: number; windowMs?: number } = {}) {
  const lines: string[] = [];
  const fatals: string[] = [];
  const exits: number[] = [];
  let counted = 0;
  let clock = 0;
  const guard = new PanicGuard({
    log: { info: () => {}, warn: () => {}, error: (m) => lines.push(m) },
    count: () => counted++,
    exit: (c) => exits.push(c),
    fatal: (m) => fatals.push(m),
    now: () => clock,
    ...opts,
  });
  return { guard, lines, fatals, exits, counted: () => counted, tick: (ms: number) => (clock += ms) };
}

test('panic guard: an escaped exception is logged once with its stack and counted; no exit', () => {
  const s = setup();
  const src = new EventEmitter();
  s.guard.install(src as unknown as PanicSource);
  src.emit('uncaughtException', new Error('boom in a timer'), 'uncaughtException');
  src.emit('unhandledRejection', new TypeError('rejected'));
  src.emit('unhandledRejection', 'a string');
  assert.equal(s.counted(), 3);
  assert.equal(s.lines.length, 3);
  assert.match(s.lines[0]!, /^Recovered from panic \(uncaughtException\): Error: boom in a timer\n\s+at /);
  assert.match(s.lines[1]!, /^Recovered from panic \(unhandledRejection\): TypeError: rejected\n/);
  assert.match(s.lines[2]!, /^Recovered from panic \(unhandledRejection\): non-error thrown: a string$/);
  assert.deepEqual(s.exits, []);
  s.guard.uninstall();
  assert.equal(src.listenerCount('uncaughtException'), 0);
});

test('panic guard: more than maxPanics within the window exits non-zero once', () => {
  const s = setup({ maxPanics: 10, windowMs: 60_000 });
  for (let i = 0; i < 10; i++) {
    s.guard.recover(new Error(`p${i}`), 'uncaughtException');
    s.tick(1000);
  }
  assert.deepEqual(s.exits, [], '10 in 60 s are tolerated');
  s.guard.recover(new Error('p10'), 'uncaughtException');
  assert.deepEqual(s.exits, [PANIC_EXIT_CODE]);
  assert.equal(s.fatals.length, 1);
  assert.match(s.fatals[0]!, /^11 panics within 60s \(more than 10\)/);
  s.guard.recover(new Error('after'), 'uncaughtException');
  assert.deepEqual(s.exits, [PANIC_EXIT_CODE], 'exits once');
});

test('panic guard: panics spread wider than the window never exit', () => {
  const s = setup({ maxPanics: 10, windowMs: 60_000 });
  for (let i = 0; i < 100; i++) {
    s.guard.recover(new Error(`p${i}`), 'unhandledRejection');
    s.tick(6_001);
  }
  assert.deepEqual(s.exits, []);
  assert.equal(s.counted(), 100);
});
