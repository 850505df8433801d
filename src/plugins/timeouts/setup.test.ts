import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseTimeouts, timeoutsSetup, TimeoutsPlugin } from './setup.ts';
import { TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';

test('timeouts setup: the valid forms of CoreDNS setup_test, in milliseconds', () => {
  const ok: [string, [number | null, number | null, number | null]][] = [
    ['timeouts {\nread 30s\n}', [30_000, null, null]],
    ['timeouts {\nread 1m\nwrite 2m\n}', [60_000, 120_000, null]],
    ['timeouts {\nidle 1h\n}', [null, null, 3_600_000]],
    // A bare integer is seconds (CoreDNS durations.NewDurationFromArg).
    ['timeouts {\nread 10\nwrite 20\nidle 60\n}', [10_000, 20_000, 60_000]],
    ['timeouts {\nread 1s\nidle 24h\n}', [1_000, null, 86_400_000]],
    ['timeouts {\nwrite 1500ms\n}', [null, 1_500, null]],
  ];
  for (const [text, [r, w, i]] of ok) {
    assert.deepEqual(parseTimeouts(directiveOf(text)), { readTimeoutMs: r, writeTimeoutMs: w, idleTimeoutMs: i }, text);
  }
});

test('timeouts setup: each invalid form with its Corefile:N error text', () => {
  const bad: [string, string][] = [
    ['timeouts', 'Corefile:2 - Error during parsing: timeouts block with no timeouts specified'],
    ['timeouts {\n}', 'Corefile:2 - Error during parsing: timeouts block with no timeouts specified'],
    ['timeouts 10s {\nread 10s\n}', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after '10s'"],
    ['timeouts {\nread 10s\ngiraffe 30s\n}', "Corefile:4 - Error during parsing: unknown option: 'giraffe'"],
    ['timeouts {\nread 10s 20s\nwrite 30s\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after '20s'"],
    ['timeouts {\nread\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'read'"],
    ['timeouts {\nwrite snake\n}', "Corefile:3 - Error during parsing: failed to parse duration 'snake'"],
    ['timeouts {\nidle 0s\n}', "Corefile:3 - Error during parsing: timeout provided '0s' needs to be between 1 second and 24 hours"],
    ['timeouts {\nread 48h\n}', "Corefile:3 - Error during parsing: timeout provided '48h0m0s' needs to be between 1 second and 24 hours"],
    ['timeouts {\nread 999ms\n}', "Corefile:3 - Error during parsing: timeout provided '999ms' needs to be between 1 second and 24 hours"],
    ['timeouts {\nidle 0\n}', "Corefile:3 - Error during parsing: timeout provided '0s' needs to be between 1 second and 24 hours"],
    ['timeouts {\nmaxtcpqueries 128\n}', "Corefile:3 - Error during parsing: unknown option: 'maxtcpqueries'"],
  ];
  for (const [text, msg] of bad) assert.throws(() => parseTimeouts(directiveOf(text)), { message: msg }, text);
});

test('timeouts setup: sets the block server config it names and leaves the others', () => {
  const ctx = setupContext(new TestEngine());
  const p = timeoutsSetup.setup(directiveOf('timeouts {\nread 15s\nwrite 30s\n}'), ctx);
  assert.ok(p instanceof TimeoutsPlugin);
  assert.equal(p.handler, false);
  assert.equal(ctx.server.readTimeoutMs, 15_000);
  assert.equal(ctx.server.writeTimeoutMs, 30_000);
  assert.equal(ctx.server.idleTimeoutMs, null);
  const next = { serve() {} };
  assert.equal(p.compose(next), next, 'setup-only: no handler in the chain');
});
