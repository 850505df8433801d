/**
 * Running the host's network tools (`ip`, `iptables`, `ip6tables`, `nft`) without a shell.
 *
 * Contract: a CommandRunner never throws for a non-zero exit status; it resolves with the
 * status and both output streams so callers can classify failures (e.g. `iptables -C` exits 1
 * when a rule is absent). It rejects only when the program cannot be started at all
 * (ENOENT, EACCES, EMFILE), does not exit in time, or floods its output, with a `CommandError`
 * (see createExecRunner).
 */
import { spawn, type ChildProcess } from 'node:child_process';

export interface CommandResult {
  /** Exit status; -1 when the process was ended by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface CommandOptions {
  /** Written to the child's standard input, which is then closed (e.g. `nft -f -`); without it stdin is /dev/null. */
  input?: string;
}

export type CommandRunner = (file: string, args: readonly string[], opts?: CommandOptions) => Promise<CommandResult>;

export class CommandError extends Error {
  readonly code = 'ERR_COMMAND' as const;
  readonly file: string;
  constructor(file: string, cause: Error) {
    super(`cannot run ${file}: ${cause.message}`, { cause });
    this.name = 'CommandError';
    this.file = file;
  }
}

/** Upper bound for one invocation; `iptables -w 5` waits at most 5 s for the xtables lock. */
const COMMAND_TIMEOUT_MS = 30_000;
/** After the timeout's SIGTERM, SIGKILL follows this much later; as long again, the child is abandoned. */
const COMMAND_KILL_GRACE_MS = 2_000;
/** After the child exits, its output pipes get this long to close (a grandchild may hold them). */
const COMMAND_STDIO_GRACE_MS = 500;
/** Output kept per stream; more ends the command (the tools print a few KiB at most). */
const COMMAND_MAX_OUTPUT_BYTES = 1 << 20;

export interface ExecRunnerOptions {
  timeoutMs?: number;
  killGraceMs?: number;
  stdioGraceMs?: number;
  maxOutputBytes?: number;
}

/**
 * A runner with child_process.spawn (argv passed as is, never through a shell). Every way a
 * child can fail to report back is bounded: it cannot be started (ENOENT, EACCES, EMFILE:
 * CommandError); it runs past `timeoutMs` (SIGTERM, then SIGKILL, then abandoned with a
 * CommandError: a process stuck in the kernel ignores even SIGKILL); it exits while a
 * grandchild keeps its output pipes open (settled `stdioGraceMs` after the exit); it prints
 * more than `maxOutputBytes` (killed, CommandError).
 */
export function createExecRunner(o: ExecRunnerOptions = {}): CommandRunner {
  const timeoutMs = o.timeoutMs ?? COMMAND_TIMEOUT_MS;
  const killGraceMs = o.killGraceMs ?? COMMAND_KILL_GRACE_MS;
  const stdioGraceMs = o.stdioGraceMs ?? COMMAND_STDIO_GRACE_MS;
  const maxOutputBytes = o.maxOutputBytes ?? COMMAND_MAX_OUTPUT_BYTES;
  return (file, args, opts) =>
    new Promise((resolve, reject) => {
      let child: ChildProcess;
      const input = opts?.input;
      try {
        child = spawn(file, [...args], { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
      } catch (err) {
        reject(new CommandError(file, err as Error));
        return;
      }
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outBytes = 0;
      let errBytes = 0;
      let settled = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      const timers: NodeJS.Timeout[] = [];
      const later = (ms: number, fn: () => void): void => {
        timers.push(setTimeout(fn, ms));
      };
      const done = (fail: Error | undefined): void => {
        if (settled) return;
        settled = true;
        for (const t of timers) clearTimeout(t);
        child.stdin?.destroy();
        child.stdout?.destroy();
        child.stderr?.destroy();
        if (fail !== undefined) {
          reject(new CommandError(file, fail));
          return;
        }
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = Buffer.concat(err).toString('utf8');
        if (exit!.code !== null) resolve({ code: exit!.code, stdout, stderr });
        else resolve({ code: -1, stdout, stderr: stderr || `killed by ${exit!.signal}` });
      };
      const collect =
        (into: Buffer[], which: 'out' | 'err') =>
        (d: Buffer): void => {
          const n = which === 'out' ? (outBytes += d.length) : (errBytes += d.length);
          if (n > maxOutputBytes) {
            child.kill('SIGKILL');
            done(new Error(`output larger than ${maxOutputBytes} bytes`));
            return;
          }
          into.push(d);
        };
      child.on('error', (e) => {
        // Not started (spawn failed), or a kill that failed: only the first concerns the caller.
        if (exit === undefined && child.pid === undefined) done(e);
      });
      // Without a pid the spawn failed (EMFILE leaves no output pipes); 'error' follows.
      if (child.pid === undefined) return;
      if (input !== undefined && child.stdin) {
        // A child that exits without reading all of it (EPIPE) reports through its exit status.
        child.stdin.on('error', () => undefined);
        child.stdin.end(input);
      }
      child.stdout?.on('data', collect(out, 'out'));
      child.stderr?.on('data', collect(err, 'err'));
      child.stdout?.on('error', () => undefined);
      child.stderr?.on('error', () => undefined);
      child.on('exit', (code, signal) => {
        exit = { code, signal };
        later(stdioGraceMs, () => done(undefined));
      });
      child.on('close', () => {
        if (exit !== undefined) done(undefined);
      });
      later(timeoutMs, () => {
        if (exit !== undefined) return;
        child.kill('SIGTERM');
        later(killGraceMs, () => {
          if (exit !== undefined) return;
          child.kill('SIGKILL');
          later(killGraceMs, () => {
            if (exit !== undefined) return;
            child.unref();
            done(new Error(`did not exit within ${timeoutMs + 2 * killGraceMs} ms, even after SIGKILL; abandoned`));
          });
        });
      });
    });
}

/** The runner for the host's tools, with the bounds above. */
export const execRunner: CommandRunner = createExecRunner();

/** First non-empty line of a tool's error output, for log messages. */
export function firstLine(text: string): string {
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t !== '') return t;
  }
  return '';
}
