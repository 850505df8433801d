/**
 * NSD inside a network namespace, listening on port 53 of several addresses (IPv4 and IPv6,
 * which must already be configured in the namespace), rate limiting off. Ready once it
 * answers the first zone's SOA over UDP on the first address (queried from inside the
 * namespace with dig). stop() also removes its temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sleep } from './net.ts';
import type { Netns } from './netns.ts';

export interface NetnsNsd {
  addresses: string[];
  stop(): Promise<void>;
  log(): string;
}

export async function startNetnsNsd(ns: Netns, addresses: string[], zones: Record<string, string>): Promise<NetnsNsd> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-nsd-netns-'));
  const logFile = path.join(dir, 'nsd.log');
  let zoneConf = '';
  for (const [name, text] of Object.entries(zones)) {
    const file = `${name.replace(/\.$/, '')}.zone`;
    writeFileSync(path.join(dir, file), text);
    zoneConf += `zone:\n  name: ${name}\n  zonefile: ${file}\n`;
  }
  const conf = `server:
${addresses.map((a) => `  ip-address: ${a}@53\n`).join('')}  zonesdir: "${dir}"
  pidfile: "${dir}/nsd.pid"
  database: ""
  xfrdfile: "${dir}/xfrd.state"
  zonelistfile: "${dir}/zone.list"
  username: ""
  chroot: ""
  rrl-ratelimit: 0
  rrl-whitelist-ratelimit: 0
  logfile: "${logFile}"
  server-count: 1
  tcp-count: 1000
  do-ip6: ${addresses.some((a) => a.includes(':')) ? 'yes' : 'no'}
  verbosity: 1
remote-control:
  control-enable: no
${zoneConf}`;
  writeFileSync(path.join(dir, 'nsd.conf'), conf);
  let out = '';
  const child: ChildProcess = spawn('ip', ['netns', 'exec', ns.name, 'nsd', '-d', '-c', path.join(dir, 'nsd.conf')], {
    cwd: dir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const log = () => out + (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
  const stop = async () => {
    if (alive()) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 3_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const first = Object.keys(zones)[0]!;
  const end = performance.now() + 15_000;
  while (performance.now() < end && alive()) {
    try {
      const r = ns.exec('dig', '+tries=1', '+time=1', `@${addresses[0]}`, '-p', '53', first, 'SOA');
      if (/status: NOERROR/.test(r)) return { addresses, stop, log };
    } catch {
      // not up yet
    }
    await sleep(100);
  }
  const text = log();
  await stop();
  throw new Error(`nsd did not start in ${ns.name}: ${text}`);
}
