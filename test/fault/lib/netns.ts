/**
 * Network namespaces for the kernel fault tests (root only): create, run commands in, delete.
 * Names carry the caller's prefix; `removeStale(prefix)` deletes leftovers of an earlier run
 * with that prefix only. Addresses used inside: 198.18.0.0/15 and fd00::/8 (and loopback).
 */
import { execFile, execFileSync } from 'node:child_process';

/** True when this process may create namespaces (root). */
export function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

/** Runs a command; throws with its stderr on failure. Returns stdout. */
export function run(cmd: string, args: string[]): string {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${cmd} ${args.join(' ')}: ${e.stderr?.trim() || e.message}`);
  }
}

/** True when the kernel and tools needed here exist (ip, iptables with REJECT, prlimit). */
export function missingTools(): string | null {
  for (const [cmd, args] of [
    ['ip', ['-V']],
    ['iptables', ['--version']],
    ['prlimit', ['--version']],
  ] as const) {
    try {
      run(cmd, [...args]);
    } catch {
      return `${cmd} is not available`;
    }
  }
  return null;
}

/** Deletes every namespace whose name starts with `prefix` (leftovers of a crashed run). */
export function removeStale(prefix: string): void {
  const list = run('ip', ['netns', 'list']);
  for (const line of list.split('\n')) {
    const name = line.split(' ')[0]!;
    if (name.startsWith(prefix)) {
      try {
        run('ip', ['netns', 'del', name]);
      } catch {
        // already gone
      }
    }
  }
}

export class Netns {
  readonly name: string;
  private deleted = false;

  private constructor(name: string) {
    this.name = name;
  }

  /** A new namespace with `lo` up. */
  static create(name: string): Netns {
    run('ip', ['netns', 'add', name]);
    const ns = new Netns(name);
    ns.ip('link', 'set', 'lo', 'up');
    return ns;
  }

  /** `ip -n NAME ...` */
  ip(...args: string[]): string {
    return run('ip', ['-n', this.name, ...args]);
  }

  /** Runs a command inside the namespace. */
  exec(cmd: string, ...args: string[]): string {
    return run('ip', ['netns', 'exec', this.name, cmd, ...args]);
  }

  iptables(...args: string[]): string {
    return this.exec('iptables', '-w', ...args);
  }

  ip6tables(...args: string[]): string {
    return this.exec('ip6tables', '-w', ...args);
  }

  sysctl(key: string, value: string): void {
    this.exec('sysctl', '-qw', `${key}=${value}`);
  }

  /** The argv prefix that runs a command inside the namespace. */
  wrap(argv: string[]): string[] {
    return ['ip', 'netns', 'exec', this.name, ...argv];
  }

  del(): void {
    if (this.deleted) return;
    this.deleted = true;
    try {
      run('ip', ['netns', 'del', this.name]);
    } catch {
      // already gone
    }
  }
}

/**
 * A veth pair between two namespaces: `a` gets addrA (CIDR) as `ifA`, `b` gets addrB as
 * `ifB`; both up. IPv6 addresses (optional) are added without duplicate address detection.
 */
export function veth(a: Netns, ifA: string, b: Netns, ifB: string, opts: { addrA?: string[]; addrB?: string[] } = {}): void {
  run('ip', ['link', 'add', ifA, 'netns', a.name, 'type', 'veth', 'peer', 'name', ifB, 'netns', b.name]);
  for (const [ns, dev, addrs] of [
    [a, ifA, opts.addrA ?? []],
    [b, ifB, opts.addrB ?? []],
  ] as const) {
    for (const addr of addrs) ns.ip('addr', 'add', addr, 'dev', dev, ...(addr.includes(':') ? ['nodad'] : []));
    ns.ip('link', 'set', dev, 'up');
  }
}

/** The open file descriptors of a process (numbers from /proc/PID/fd), ascending. */
export function openFds(pid: number): number[] {
  return run('ls', [`/proc/${pid}/fd`])
    .split('\n')
    .filter(Boolean)
    .map(Number)
    .sort((x, y) => x - y);
}

/** The lowest descriptor number free in a process: with RLIMIT_NOFILE at it, no new fd can open. */
export function lowestFreeFd(pid: number): number {
  const fds = openFds(pid);
  let n = 0;
  for (const fd of fds) {
    if (fd !== n) break;
    n++;
  }
  return n;
}

/**
 * Sets a running process's soft RLIMIT_NOFILE, keeping the hard limit `hard` (raising a hard
 * limit needs CAP_SYS_RESOURCE, which a container's root may lack).
 */
export function setNofile(pid: number, soft: number, hard: number): void {
  run('prlimit', ['--pid', String(pid), `--nofile=${soft}:${hard}`]);
}

export interface DigResult {
  /** The rcode name (NOERROR, SERVFAIL...), or null when no answer came within the timeout. */
  status: string | null;
  /** Answer-section data fields (the last column of each answer line). */
  answers: string[];
  /** The QUESTION count dig printed, -1 when absent. */
  questionCount: number;
  output: string;
}

/**
 * One query with dig from inside `ns`: a single try, no retry, `timeoutS` seconds (a client
 * timeout, whole seconds as dig takes them). `extra` adds dig options (+tcp, -c HS, -y ...).
 */
export function digIn(ns: Netns, server: string, port: number, name: string, type = 'A', timeoutS = 8, extra: string[] = []): Promise<DigResult> {
  const args = ['netns', 'exec', ns.name, 'dig', '+tries=1', `+time=${timeoutS}`, '+nocookie', `@${server}`, '-p', String(port), name, type, ...extra];
  return new Promise((resolve) => {
    execFile('ip', args, { encoding: 'utf8', timeout: (timeoutS + 5) * 1000 }, (_err, stdout, stderr) => {
      const output = `${stdout ?? ''}${stderr ?? ''}`;
      const status = /status: ([A-Z]+)/.exec(output)?.[1] ?? null;
      const q = /QUERY: (\d+),/.exec(output);
      const answers: string[] = [];
      const section = /;; ANSWER SECTION:\n([\s\S]*?)(?:\n\n|$)/.exec(output);
      if (section) for (const line of section[1]!.split('\n')) if (line.trim()) answers.push(line.trim().split(/\s+/).pop()!);
      resolve({ status, answers, questionCount: q ? Number(q[1]) : -1, output });
    });
  });
}
