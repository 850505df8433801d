/**
 * A memory cgroup with the manifests' limit around the agent under test, so the hostile run
 * meets the kernel's OOM killer as a pod would (Node.js also sizes its heap from it). cgroup v1
 * (`/sys/fs/cgroup/memory`) or v2 (a `memory` controller at `/sys/fs/cgroup`); null where
 * neither can be made (not root, no controller): the run then asserts on RSS alone.
 * The agent is started inside the group, so every page it ever has is charged there.
 * remove() deletes the group once the process has ended.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface MemoryCgroup {
  readonly dir: string;
  readonly version: 1 | 2;
  /** Processes the kernel's OOM killer ended in this group. */
  oomKills(): number;
  /** Times usage reached the limit (v1 failcnt; v2 memory.events `max`). */
  limitHits(): number;
  remove(): void;
}

function readNumber(file: string, key: string | null): number {
  try {
    const text = readFileSync(file, 'utf8');
    if (key === null) return Number(text.trim());
    const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(text);
    return m === null ? 0 : Number(m[1]);
  } catch {
    return 0;
  }
}

function tryRemove(dir: string): void {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch {
      // Still holds a process being reaped: retry shortly.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
    }
  }
}

function ownCgroupV1(): string | null {
  const m = /^\d+:memory:(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'));
  return m === null ? null : m[1]!;
}

/**
 * Runs `spawn` with this process inside a new memory cgroup of `limitBytes`, so the child it
 * starts is born there (its every page is charged to the group: kernels without
 * `move_charge_at_immigrate` would leave pages of a moved process outside), then moves this
 * process back. Returns the group, or null (and `spawn` still runs) where none can be made.
 */
export async function spawnInMemoryCgroup<T>(name: string, limitBytes: number, spawn: () => Promise<T>): Promise<{ result: T; cgroup: MemoryCgroup | null }> {
  const v1 = '/sys/fs/cgroup/memory';
  const v2 = '/sys/fs/cgroup';
  let cgroup: MemoryCgroup | null = null;
  let back: string | null = null;
  try {
    if (existsSync(path.join(v1, 'memory.limit_in_bytes'))) {
      const own = ownCgroupV1();
      if (own !== null) {
        const dir = path.join(v1, name);
        mkdirSync(dir);
        cgroup = {
          dir,
          version: 1,
          oomKills: () => readNumber(path.join(dir, 'memory.oom_control'), 'oom_kill'),
          limitHits: () => readNumber(path.join(dir, 'memory.failcnt'), null),
          remove: () => tryRemove(dir),
        };
        writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limitBytes));
        back = path.join(v1, own, 'cgroup.procs');
        writeFileSync(path.join(dir, 'cgroup.procs'), String(process.pid));
      }
    } else if (readFileSync(path.join(v2, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory')) {
      const own = /^0::(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
      if (own !== undefined) {
        const dir = path.join(v2, name);
        mkdirSync(dir);
        cgroup = {
          dir,
          version: 2,
          oomKills: () => readNumber(path.join(dir, 'memory.events'), 'oom_kill'),
          limitHits: () => readNumber(path.join(dir, 'memory.events'), 'max'),
          remove: () => tryRemove(dir),
        };
        writeFileSync(path.join(dir, 'memory.max'), String(limitBytes));
        back = path.join(v2, own, 'cgroup.procs');
        writeFileSync(path.join(dir, 'cgroup.procs'), String(process.pid));
      }
    }
  } catch {
    if (back !== null) writeBack(back);
    cgroup?.remove();
    cgroup = null;
    back = null;
  }
  try {
    return { result: await spawn(), cgroup };
  } finally {
    if (back !== null) writeBack(back);
  }
}

function writeBack(procs: string): void {
  try {
    writeFileSync(procs, String(process.pid));
  } catch {
    // Left in the test's group: it only charges this test process, which ends soon.
  }
}
