import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseReady, readySetup } from './setup.ts';
import { ReadyPlugin } from './ready.ts';
import { HttpEndpoints } from '../../metrics/http-endpoints.ts';
import { TestEngine, directiveOf, setupContext } from '../../../test/lib/metrics-testing.ts';

test('ready setup: address and monitor', () => {
  const ok: [string, { address: string; monitor: string }][] = [
    ['ready', { address: ':8181', monitor: 'until-ready' }],
    ['ready 127.0.0.1:8182', { address: '127.0.0.1:8182', monitor: 'until-ready' }],
    ['ready {\nmonitor continuously\n}', { address: ':8181', monitor: 'continuously' }],
  ];
  for (const [line, want] of ok) assert.deepEqual(parseReady(directiveOf(line)), want, line);
  const bad: [string, string][] = [
    ['ready 8181', 'Corefile:2 - Error during parsing: address 8181: missing port in address'],
    ['ready :1 :2', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after ':2'"],
    ['ready {\nmonitor\n}', "Corefile:3 - Error during parsing: Wrong argument count or unexpected line ending after 'monitor'"],
    ['ready {\nmonitor sometimes\n}', "Corefile:3 - Error during parsing: monitor type 'sometimes' not supported"],
    ['ready {\nwait 1s\n}', "Corefile:3 - Error during parsing: unknown property 'wait'"],
  ];
  for (const [line, msg] of bad) assert.throws(() => parseReady(directiveOf(line)), { message: msg }, line);
  assert.equal(readySetup.setup(directiveOf('ready'), setupContext(new TestEngine())).name, 'ready');
});

test('ready plugin: 503 before the engine is ready, 200 OK while serving, 503 "Shutting down" from shutdown on', async (t) => {
  const endpoints = new HttpEndpoints();
  t.after(() => endpoints.closeAll());
  const engine = new TestEngine();
  engine.ready = false;
  const p = new ReadyPlugin({ address: '127.0.0.1:0', monitor: 'until-ready' }, { endpoints, engine });
  await p.start();
  const url = `http://127.0.0.1:${p.port}/ready`;
  let r = await fetch(url);
  assert.equal(r.status, 503);
  await r.text();
  engine.ready = true;
  r = await fetch(url);
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'OK');
  engine.shuttingDown = true;
  r = await fetch(url);
  assert.equal(r.status, 503);
  assert.equal(await r.text(), 'Shutting down');
  await p.stop();
  await assert.rejects(fetch(url));
});
