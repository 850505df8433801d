import { test } from 'node:test';
import assert from 'node:assert/strict';
import { debugSetup } from './setup.ts';
import { TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';
import { debugOutputEnabled, setDebugOutput } from '../../util/log.ts';

test('debug setup: sets server.debug, is setup-only', () => {
  const ctx = setupContext(new TestEngine());
  assert.equal(ctx.server.debug, false);
  const p = debugSetup.setup(directiveOf('debug'), ctx);
  assert.equal(ctx.server.debug, true);
  assert.equal(p.handler, false);
  const next = { serve() {} };
  assert.equal(p.compose(next), next);
});

test('debug setup: arguments and a block are errors', () => {
  const ctx = setupContext(new TestEngine());
  assert.throws(() => debugSetup.setup(directiveOf('debug on'), ctx), {
    message: "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'on'",
  });
  assert.throws(() => debugSetup.setup(directiveOf('debug {\n}'), ctx), { message: "Corefile:2 - Error during parsing: 'debug' does not take a block" });
  assert.equal(ctx.server.debug, false, 'a failed setup changes nothing');
});

test('setDebugOutput switches [DEBUG] lines of the loggers on and off', async () => {
  const saved = process.env.NLD_DEBUG;
  delete process.env.NLD_DEBUG;
  const { log } = await import('../../util/log.ts');
  const lines: string[] = [];
  const orig = process.stdout.write.bind(process.stdout);
  (process.stdout as { write: unknown }).write = (chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  };
  try {
    setDebugOutput(false);
    assert.equal(debugOutputEnabled(), false);
    log.debug!('hidden line');
    setDebugOutput(true);
    assert.equal(debugOutputEnabled(), true);
    log.debug!('shown line');
    setDebugOutput(false);
    log.debug!('hidden again');
  } finally {
    (process.stdout as { write: unknown }).write = orig;
    if (saved !== undefined) process.env.NLD_DEBUG = saved;
  }
  assert.deepEqual(
    lines.filter((l) => l.includes('line') || l.includes('again')),
    ['[DEBUG] shown line\n'],
  );
});
