/**
 * Issue 12 finding 10: every malformed query CoreDNS answers gets an answer, promptly, with
 * CoreDNS's rcode; what CoreDNS drops is dropped and counted. One real agent forwarding to a
 * real NSD; every form is sent over UDP and (when answered) TCP.
 *
 * What CoreDNS does (miekg/dns Server.serveDNS + DefaultMsgAcceptFunc, then CoreDNS's
 * dnsserver.ServeDNS, then forward): shorter than a header or QR=1: no reply. Opcode other
 * than QUERY/NOTIFY: NOTIMP, header only. QDCOUNT != 1, ANCOUNT > 1, NSCOUNT > 1,
 * ARCOUNT > 2: FORMERR, header only. A record that does not unpack: FORMERR (with the
 * question when that parsed). EDNS version > 0: BADVERS. ANCOUNT 1 or NSCOUNT 1 (NOTIFY's SOA,
 * IXFR's SOA) is accepted and forwarded as it is: NSD answers FORMERR without a question,
 * which CoreDNS's forward (Request.Match fails) turns into FORMERR — the authority-record
 * case of the finding, where node-local-dns sent nothing at all (forward dropped NSD's
 * header-only reply as a wrong question; the client waited for its timeout). Classes other
 * than IN are forwarded too (CoreDNS's EnableChaos: a server with forward takes every class).
 * Rows marked `differs` are deliberate: miekg's lenient unpacking takes a question that
 * stops after the name (qtype and qclass 0: CoreDNS answers REFUSED for class 0), a bare
 * header with QDCOUNT 1 (no question: SERVFAIL), a compressed question name and a second OPT
 * (forwarded, upstream decides); node-local-dns answers those FORMERR (RFC 1035 §4.1.2,
 * RFC 6891 §6.1.1), promptly as well.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import dnsPacket from 'dns-packet';
import { startAgent, scrape, metricSum, type Agent } from './lib/agent.ts';
import { startNsd, zoneText, type Nsd } from './lib/nsd.ts';
import { freeAddress } from './lib/net.ts';
import { encodeName } from '../../src/wire/name.ts';
import type { UdpIoValue } from '../../src/server/udp-native.ts';
import { udpIoEnv, udpIoPaths } from '../lib/udp-io.ts';

/** An answer within this long is prompt (forward's own timeouts are seconds). */
const PROMPT_MS = 1_500;
/** How long a dropped query is watched for a reply. */
const DROP_WAIT_MS = 600;

const RCODES = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED'];

let nsd: Nsd;
let agent: Agent;
let dns: { host: string; port: number };
let metrics: { host: string; port: number };

before(async () => {
  nsd = await startNsd({ 'example.test.': zoneText('example.test', ['www IN A 192.0.2.1', '* IN A 192.0.2.2']) });
});

/** An agent serving UDP on `io` (one per I/O path, test/lib/udp-io.ts). */
async function startOn(io: UdpIoValue): Promise<void> {
  dns = await freeAddress();
  metrics = await freeAddress(dns.host);
  agent = await startAgent(
    `. {
    bind ${dns.host}
    cache 30
    forward . ${nsd.addr}
    prometheus ${metrics.host}:${metrics.port}
}
`,
    { extraArgs: ['-dns.port', String(dns.port)], env: udpIoEnv(io) },
  );
}

after(async () => {
  await nsd?.stop();
});

const ID = 0x5a5a;

function header(flags: number, qd: number, an: number, ns: number, ar: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(ID, 0);
  b.writeUInt16BE(flags, 2);
  b.writeUInt16BE(qd, 4);
  b.writeUInt16BE(an, 6);
  b.writeUInt16BE(ns, 8);
  b.writeUInt16BE(ar, 10);
  return b;
}

const RD = 0x0100;
const question = (name: Buffer, type = 1, cls = 1) => Buffer.concat([name, Buffer.from([type >> 8, type & 0xff, cls >> 8, cls & 0xff])]);
/** An A record owned by the qname (pointer to offset 12). */
const aRecord = () => Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 9]);
const opt = (version = 0, rdata: Buffer = Buffer.alloc(0), rdlen = rdata.length) =>
  Buffer.concat([Buffer.from([0, 0, 41, 0x04, 0xd0, 0, version, 0, 0, rdlen >> 8, rdlen & 0xff]), rdata]);
const soa = (name: string) =>
  dnsPacket.encode({
    type: 'query',
    id: ID,
    flags: RD,
    questions: [{ name, type: 'A' }],
    authorities: [
      {
        type: 'SOA',
        name: 'example.test',
        ttl: 60,
        data: { mname: 'ns.example.test', rname: 'h.example.test', serial: 1, refresh: 1, retry: 1, expire: 1, minimum: 1 },
      } as dnsPacket.Answer,
    ],
  });

interface Row {
  what: string;
  /** The message for a query name of its own (so no row answers from another's cache entry). */
  msg: (name: string) => Buffer;
  /** Our answer's rcode, or a drop with its counted reason. */
  expect: string | { drop: string };
  /** Whether our answer echoes the question. */
  withQuestion?: boolean;
  /** CoreDNS's answer when it is not the same. */
  differs?: string;
}

const q = (name: string) => encodeName(name);

const ROWS: Row[] = [
  { what: 'shorter than a header (11 bytes)', msg: (_n) => header(RD, 1, 0, 0, 0).subarray(0, 11), expect: { drop: 'short' } },
  { what: 'a response (QR=1)', msg: (n) => Buffer.concat([header(0x8000 | RD, 1, 0, 0, 0), question(q(n))]), expect: { drop: 'response' } },
  { what: 'opcode IQUERY', msg: (n) => Buffer.concat([header((1 << 11) | RD, 1, 0, 0, 0), question(q(n))]), expect: 'NOTIMP', withQuestion: false },
  { what: 'opcode STATUS', msg: (n) => Buffer.concat([header((2 << 11) | RD, 1, 0, 0, 0), question(q(n))]), expect: 'NOTIMP', withQuestion: false },
  { what: 'opcode 3 (unassigned)', msg: (n) => Buffer.concat([header(3 << 11, 1, 0, 0, 0), question(q(n))]), expect: 'NOTIMP', withQuestion: false },
  {
    what: 'opcode UPDATE with a prerequisite',
    msg: (_n) => Buffer.concat([header(5 << 11, 1, 1, 0, 0), question(encodeName('example.test.'), 6), aRecord()]),
    expect: 'NOTIMP',
    withQuestion: false,
  },
  { what: 'opcode 15', msg: (n) => Buffer.concat([header(15 << 11, 1, 0, 0, 0), question(q(n))]), expect: 'NOTIMP', withQuestion: false },
  { what: 'QDCOUNT 0, header only', msg: (_n) => header(RD, 0, 0, 0, 0), expect: 'FORMERR', withQuestion: false },
  { what: 'QDCOUNT 0 with a question present', msg: (n) => Buffer.concat([header(RD, 0, 0, 0, 0), question(q(n))]), expect: 'FORMERR', withQuestion: false },
  { what: 'QDCOUNT 2', msg: (n) => Buffer.concat([header(RD, 2, 0, 0, 0), question(q(n)), question(q(n), 28)]), expect: 'FORMERR', withQuestion: false },
  { what: 'ANCOUNT 2', msg: (n) => Buffer.concat([header(RD, 1, 2, 0, 0), question(q(n)), aRecord(), aRecord()]), expect: 'FORMERR', withQuestion: false },
  { what: 'ANCOUNT 1 (an A record in the answer section)', msg: (n) => Buffer.concat([header(RD, 1, 1, 0, 0), question(q(n)), aRecord()]), expect: 'FORMERR' },
  { what: 'NSCOUNT 1, a SOA in the authority section', msg: (n) => soa(n), expect: 'FORMERR' },
  {
    what: 'NSCOUNT 1, an A record in the authority section',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 1, 0), question(q(n)), aRecord()]),
    expect: 'FORMERR',
  },
  { what: 'NSCOUNT 1 and an OPT', msg: (n) => Buffer.concat([header(RD, 1, 0, 1, 1), question(q(n)), aRecord(), opt()]), expect: 'FORMERR' },
  { what: 'NSCOUNT 2', msg: (n) => Buffer.concat([header(RD, 1, 0, 2, 0), question(q(n)), aRecord(), aRecord()]), expect: 'FORMERR', withQuestion: false },
  {
    what: 'ARCOUNT 3',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 3), question(q(n)), opt(), aRecord(), aRecord()]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'ARCOUNT 1 and nothing after the question',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 1), question(q(n))]),
    expect: 'FORMERR',
    withQuestion: true,
  },
  {
    what: 'ARCOUNT 1, a record cut short',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 1), question(q(n)), aRecord().subarray(0, 9)]),
    expect: 'FORMERR',
    withQuestion: true,
  },
  {
    what: 'OPT RDLENGTH past the end',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 1), question(q(n)), opt(0, Buffer.from([0, 10, 0, 8]), 40)]),
    expect: 'FORMERR',
    withQuestion: true,
  },
  {
    what: 'OPT with an option longer than its RDATA',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 1), question(q(n)), opt(0, Buffer.from([0, 10, 0, 8, 1, 2]))]),
    expect: 'FORMERR',
    withQuestion: true,
  },
  {
    what: 'two OPT records',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 2), question(q(n)), opt(), opt()]),
    expect: 'FORMERR',
    differs: 'forwarded; the upstream decides (NSD: FORMERR)',
  },
  { what: 'EDNS version 1', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 1), question(q(n)), opt(1)]), expect: 'BADVERS', withQuestion: true },
  {
    what: 'question name cut inside a label',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), q(n).subarray(0, 6)]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'question name without its root label',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), q(n).subarray(0, q(n).length - 1)]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'question with one byte of qtype',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), q(n), Buffer.from([0])]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'question without qtype and qclass',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), q(n)]),
    expect: 'FORMERR',
    withQuestion: false,
    differs: 'REFUSED (miekg takes qclass 0)',
  },
  {
    what: 'question without qclass',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), q(n), Buffer.from([0, 1])]),
    expect: 'FORMERR',
    withQuestion: false,
    differs: 'REFUSED (miekg takes qclass 0)',
  },
  { what: 'header only with QDCOUNT 1', msg: (_n) => header(RD, 1, 0, 0, 0), expect: 'FORMERR', withQuestion: false, differs: 'SERVFAIL (no question)' },
  {
    what: 'compression pointer to itself in the question',
    msg: (_n) => Buffer.concat([header(RD, 1, 0, 0, 0), Buffer.from([0xc0, 0x0c, 0, 1, 0, 1])]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'compression pointer forward in the question',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), Buffer.from([0xc0, 18, 0, 1, 0, 1]), q(n)]),
    expect: 'FORMERR',
    withQuestion: false,
    differs: 'follows it and answers the name',
  },
  {
    what: 'reserved label type 0x40 in the question',
    msg: (_n) => Buffer.concat([header(RD, 1, 0, 0, 0), Buffer.from([0x41, 0x61, 0, 0, 1, 0, 1])]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  {
    what: 'question name longer than 255 bytes',
    msg: (_n) =>
      Buffer.concat([
        header(RD, 1, 0, 0, 0),
        Buffer.concat(Array.from({ length: 5 }, () => Buffer.concat([Buffer.from([60]), Buffer.alloc(60, 0x61)]))),
        Buffer.from([0, 0, 1, 0, 1]),
      ]),
    expect: 'FORMERR',
    withQuestion: false,
  },
  // Not malformed for CoreDNS: answered as usual.
  // Classes other than IN: CoreDNS refuses them unless a block of the server has chaos or
  // forward (dnsserver.EnableChaos); forward is always there in node-cache's Corefile, so
  // they are forwarded and NSD answers (REFUSED without a question, ANY as usual).
  { what: 'qclass CH', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n), 16, 3)]), expect: 'REFUSED' },
  { what: 'qclass HS', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n), 1, 4)]), expect: 'REFUSED' },
  { what: 'qclass NONE', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n), 1, 254)]), expect: 'REFUSED' },
  { what: 'qclass ANY', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n), 1, 255)]), expect: 'NOERROR' },
  { what: 'qclass 0', msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n), 1, 0)]), expect: 'REFUSED' },
  {
    what: 'opcode NOTIFY',
    msg: (n) => Buffer.concat([header(4 << 11, 1, 0, 0, 0), question(q(n), 6)]),
    expect: 'NOTIMP',
    differs: 'forwarded; the upstream answers',
  },
  { what: 'Z bit set', msg: (n) => Buffer.concat([header(RD | 0x0040, 1, 0, 0, 0), question(q(n))]), expect: 'NOERROR', withQuestion: true },
  {
    what: 'bytes after the last record',
    msg: (n) => Buffer.concat([header(RD, 1, 0, 0, 0), question(q(n)), Buffer.from([1, 2, 3])]),
    expect: 'NOERROR',
    withQuestion: true,
  },
];

interface Reply {
  rcode: string;
  qdcount: number;
  ms: number;
}

function decodeReply(b: Buffer, t0: number): Reply {
  const low = b[3]! & 0x0f;
  // The extended rcode (BADVERS = 16) is in the OPT's TTL; the header then holds 0.
  let rcode = RCODES[low] ?? `RCODE${low}`;
  if (low === 0 && b.length >= 23 && b.readUInt16BE(10) === 1 && b[b.length - 11] === 0 && b.readUInt16BE(b.length - 10) === 41 && b[b.length - 6] === 1)
    rcode = 'BADVERS';
  return { rcode, qdcount: b.readUInt16BE(4), ms: performance.now() - t0 };
}

function sendUdp(msg: Buffer, waitMs: number): Promise<Reply | null> {
  return new Promise((resolve) => {
    const s = dgram.createSocket('udp4');
    const t0 = performance.now();
    const timer = setTimeout(() => {
      s.close();
      resolve(null);
    }, waitMs);
    s.on('error', () => {});
    s.on('message', (m) => {
      if (m.length < 12 || m.readUInt16BE(0) !== ID) return;
      clearTimeout(timer);
      s.close();
      resolve(decodeReply(m, t0));
    });
    s.send(msg, dns.port, dns.host);
  });
}

function sendTcp(msg: Buffer, waitMs: number): Promise<Reply | null> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const c = net.connect(dns.port, dns.host);
    let buf = Buffer.alloc(0);
    let settled = false;
    const finish = (r: Reply | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => finish(null), waitMs);
    c.on('error', () => finish(null));
    c.on('close', () => finish(null));
    c.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) finish(decodeReply(buf.subarray(2, 2 + buf.readUInt16BE(0)), t0));
    });
    const frame = Buffer.alloc(2 + msg.length);
    frame.writeUInt16BE(msg.length, 0);
    msg.copy(frame, 2);
    c.write(frame);
  });
}

async function malformedRun(io: UdpIoValue): Promise<void> {
  assert.equal(metricSum(await scrape(metrics.host, metrics.port), 'nodelocaldns_udp_io', { mode: io }), 1, `serving UDP on ${io}`);
  const drops = (reason: string) => scrape(metrics.host, metrics.port).then((f) => metricSum(f, 'nodelocaldns_dropped_packets_total', { reason }));
  const dropsBefore = new Map<string, number>();
  for (const r of ROWS) if (typeof r.expect !== 'string') dropsBefore.set(r.expect.drop, await drops(r.expect.drop));

  const results = await Promise.all(
    ROWS.map(async (r, i) => {
      const answered = typeof r.expect === 'string';
      const msg = r.msg(`r${i}.example.test.`);
      const udp = await sendUdp(msg, answered ? PROMPT_MS : DROP_WAIT_MS);
      const tcp = answered ? await sendTcp(msg, PROMPT_MS) : null;
      return { r, udp, tcp };
    }),
  );
  const failures: string[] = [];
  for (const { r, udp, tcp } of results) {
    if (typeof r.expect !== 'string') {
      if (udp !== null) failures.push(`${r.what}: expected a drop, got ${udp.rcode}`);
      continue;
    }
    for (const [proto, got] of [
      ['udp', udp],
      ['tcp', tcp],
    ] as const) {
      if (got === null) failures.push(`${r.what} (${proto}): no answer within ${PROMPT_MS} ms, expected ${r.expect}`);
      else {
        if (got.rcode !== r.expect) failures.push(`${r.what} (${proto}): ${got.rcode}, expected ${r.expect}`);
        if (r.withQuestion !== undefined && (got.qdcount === 1) !== r.withQuestion) failures.push(`${r.what} (${proto}): QDCOUNT ${got.qdcount}`);
      }
    }
  }
  assert.deepEqual(failures, []);
  for (const [reason, before] of dropsBefore) {
    const n = ROWS.filter((r) => typeof r.expect !== 'string' && r.expect.drop === reason).length;
    assert.equal(await drops(reason), before + n, `nodelocaldns_dropped_packets_total{reason="${reason}"}`);
  }
  // Still serving.
  const ok = await sendUdp(Buffer.concat([header(RD, 1, 0, 0, 0), question(q('www.example.test.'))]), 3_000);
  assert.equal(ok?.rcode, 'NOERROR');
  assert.ok(agent.alive());
}

for (const io of udpIoPaths()) {
  test(`${io}: malformed queries: each answered promptly with CoreDNS's rcode over UDP and TCP, or dropped and counted as CoreDNS drops it`, async () => {
    await startOn(io);
    try {
      await malformedRun(io);
    } finally {
      await agent.stop();
    }
  });
}
