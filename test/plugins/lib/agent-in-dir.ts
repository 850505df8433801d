/**
 * The real agent started with its working directory in a temp dir of the test's own, so a
 * Corefile can name files relative to it (CoreDNS reads a relative hosts path against its
 * working directory when there is no `root`). stop() also removes the dir.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { NODE, ROOT, superviseAgent, type Agent } from '../../fault/lib/agent.ts';

export async function startAgentIn(dir: string, corefileText: string, files: Record<string, string> = {}): Promise<Agent> {
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  const corefile = path.join(dir, 'Corefile');
  writeFileSync(corefile, corefileText);
  const child = spawn(NODE, [path.join(ROOT, 'src/main.ts'), '-conf', corefile], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  return superviseAgent(child, dir, corefile, 30_000);
}
