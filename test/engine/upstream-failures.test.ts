/**
 * The agent end to end when upstreams misbehave: an upstream that stops (SERVFAIL in time, or
 * the stale answer with serve_stale), one that answers garbage or with the wrong ID (ignored:
 * SERVFAIL by the deadline, or the good answer of the next upstream), and `force_tcp` against
 * an upstream that only listens on TCP. NSD and Unbound come from test/forward/servers.ts,
 * Knot and the agent from ./harness.ts; the garbage responder is a socket in this test.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';
import { startNsd, startUnboundTcpOnly, type RunningServer } from '../forward/servers.ts';
import { dig, freeEndpoint, sleep, startAgent, startKnot, type AgentProcess, type Authority, type DigResult } from './harness.ts';
import { FLAKY_TEST } from './zones.ts';

/** Answers every query with junk: random bytes, a runt, the right answer under the wrong ID, a wrong question. */
class GarbageResponder {
  readonly socket = dgram.createSocket('udp4');
  received = 0;
  host = '';
  port = 0;

  async start(): Promise<void> {
    const { host } = await freeEndpoint();
    this.host = host;
    this.socket.on('message', (msg, rinfo) => {
      this.received++;
      let q: dnsPacket.Packet;
      try {
        q = dnsPacket.decode(msg);
      } catch {
        return;
      }
      const send = (b: Buffer) => this.socket.send(b, rinfo.port, rinfo.address);
      const answer = (id: number, name: string) =>
        dnsPacket.encode({
          type: 'response',
          id,
          flags: dnsPacket.RECURSION_AVAILABLE | dnsPacket.RECURSION_DESIRED,
          questions: [{ type: 'A', class: 'IN', name }],
          answers: [{ type: 'A', name, ttl: 60, data: '203.0.113.66' }],
        });
      const name = q.questions?.[0]?.name ?? 'x';
      const junk = Buffer.alloc(40);
      for (let i = 0; i < junk.length; i++) junk[i] = (Math.random() * 256) | 0;
      junk.writeUInt16BE(q.id ?? 0, 0); // even with the right ID, junk is not a reply
      send(junk);
      send(Buffer.from([q.id! >> 8, q.id! & 0xff, 0x81]));
      send(answer(((q.id ?? 0) + 1) & 0xffff, name));
      send(answer(q.id ?? 0, `other.${name}`));
    });
    await new Promise<void>((r) => this.socket.bind(0, this.host, () => r()));
    this.port = this.socket.address().port;
  }

  get addr(): string {
    return `${this.host}:${this.port}`;
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

let nsd: RunningServer;
let unbound: RunningServer;
let knot: Authority;
const garbage = new GarbageResponder();
let agent: AgentProcess;
let host: string;
/** Ports of the agent's blocks, by role. */
const ports = { plain: 0, stale: 0, forceTcp: 0, udpToTcpOnly: 0, garbage: 0 };

before(async () => {
  [nsd, unbound, knot] = await Promise.all([startNsd(), startUnboundTcpOnly(), startKnot({ 'flaky.test': FLAKY_TEST }), garbage.start()]);
  ({ host } = await freeEndpoint());
  const taken = new Set<number>();
  for (const role of Object.keys(ports) as (keyof typeof ports)[]) {
    let p = 0;
    while (p === 0 || taken.has(p)) p = (await freeEndpoint(host)).port;
    taken.add(p);
    ports[role] = p;
  }
  // Each role is its own block on its own port; example.test is NSD's zone and Unbound's.
  agent = await startAgent(`example.test:${ports.plain} {
    bind ${host}
    errors
    cache {
        success 9984 1 1
    }
    forward . ${nsd.addr}
}
example.test:${ports.stale} {
    bind ${host}
    errors
    cache {
        success 9984 1 1
        serve_stale
    }
    forward . ${nsd.addr}
}
example.test:${ports.forceTcp} {
    bind ${host}
    errors
    forward . ${unbound.addr} {
        force_tcp
    }
}
example.test:${ports.udpToTcpOnly} {
    bind ${host}
    errors
    forward . ${unbound.addr}
}
garbage.test:${ports.garbage} {
    bind ${host}
    errors
    forward . ${garbage.addr}
}
flaky.test:${ports.garbage} {
    bind ${host}
    errors
    forward . ${garbage.addr} ${knot.addr} {
        policy sequential
    }
}
`);
});

after(async () => {
  const code = await agent?.stop();
  await Promise.all([nsd?.stop(), unbound?.stop(), knot?.stop(), garbage.close()]);
  assert.equal(code, 0, `agent exit status; output:\n${agent?.output()}`);
});

function q(port: number, ...args: string[]): Promise<DigResult> {
  return dig(host, port, args);
}

/** The reply and how long the agent took to give it (dig's Query time, without dig's start-up). */
async function timed(p: Promise<DigResult>): Promise<{ r: DigResult; ms: number }> {
  const r = await p;
  return { r, ms: r.queryMs };
}

// The cases are independent (own blocks, ports and upstreams): run them at once.
describe('upstream failures', { concurrency: true }, () => {
  test('force_tcp reaches an upstream that only listens on TCP; plain UDP forwarding to it fails', async () => {
    const r = await q(ports.forceTcp, 'www.example.test', 'A');
    assert.equal(r.proto, 'UDP', 'the client asked over UDP');
    assert.equal(r.status, 'NOERROR');
    assert.deepEqual(
      r.answer.map((a) => a.data),
      ['192.0.2.81'],
    );
    const { r: fail, ms } = await timed(q(ports.udpToTcpOnly, 'www.example.test', 'A'));
    assert.equal(fail.status, 'SERVFAIL');
    assert.ok(ms < 5500, `SERVFAIL after ${ms} ms`);
    assert.match(agent.output(), /\[ERROR\] plugin\/errors: 2 www\.example\.test\. A: read udp \S+->\S+: read: connection refused/);
  });

  test('an upstream answering garbage and wrong IDs is ignored: SERVFAIL by the deadline, or the next upstream answers', async () => {
    // Forward tries each upstream for its 2 s read timeout while the 5 s deadline lasts (CoreDNS):
    // with one upstream that is 3 tries, so the SERVFAIL comes after about 6 s.
    const [bad, flaky] = await Promise.all([timed(q(ports.garbage, '+time=9', 'www.garbage.test', 'A')), timed(q(ports.garbage, 'www.flaky.test', 'A'))]);
    assert.ok(garbage.received >= 2, 'the responder was asked');
    // Nothing it sent is taken as the answer (its A record would be 203.0.113.66).
    assert.equal(bad.r.status, 'SERVFAIL');
    assert.equal(bad.r.answer.length, 0);
    assert.ok(bad.ms < 8500, `SERVFAIL after ${bad.ms} ms`);
    assert.equal(flaky.r.status, 'NOERROR');
    assert.deepEqual(
      flaky.r.answer.map((a) => a.data),
      ['192.0.2.99'],
    );
    // The agent is still fine.
    const again = await q(ports.garbage, 'www.flaky.test', 'A');
    assert.deepEqual(
      again.answer.map((a) => a.data),
      ['192.0.2.99'],
    );
    assert.match(agent.output(), /plugin\/errors: 2 www\.garbage\.test\. A: read udp \S+: i\/o timeout/);
  });

  test('a stopped upstream: SERVFAIL within the 5 s deadline; with serve_stale the expired answer is served', async () => {
    // With several serving workers each has its own cache and the kernel picks the worker by the
    // client's address and port (SO_REUSEPORT): the stale entry lives in the worker that cached
    // it, so the client asks from one fixed source port.
    const client = await freeEndpoint('127.0.0.1');
    const from = ['-b', `${client.host}#${client.port}`];
    for (const port of [ports.plain, ports.stale]) {
      const r = await q(port, ...(port === ports.stale ? from : []), 'www.example.test', 'A');
      assert.deepEqual(
        r.answer.map((a) => a.data),
        ['192.0.2.80'],
      );
      assert.equal(r.answer[0]!.ttl, 1, 'success TTL capped at 1');
    }
    await nsd.stop();
    // Let both entries expire (TTL 1 s).
    await sleep(2100);
    const [plain, stale, never] = await Promise.all([
      timed(q(ports.plain, 'www.example.test', 'A')),
      timed(q(ports.stale, ...from, 'www.example.test', 'A')),
      timed(q(ports.plain, 'h7.example.test', 'A')),
    ]);
    assert.equal(plain.r.status, 'SERVFAIL');
    assert.ok(plain.ms < 5000, `SERVFAIL after ${plain.ms} ms`);
    assert.equal(never.r.status, 'SERVFAIL');
    assert.ok(never.ms < 5000, `SERVFAIL after ${never.ms} ms`);
    assert.equal(stale.r.status, 'NOERROR', `stale answer; agent output:\n${agent.output()}`);
    assert.deepEqual(
      stale.r.answer.map((a) => a.data),
      ['192.0.2.80'],
    );
    assert.equal(stale.r.answer[0]!.ttl, 0, 'a stale answer has TTL 0 (CoreDNS)');
    assert.ok(stale.ms < 5000);
  });
});
