/**
 * Child-process bookkeeping and /proc readers.
 *
 * Every process the harness starts goes through ProcessRegistry.spawn: it runs in its own
 * process group (detached), so stopping it also stops whatever it forked (NSD's xfrd and server
 * children, node-local-dns workers). killAllSync() is safe to call from an 'exit' handler.
 */
import { spawn, execFileSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';

export class ProcessExitedError extends Error {
  readonly code = 'BENCH_PROCESS_EXITED';
}

const HEAD_CHARS = 2048;

/** Keeps the first HEAD_CHARS and the last maxChars of a stream's output (for error messages). */
class TailBuffer {
  #head = '';
  #chunks: string[] = [];
  #chars = 0;
  #total = 0;
  readonly maxChars: number;
  constructor(maxChars: number) {
    this.maxChars = maxChars;
  }
  push(s: string): void {
    if (this.#head.length < HEAD_CHARS) this.#head += s.slice(0, HEAD_CHARS - this.#head.length);
    this.#total += s.length;
    this.#chunks.push(s);
    this.#chars += s.length;
    while (this.#chars > this.maxChars && this.#chunks.length > 1) this.#chars -= this.#chunks.shift()!.length;
  }
  text(): string {
    let t = this.#chunks.join('');
    if (t.length > this.maxChars) t = t.slice(t.length - this.maxChars);
    if (this.#total <= t.length) return t;
    // Output was dropped in the middle: keep the start (usually the error) and the end.
    return this.#total - t.length <= this.#head.length ? this.#head.slice(0, this.#total - t.length) + t : `${this.#head}\n[…]\n${t}`;
  }
}

export interface Managed {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves with the exit code (or signal name) when the process exits. */
  readonly exited: Promise<number | string>;
  /** Non-null once the process has exited. */
  exitStatus(): number | string | null;
  /** Last few KB of stdout+stderr, for error reports. */
  outputTail(): string;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Called with every stdout chunk (dnsperf -v parsing). Output still goes to the tail. */
  onStdout?: (chunk: string) => void;
  /** Bytes of output to keep for error messages. */
  tailBytes?: number;
  /** Also append all output (stdout and stderr) to this file. */
  logFile?: string | undefined;
}

export class ProcessRegistry {
  #live = new Set<Managed>();

  spawn(name: string, cmd: string, args: readonly string[], opts: SpawnOptions = {}): Managed {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const tail = new TailBuffer(opts.tailBytes ?? 8192);
    let status: number | string | null = null;
    child.stdout!.setEncoding('utf8');
    child.stderr!.setEncoding('utf8');
    const log = opts.logFile === undefined ? null : fs.createWriteStream(opts.logFile);
    child.stdout!.on('data', (c: string) => {
      log?.write(c);
      opts.onStdout?.(c);
      if (opts.onStdout === undefined) tail.push(c);
    });
    child.stderr!.on('data', (c: string) => {
      log?.write(c);
      tail.push(c);
    });
    child.once('close', () => log?.end());
    const exited = new Promise<number | string>((resolve) => {
      child.once('error', (err) => {
        tail.push(`spawn error: ${err.message}\n`);
        status = -1;
        this.#live.delete(m);
        resolve(-1);
      });
      // 'exit' = reaped (the pid may be reused from now on); 'close' = also all output read.
      child.once('exit', (code, signal) => {
        status = code ?? signal ?? -1;
      });
      child.once('close', (code, signal) => {
        status ??= code ?? signal ?? -1;
        this.#live.delete(m);
        resolve(status);
      });
    });
    const m: Managed = {
      name,
      child,
      pid: child.pid ?? -1,
      exited,
      exitStatus: () => status,
      outputTail: () => tail.text(),
    };
    this.#live.add(m);
    return m;
  }

  /**
   * SIGTERM to the main process only, so it can stop and reap its own children (PID 1 in this
   * VM does not reap orphans); SIGKILL to its tree after graceMs; then SIGKILL to whatever is
   * left in its process group.
   */
  async stop(m: Managed, graceMs = 3000): Promise<void> {
    if (this.#live.has(m)) {
      if (m.exitStatus() === null) {
        try {
          process.kill(m.pid, 'SIGTERM');
        } catch {
          // already gone
        }
      }
      const timer = setTimeout(() => {
        if (m.exitStatus() === null) killTree(m.pid, 'SIGKILL');
        else killGroup(m.pid, 'SIGKILL');
      }, graceMs);
      await m.exited;
      clearTimeout(timer);
    }
    killGroup(m.pid, 'SIGKILL');
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.#live].map((m) => this.stop(m)));
  }

  /** Synchronous last resort for 'exit' handlers. */
  killAllSync(): void {
    for (const m of this.#live) {
      if (m.exitStatus() === null) killTree(m.pid, 'SIGKILL');
      else killGroup(m.pid, 'SIGKILL');
    }
  }

  get liveCount(): number {
    return this.#live.size;
  }
}

/**
 * Signals pid's process group and pid's current descendants. Only for a pid that has not been
 * reaped yet (otherwise the number may belong to someone else by now).
 */
function killTree(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  const all = descendants(pid);
  killGroup(pid, signal);
  for (const p of all) {
    try {
      process.kill(p, signal);
    } catch {
      // already gone
    }
  }
}

/** Signals the process group led by pid (a group id stays reserved while it has members). */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // group already gone
  }
}

interface StatFields {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

/** Parses /proc/<pid>/stat; the comm field may contain spaces and parentheses. */
export function parseStat(text: string): StatFields | null {
  const close = text.lastIndexOf(')');
  if (close < 0) return null;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state); utime is field 14 → f[11]; stime f[12]; cutime f[13]; cstime f[14]; ppid field 4 → f[1].
  const nums = [f[1], f[11], f[12], f[13], f[14]].map(Number);
  if (nums.some((n) => !Number.isFinite(n))) return null;
  return { ppid: nums[0]!, ticks: nums[1]! + nums[2]! + nums[3]! + nums[4]! };
}

function readStat(pid: number): StatFields | null {
  try {
    return parseStat(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** pid and all its live descendants, found by walking every /proc/<pid>/stat's ppid. */
export function descendants(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [rootPid];
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e)) continue;
    const st = readStat(Number(e));
    if (st === null) continue;
    const list = children.get(st.ppid);
    if (list === undefined) children.set(st.ppid, [Number(e)]);
    else list.push(Number(e));
  }
  const out: number[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const p = stack.pop()!;
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

/**
 * CPU time of the process tree in clock ticks. Each process counts its own time and that of
 * children it has already reaped (cutime/cstime), so a worker that exits mid-run is still counted.
 */
export function treeCpuTicks(rootPid: number): number {
  let sum = 0;
  for (const p of descendants(rootPid)) sum += readStat(p)?.ticks ?? 0;
  return sum;
}

/** Sum of a /proc/<pid>/status memory field (kB) over the tree: VmHWM = peak RSS, VmRSS = now. */
export function treeMemKb(rootPid: number, field: 'VmHWM' | 'VmRSS'): number {
  let sum = 0;
  const re = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm');
  for (const p of descendants(rootPid)) {
    try {
      const m = re.exec(fs.readFileSync(`/proc/${p}/status`, 'utf8'));
      if (m !== null) sum += Number(m[1]);
    } catch {
      // exited between listing and reading
    }
  }
  return sum;
}

let clockTicks: number | undefined;
/** sysconf(_SC_CLK_TCK): the unit of /proc/<pid>/stat times. */
export function clockTicksPerSec(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** Absolute path of an executable on PATH, or null. */
export function which(cmd: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir === '') continue;
    const p = `${dir}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  for (const dir of ['/usr/sbin', '/sbin', '/usr/local/sbin']) {
    const p = `${dir}/${cmd}`;
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // not here
    }
  }
  return null;
}

export interface SystemCpu {
  /** Ticks spent by processes (user, nice, system) plus time stolen by the hypervisor. */
  processAndSteal: number;
  /** All ticks, idle included, summed over CPUs. */
  total: number;
}

/**
 * Whole-machine CPU counters from the first line of /proc/stat. irq and softirq are left out
 * of processAndSteal: loopback packet processing lands there and is not "someone else's" load.
 */
export function readSystemCpu(): SystemCpu {
  const line = fs.readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const [user = 0, nice = 0, system = 0, , , , , steal = 0] = f;
  return { processAndSteal: user + nice + system + steal, total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** One thread's scheduling counters (/proc/<pid>/task/<tid>/{comm,stat,status,schedstat}). */
export interface ThreadCounters {
  comm: string;
  /** utime + stime, ms. */
  cpuMs: number;
  /** schedstat: time spent runnable but waiting for the CPU, ms (what preemption cost it). */
  waitMs: number;
  /** Context switches: nonvoluntary (preempted while runnable) and voluntary (blocked). */
  nvcsw: number;
  vcsw: number;
}

/** Counters of every thread of the process tree under rootPid, by "pid/tid". */
export function readThreadCounters(rootPid: number): Map<string, ThreadCounters> {
  const out = new Map<string, ThreadCounters>();
  const tick = 1000 / clockTicksPerSec();
  for (const p of descendants(rootPid)) {
    let tids: string[];
    try {
      tids = fs.readdirSync(`/proc/${p}/task`);
    } catch {
      continue;
    }
    for (const t of tids) {
      const dir = `/proc/${p}/task/${t}`;
      try {
        const stat = fs.readFileSync(`${dir}/stat`, 'utf8');
        const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const status = fs.readFileSync(`${dir}/status`, 'utf8');
        const sched = fs.readFileSync(`${dir}/schedstat`, 'utf8').trim().split(' ');
        out.set(`${p}/${t}`, {
          comm: fs.readFileSync(`${dir}/comm`, 'utf8').trim(),
          cpuMs: (Number(f[11]) + Number(f[12])) * tick,
          waitMs: Number(sched[1] ?? 0) / 1e6,
          nvcsw: Number(/^nonvoluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0),
          vcsw: Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(status)?.[1] ?? 0),
        });
      } catch {
        // exited between listing and reading
      }
    }
  }
  return out;
}

/**
 * What each thread did between two readings, summed by thread name ("main" for a process's
 * first thread); threads that started in between count from zero.
 */
export function threadCounterDelta(
  before: Map<string, ThreadCounters>,
  after: Map<string, ThreadCounters>,
): Record<string, ThreadCounters & { threads: number }> {
  const sum: Record<string, ThreadCounters & { threads: number }> = {};
  for (const [key, a] of after) {
    const b = before.get(key);
    const [p, t] = key.split('/');
    const name = p === t ? 'main' : a.comm;
    const s = (sum[name] ??= { comm: name, threads: 0, cpuMs: 0, waitMs: 0, nvcsw: 0, vcsw: 0 });
    s.threads++;
    s.cpuMs += a.cpuMs - (b?.cpuMs ?? 0);
    s.waitMs += a.waitMs - (b?.waitMs ?? 0);
    s.nvcsw += a.nvcsw - (b?.nvcsw ?? 0);
    s.vcsw += a.vcsw - (b?.vcsw ?? 0);
  }
  for (const s of Object.values(sum)) {
    s.cpuMs = Math.round(s.cpuMs * 10) / 10;
    s.waitMs = Math.round(s.waitMs * 10) / 10;
  }
  return sum;
}
