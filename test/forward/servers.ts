/**
 * Real DNS servers for forward's integration tests: NSD (authoritative, UDP and TCP, response
 * rate limiting off) and Unbound (local-data only, TCP only with `do-udp: no`), each on a
 * 127.0.0.x address and a free port, configured in a temp dir, killed and cleaned up by stop().
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { answersUdp, freeAddress } from '../lib/net.ts';
import { nsdConfig } from '../lib/nsd-config.ts';

export interface RunningServer {
  host: string;
  port: number;
  addr: string;
  stop(): Promise<void>;
  /** Server log so far (for failure messages). */
  log(): string;
}

export const ZONE = `$ORIGIN example.test.
$TTL 300
@    IN SOA ns.example.test. admin.example.test. 1 3600 600 86400 60
@    IN NS  ns
ns   IN A   192.0.2.53
www  IN A   192.0.2.80
big  IN TXT ${Array.from({ length: 6 }, (_, i) => `"${String.fromCharCode(97 + i).repeat(250)}"`).join(' ')}
${Array.from({ length: 100 }, (_, i) => `h${i} IN A 198.51.100.${i + 1}`).join('\n')}
`;

/** A minimal `NAME IN A` query. */
function probe(name: string, id: number): Buffer {
  const labels = name.split('.').filter(Boolean);
  const parts = [Buffer.from([id >> 8, id & 0xff, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const l of labels) parts.push(Buffer.from([l.length]), Buffer.from(l));
  parts.push(Buffer.from([0, 0, 1, 0, 1]));
  return Buffer.concat(parts);
}

async function answersTcp(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const c = net.connect(port, host);
    const t = setTimeout(() => done(false), 300);
    const done = (ok: boolean) => {
      clearTimeout(t);
      c.destroy();
      res(ok);
    };
    c.on('error', () => done(false));
    c.on('data', () => done(true));
    const q = probe('www.example.test', 4321);
    const l = Buffer.alloc(2);
    l.writeUInt16BE(q.length);
    c.write(Buffer.concat([l, q]));
  });
}

async function runUntilAnswering(
  cmd: string,
  args: string[],
  dir: string,
  logFile: string,
  ready: () => Promise<boolean>,
): Promise<{ child: ChildProcess; output: () => string }> {
  let out = '';
  const child = spawn(cmd, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const output = () => out + (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const end = performance.now() + 10_000;
  while (performance.now() < end) {
    if (child.exitCode !== null) throw new Error(`${cmd} exited ${child.exitCode}: ${output()}`);
    if (await ready()) return { child, output };
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`${cmd} did not answer within 10 s: ${output()}`);
}

function stopper(child: ChildProcess, dir: string): () => Promise<void> {
  return async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
}

/** NSD serving ZONE over UDP and TCP, rate limiting off. `at` reuses an address (restart). */
export async function startNsd(at?: { host: string; port: number }): Promise<RunningServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const { host, port } = at ?? (await freeAddress());
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-nsd-'));
    writeFileSync(path.join(dir, 'example.test.zone'), ZONE);
    const logFile = path.join(dir, 'nsd.log');
    writeFileSync(path.join(dir, 'nsd.conf'), nsdConfig({ host, port, dir, logFile, zones: { 'example.test': 'example.test.zone' } }));
    try {
      const { child, output } = await runUntilAnswering('nsd', ['-d', '-c', path.join(dir, 'nsd.conf')], dir, logFile, () =>
        answersUdp(host, port, 'www.example.test'),
      );
      return { host, port, addr: `${host}:${port}`, stop: stopper(child, dir), log: output };
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      if (at !== undefined || attempt === 2) throw err;
    }
  }
  throw new Error('unreachable');
}

/** Unbound answering `www.example.test A 192.0.2.81` from local-data, over TCP only (`do-udp: no`). */
export async function startUnboundTcpOnly(): Promise<RunningServer> {
  for (let attempt = 0; attempt < 3; attempt++) {
    const { host, port } = await freeAddress();
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-unbound-'));
    const logFile = path.join(dir, 'unbound.log');
    writeFileSync(
      path.join(dir, 'unbound.conf'),
      `server:
  interface: ${host}@${port}
  do-udp: no
  do-tcp: yes
  do-ip6: no
  username: ""
  chroot: ""
  directory: "${dir}"
  pidfile: "${dir}/unbound.pid"
  use-syslog: no
  logfile: "${logFile}"
  verbosity: 1
  access-control: 127.0.0.0/8 allow
  local-zone: "example.test." static
  local-data: "www.example.test. 300 IN A 192.0.2.81"
  num-threads: 1
  module-config: "iterator"
  do-daemonize: no
remote-control:
  control-enable: no
`,
    );
    try {
      const { child, output } = await runUntilAnswering('unbound', ['-d', '-c', path.join(dir, 'unbound.conf')], dir, logFile, () => answersTcp(host, port));
      return { host, port, addr: `${host}:${port}`, stop: stopper(child, dir), log: output };
    } catch (err) {
      rmSync(dir, { recursive: true, force: true });
      if (attempt === 2) throw err;
    }
  }
  throw new Error('unreachable');
}
