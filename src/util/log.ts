/**
 * Logging in CoreDNS's shape: `[INFO] plugin/reload: ...` on stdout, `[ERROR] ...` on stderr.
 * CoreDNS (via its log package) prints no timestamp; node-cache's own lines carry Go's
 * `2006/01/02 15:04:05` prefix, which `withTimestamp` reproduces for agent messages.
 *
 * Output streams: `guardOutputStreams()` (called by main) keeps a broken stdout or stderr (a log
 * reader that went away: EPIPE; a full disk: ENOSPC) from ending the process. Node emits such a
 * write error as an 'error' event, which without a listener is an uncaught exception. The first
 * failure of each stream is reported once on the other one; later lines to it are lost.
 */
import type { Logger } from '../plugin.ts';

let quiet = false;

/** `-quiet`: suppress INFO lines (warnings and errors still go out). */
export function setQuiet(q: boolean): void {
  quiet = q;
}

function goTimestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function make(prefix: string, withTimestamp: boolean): Logger {
  const pre = prefix ? `${prefix}: ` : '';
  const ts = () => (withTimestamp ? goTimestamp() + ' ' : '');
  return {
    info(msg) {
      if (!quiet) process.stdout.write(`${ts()}[INFO] ${pre}${msg}\n`);
    },
    warn(msg) {
      process.stdout.write(`${ts()}[WARNING] ${pre}${msg}\n`);
    },
    error(msg) {
      process.stderr.write(`${ts()}[ERROR] ${pre}${msg}\n`);
    },
    debug(msg) {
      if (process.env.NLD_DEBUG) process.stdout.write(`${ts()}[DEBUG] ${pre}${msg}\n`);
    },
  };
}

/** Write failures of process.stdout / process.stderr since start (by stream). */
export const outputErrors = { stdout: 0, stderr: 0 };
let streamsGuarded = false;

/** Installs the 'error' listeners described above (idempotent). */
export function guardOutputStreams(): void {
  if (streamsGuarded) return;
  streamsGuarded = true;
  const watch = (name: 'stdout' | 'stderr', stream: NodeJS.WriteStream, other: NodeJS.WriteStream): void => {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (outputErrors[name]++ > 0) return;
      try {
        if (!other.destroyed) other.write(`[ERROR] writing to ${name} failed (${err.code ?? err.message}): its log lines are lost from now on\n`);
      } catch {
        // both streams are gone: nothing can be reported
      }
    });
  };
  watch('stdout', process.stdout, process.stderr);
  watch('stderr', process.stderr, process.stdout);
}

/** Logger for a plugin: lines read `[INFO] plugin/<name>: ...`. */
export function pluginLogger(name: string): Logger {
  return make(`plugin/${name}`, false);
}

/** Logger without a plugin prefix. */
export const log: Logger = make('', false);

/** node-cache style lines: `2020/11/10 01:59:23 [INFO] ...`. */
export const agentLog: Logger = make('', true);
