/**
 * The last line of defence outside query handling (CoreDNS recovers per query; an exception
 * escaping one query is handled by src/server/dispatch.ts). This guard covers what escapes
 * asynchronously: a throw in a socket, timer or stream callback ('uncaughtException') and a
 * rejected promise nobody handles ('unhandledRejection'). Node's default ends the process,
 * which on a node cache is the outage the DaemonSet exists to prevent.
 *
 * Policy:
 *  - each such exception is logged once with its stack
 *    (`[ERROR] Recovered from panic (uncaughtException): <stack>`), counted in
 *    coredns_panics_total, and the process (or worker thread) keeps serving;
 *  - more than `maxPanics` (10) within `windowMs` (60 s) means the state is likely corrupt and
 *    the faults are not isolated: the guard logs `[FATAL] ...` and exits non-zero, so that
 *    kubelet restarts the container (and a standby, if any, keeps answering meanwhile). In a
 *    worker thread `exit` ends only that thread, and the pool (src/workers/pool.ts) replaces it.
 */
import type { Logger } from '../plugin.ts';

/** Panics tolerated within the window; one more exits. */
const DEFAULT_MAX_PANICS = 10;
const DEFAULT_PANIC_WINDOW_MS = 60_000;
/** Exit status after too many panics (as for any fatal error). */
export const PANIC_EXIT_CODE = 1;

const PanicOrigin = {
  EXCEPTION: 'uncaughtException',
  REJECTION: 'unhandledRejection',
} as const;
export type PanicOrigin = (typeof PanicOrigin)[keyof typeof PanicOrigin];

export interface PanicGuardOptions {
  log: Logger;
  /** Counts one panic (coredns_panics_total). */
  count: () => void;
  /** Writes the line before exiting; default `[FATAL] <msg>` on stderr, as CoreDNS's log.Fatal. */
  fatal?: (msg: string) => void;
  /** Ends the process (or thread) with the given status; default process.exit. */
  exit?: (code: number) => void;
  maxPanics?: number;
  windowMs?: number;
  /** Monotonic milliseconds (default performance.now). */
  now?: () => number;
  /** Where the thread is, for the log line (`worker 1`). */
  where?: string;
}

/** What the process emitter needs to offer (process, or a test double's EventEmitter). */
export interface PanicSource {
  on(event: 'uncaughtException', listener: (err: unknown, origin: string) => void): unknown;
  on(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
  off(event: 'uncaughtException', listener: (err: unknown, origin: string) => void): unknown;
  off(event: 'unhandledRejection', listener: (reason: unknown) => void): unknown;
}

function describeThrown(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  try {
    return `non-error thrown: ${typeof err === 'string' ? err : JSON.stringify(err)}`;
  } catch {
    return `non-error thrown: ${String(err)}`;
  }
}

export class PanicGuard {
  readonly maxPanics: number;
  readonly windowMs: number;
  /** Panics recovered since start. */
  total = 0;
  /** Times of the panics inside the current window (oldest first, at most maxPanics + 1). */
  readonly #recent: number[] = [];
  readonly #opts: PanicGuardOptions;
  readonly #now: () => number;
  #exiting = false;
  #source: PanicSource | undefined;
  readonly #onException = (err: unknown): void => this.recover(err, PanicOrigin.EXCEPTION);
  readonly #onRejection = (reason: unknown): void => this.recover(reason, PanicOrigin.REJECTION);

  constructor(opts: PanicGuardOptions) {
    this.#opts = opts;
    this.maxPanics = opts.maxPanics ?? DEFAULT_MAX_PANICS;
    this.windowMs = opts.windowMs ?? DEFAULT_PANIC_WINDOW_MS;
    this.#now = opts.now ?? (() => performance.now());
  }

  /** Listens for uncaught exceptions and unhandled rejections on `source` (default: process). */
  install(source: PanicSource = process): this {
    this.#source = source;
    source.on('uncaughtException', this.#onException);
    source.on('unhandledRejection', this.#onRejection);
    return this;
  }

  uninstall(): void {
    this.#source?.off('uncaughtException', this.#onException);
    this.#source?.off('unhandledRejection', this.#onRejection);
    this.#source = undefined;
  }

  /** Handles one escaped exception: log, count, and exit when the window holds too many. */
  recover(err: unknown, origin: PanicOrigin): void {
    if (this.#exiting) return;
    const where = this.#opts.where ? ` in ${this.#opts.where}` : '';
    try {
      this.total++;
      this.#opts.count();
      this.#opts.log.error(`Recovered from panic${where} (${origin}): ${describeThrown(err)}`);
    } catch {
      // Logging or counting failed (a closed stderr): the policy below still applies.
    }
    const now = this.#now();
    this.#recent.push(now);
    while (this.#recent.length > 0 && now - this.#recent[0]! >= this.windowMs) this.#recent.shift();
    if (this.#recent.length <= this.maxPanics) return;
    this.#exiting = true;
    try {
      const fatal = this.#opts.fatal ?? ((msg: string) => process.stderr.write(`[FATAL] ${msg}\n`));
      fatal(
        `${this.#recent.length} panics${where} within ${this.windowMs / 1000}s (more than ${this.maxPanics}): ` +
          'state may be corrupt, exiting so that it is restarted',
      );
    } catch {
      // nothing more to say
    }
    (this.#opts.exit ?? ((code: number) => process.exit(code)))(PANIC_EXIT_CODE);
  }
}
