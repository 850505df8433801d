/**
 * The example of CoreDNS's plugin/debug README against node-local-dns (real agent). Rows in
 * our own words; `section` names the README section.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { freeEndpoint, dig, startKnot, type Authority } from '../engine/harness.ts';
import { startFileAgent, type FileAgent } from './lib/agent-file.ts';

const ZONE = `$ORIGIN d.test.
$TTL 300
@ IN SOA ns.d.test. admin.d.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.8
`;

const stops: (() => Promise<void>)[] = [];
after(async () => {
  for (const s of stops.reverse()) await s();
});

test('README Examples: ". { debug }" shows debug logging (panics stay recovered here: deviation)', async () => {
  const knot: Authority = await startKnot({ 'd.test': ZONE });
  stops.push(() => knot.stop());
  const { host, port } = await freeEndpoint();
  const fa: FileAgent = await startFileAgent(`.:${port} {\n    bind ${host}\n    debug\n    forward . ${knot.addr}\n}\n`);
  stops.push(() => fa.stop());
  assert.equal((await dig(host, port, ['www.d.test', 'A'])).status, 'NOERROR');
  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/^\[DEBUG\] /m);
});

test('README Description: debug in at least one server block enables debug mode globally', async () => {
  const knot: Authority = await startKnot({ 'd.test': ZONE });
  stops.push(() => knot.stop());
  const a = await freeEndpoint();
  const b = await freeEndpoint();
  const fa = await startFileAgent(
    `.:${a.port} {\n    bind ${a.host}\n    forward . ${knot.addr}\n}\n.:${b.port} {\n    bind ${b.host}\n    debug\n    forward . ${knot.addr}\n}\n`,
  );
  stops.push(() => fa.stop());
  fa.agent.proc.kill('SIGUSR1');
  await fa.waitFor(/^\[DEBUG\] reload triggered by SIGUSR1$/m);
});

test('README Syntax: debug takes no arguments', async () => {
  const { runToExit } = await import('../engine/harness.ts');
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const path = await import('node:path');
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-debug-'));
  try {
    const file = path.join(dir, 'Corefile');
    writeFileSync(file, '.:1053 {\n    debug on\n}\n');
    const r = await runToExit(['-conf', file]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'on'/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
