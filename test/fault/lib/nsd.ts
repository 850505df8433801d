/**
 * NSD (a real authoritative server, UDP and TCP) serving the given zones on a 127.0.0.x
 * address, rate limiting off. `kill()` stops it with SIGKILL (an upstream that dies);
 * `stop()` also removes its temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { answersUdp, freeAddress, sleep } from './net.ts';
import { nsdConfig } from '../../lib/nsd-config.ts';

export interface Nsd {
  host: string;
  port: number;
  /** `host:port`, as a forward TO. */
  addr: string;
  pid: number;
  kill(): Promise<void>;
  stop(): Promise<void>;
  log(): string;
}

/** Starts NSD with `zones` (zone name → zone file text). */
export async function startNsd(zones: Record<string, string>): Promise<Nsd> {
  for (let attempt = 0; ; attempt++) {
    const { host, port } = await freeAddress();
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-nsd-'));
    const logFile = path.join(dir, 'nsd.log');
    const zoneFiles: Record<string, string> = {};
    for (const [name, text] of Object.entries(zones)) {
      const file = `${name.replace(/\.$/, '')}.zone`;
      writeFileSync(path.join(dir, file), text);
      zoneFiles[name] = file;
    }
    writeFileSync(path.join(dir, 'nsd.conf'), nsdConfig({ host, port, dir, logFile, zones: zoneFiles, tcpCount: 1000 }));
    let out = '';
    const child: ChildProcess = spawn('nsd', ['-d', '-c', path.join(dir, 'nsd.conf')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    const log = () => out + (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
    const alive = () => child.exitCode === null && child.signalCode === null;
    const kill = async () => {
      if (alive()) {
        child.kill('SIGKILL');
        await exited;
      }
    };
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
    const end = performance.now() + 10_000;
    let ok = false;
    while (performance.now() < end && alive()) {
      if (await answersUdp(host, port, first)) {
        ok = true;
        break;
      }
      await sleep(50);
    }
    if (ok) return { host, port, addr: `${host}:${port}`, pid: child.pid!, kill, stop, log };
    const text = log();
    await stop();
    if (attempt >= 2) throw new Error(`nsd did not start: ${text}`);
  }
}

/** A zone file: SOA (negative TTL `negTtl`), NS, then `records` lines. */
export function zoneText(origin: string, records: string[], negTtl = 5): string {
  const o = origin.endsWith('.') ? origin : origin + '.';
  return `$ORIGIN ${o}
$TTL 300
@ IN SOA ns.${o} hostmaster.${o} 1 3600 600 86400 ${negTtl}
@ IN NS ns.${o}
ns IN A 192.0.2.53
${records.join('\n')}
`;
}
