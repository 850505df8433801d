import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCorefile } from './parser.ts';
import { CorefileError } from './errors.ts';
import { argCountError, blockLines, durationArgMs, errorAt, expectArgs, noBlock, unknownPropertyError } from './setup-helpers.ts';
import type { Directive } from './types.ts';

/** The directives of a one-block Corefile whose body is `body` (starting on line 2). */
function directives(body: string): Directive[] {
  return parseCorefile(`.:53 {\n${body}\n}\n`, 'Corefile', {})[0]!.directives;
}

function throwsAt(fn: () => unknown, message: string): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof CorefileError, String(err));
    assert.equal(err.message, message);
    return true;
  });
}

test('argCountError / errorAt / unknownPropertyError: CoreDNS wording at the right line', () => {
  const [cache] = directives('  cache {\n    success\n    bogus 1\n  }');
  const [success, bogus] = blockLines(cache!);
  throwsAt(() => argCountError(success!), "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'success'");
  throwsAt(() => unknownPropertyError(bogus!), "Corefile:4 - Error during parsing: unknown property 'bogus'");
  throwsAt(() => argCountError(bogus!.args[0]!), "Corefile:4 - Error during parsing: Wrong argument count or unexpected line ending after '1'");
  throwsAt(() => errorAt(bogus!.args[0]!, 'custom'), 'Corefile:4 - Error during parsing: custom');
  throwsAt(() => errorAt(cache!, 'custom'), 'Corefile:2 - Error during parsing: custom');
});

test('expectArgs: count range', () => {
  const [none, two, four] = directives('  a\n  b x y\n  c 1 2 3 4');
  assert.deepEqual(expectArgs(none!, 0, 0), []);
  assert.deepEqual(
    expectArgs(two!, 1, 2).map((t) => t.text),
    ['x', 'y'],
  );
  assert.equal(expectArgs(four!, 0, Infinity).length, 4);
  throwsAt(() => expectArgs(none!, 1, 1), "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'a'");
  throwsAt(() => expectArgs(two!, 3, 5), "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'y'");
  throwsAt(() => expectArgs(four!, 1, 2), "Corefile:4 - Error during parsing: Wrong argument count or unexpected line ending after '3'");
});

test('durationArgMs: Go durations, optional bare seconds', () => {
  const [d] = directives('  x 30s 1m30s 500ms 30 1.5h bad');
  const a = d!.args;
  assert.equal(durationArgMs(a[0]!), 30_000);
  assert.equal(durationArgMs(a[1]!), 90_000);
  assert.equal(durationArgMs(a[2]!), 500);
  assert.equal(durationArgMs(a[3]!, { allowBareSeconds: true }), 30_000);
  assert.equal(durationArgMs(a[4]!, { allowBareSeconds: true }), 5_400_000);
  throwsAt(() => durationArgMs(a[3]!), `Corefile:2 - Error during parsing: invalid duration '30': time: missing unit in duration "30"`);
  throwsAt(() => durationArgMs(a[5]!, { allowBareSeconds: true }), `Corefile:2 - Error during parsing: invalid duration 'bad': time: invalid duration "bad"`);
});

test('noBlock / blockLines', () => {
  const [plain, withBlock, emptyBlock] = directives('  a 1\n  b {\n    c\n  }\n  d {\n  }');
  noBlock(plain!);
  assert.deepEqual(blockLines(plain!), []);
  assert.deepEqual(
    blockLines(withBlock!).map((l) => l.name),
    ['c'],
  );
  assert.deepEqual(blockLines(emptyBlock!), []);
  throwsAt(() => noBlock(withBlock!), "Corefile:3 - Error during parsing: 'b' does not take a block");
  throwsAt(() => noBlock(emptyBlock!), "Corefile:6 - Error during parsing: 'd' does not take a block");
});
