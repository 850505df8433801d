/**
 * Knot DNS for the rewrite tests, as test/engine/harness.ts's startKnot but with server options
 * of our choosing: an NSID (RFC 5001) and EDNS Client Subnet answering (RFC 7871), so the
 * options rewrite adds to a query can be seen coming back from a real server.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freeEndpoint, rawQuery, sleep, udpExchange, type Authority } from '../../engine/harness.ts';

export interface KnotOptions {
  /** NSID text Knot sends to queries that ask for it. */
  nsid?: string;
  /** Answer ECS queries with an ECS option (`edns-client-subnet: on`). */
  ecs?: boolean;
}

export async function startKnotWith(zones: Record<string, string>, opts: KnotOptions = {}): Promise<Authority> {
  const names = Object.keys(zones);
  for (let attempt = 0; ; attempt++) {
    const { host, port } = await freeEndpoint();
    const dir = mkdtempSync(path.join(tmpdir(), 'nld-rw-knot-'));
    for (const [apex, text] of Object.entries(zones)) writeFileSync(path.join(dir, `${apex}.zone`), text);
    writeFileSync(
      path.join(dir, 'knot.conf'),
      `server:
    listen: ${host}@${port}
    rundir: "${dir}"
    user: root:root
    background-workers: 1
    udp-workers: 1
    tcp-workers: 1
${opts.nsid !== undefined ? `    nsid: "${opts.nsid}"\n` : ''}${opts.ecs ? '    edns-client-subnet: on\n' : ''}log:
  - target: stderr
    any: warning
database:
    storage: "${dir}/db"
template:
  - id: default
    storage: "${dir}"
    file: "%s.zone"
    journal-content: none
zone:
${names.map((n) => `  - domain: ${n}`).join('\n')}
`,
    );
    let out = '';
    const child = spawn('knotd', ['-c', path.join(dir, 'knot.conf')], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const stop = async (): Promise<void> => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 3000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    };
    const end = performance.now() + 10_000;
    let ready = false;
    while (performance.now() < end && child.exitCode === null) {
      const r = await udpExchange(host, port, rawQuery(names[0]!, 6, 0x5151), 200);
      if (r !== null && r.length >= 12) {
        ready = true;
        break;
      }
      await sleep(30);
    }
    if (ready) return { host, port, addr: `${host}:${port}`, log: () => out, stop };
    await stop();
    if (attempt === 2) throw new Error(`knotd did not start: ${out}`);
  }
}
