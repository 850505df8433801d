import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parsePprof, pprofSetup } from './setup.ts';
import { MemoryLogger, TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';

test('pprof setup: the valid forms of CoreDNS setup_test', () => {
  const ok: [string, { address: string; blockRate: number }][] = [
    ['pprof', { address: 'localhost:6053', blockRate: 0 }],
    ['pprof 1.2.3.4:1234', { address: '1.2.3.4:1234', blockRate: 0 }],
    ['pprof :1234', { address: ':1234', blockRate: 0 }],
    ['pprof [::1]:6060', { address: '[::1]:6060', blockRate: 0 }],
    ['pprof {\n}', { address: 'localhost:6053', blockRate: 0 }],
    ['pprof {\nblock\n}', { address: 'localhost:6053', blockRate: 1 }],
    ['pprof :1234 {\nblock 20\n}', { address: ':1234', blockRate: 20 }],
  ];
  for (const [text, want] of ok) assert.deepEqual(parsePprof(directiveOf(text)), want, text);
});

test('pprof setup: the invalid forms with their error texts', () => {
  const bad: [string, string][] = [
    ['pprof :1234 -1', "Wrong argument count or unexpected line ending after '-1'"],
    ['pprof /foo', 'address /foo: missing port in address'],
    ['pprof ::1:80', 'address ::1:80: too many colons in address'],
    ['pprof {\na b\n}', "unknown property 'a'"],
    ['pprof {\nblock 20 30\n}', "Wrong argument count or unexpected line ending after '30'"],
    ['pprof {\nblock invalid\n}', "property 'block' invalid integer value 'invalid'"],
    ['pprof {\nunknown_property\n}', "unknown property 'unknown_property'"],
  ];
  for (const [text, detail] of bad)
    assert.throws(
      () => parsePprof(directiveOf(text)),
      { message: new RegExp(`^Corefile:\\d+ - Error during parsing: ${detail.replace(/[[\]()]/g, '\\$&')}$`) },
      text,
    );
});

test("pprof: the address is split as Go's net.SplitHostPort splits it, with its error texts", () => {
  assert.equal(parsePprof(directiveOf('pprof localhost:6053')).address, 'localhost:6053');
  assert.equal(parsePprof(directiveOf('pprof [::1]:1')).address, '[::1]:1');
  const bad: [string, string][] = [
    ['[::1', "address [::1: missing ']' in address"],
    ['[::1]', 'address [::1]: missing port in address'],
    ['[::1]x:1', 'address [::1]x:1: missing port in address'],
    ['[::1]:1:2', 'address [::1]:1:2: too many colons in address'],
    ['a]:1', "address a]:1: unexpected ']' in address"],
    ['a[:1', "address a[:1: unexpected '[' in address"],
  ];
  for (const [address, detail] of bad) {
    assert.throws(() => parsePprof(directiveOf(`pprof ${address}`)), { message: `Corefile:2 - Error during parsing: ${detail}` }, address);
  }
});

test('pprof setup: starts nothing, logs one warning naming the address and the Node.js tools', () => {
  const log = new MemoryLogger();
  const p = pprofSetup.setup(directiveOf('pprof 127.0.0.1:6060 {\nblock 5\n}'), setupContext(new TestEngine(), { log }));
  assert.equal(p.handler, false);
  assert.equal(p.start, undefined, 'no listener to start');
  assert.equal(log.lines.length, 1);
  assert.match(log.lines[0]!, /^WARNING plugin\/pprof: .*nothing listens on 127\.0\.0\.1:6060.*--cpu-prof.*--heap-prof.*--inspect/);
});
