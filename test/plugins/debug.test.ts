/**
 * debug end to end: `debug` in any block switches on the process's [DEBUG] lines (here the
 * engine's "reload triggered by" line on SIGUSR1), a config without it switches them off
 * again on reload; debug is not a query handler (coredns_plugin_enabled does not list it).
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { dig, freeEndpoint, sleep, startKnot, type Authority } from '../engine/harness.ts';
import { scrape } from '../fault/lib/agent.ts';
import { startFileAgent, type FileAgent } from './lib/agent-file.ts';

const ZONE = `$ORIGIN d.test.
$TTL 300
@ IN SOA ns.d.test. admin.d.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.8
`;

const cleanups: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function setup(): Promise<{
  knot: Authority;
  a: { host: string; port: number };
  b: { host: string; port: number };
  m: { host: string; port: number };
  corefile: (debug: boolean) => string;
}> {
  const knot = await startKnot({ 'd.test': ZONE });
  cleanups.push(() => knot.stop());
  const a = await freeEndpoint();
  const b = await freeEndpoint();
  const m = await freeEndpoint(a.host);
  const corefile = (debug: boolean) =>
    `.:${a.port} {\n    bind ${a.host}\n    prometheus ${m.host}:${m.port}\n    forward . ${knot.addr}\n}\n` +
    `.:${b.port} {\n    bind ${b.host}\n${debug ? '    debug\n' : ''}    forward . ${knot.addr}\n}\n`;
  return { knot, a, b, m, corefile };
}

test('debug in one of two blocks turns [DEBUG] lines on process-wide; reloading without it turns them off', async () => {
  const { a, m, corefile } = await setup();
  const fa: FileAgent = await startFileAgent(corefile(true));
  cleanups.push(() => fa.stop());
  // The block without debug still answers (nothing else changes).
  assert.equal((await dig(a.host, a.port, ['www.d.test', 'A'])).answer[0]?.data, '192.0.2.8');
  const fams = await scrape(m.host, m.port);
  const enabled = fams.get('coredns_plugin_enabled')?.samples.map((s) => s.labels.name) ?? [];
  assert.ok(enabled.includes('forward'), `plugin_enabled lists: ${enabled}`);
  assert.ok(!enabled.includes('debug'), 'debug is setup-only, not a handler');

  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/^\[DEBUG\] reload triggered by SIGUSR1$/m);
  await fa.waitFor(/Reloading complete/);
  // Reload to a config without debug: [DEBUG] lines stop (the engine logs its reload line
  // after the new config applied, so neither this reload nor the next one prints it).
  fa.write(corefile(false));
  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/Reloading complete/, 10_000, 2);
  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/Reloading complete/, 10_000, 3);
  await sleep(1000);
  const debugLines = fa.agent
    .output()
    .split('\n')
    .filter((l) => l.startsWith('[DEBUG]'));
  assert.deepEqual(debugLines, ['[DEBUG] reload triggered by SIGUSR1'], fa.agent.output());
});

test('without debug no [DEBUG] line is printed', async () => {
  const { corefile } = await setup();
  const fa = await startFileAgent(corefile(false));
  cleanups.push(() => fa.stop());
  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/Reloading/);
  await sleep(1500);
  assert.doesNotMatch(fa.agent.output(), /\[DEBUG\]/);
});
