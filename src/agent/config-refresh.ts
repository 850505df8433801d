/**
 * Template mode's live updates: watches the kube-dns ConfigMap directory and the template
 * (configmap.ts ConfigWatcher) and, on a change, re-renders the Corefile and reloads the engine
 * when the text changed.
 *
 * Contract: refreshes run one at a time, in call order. A render or write that fails is logged
 * and counted (configmap) and changes nothing; a reload that fails is logged and counted, the
 * engine keeps its old configuration and the old file is put back. After `stop()` a refresh does
 * nothing.
 */
import { dirname } from 'node:path';
import type { Logger } from '../plugin.ts';
import { ConfigWatcher, fileVersion, readConfigDir, type WatchSource } from './configmap.ts';
import type { CorefileWriter, RenderedCorefile } from './corefile-writer.ts';
import { SetupErrorType, type SetupMetrics } from './setup-metrics.ts';

/** What a refresh needs of the engine (agent.ts EngineHandle). */
export interface ReloadableEngine {
  setClusterZones(zones: readonly string[]): void;
  reload(): Promise<void>;
}

export interface ConfigRefreshOptions {
  corefile: CorefileWriter;
  engine: ReloadableEngine;
  /** `-kubednscm`. */
  kubeDnsConfigMapDir: string;
  /** Poll period of the watcher. */
  pollMs: number;
  log: Logger;
  metrics: SetupMetrics;
}

export class ConfigRefresher {
  readonly #corefile: CorefileWriter;
  readonly #engine: ReloadableEngine;
  readonly #kubeDnsConfigMapDir: string;
  readonly #pollMs: number;
  readonly #log: Logger;
  readonly #metrics: SetupMetrics;
  /** The Corefile the engine runs (as last written and reloaded). */
  #current: string | undefined;
  #chain: Promise<void> = Promise.resolve();
  #watcher: ConfigWatcher | undefined;
  #stopped = false;

  constructor(o: ConfigRefreshOptions) {
    this.#corefile = o.corefile;
    this.#engine = o.engine;
    this.#kubeDnsConfigMapDir = o.kubeDnsConfigMapDir;
    this.#pollMs = o.pollMs;
    this.#log = o.log;
    this.#metrics = o.metrics;
  }

  /** Notes the Corefile being served and starts watching. */
  async start(): Promise<void> {
    this.#current = await this.#corefile.current();
    const dir = this.#kubeDnsConfigMapDir;
    const sources: WatchSource[] = [
      {
        name: 'kube-dns',
        dir,
        version: async () => {
          try {
            return (await readConfigDir(dir)).version;
          } catch (err) {
            // An unreadable directory is a (changed) state of its own; refresh logs the error.
            return `error:${(err as Error).message}`;
          }
        },
      },
      { name: 'node-local-dns', dir: dirname(this.#corefile.basePath), version: () => fileVersion(this.#corefile.basePath) },
    ];
    this.#watcher = new ConfigWatcher(sources, {
      intervalMs: this.#pollMs,
      onChange: () => this.refresh(),
      onError: (name, err) => this.#log.error(`Failed to sync ${name} config: ${String((err as Error)?.message ?? err)}`),
    });
    await this.#watcher.start();
  }

  /** Polls the sources now (their versions catch up), then refreshes. */
  async pollAndRefresh(): Promise<void> {
    if (this.#watcher) await this.#watcher.poll();
    await this.refresh();
  }

  /** Queues one refresh after those already queued. */
  refresh(): Promise<void> {
    const once = (): Promise<void> => this.#refreshOnce();
    return (this.#chain = this.#chain.then(once, once));
  }

  /** No refresh after this; waits for the watcher to stop. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#watcher?.stop();
  }

  async #refreshOnce(): Promise<void> {
    if (this.#stopped) return;
    const corefile = this.#corefile;
    await corefile.loadKubeDns();
    let r: RenderedCorefile;
    try {
      r = await corefile.render();
    } catch (err) {
      this.#log.error(`Failed to update Corefile from ${corefile.basePath}, keeping the current one: ${(err as Error).message}`);
      this.#metrics.inc(SetupErrorType.CONFIGMAP);
      return;
    }
    if (r.corefile === this.#current) return;
    const previous = this.#current;
    try {
      await corefile.write(r.corefile);
    } catch (err) {
      this.#log.error(`Failed to write config file ${corefile.path} - ${(err as Error).message}`);
      this.#metrics.inc(SetupErrorType.CONFIGMAP);
      return;
    }
    corefile.announce(r);
    try {
      this.#engine.setClusterZones(corefile.clusterZones);
      await this.#engine.reload();
      this.#current = r.corefile;
    } catch (err) {
      this.#log.error(`Reload of ${corefile.path} failed, still serving the previous configuration: ${(err as Error).message}`);
      this.#metrics.inc(SetupErrorType.CONFIGMAP);
      if (previous !== undefined) {
        await corefile.write(previous).catch((e: unknown) => this.#log.error(`Failed to restore ${corefile.path}: ${(e as Error).message}`));
      }
    }
  }
}
