/**
 * The agent under test as a child process: `node src/main.ts -conf <temp Corefile>` (blocks
 * without `bind` listen on 127.0.0.1), its output kept, its RSS readable from /proc, its
 * metrics scraped from the `prometheus` listener when the Corefile has one. stop() sends
 * SIGTERM (SIGKILL after 5 s) and removes the temp dir.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseExposition, type ParsedFamily } from '../../lib/metrics-testing.ts';
import { rssKiB, waitUntil } from './net.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const NODE = path.join(ROOT, 'node_modules/.bin/node');

export interface Agent {
  pid: number;
  child: ChildProcess;
  corefile: string;
  /** stdout + stderr so far. */
  output(): string;
  /** True while the process runs. */
  alive(): boolean;
  rssKiB(): Promise<number>;
  stop(): Promise<void>;
}

/** Output kept per agent (the tail), so long runs with `errors` logging stay bounded. */
const MAX_OUTPUT_CHARS = 1 << 20;

/** `env`: added to the test's environment (e.g. test/lib/udp-io.ts udpIoEnv). */
export async function startAgent(
  corefileText: string,
  opts: { readyTimeoutMs?: number; extraArgs?: string[]; env?: Record<string, string> } = {},
): Promise<Agent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-fault-'));
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, corefileText);
  const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), '-conf', corefile, ...(opts.extraArgs ?? [])], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...opts.env },
  });
  return superviseAgent(child, dir, corefile, opts.readyTimeoutMs ?? 20_000);
}

/**
 * Keeps a spawned agent's output (the tail), waits until it logs ` serving` (or fails with its
 * output when it exits first or `readyTimeoutMs` passes), and gives the Agent handle whose
 * stop() ends it (SIGTERM, SIGKILL after 5 s) and removes `dir`.
 */
export async function superviseAgent(child: ChildProcess, dir: string, corefile: string, readyTimeoutMs: number): Promise<Agent> {
  let out = '';
  const keep = (d: Buffer) => {
    out += d;
    if (out.length > MAX_OUTPUT_CHARS) out = out.slice(-MAX_OUTPUT_CHARS >> 1);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  child.on('error', (err) => keep(Buffer.from(`spawn error: ${err.message}\n`)));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const alive = () => child.exitCode === null && child.signalCode === null;
  const stop = async () => {
    if (alive()) {
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitUntil(
      () => {
        if (!alive()) throw new Error(`agent exited (${child.exitCode ?? child.signalCode}): ${out}`);
        return / serving/.test(out);
      },
      'the agent to serve',
      readyTimeoutMs,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid: child.pid!, child, corefile, output: () => out, alive, rssKiB: () => rssKiB(child.pid!), stop };
}

export function httpGet(host: string, port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host, port, path: p, timeout: 5_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('metrics request timed out')));
    req.on('error', reject);
  });
}

export async function scrape(host: string, port: number): Promise<Map<string, ParsedFamily>> {
  const r = await httpGet(host, port, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  return parseExposition(r.body);
}

/** Sum of the samples of `name` whose labels include `match`. */
export function metricSum(families: Map<string, ParsedFamily>, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const f of families.values()) {
    for (const s of f.samples) {
      if (s.name !== name) continue;
      if (Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
    }
  }
  return sum;
}
