import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { glob, globSync, hasGlobMeta } from './glob.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-glob-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));
for (const rel of ['b.conf', 'a.conf', '.hidden.conf', 'ab.conf', 'x.txt', 'sub/c.conf', 'other/d.conf', 'star*.conf']) {
  fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
  fs.writeFileSync(path.join(dir, rel), '');
}

const rel = (matches: string[]): string[] => matches.map((m) => path.relative(dir, m));

const GO_CASES: Array<[pattern: string, expected: string[]]> = [
  ['*.conf', ['.hidden.conf', 'a.conf', 'ab.conf', 'b.conf', 'star*.conf']],
  ['?.conf', ['a.conf', 'b.conf']],
  ['a*.conf', ['a.conf', 'ab.conf']],
  ['*/*.conf', ['other/d.conf', 'sub/c.conf']],
  ['sub/*', ['sub/c.conf']],
  ['*', ['.hidden.conf', 'a.conf', 'ab.conf', 'b.conf', 'other', 'star*.conf', 'sub', 'x.txt']],
  ['star\\*.conf', ['star*.conf']],
  ['a.conf', ['a.conf']],
  ['missing.conf', []],
  ['nodir/*.conf', []],
  ['x.txt/*', []],
];

test('globSync: Go filepath.Glob semantics', () => {
  for (const [pattern, expected] of GO_CASES) {
    assert.deepEqual(rel(globSync(path.join(dir, pattern))), expected, pattern);
  }
});

test('glob (without blocking): the same matches as globSync', async () => {
  for (const [pattern, expected] of GO_CASES) {
    assert.deepEqual(rel(await glob(path.join(dir, pattern))), expected, pattern);
  }
  await assert.rejects(glob(path.join(dir, '[ab].conf')), /syntax error in pattern/);
});

test('globSync: malformed patterns throw', () => {
  assert.throws(() => globSync(path.join(dir, '[ab].conf')), /syntax error in pattern/);
  assert.throws(() => globSync(path.join(dir, '*\\')), /syntax error in pattern/);
});

test('hasGlobMeta', () => {
  assert.equal(hasGlobMeta('/etc/coredns/Corefile'), false);
  for (const p of ['*.conf', 'a?', '[a]', 'a\\b']) assert.equal(hasGlobMeta(p), true, p);
});
