/**
 * Logging in CoreDNS's shape: `[INFO] plugin/reload: ...` on stdout, `[ERROR] ...` on stderr.
 * CoreDNS (via its log package) prints no timestamp; node-cache's own lines carry Go's
 * `2006/01/02 15:04:05` prefix, which `withTimestamp` reproduces for agent messages.
 *
 * Output streams: `guardOutputStreams()` (called by main) keeps a broken stdout or stderr (a log
 * reader that went away: EPIPE; a full disk: ENOSPC) from ending the process. Node emits such a
 * write error as an 'error' event, which without a listener is an uncaught exception. The first
 * failure of each stream is reported once on the other one; later lines to it are lost.
 *
 * Bounded output: a log reader that stops reading (a stalled container log pipe) must not make
 * the process hold log lines without end (measured: `log` under 150,000 queries with a reader
 * that never read, RSS 68 -> 330 MB). `writeLine` drops a line while its stream holds more than
 * MAX_UNWRITTEN_LOG_BYTES unwritten, counts it (`droppedLogLines`, exported as
 * nodelocaldns_log_lines_dropped_total{stream}), and once the stream drains writes one
 * `[WARNING] N log lines dropped ...` line. Every log line of the process goes through it.
 */
import type { Logger } from '../plugin.ts';

let quiet = false;
/** `debug` in any server block (or NLD_DEBUG in the environment): print [DEBUG] lines. */
let debugOutput = false;

/**
 * Turns `[DEBUG]` lines on or off process-wide: CoreDNS's `debug` plugin in at least one
 * server block enables log.Debug output globally. The engine calls this after each load with
 * "some block has `debug`". NLD_DEBUG=1 in the environment keeps them on regardless.
 */
export function setDebugOutput(on: boolean): void {
  debugOutput = on;
}

/** Whether `[DEBUG]` lines are printed now. */
export function debugOutputEnabled(): boolean {
  return debugOutput || !!process.env.NLD_DEBUG;
}

/** `-quiet`: suppress INFO lines (warnings and errors still go out). */
export function setQuiet(q: boolean): void {
  quiet = q;
}

function goTimestamp(d = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}/${p(d.getMonth() + 1)}/${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Unwritten bytes a log stream may hold before lines are dropped (~10,000 typical lines). */
const MAX_UNWRITTEN_LOG_BYTES = 1024 * 1024;

export type LogStreamName = 'stdout' | 'stderr';

/** Lines dropped because their stream held more than MAX_UNWRITTEN_LOG_BYTES (since start). */
export const droppedLogLines: Record<LogStreamName, number> = { stdout: 0, stderr: 0 };
/** Dropped since the last `[WARNING] ... dropped` line, per stream (a drain reports them). */
const droppedSinceReport: Record<LogStreamName, number> = { stdout: 0, stderr: 0 };

function streamOf(name: LogStreamName): NodeJS.WriteStream {
  return name === 'stdout' ? process.stdout : process.stderr;
}

function reportDropped(name: LogStreamName): void {
  const n = droppedSinceReport[name];
  droppedSinceReport[name] = 0;
  if (n > 0)
    streamOf(name).write(`[WARNING] ${n} log lines dropped: the reader of ${name} fell behind (more than ${MAX_UNWRITTEN_LOG_BYTES} bytes unwritten)\n`);
}

/** Writes one log line (with its newline) to stdout or stderr, or drops and counts it (see above). */
export function writeLine(name: LogStreamName, line: string): void {
  const stream = streamOf(name);
  if (stream.writableLength > MAX_UNWRITTEN_LOG_BYTES) {
    droppedLogLines[name]++;
    if (droppedSinceReport[name]++ === 0) stream.once('drain', () => reportDropped(name));
    return;
  }
  stream.write(line);
}

function make(prefix: string, withTimestamp: boolean): Logger {
  const pre = prefix ? `${prefix}: ` : '';
  const ts = () => (withTimestamp ? goTimestamp() + ' ' : '');
  return {
    info(msg) {
      if (!quiet) writeLine('stdout', `${ts()}[INFO] ${pre}${msg}\n`);
    },
    warn(msg) {
      writeLine('stdout', `${ts()}[WARNING] ${pre}${msg}\n`);
    },
    error(msg) {
      writeLine('stderr', `${ts()}[ERROR] ${pre}${msg}\n`);
    },
    debug(msg) {
      if (debugOutputEnabled()) writeLine('stdout', `${ts()}[DEBUG] ${pre}${msg}\n`);
    },
  };
}

/** Write failures of process.stdout / process.stderr since start (by stream). */
const outputErrors = { stdout: 0, stderr: 0 };
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
