/**
 * A real musl libc resolver client for end-to-end tests: test/lib/musl-getaddrinfo.c built
 * with `musl-gcc -static` (Debian's musl-tools, musl 1.2.3 on Debian 12: the resolver of
 * Alpine <= 3.17, which does not retry a TC=1 answer over TCP), run inside a network
 * namespace whose /etc/resolv.conf is /etc/netns/<name>/resolv.conf (`ip netns exec`
 * bind-mounts it). Also starts processes inside that namespace (the agent, NSD).
 *
 * Namespace names must carry the caller's prefix; `destroy()` kills what was started in it,
 * deletes it and removes its /etc/netns directory.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Why the musl tests cannot run here, or undefined. */
export function muslSkipReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (network namespaces)';
  for (const tool of ['musl-gcc', 'ip', 'nsd']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed (apt-get install musl-tools nsd iproute2)`;
  }
  return undefined;
}

/** Builds the getaddrinfo client into a temp dir; returns the binary's path. */
export function buildMuslGetaddrinfo(): { bin: string; cleanup(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'nld-musl-'));
  const bin = path.join(dir, 'getaddrinfo');
  execFileSync('musl-gcc', ['-static', '-O2', '-o', bin, path.join(HERE, 'musl-getaddrinfo.c')], { stdio: 'pipe' });
  return { bin, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface GaiResult {
  /** Exit status: 0 resolved, 2 getaddrinfo failed. */
  status: number | null;
  addresses: string[];
  /** gai_strerror text on failure. */
  error: string;
}

/** A network namespace with `lo` up and a resolv.conf of its own. */
export class ResolverNetns {
  readonly name: string;
  private readonly etcDir: string;
  private readonly children = new Set<ChildProcess>();

  constructor(name: string) {
    this.name = name;
    this.etcDir = path.join('/etc/netns', name);
  }

  /** Creates the namespace; `addresses` (CIDR) go on its `lo`; resolv.conf gets `resolvConf`. */
  create(addresses: string[], resolvConf: string): void {
    execFileSync('ip', ['netns', 'add', this.name]);
    this.ip(['link', 'set', 'lo', 'up']);
    for (const a of addresses) this.ip(['addr', 'add', a, 'dev', 'lo']);
    mkdirSync(this.etcDir, { recursive: true });
    writeFileSync(path.join(this.etcDir, 'resolv.conf'), resolvConf);
  }

  ip(args: string[]): void {
    execFileSync('ip', ['-n', this.name, ...args]);
  }

  /** Starts `file args` inside the namespace (ip netns exec replaces itself with it). */
  spawn(file: string, args: string[], opts: { cwd?: string } = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.name, file, ...args], { cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.children.add(child);
    child.once('exit', () => this.children.delete(child));
    return child;
  }

  /** Runs the musl getaddrinfo client for `name` inside the namespace. */
  getaddrinfo(bin: string, name: string, family?: 4 | 6, timeoutMs = 20_000): GaiResult {
    const args = ['netns', 'exec', this.name, bin, name, ...(family ? [String(family)] : [])];
    const r = spawnSync('ip', args, { encoding: 'utf8', timeout: timeoutMs });
    return {
      status: r.status,
      addresses: (r.stdout ?? '').split('\n').filter(Boolean),
      error: (r.stderr ?? '').trim(),
    };
  }

  /** Runs `file args` in the namespace to completion; stdout. */
  run(file: string, args: string[], timeoutMs = 20_000): string {
    return execFileSync('ip', ['netns', 'exec', this.name, file, ...args], { encoding: 'utf8', timeout: timeoutMs });
  }

  async destroy(): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const c of this.children) {
      if (c.exitCode !== null || c.signalCode !== null) continue;
      waits.push(new Promise<void>((r) => c.once('exit', () => r())));
      c.kill('SIGKILL');
    }
    await Promise.all(waits);
    try {
      execFileSync('ip', ['netns', 'del', this.name], { stdio: 'ignore' });
    } catch {
      // not created, or already gone
    }
    if (existsSync(this.etcDir)) rmSync(this.etcDir, { recursive: true, force: true });
  }
}
