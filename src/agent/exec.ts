/**
 * Running the host's network tools (`ip`, `iptables`, `ip6tables`) without a shell.
 *
 * Contract: a CommandRunner never throws for a non-zero exit status; it resolves with the
 * status and both output streams so callers can classify failures (e.g. `iptables -C` exits 1
 * when a rule is absent). It rejects only when the program cannot be started at all
 * (ENOENT, EACCES), with a `CommandError`.
 */
import { execFile } from 'node:child_process';

export interface CommandResult {
  /** Exit status; -1 when the process was ended by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

export type CommandRunner = (file: string, args: readonly string[]) => Promise<CommandResult>;

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

/** Runs `file args...` with child_process.execFile (argv is passed as is, never through a shell). */
export const execRunner: CommandRunner = (file, args) =>
  new Promise((resolve, reject) => {
    execFile(
      file,
      [...args],
      { encoding: 'utf8', timeout: COMMAND_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: unknown; signal?: string | null };
        if (typeof e.code === 'number') {
          resolve({ code: e.code, stdout, stderr });
          return;
        }
        if (e.signal) {
          resolve({ code: -1, stdout, stderr: stderr || `killed by ${e.signal}` });
          return;
        }
        reject(new CommandError(file, err));
      },
    );
  });

/**
 * A runner whose commands run inside network namespace `ns` (`ip netns exec ns file args...`).
 * Used by tests and tools that drive a namespace from outside it.
 */
export function netnsRunner(ns: string, base: CommandRunner = execRunner): CommandRunner {
  return (file, args) => base('ip', ['netns', 'exec', ns, file, ...args]);
}

/** First non-empty line of a tool's error output, for log messages. */
export function firstLine(text: string): string {
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t !== '') return t;
  }
  return '';
}
