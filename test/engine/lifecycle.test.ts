/**
 * Start-up and shutdown of the agent process: the embedded default (no flags) and SIGTERM
 * with queries in flight.
 *
 * The embedded default forwards to the machine's /etc/resolv.conf, which points off-box, so it
 * runs inside a network namespace of its own (only `lo`) and is never sent a query: the test
 * checks its announcement and its sockets, then stops it.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeEndpoint, rawQuery, runToExit, spawnAgent, startAgent, tcpExchange, udpExchange } from './harness.ts';

// Named like test/netns/harness.ts namespaces, so its sweeper removes one left by a crashed run.
const NETNS = `nld-${process.pid}-engine`;
let netnsCreated = false;

after(() => {
  if (netnsCreated) execFileSync('ip', ['netns', 'del', NETNS]);
});

// The cases are independent (own blocks, ports and upstreams): run them at once.
describe('agent lifecycle', { concurrency: true }, () => {
  test('no flags: the embedded default announces .:5353 on 127.0.0.1, listens there, and exits 0 on SIGTERM', async () => {
    execFileSync('ip', ['netns', 'add', NETNS]);
    netnsCreated = true;
    execFileSync('ip', ['-n', NETNS, 'link', 'set', 'lo', 'up']);
    const agent = await spawnAgent([], undefined, ['ip', 'netns', 'exec', NETNS]);
    try {
      assert.deepEqual(agent.listening, [{ zone: '.', port: 5353, address: '127.0.0.1' }]);
      assert.match(agent.output(), /^\[INFO\] \.:5353 on 127\.0\.0\.1 \(udp, tcp\)$/m);
      assert.match(agent.output(), /^\[INFO\] node-local-dns-\S+ \(Node\.js v24\.[0-9.]+\) serving$/m);
      const sockets = execFileSync('ip', ['netns', 'exec', NETNS, 'ss', '-Hlnut'], { encoding: 'utf8' });
      assert.match(sockets, /^udp\s+\S+\s+\d+\s+\d+\s+127\.0\.0\.1:5353\s/m);
      assert.match(sockets, /^tcp\s+LISTEN\s+\d+\s+\d+\s+127\.0\.0\.1:5353\s/m);
    } finally {
      const code = await agent.stop('SIGTERM');
      assert.equal(code, 0, agent.output());
    }
  });

  test('SIGTERM: queries in flight over UDP and TCP are answered, then the process exits 0', async (t) => {
    // A slow upstream: holds every answer for 1.5 s.
    const upstream = dgram.createSocket('udp4');
    const { host: upHost } = await freeEndpoint();
    let received = 0;
    upstream.on('message', (msg, rinfo) => {
      received++;
      const qp = dnsPacket.decode(msg);
      const name = qp.questions![0]!.name;
      const out = dnsPacket.encode({
        type: 'response',
        id: qp.id,
        flags: dnsPacket.RECURSION_DESIRED | dnsPacket.RECURSION_AVAILABLE,
        questions: qp.questions,
        answers: [{ type: 'A', name, ttl: 60, data: `192.0.2.${Number(/^q(\d+)\./.exec(name)![1]) + 1}` }],
      });
      setTimeout(() => upstream.send(out, rinfo.port, rinfo.address), 1500);
    });
    await new Promise<void>((r) => upstream.bind(0, upHost, () => r()));
    t.after(() => new Promise<void>((r) => upstream.close(() => r())));
    const { host, port } = await freeEndpoint();
    const agent = await startAgent(`slow.test:${port} {
      bind ${host}
      errors
      forward . ${upHost}:${upstream.address().port} {
          prefer_udp
      }
  }
  `);
    t.after(() => agent.stop('SIGKILL'));

    const replies = [0, 1, 2, 3, 4, 5].map((i) => (i < 4 ? udpExchange : tcpExchange)(host, port, rawQuery(`q${i}.slow.test`, 1, 0x100 + i), 10_000));
    const end = performance.now() + 15_000;
    while (received < 6 && performance.now() < end) await new Promise((r) => setTimeout(r, 10));
    assert.equal(received, 6, 'every query reached the upstream before SIGTERM');
    agent.proc.kill('SIGTERM');

    const got = await Promise.all(replies);
    got.forEach((b, i) => {
      assert.ok(b, `query ${i} (${i < 4 ? 'udp' : 'tcp'}) answered`);
      const d = dnsPacket.decode(b);
      assert.equal(d.id, 0x100 + i);
      assert.equal((d as { rcode?: string }).rcode, 'NOERROR');
      assert.deepEqual(
        d.answers!.map((a) => (a as { data: unknown }).data),
        [`192.0.2.${i + 1}`],
      );
    });
    assert.equal(await agent.exited, 0, agent.output());
    assert.match(agent.output(), /SIGTERM/);
  });

  test('a Corefile that does not load, or an address that cannot be bound: [FATAL] with the reason, exit 1', async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-engine-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const { host, port } = await freeEndpoint();
    const bad = path.join(dir, 'bad.Corefile');
    writeFileSync(bad, `.:${port} {\n    bind ${host}\n    errors\n    kubernetes cluster.local\n}\n`);
    // 198.18.255.123 (benchmarking range) is on no interface here: bind fails, nothing is sent.
    const unbindable = path.join(dir, 'unbindable.Corefile');
    writeFileSync(unbindable, `.:${port} {\n    bind 198.18.255.123\n    errors\n}\n`);
    const [parse, listen, missing] = await Promise.all([
      runToExit(['-conf', bad]),
      runToExit(['-conf', unbindable]),
      runToExit(['-conf', path.join(dir, 'absent.Corefile')]),
    ]);
    assert.equal(parse.code, 1);
    assert.equal(parse.stderr.trim(), `[FATAL] ${bad}:4 - Error during parsing: plugin 'kubernetes' is not supported by node-local-dns`);
    assert.equal(listen.code, 1);
    assert.match(listen.stderr, /^\[FATAL\] listen EADDRNOTAVAIL: .*198\.18\.255\.123/m);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /^\[FATAL\] .*ENOENT.*absent\.Corefile/m);
    assert.doesNotMatch(parse.stdout + listen.stdout, /serving/);
  });
});
