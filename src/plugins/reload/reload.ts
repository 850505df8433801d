/**
 * `reload [INTERVAL] [JITTER]` (CoreDNS plugin/reload): re-reads the Corefile every
 * INTERVAL ± JITTER/2 and reloads the engine when its configuration digest changed.
 *
 *  - Defaults 30s and 15s; INTERVAL must be >= 2s and JITTER >= 1s; a JITTER above half the
 *    INTERVAL is cut to half. The jittered period is drawn once per config load.
 *  - At each start of a configuration (first start and after every successful reload) it logs
 *    `Running configuration SHA512 = <hex>` (src/plugins/reload/digest.ts).
 *  - A Corefile that does not parse is logged (`Corefile parse failed: <file:line> ...`) and
 *    counted in coredns_reload_failed_total once per distinct content (CoreDNS only logs it;
 *    operators asked for it to show up on the failed-reload alert), then re-read each tick
 *    until it changes. A Corefile that parses but fails to load is
 *    logged (`Corefile changed but reload failed: ...`), counted in
 *    coredns_reload_failed_total, and not retried until it changes again; the old
 *    configuration keeps serving. coredns_reload_version_info{hash="sha512",value} carries
 *    the digest of the last change seen.
 *  - All blocks of one config share one checker (CoreDNS's reload is process wide): several
 *    `reload` lines do not multiply the checks; the last block's interval wins, as in CoreDNS.
 */
import { createHash } from 'node:crypto';
import { ConfigReadError, readConfigFile } from '../../corefile/read.ts';
import { DEFAULT_CONFIG_LIMITS } from '../../corefile/limits.ts';
import { PluginScope } from '../../plugin.ts';
import type { EngineHooks, Handler, Logger, Plugin } from '../../plugin.ts';
import type { Env } from '../../corefile/lexer.ts';
import type { ReloadMetrics } from './metrics.ts';
import { configDigestAsync } from './digest.ts';

export interface ReloadOptions {
  intervalMs: number;
  jitterMs: number;
}

export interface ReloadDeps {
  engine: EngineHooks;
  env: Env;
  metrics: ReloadMetrics;
  log: Logger;
}

/** The Corefile checker of one loaded configuration. */
export class ReloadChecker {
  periodMs: number;
  private readonly deps: ReloadDeps;
  private digest = '';
  /** Hash of the last Corefile text that did not parse (counted once), or ''. */
  private unparsableHash = '';
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private checking: Promise<void> | null = null;

  constructor(periodMs: number, deps: ReloadDeps) {
    this.periodMs = periodMs;
    this.deps = deps;
  }

  /** The digest of the configuration being served (after start). */
  get currentDigest(): string {
    return this.digest;
  }

  /** Resolves once the running configuration's digest is known and logged. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    const { engine, env, log } = this.deps;
    const file = engine.corefilePath() ?? 'Corefile';
    const text = engine.corefileText();
    let digest: string;
    try {
      digest = await configDigestAsync(text, file, env);
    } catch {
      // The serving text parsed when it was loaded; an import that vanished since is possible.
      digest = createHash('sha512').update(text).digest('hex');
    }
    if (!this.running) return;
    this.digest = digest;
    log.info(`Running configuration SHA512 = ${this.digest}`);
    this.schedule();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.checking = this.check().finally(() => {
        this.checking = null;
        this.schedule();
      });
    }, this.periodMs);
    this.timer.unref();
  }

  /** One check; resolves when any reload it started has finished. Exposed for tests. */
  async check(): Promise<void> {
    const { engine, env, log, metrics } = this.deps;
    const path = engine.corefilePath();
    if (path === null || !this.running) return;
    let text: string;
    try {
      text = await readConfigFile(path, DEFAULT_CONFIG_LIMITS.maxConfigBytes);
    } catch (err) {
      // CoreDNS skips a tick whose Corefile cannot be read; a Corefile that is not a regular
      // file or is over the size limit is reported like one that does not parse.
      if (err instanceof ConfigReadError && err.sysCode === null) {
        this.reportUnparsable(`${path}:${err.message}`, `Corefile read failed: ${err.message}`);
      }
      return;
    }
    let digest: string;
    try {
      digest = await configDigestAsync(text, path, env);
    } catch (err) {
      this.reportUnparsable(text, `Corefile parse failed: ${(err as Error).message}`);
      return;
    }
    this.unparsableHash = '';
    if (digest === this.digest || !this.running) return;
    // Do not retry the same file, even when it fails to load.
    this.digest = digest;
    metrics.version = { hash: 'sha512', value: digest };
    try {
      await engine.reload('reload');
    } catch (err) {
      log.error(`Corefile changed but reload failed: ${(err as Error).message}`);
      metrics.failed++;
    }
  }

  /** Logs and counts a Corefile that cannot be loaded, once per distinct `key` (its text). */
  private reportUnparsable(key: string, message: string): void {
    const failedHash = createHash('sha512').update(key).digest('hex');
    if (failedHash === this.unparsableHash) return;
    this.unparsableHash = failedHash;
    this.deps.log.error(message);
    this.deps.metrics.failed++;
  }

  /** Resolves once a check in progress (if any) has finished. */
  async idle(): Promise<void> {
    if (this.checking) await this.checking;
  }
}

export class ReloadPlugin implements Plugin {
  readonly scope = PluginScope.PROCESS;
  readonly handler = false;
  readonly name = 'reload';
  readonly options: ReloadOptions;
  readonly checker: ReloadChecker;

  constructor(options: ReloadOptions, checker: ReloadChecker) {
    this.options = options;
    this.checker = checker;
  }

  compose(next: Handler): Handler {
    return next;
  }

  start(): Promise<void> {
    return this.checker.start();
  }

  stop(): void {
    this.checker.stop();
  }
}
