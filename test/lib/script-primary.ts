/**
 * A stand-in "primary" for the socket-adoption tests: a Node.js child running an inline ES
 * module script that registers as a serving peer, opens its listening sockets and prints one
 * JSON line `{port, path}` (the bound port and its peer socket path). Shared by
 * src/server/udp-adopt.test.ts and src/server/tcp-adopt.test.ts, whose scripts differ.
 */
import { type ChildProcess, spawn } from 'node:child_process';

export interface ScriptPrimary {
  child: ChildProcess;
  pid: number;
  port: number;
  path: string;
  exited: Promise<unknown>;
}

/** Runs `script` with `args` (process.argv.slice(1) in the script) and waits for its JSON line; rejects if it exits first. */
export async function startScriptPrimary(script: string, args: readonly string[]): Promise<ScriptPrimary> {
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise((r) => child.once('exit', r));
  let out = '';
  const line = await new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) resolve(out.slice(0, nl));
    });
    child.once('exit', (code) => reject(new Error(`primary exited ${code}: ${out}`)));
  });
  const { port, path } = JSON.parse(line) as { port: number; path: string };
  return { child, pid: child.pid!, port, path, exited };
}

export function primaryAlive(p: ScriptPrimary): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

/** SIGKILL (if still running) and wait for the exit. */
export async function killPrimary(p: ScriptPrimary): Promise<void> {
  if (!primaryAlive(p)) return;
  p.child.kill('SIGKILL');
  await p.exited;
}
