/**
 * Measurement (not a test): how many connections a standby's release of a dead primary's
 * listening TCP socket resets (docs/zero-downtime.md, "kill -9"). Needs root and the addon.
 *
 *   nice -n 19 node test/netns/tcp-release-measure.ts [rounds=30] [clients=16]
 *
 * In a scratch network namespace, once with net.ipv4.tcp_migrate_req=0 (the default) and once
 * with 1: an "owner" child opens one listening SO_REUSEPORT socket per round (each on its own
 * port), passes them all over a unix socket (SCM_RIGHTS, native recvFds) and is SIGKILLed, so
 * this process holds the only descriptor of each, as a standby does after a kill. Per round a
 * TcpListener of ours serves that port, accepts from the passed socket too (acceptFrom), a load
 * child keeps `clients` connections in flight (connect, one query, answer, close) and, 150 ms
 * in, the passed socket is released, in turn: TcpAcceptor.close(true) (what the standby does:
 * native acceptAndClose), a close right after an event-loop poll phase (its fallback without
 * the helper), or a plain close. Prints the connections answered and reset per mode.
 */
import { spawn } from 'node:child_process';
import { closeSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { createScratchNetns } from './harness.ts';
import { Dispatcher, Generation, RouteTarget } from '../../src/server/dispatch.ts';
import { TcpListener } from '../../src/server/tcp.ts';
import { tcpListenerName } from '../../src/server/udp-adopt.ts';
import { loadUdpAddon } from '../../src/server/udp-native.ts';
import { ZoneMatcher } from '../../src/wire/zone-match.ts';
import { getZoneStats } from '../../src/metrics/zone-stats.ts';
import { buildEmptyResponse } from '../../src/wire/message.ts';
import { Rcode } from '../../src/wire/codes.ts';

const ROOT = join(import.meta.dirname, '../..');
const NODE = join(ROOT, 'node_modules/.bin/node');

/** Owner: `rounds` listening sockets, passed on request, then it waits to be killed. */
const OWNER = `
import net from 'node:net';
import { createRequire } from 'node:module';
const [sock, rounds, addonPath] = process.argv.slice(1);
const addon = createRequire(import.meta.url)(addonPath);
const fds = [];
for (let i = 0; i < +rounds; i++) {
  const s = net.createServer(() => {});
  await new Promise((r) => s.listen({ host: '127.0.0.1', port: 0, reusePort: true, backlog: 1024 }, r));
  fds.push(s._handle.fd);
}
net.createServer((c) => c.once('data', () => { addon.sendFds(c._handle.fd, fds, 'fds ' + fds.length + '\\n'); c.destroy(); })).listen(sock, () => console.log('ready'));
`;

/** Load: `clients` loops of connect, one query, answer, close, for `ms`; prints {ok, reset, other}. */
const LOAD = `
import net from 'node:net';
const [port, clients, ms] = process.argv.slice(1).map(Number);
const q = Buffer.from([0, 26, 0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 119, 119, 119, 4, 116, 101, 115, 116, 0, 0, 1, 0, 1]);
const counts = { ok: 0, reset: 0, other: 0 };
const end = performance.now() + ms;
function loop() {
  if (performance.now() >= end) return Promise.resolve();
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    let done = false;
    const finish = (k) => { if (done) return; done = true; clearTimeout(timer); counts[k]++; c.destroy(); resolve(); };
    const timer = setTimeout(() => finish('other'), 3000);
    c.on('data', () => finish('ok'));
    c.on('error', (e) => finish(e.code === 'ECONNRESET' || e.code === 'EPIPE' ? 'reset' : 'other'));
    c.on('close', () => finish('other'));
    c.write(q);
  }).then(loop);
}
await Promise.all(Array.from({ length: clients }, loop));
console.log(JSON.stringify(counts));
`;

/** acceptAndClose: what the standby does; a close after a poll phase: its fallback without the helper; a plain close. */
const MODES = ['acceptAndClose', 'close after a poll phase', 'plain close'] as const;

function answering(): Dispatcher {
  const table = new ZoneMatcher<RouteTarget>();
  const chain = {
    serve(req: import('../../src/server/request.ts').Request) {
      const out = buildEmptyResponse(req, Rcode.NOERROR);
      req.reply(out, out.length, 'measure');
    },
  };
  table.add('.', new RouteTarget(chain, getZoneStats('dns://127.0.0.1:0', '.'), null, new Generation(1)));
  return new Dispatcher('dns://127.0.0.1:0', table);
}

function output(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}`))));
  });
}

/** Inside the namespace: the rounds. */
async function measure(rounds: number, clients: number): Promise<void> {
  const { addon } = loadUdpAddon();
  if (addon === null) throw new Error('addon unavailable');
  const sock = `/tmp/nld-tcp-release-${process.pid}.sock`;
  const owner = spawn(NODE, ['--input-type=module', '-e', OWNER, sock, String(rounds), join(ROOT, 'build/Release/udp.node')], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise((r) => owner.stdout!.once('data', r));
  const fds = addon.recvFds(sock, 'fds\n', 2000).fds;
  owner.kill('SIGKILL');
  await new Promise((r) => owner.once('exit', r));
  const totals: Record<string, { ok: number; reset: number; other: number; rounds: number }> = {};
  for (let i = 0; i < fds.length; i++) {
    const fd = fds[i]!;
    const port = Number(tcpListenerName(addon, fd).split('|')[2]);
    const own = new TcpListener('127.0.0.1', port, answering(), true);
    await own.listen();
    const acceptor = await own.acceptFrom(fd);
    const mode = MODES[i % MODES.length]!;
    const load = output(NODE, ['--input-type=module', '-e', LOAD, String(port), String(clients), '400']);
    await new Promise((r) => setTimeout(r, 150));
    if (mode === 'acceptAndClose') await acceptor.close(true);
    else if (mode === 'close after a poll phase') await new Promise<void>((r) => setImmediate(() => setImmediate(() => void acceptor.close(false).then(r))));
    else await acceptor.close(false);
    const counts = JSON.parse(await load) as { ok: number; reset: number; other: number };
    const t = (totals[mode] ??= { ok: 0, reset: 0, other: 0, rounds: 0 });
    t.ok += counts.ok;
    t.reset += counts.reset;
    t.other += counts.other;
    t.rounds++;
    own.destroyAll();
    await own.close();
  }
  console.log(JSON.stringify(totals));
  for (const n of readdirSync('/proc/self/fd')) if (tcpListenerName(addon, Number(n)) !== '') closeSync(Number(n));
}

if (process.argv[2] === '--inside') {
  await measure(Number(process.argv[3]), Number(process.argv[4]));
} else {
  const rounds = Number(process.argv[2] ?? 30);
  const clients = Number(process.argv[3] ?? 16);
  const ns = await createScratchNetns('tcprel');
  try {
    for (const migrate of [0, 1]) {
      await ns.exec('sysctl', ['-qw', `net.ipv4.tcp_migrate_req=${migrate}`]);
      const out = await output('ip', ['netns', 'exec', ns.name, NODE, import.meta.filename, '--inside', String(rounds), String(clients)]);
      process.stdout.write(
        `tcp_migrate_req=${migrate}, ${rounds} releases, ${clients} clients, load ${(await output('cat', ['/proc/loadavg'])).trim()}: ${out}`,
      );
    }
  } finally {
    await ns.delete();
  }
}
