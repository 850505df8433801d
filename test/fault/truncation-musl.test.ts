/**
 * Issue 12 finding 9: an answer larger than the client's UDP size is truncated as CoreDNS
 * does (whole records, as many as fit, TC=1), not to an empty answer section. A musl 1.2.3
 * client (Alpine <= 3.17 resolver: takes a TC=1 answer as it is, never retries over TCP)
 * resolving a name with 60 A records gets the addresses that fit in 512 bytes, on a miss and
 * on a cache hit; before, it got "Name does not resolve".
 *
 * Everything runs in one network namespace (prefix nlE-): NSD on 127.0.0.1:5300 serving the
 * zone, the agent on 169.254.20.10:53 forwarding to it, and the musl client whose
 * resolv.conf (/etc/netns/<ns>/resolv.conf) names the agent.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { ResolverNetns, buildMuslGetaddrinfo, muslSkipReason } from '../lib/musl-client.ts';
import { nsdConfig } from '../lib/nsd-config.ts';
import { waitUntil } from '../lib/net.ts';
import { NODE, ROOT } from './lib/agent.ts';

const skip = muslSkipReason();
const AGENT_IP = '169.254.20.10';
const NSD_PORT = 5300;
const BIG = 'big.example.test.';
const ADDRESSES = Array.from({ length: 60 }, (_, i) => `198.18.10.${i + 1}`);
/**
 * What fits in 512 bytes: header 12, question (qname 18 bytes + type + class = 22), then
 * 16 bytes per A record (2-byte pointer to the qname, type, class, TTL, RDLENGTH, 4 bytes):
 * floor((512 - 34) / 16) = 29. miekg/dns (node-cache) computes the same with its compression.
 */
const FITS = Math.floor((512 - 12 - (BIG.length + 1 + 4)) / 16);

let ns: ResolverNetns;
let gai: { bin: string; cleanup(): void };
let dir = '';
let agent: ChildProcess | null = null;
let agentOut = '';

/** Starts `file args` in the namespace; resolves once `ready(output)` holds. */
function startIn(file: string, args: string[], ready: (out: string) => boolean, what: string): Promise<ChildProcess> {
  const child = ns.spawn(file, args, { cwd: ROOT });
  let out = '';
  const keep = (d: Buffer) => {
    out += d;
    if (file === NODE) agentOut = out;
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return waitUntil(
    () => {
      if (child.exitCode !== null) throw new Error(`${what} exited: ${out}`);
      return ready(out);
    },
    what,
    20_000,
  ).then(() => child);
}

before(async () => {
  if (skip) return;
  ns = new ResolverNetns(`nlE-musl-${process.pid}`);
  gai = buildMuslGetaddrinfo();
  dir = mkdtempSync(path.join(tmpdir(), 'nld-trunc-'));
  ns.create([`${AGENT_IP}/32`], `nameserver ${AGENT_IP}\noptions timeout:2 attempts:1\n`);
  const zone = [
    '$ORIGIN example.test.',
    '$TTL 300',
    '@ IN SOA ns.example.test. hostmaster.example.test. 1 3600 600 86400 5',
    '@ IN NS ns.example.test.',
    'ns IN A 198.18.10.250',
    ...ADDRESSES.map((a) => `big IN A ${a}`),
    ...Array.from({ length: 120 }, (_, i) => `huge IN A 198.18.11.${i + 1}`),
  ].join('\n');
  writeFileSync(path.join(dir, 'example.test.zone'), zone + '\n');
  writeFileSync(
    path.join(dir, 'nsd.conf'),
    nsdConfig({ host: '127.0.0.1', port: NSD_PORT, dir, logFile: path.join(dir, 'nsd.log'), zones: { 'example.test.': 'example.test.zone' } }),
  );
  writeFileSync(path.join(dir, 'Corefile'), `.:53 {\n  bind ${AGENT_IP}\n  cache 30\n  forward . 127.0.0.1:${NSD_PORT}\n}\n`);
  const nsdLog = path.join(dir, 'nsd.log');
  await startIn('nsd', ['-d', '-c', path.join(dir, 'nsd.conf')], () => existsSync(nsdLog) && /nsd started/.test(readFileSync(nsdLog, 'utf8')), 'nsd');
  agent = await startIn(NODE, [path.join(ROOT, 'src/main.ts'), '-conf', path.join(dir, 'Corefile')], (out) => / serving/.test(out), 'the agent');
});

after(async () => {
  if (skip) return;
  await ns.destroy();
  gai.cleanup();
  rmSync(dir, { recursive: true, force: true });
});

function checkMusl(round: string): void {
  const r = ns.getaddrinfo(gai.bin, BIG);
  assert.equal(r.error, '', `${round}: musl getaddrinfo failed: ${r.error}`);
  assert.equal(r.status, 0);
  assert.equal(r.addresses.length, FITS, `${round}: ${r.addresses.length} addresses`);
  assert.equal(new Set(r.addresses).size, FITS);
  for (const a of r.addresses) assert.ok(ADDRESSES.includes(a), `${a} is one of the name's addresses`);
}

test('musl getaddrinfo of a name with 60 A records gets the whole records that fit in 512 bytes, on a miss and on a hit', { skip }, () => {
  checkMusl('miss'); // the first query for the name: forwarded (NSD's TC=1, then TCP), truncated here
  checkMusl('hit'); // the cached answer, truncated the same way
  // dig without EDNS sees what musl saw: TC=1 and the records that fit, all whole.
  const head = ns.run('dig', ['+noedns', '+ignore', '+tries=1', `@${AGENT_IP}`, BIG, 'A']);
  assert.match(head, /;; flags: qr[a-z ]* tc[a-z ]*; QUERY: 1, ANSWER: (\d+), AUTHORITY: 0, ADDITIONAL: 0/);
  assert.equal(Number(/ANSWER: (\d+)/.exec(head)![1]), FITS);
  // The upstream really holds 60 records: over TCP nothing is truncated.
  const tcp = ns
    .run('dig', ['+tcp', '+short', `@${AGENT_IP}`, BIG, 'A'])
    .split('\n')
    .filter(Boolean);
  assert.equal(tcp.length, 60, 'the full answer over TCP');
  assert.equal(agent!.exitCode, null, agentOut);
});

test('an EDNS client with 1232 bytes: the records that fit beside the OPT, TC=1, the OPT kept; on a miss and on a hit', { skip }, () => {
  // 12 + 23 (question of huge.example.test.) + 11 (OPT) + 16 per record: floor((1232 - 46) / 16) = 74.
  const fits = Math.floor((1232 - 12 - ('huge.example.test.'.length + 1 + 4) - 11) / 16);
  for (const round of ['miss', 'hit']) {
    const out = ns.run('dig', ['+bufsize=1232', '+ignore', '+tries=1', `@${AGENT_IP}`, 'huge.example.test.', 'A']);
    assert.match(out, /;; flags: qr[a-z ]* tc[a-z ]*; QUERY: 1, ANSWER: \d+, AUTHORITY: 0, ADDITIONAL: 1/, round);
    assert.equal(Number(/ANSWER: (\d+)/.exec(out)![1]), fits, round);
    assert.match(out, /; EDNS: version: 0, flags:; udp: \d+/, `${round}: OPT kept`);
  }
});
