/** For pprof and trace: the agent with one directive, its output, and whether a TCP address listens. */
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeEndpoint, spawnAgent, startKnot, type AgentProcess, type Authority } from '../../engine/harness.ts';

export const W_ZONE = `$ORIGIN w.test.
$TTL 300
@ IN SOA ns.w.test. admin.w.test. 1 7200 900 1209600 60
@ IN NS ns
ns IN A 127.0.0.1
www IN A 192.0.2.9
`;

/** `workers`: serving threads (-workers), each of which loads the config too. */
export async function agentWith(directive: string, workers = 0): Promise<{ agent: AgentProcess; knot: Authority; host: string; port: number }> {
  const knot = await startKnot({ 'w.test': W_ZONE });
  const { host, port } = await freeEndpoint();
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-warn-'));
  const file = path.join(dir, 'Corefile');
  writeFileSync(file, `.:${port} {\n    bind ${host}\n${directive}\n    forward . ${knot.addr}\n}\n`);
  const agent = await spawnAgent(['-conf', file, ...(workers > 0 ? ['-workers', String(workers)] : [])], () => rmSync(dir, { recursive: true, force: true }));
  return { agent, knot, host, port };
}

/** True when something accepts TCP connections at host:port. */
export function listens(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}
