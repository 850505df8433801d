/**
 * The agent as the image runs it — the installed entry (bin/node-local-dns.js) with the
 * shipped Node.js flags (those of `npm start`) — optionally inside a network namespace
 * and under a file-descriptor limit (`prlimit --nofile=N:N`, exec'd, so the child's pid is the
 * agent's). Its output is kept (the tail), its RSS read from /proc. stop() sends SIGTERM
 * (SIGKILL after 5 s) and removes the temp dir.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { NODE, ROOT, superviseAgent, type Agent } from './agent.ts';
import { shippedNodeFlags } from '../../../bench/lib/servers.ts';
import type { Netns } from './netns.ts';

/** The flags the image runs Node.js with (`npm start`; the Dockerfile's NODE_OPTIONS and the bin shebang repeat them). */
export const SHIPPED_NODE_FLAGS = shippedNodeFlags(ROOT);

export interface NetnsAgentOptions {
  netns?: Netns;
  /** RLIMIT_NOFILE for the agent (soft and hard). */
  nofile?: number;
  readyTimeoutMs?: number;
}

export async function startNetnsAgent(corefileText: string, opts: NetnsAgentOptions = {}): Promise<Agent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-netns-'));
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, corefileText);
  let argv = [NODE, ...SHIPPED_NODE_FLAGS, path.join(ROOT, 'bin/node-local-dns.js'), '-conf', corefile];
  if (opts.nofile !== undefined) argv = ['prlimit', `--nofile=${opts.nofile}:${opts.nofile}`, ...argv];
  if (opts.netns !== undefined) argv = opts.netns.wrap(argv);
  const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  return superviseAgent(child, dir, corefile, opts.readyTimeoutMs ?? 30_000);
}
