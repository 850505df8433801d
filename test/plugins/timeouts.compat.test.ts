/**
 * The examples of CoreDNS's plugin/timeouts README against node-local-dns. The plain DNS
 * example runs on the real agent (Knot upstream); the DNS-over-TLS/HTTPS/QUIC examples and
 * `maxtcpqueries` are not served here, and the rows assert the agent says so at load.
 * Rows are in our own words; `section` names the README section.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { dig, freeEndpoint, runToExit, startAgent, startKnot, type AgentProcess, type Authority } from '../engine/harness.ts';
import { connectTimed, waitClosed } from './lib/tcp-client.ts';

const ZONE = `$ORIGIN t.test.
$TTL 300
@ IN SOA ns.t.test. admin.t.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.80
`;

let knot: Authority;
const dirs: string[] = [];

before(async () => {
  knot = await startKnot({ 't.test': ZONE });
});

after(async () => {
  await knot?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function loadError(body: string, key = '.:1053'): Promise<string> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-timeouts-compat-'));
  dirs.push(dir);
  const file = path.join(dir, 'Corefile');
  writeFileSync(file, `${key} {\n${body}\n    forward . ${knot.addr}\n}\n`);
  const r = await runToExit(['-conf', file]);
  assert.equal(r.code, 1, r.stdout + r.stderr);
  return r.stderr.replace(file, 'Corefile');
}

test('README Examples: standard TCP/UDP server with read 15s and write 30s: UDP and TCP answered; a silent TCP connection outlives the 10 s default', async () => {
  const { host, port } = await freeEndpoint();
  const agent: AgentProcess = await startAgent(
    `.:${port} {\n    bind ${host}\n    timeouts {\n        read 15s\n        write 30s\n    }\n    forward . ${knot.addr}\n}\n`,
  );
  try {
    const silent = await connectTimed(host, port);
    const udp = await dig(host, port, ['www.t.test', 'A']);
    const tcp = await dig(host, port, ['www.t.test', 'A', '+tcp']);
    assert.deepEqual([udp.answer[0]?.data, tcp.answer[0]?.data], ['192.0.2.80', '192.0.2.80']);
    assert.equal(await waitClosed(silent, 11_000), -1, 'still open after 11 s: the read timeout is 15 s');
    const closed = await waitClosed(silent, 6_000);
    assert.ok(closed >= 14_000 && closed < 17_000, `closed after ${closed} ms`);
  } finally {
    await agent.stop();
  }
});

test('README Syntax: at least one option must be given', async () => {
  assert.match(await loadError('    timeouts {\n    }'), /Corefile:2 - Error during parsing: timeouts block with no timeouts specified/);
});

test('README Examples: DNS-over-TLS, DNS-over-HTTPS and DNS-over-QUIC servers are not served by node-local-dns (deviation)', async () => {
  for (const [key, body] of [
    ['tls://.:5553', '    timeouts {\n        read 10s\n        write 20s\n        idle 60s\n    }'],
    ['https://.', '    timeouts {\n        read 1m\n    }'],
    ['quic://.:853', '    timeouts {\n        read 10s\n        idle 2m\n    }'],
  ] as const) {
    assert.match(await loadError(body, key), /only dns:\/\/ is served by node-local-dns/, key);
  }
});

test('README Examples: maxtcpqueries (a newer CoreDNS option) is refused at load (deviation)', async () => {
  assert.match(await loadError('    timeouts {\n        maxtcpqueries 128\n    }'), /Corefile:3 - Error during parsing: unknown option: 'maxtcpqueries'/);
});
