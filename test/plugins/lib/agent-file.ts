/** The real agent on a Corefile in a temp dir the test can rewrite (for reloads). */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { spawnAgent, sleep, type AgentProcess } from '../../engine/harness.ts';

export interface FileAgent {
  agent: AgentProcess;
  file: string;
  /** Rewrites the Corefile. */
  write(text: string): void;
  /** Waits until the agent's output matches `re` (count-th match), or throws after ms. */
  waitFor(re: RegExp, ms?: number, count?: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startFileAgent(text: string): Promise<FileAgent> {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-misc-'));
  const file = path.join(dir, 'Corefile');
  writeFileSync(file, text);
  const agent = await spawnAgent(['-conf', file], () => rmSync(dir, { recursive: true, force: true }));
  return {
    agent,
    file,
    write: (t) => writeFileSync(file, t),
    async waitFor(re, ms = 10_000, count = 1) {
      const g = new RegExp(re.source, re.flags.includes('g') ? re.flags : re.flags + 'g');
      const end = performance.now() + ms;
      while ([...agent.output().matchAll(g)].length < count) {
        if (performance.now() > end) throw new Error(`no ${re} in the agent output:\n${agent.output()}`);
        await sleep(25);
      }
    },
    stop: async () => {
      await agent.stop();
    },
  };
}
