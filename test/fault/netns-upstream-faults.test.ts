/**
 * Kernel faults on the upstream path (issue 12, finding 1 and the fault suite's upstream half),
 * with the real kernel in network namespaces (root only; skipped with the reason otherwise).
 *
 *   nlA-uf-ag  the agent (the installed entry, shipped Node.js flags), 127.0.0.1:53
 *              198.18.0.2/24 on a veth; 198.18.0.0/15 via 198.18.0.1; no IPv6 but ::1
 *   nlA-uf-up  NSD on 198.18.{1..9}.53 and fd00::53 (zone f.test: `* A 192.0.2.7`)
 *
 * Each fault gets its own upstream address and two blocks in the one agent, `cNu.f.test`
 * (forward over UDP) and `cNt.f.test` (`force_tcp`), so all run at once. A case applies its
 * fault, queries both forms (dig from inside the agent's namespace), checks the answer and
 * the `errors` line (CoreDNS's wording, which names the kernel's error), removes the fault
 * and checks a real answer comes back. Faults the kernel reports (route unreachable,
 * prohibit, blackhole; REJECT; a DROP in the agent's own OUTPUT chain for UDP: EPERM; no
 * IPv6 route; EMFILE) must give SERVFAIL promptly: within a 1 s client timeout, shorter than
 * forward's 2 s read timeout, so no timer was involved. Silent loss (DROP on the upstream's
 * side, a SYN dropped locally) gives SERVFAIL after forward's timeouts (8 s client timeout).
 * EMFILE runs a second agent under `prlimit --nofile`, then lowers its limit to the lowest
 * free descriptor (every descriptor below the limit in use: exhausted) and raises it again.
 * Throughout, the agent must stay alive and log no internal error.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Agent } from './lib/agent.ts';
import { startNetnsAgent } from './lib/netns-agent.ts';
import { startNetnsNsd, type NetnsNsd } from './lib/netns-nsd.ts';
import { Netns, digIn, isRoot, lowestFreeFd, missingTools, removeStale, setNofile, veth, type DigResult } from './lib/netns.ts';
import { sleep, waitUntil } from './lib/net.ts';

const PREFIX = 'nlA-uf-';
const ANSWER_IP = '192.0.2.7';
/** Shorter than forward's 2 s read timeout: an answer within it came from no timer. */
const PROMPT_S = 1;
/** forward's deadline is 5 s, checked before each 2 s try: a failing query ends by ~6 s. */
const TIMEOUT_S = 9;
const DNS = '127.0.0.1';
const PORT = 53;
const EMFILE_PORT = 5301;
/** The upstream address that is never faulted (multi-upstream and EMFILE blocks). */
const GOOD = '198.18.9.53';

const skip = !isRoot() ? 'requires root: network namespaces, iptables, prlimit' : (missingTools() ?? false);

type Expect = { kind: 'prompt'; error: RegExp } | { kind: 'timeout'; error: RegExp } | { kind: 'answer' };

interface Case {
  n: number;
  title: string;
  upstream: string;
  fault(): void;
  restore(): void;
  udp: Expect;
  tcp: Expect;
}

let ag: Netns;
let up: Netns;
let nsd: NetnsNsd;
let agent: Agent;

function upstreamLabel(ip: string): string {
  return ip.includes(':') ? `[${ip}]:53` : `${ip}:53`;
}

const esc = (s: string) => s.replace(/[.[\]]/g, (c) => `\\${c}`);

function cases(): Case[] {
  const ip = (n: number) => `198.18.${n}.53`;
  const dial = (n: number, proto: string, text: string) => new RegExp(`dial ${proto} ${esc(upstreamLabel(ip(n)))}: ${text}$`);
  const conn = (n: number, proto: string, op: string, text: string) =>
    new RegExp(
      `${op} ${proto} 198\\.18\\.0\\.2:\\d+->${esc(upstreamLabel(ip(n)))}: ${op === 'read' && text !== 'i/o timeout' ? 'read: ' : ''}${op === 'write' ? 'write: ' : ''}${text}$`,
    );
  const route = (n: number, type: string) => ({
    fault: () => ag.ip('route', 'add', type, `198.18.${n}.0/24`),
    restore: () => ag.ip('route', 'del', type, `198.18.${n}.0/24`),
  });
  const upInput = (n: number, ...rule: string[]) => ({
    fault: () => up.iptables('-A', 'INPUT', '-d', ip(n), ...rule),
    restore: () => up.iptables('-D', 'INPUT', '-d', ip(n), ...rule),
  });
  return [
    {
      n: 1,
      title: 'route type unreachable',
      upstream: ip(1),
      ...route(1, 'unreachable'),
      udp: { kind: 'prompt', error: dial(1, 'udp', 'connect: no route to host') },
      tcp: { kind: 'prompt', error: dial(1, 'tcp', 'connect: no route to host') },
    },
    {
      n: 2,
      title: 'route type prohibit',
      upstream: ip(2),
      ...route(2, 'prohibit'),
      udp: { kind: 'prompt', error: dial(2, 'udp', 'connect: permission denied') },
      tcp: { kind: 'prompt', error: dial(2, 'tcp', 'connect: permission denied') },
    },
    // A blackhole route discards silently for forwarded packets; local senders get EINVAL at once.
    {
      n: 3,
      title: 'route type blackhole',
      upstream: ip(3),
      ...route(3, 'blackhole'),
      udp: { kind: 'prompt', error: dial(3, 'udp', 'connect: invalid argument') },
      tcp: { kind: 'prompt', error: dial(3, 'tcp', 'connect: invalid argument') },
    },
    {
      n: 4,
      title: 'iptables REJECT --reject-with icmp-port-unreachable at the upstream',
      upstream: ip(4),
      fault: () => {
        up.iptables('-A', 'INPUT', '-d', ip(4), '-p', 'udp', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable');
        up.iptables('-A', 'INPUT', '-d', ip(4), '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable');
      },
      restore: () => {
        up.iptables('-D', 'INPUT', '-d', ip(4), '-p', 'udp', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable');
        up.iptables('-D', 'INPUT', '-d', ip(4), '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'icmp-port-unreachable');
      },
      // The ICMP error comes back on recvmsg, or on the next send when one was pending.
      udp: {
        kind: 'prompt',
        error: new RegExp(`(${conn(4, 'udp', 'read', 'connection refused').source})|(${conn(4, 'udp', 'write', 'connection refused').source})`),
      },
      tcp: { kind: 'prompt', error: dial(4, 'tcp', 'connect: connection refused') },
    },
    {
      n: 5,
      title: 'iptables REJECT --reject-with tcp-reset at the upstream (TCP only: UDP is unaffected)',
      upstream: ip(5),
      ...upInput(5, '-p', 'tcp', '-j', 'REJECT', '--reject-with', 'tcp-reset'),
      udp: { kind: 'answer' },
      tcp: { kind: 'prompt', error: dial(5, 'tcp', 'connect: connection refused') },
    },
    {
      n: 6,
      title: 'iptables DROP at the upstream (silent loss)',
      upstream: ip(6),
      ...upInput(6, '-j', 'DROP'),
      udp: { kind: 'timeout', error: conn(6, 'udp', 'read', 'i/o timeout') },
      tcp: { kind: 'timeout', error: dial(6, 'tcp', 'i/o timeout') },
    },
    {
      n: 7,
      title: "iptables DROP in the agent's OUTPUT chain (UDP: EPERM on send; TCP: the SYN is lost)",
      upstream: ip(7),
      fault: () => ag.iptables('-A', 'OUTPUT', '-d', ip(7), '-j', 'DROP'),
      restore: () => ag.iptables('-D', 'OUTPUT', '-d', ip(7), '-j', 'DROP'),
      udp: { kind: 'prompt', error: conn(7, 'udp', 'write', 'operation not permitted') },
      tcp: { kind: 'timeout', error: dial(7, 'tcp', 'i/o timeout') },
    },
    {
      n: 8,
      title: 'IPv6 upstream from an IPv4-only namespace',
      upstream: 'fd00::53',
      fault: () => {},
      restore: () => {
        ag.ip('addr', 'add', 'fd00::2/64', 'dev', 'nlAufA', 'nodad');
      },
      udp: { kind: 'prompt', error: /dial udp \[fd00::53\]:53: connect: network is unreachable$/ },
      tcp: { kind: 'prompt', error: /dial tcp \[fd00::53\]:53: connect: network is unreachable$/ },
    },
  ];
}

function corefile(cs: Case[]): string {
  let text = '';
  for (const c of cs) {
    text += `c${c.n}u.f.test:${PORT} {\n    bind ${DNS}\n    errors\n    forward . ${c.upstream}\n}\n`;
    text += `c${c.n}t.f.test:${PORT} {\n    bind ${DNS}\n    errors\n    forward . ${c.upstream} {\n        force_tcp\n    }\n}\n`;
  }
  // Several upstreams: an unreachable one is skipped for the next; all unreachable → SERVFAIL.
  text += `multi.f.test:${PORT} {\n    bind ${DNS}\n    errors\n    forward . 198.18.1.53 ${GOOD} {\n        policy sequential\n    }\n}\n`;
  text += `none.f.test:${PORT} {\n    bind ${DNS}\n    errors\n    forward . 198.18.1.53 198.18.2.53 fd00::53 {\n        policy sequential\n    }\n}\n`;
  text += `ok.f.test:${PORT} {\n    bind ${DNS}\n    errors\n    forward . ${GOOD}\n}\n`;
  return text;
}

/** The agent's `errors` line for qname, or ''. */
function errorLine(a: Agent, qname: string): string {
  const re = new RegExp(`^\\[ERROR\\] plugin/errors: 2 ${esc(qname)}\\. A: (.*)$`, 'm');
  return re.exec(a.output())?.[1] ?? '';
}

async function query(name: string, tcpClient = false, timeoutS = TIMEOUT_S, port = PORT): Promise<DigResult> {
  return digIn(ag, DNS, port, name, 'A', timeoutS, tcpClient ? ['+tcp'] : []);
}

async function expectOutcome(a: Agent, qname: string, e: Expect, port = PORT): Promise<void> {
  const r = await query(qname, false, e.kind === 'timeout' ? TIMEOUT_S : PROMPT_S, port);
  if (e.kind === 'answer') {
    assert.equal(r.status, 'NOERROR', `${qname}: ${r.output}`);
    assert.deepEqual(r.answers, [ANSWER_IP], `${qname}: ${r.output}`);
    return;
  }
  assert.equal(
    r.status,
    'SERVFAIL',
    `${qname}: expected SERVFAIL ${e.kind === 'prompt' ? `within ${PROMPT_S} s` : ''}: ${r.output}\nagent:\n${a.output().slice(-3000)}`,
  );
  assert.equal(r.questionCount, 1, r.output);
  // The errors plugin logs the reply's error right before the reply is written.
  await waitUntil(() => errorLine(a, qname) !== '', `the errors line for ${qname}`, 2_000).catch(() => {});
  assert.match(errorLine(a, qname), e.error, `${qname}: ${a.output().slice(-3000)}`);
}

async function expectAnswer(name: string, port = PORT): Promise<void> {
  // After a fault, the first try may still meet a socket the fault broke: allow the agent's own
  // retries (one query, forward's full deadline), then a real answer must come.
  const r = await query(name, false, TIMEOUT_S, port);
  assert.equal(r.status, 'NOERROR', `${name}: ${r.output}\nagent:\n${agent.output().slice(-2000)}`);
  assert.deepEqual(r.answers, [ANSWER_IP], r.output);
}

describe('kernel faults on the upstream path', { skip }, () => {
  const all = skip ? [] : cases();

  before(async () => {
    removeStale(PREFIX);
    ag = Netns.create(`${PREFIX}ag`);
    up = Netns.create(`${PREFIX}up`);
    const upAddrs = ['198.18.0.1/24', ...Array.from({ length: 9 }, (_, i) => `198.18.${i + 1}.53/32`), 'fd00::1/64', 'fd00::53/128'];
    veth(ag, 'nlAufA', up, 'nlAufU', { addrA: ['198.18.0.2/24'], addrB: upAddrs });
    ag.ip('route', 'add', '198.18.0.0/15', 'via', '198.18.0.1');
    // Every ICMP error the faults cause reaches the agent (no per-peer rate limit).
    for (const ns of [ag, up]) {
      ns.sysctl('net.ipv4.icmp_ratelimit', '0');
      ns.sysctl('net.ipv6.icmp.ratelimit', '0');
    }
    nsd = await startNetnsNsd(up, ['198.18.9.53', ...Array.from({ length: 8 }, (_, i) => `198.18.${i + 1}.53`), 'fd00::53'], {
      'f.test.': `$ORIGIN f.test.\n$TTL 300\n@ IN SOA ns.f.test. hostmaster.f.test. 1 3600 600 86400 5\n@ IN NS ns.f.test.\nns IN A 192.0.2.53\n* IN A ${ANSWER_IP}\n`,
    });
    agent = await startNetnsAgent(corefile(all), { netns: ag });
  });

  after(async () => {
    await agent?.stop();
    await nsd?.stop();
    ag?.del();
    up?.del();
  });

  describe('each fault, concurrently', { concurrency: true }, () => {
    for (const c of all) {
      test(`${c.title}: UDP and force_tcp forms, the process survives and serves once it is removed`, async () => {
        c.fault();
        try {
          await Promise.all([expectOutcome(agent, `q1.c${c.n}u.f.test`, c.udp), expectOutcome(agent, `q1.c${c.n}t.f.test`, c.tcp)]);
          // A second query meets the same fault the same way (sockets, health state, pools).
          await Promise.all([expectOutcome(agent, `q2.c${c.n}u.f.test`, c.udp), expectOutcome(agent, `q2.c${c.n}t.f.test`, c.tcp)]);
          assert.ok(agent.alive(), agent.output());
        } finally {
          c.restore();
        }
        await Promise.all([expectAnswer(`q3.c${c.n}u.f.test`), expectAnswer(`q3.c${c.n}t.f.test`)]);
      });
    }

    test('EMFILE: with every descriptor below the limit in use, new UDP sockets and TCP connections fail → SERVFAIL at once; served again once descriptors are available', async () => {
      const limit = 256;
      const text =
        `emfu.f.test:${EMFILE_PORT} {\n    bind ${DNS}\n    errors\n    forward . ${GOOD}\n}\n` +
        `emft.f.test:${EMFILE_PORT} {\n    bind ${DNS}\n    errors\n    forward . ${GOOD} {\n        force_tcp\n    }\n}\n`;
      const b = await startNetnsAgent(text, { netns: ag, nofile: limit });
      try {
        // No query went to these blocks yet, so neither has a pooled socket: the next query needs
        // a new descriptor.
        const free = lowestFreeFd(b.pid);
        setNofile(b.pid, free, limit);
        await expectOutcome(b, 'q1.emfu.f.test', { kind: 'prompt', error: /^dial udp 198\.18\.9\.53:53: socket: too many open files$/ }, EMFILE_PORT);
        await expectOutcome(b, 'q1.emft.f.test', { kind: 'prompt', error: /^dial tcp 198\.18\.9\.53:53: socket: too many open files$/ }, EMFILE_PORT);
        // Health probes fail the same way meanwhile; the process goes on.
        await sleep(1_200);
        assert.ok(b.alive(), b.output());
        setNofile(b.pid, limit, limit);
        for (const zone of ['emfu', 'emft']) {
          const r = await query(`q2.${zone}.f.test`, false, TIMEOUT_S, EMFILE_PORT);
          assert.equal(r.status, 'NOERROR', `${zone}: ${r.output}\n${b.output()}`);
          assert.deepEqual(r.answers, [ANSWER_IP]);
        }
        assert.doesNotMatch(b.output(), /internal error|Recovered from panic|TypeError|uncaught/i, b.output());
      } finally {
        await b.stop();
      }
    });
  });

  test('several upstreams: an unreachable one is skipped for the next at once; all unreachable → SERVFAIL at once', async () => {
    // The cases above are over and restored: make the first upstreams unreachable again.
    ag.ip('route', 'add', 'unreachable', '198.18.1.0/25');
    ag.ip('route', 'add', 'unreachable', '198.18.2.0/25');
    ag.ip('-6', 'route', 'add', 'unreachable', 'fd00::53/128', 'metric', '1');
    try {
      const r = await query('q1.multi.f.test', false, PROMPT_S);
      assert.equal(r.status, 'NOERROR', r.output);
      assert.deepEqual(r.answers, [ANSWER_IP]);
      await expectOutcome(agent, 'q1.none.f.test', {
        kind: 'prompt',
        error: /^dial udp (198\.18\.[12]\.53:53|\[fd00::53\]:53): connect: (no route to host|network is unreachable)$/,
      });
    } finally {
      ag.ip('route', 'del', 'unreachable', '198.18.1.0/25');
      ag.ip('route', 'del', 'unreachable', '198.18.2.0/25');
      ag.ip('-6', 'route', 'del', 'unreachable', 'fd00::53/128', 'metric', '1');
    }
  });

  test('the agent stayed alive throughout and logged no internal error', () => {
    assert.ok(agent.alive(), agent.output());
    assert.doesNotMatch(agent.output(), /internal error|Recovered from panic|TypeError|uncaught/i, agent.output());
  });
});
