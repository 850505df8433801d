/**
 * The node agent: what k8s-dns-node-cache does around CoreDNS, in node-cache's order.
 *
 *  1. Render the Corefile from `-basecorefile` (when that file exists; otherwise `-conf` is served
 *     as is) with the kube-dns ConfigMap from `-kubednscm`, and write it to `-conf`.
 *  2. Set up the interface holding the local IPs (`-setupinterface`).
 *  3. Start the DNS engine on the written Corefile.
 *  4. Only then install the iptables rules (`-setupiptables`), so that a server that fails to start
 *     never receives the node's DNS traffic; write `-pidfile`.
 *  5. Every `-syncinterval`: re-ensure rules and interface, counting failures in
 *     coredns_nodecache_setup_errors_total.
 *  6. On a change of the ConfigMap directory or of the template: re-render, and `reload()` the
 *     engine when the Corefile changed. An invalid ConfigMap keeps the last good values; a failed
 *     reload keeps the engine on its old configuration and restores the old file.
 *  7. shutdown(): stop the engine (it drains), then remove rules and interface unless
 *     `-skipteardown`, remove the pidfile.
 */
import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { Options } from '../cli/options.ts';
import type { Logger } from '../plugin.ts';
import { agentLog } from '../util/log.ts';
import { VERSION } from '../version.ts';
import {
  ConfigMapError,
  ConfigWatcher,
  emptyKubeDnsConfig,
  fileVersion,
  loadKubeDnsConfig,
  readConfigDir,
  type KubeDnsConfig,
  type WatchSource,
} from './configmap.ts';
import type { CommandRunner } from './exec.ts';
import { IFACE_ERROR_CODES, InterfaceError, InterfaceManager } from './iface.ts';
import { IptablesManager, nodeLocalDnsRules } from './iptables.ts';
import { SETUP_ERROR_TYPES, SetupMetrics } from './setup-metrics.ts';
import { TemplateError, renderCorefile } from './template.ts';

export interface EngineHandle {
  /** Re-reads the Corefile; rejects (keeping the running configuration) when it is invalid. */
  reload(): Promise<void>;
  /** Stops serving after draining in-flight queries. */
  stop(): Promise<void>;
}

export interface AgentDeps {
  startEngine(corefilePath: string, defaultBind: string[], dnsPort: number): Promise<EngineHandle>;
  log?: Logger;
  /** Environment for __PILLAR__CLUSTER__DNS__ (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Runs ip/iptables (default: execFile in this process's network namespace). */
  runner?: CommandRunner;
  /** Shown in the start-up line (default: VERSION from package.json). */
  version?: string;
  /** ConfigMap/template poll period (default 10 s, as node-cache). */
  configPollMs?: number;
  /** Include process_* metrics on the set-up metrics endpoint (default true). */
  processMetrics?: boolean;
}

export interface AgentHandle {
  /** Stops the engine, tears the network set-up down (unless -skipteardown). Idempotent. */
  shutdown(): Promise<void>;
  /** Runs one periodic network check now. */
  sync(): Promise<void>;
  /** Re-reads ConfigMap and template now and reloads the engine if the Corefile changed. */
  refresh(): Promise<void>;
  readonly metrics: SetupMetrics;
  /** Bound address of the set-up metrics listener, when it is running. */
  readonly metricsAddress: AddressInfo | undefined;
}

export const AGENT_ERROR_CODES = {
  config: 'ERR_AGENT_CONFIG',
} as const;

export class AgentError extends Error {
  readonly code = AGENT_ERROR_CODES.config;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AgentError';
  }
}

/** node-cache's period for syncing the ConfigMap directories. */
export const DEFAULT_CONFIG_POLL_MS = 10_000;

/** The package version shown in the start-up line. */
export function agentVersion(): string {
  return VERSION;
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Writes through a temporary file and rename, so a reader never sees a partial Corefile. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
}

export async function runAgent(opts: Options, deps: AgentDeps): Promise<AgentHandle> {
  const log = deps.log ?? agentLog;
  const env = deps.env ?? process.env;
  const metrics = new SetupMetrics({ processMetrics: deps.processMetrics ?? true });
  const runner = deps.runner;

  log.info(`Starting node-local-dns ${deps.version ?? agentVersion()}`);
  log.info(`Using Corefile ${opts.corefilePath}`);

  if ((opts.setupInterface || opts.setupIptables) && opts.localIps.length === 0) {
    throw new AgentError('-localip is required to set up the interface or iptables rules (or pass -setupinterface=false -setupiptables=false)');
  }

  let metricsAddress: AddressInfo | undefined;
  if (opts.metricsListenAddress !== '') {
    try {
      metricsAddress = await metrics.listen(opts.metricsListenAddress);
    } catch (err) {
      log.error(`Failed to start metrics handler: ${(err as Error).message}`);
    }
  }

  // --- 1. Corefile -------------------------------------------------------------------------
  const templateMode = await isFile(opts.baseCorefilePath);
  let kubeDns: KubeDnsConfig = emptyKubeDnsConfig();

  const loadKubeDns = async (): Promise<void> => {
    try {
      const { config, exists } = await loadKubeDnsConfig(opts.kubeDnsConfigMapDir);
      if (!exists) return;
      kubeDns = config;
    } catch (err) {
      const msg = err instanceof ConfigMapError ? err.message : String(err);
      log.error(`Invalid kube-dns ConfigMap in ${opts.kubeDnsConfigMapDir}, keeping the last good values: ${msg}`);
      metrics.inc(SETUP_ERROR_TYPES.configmap);
    }
  };

  /** Renders the Corefile text; throws TemplateError or I/O errors. */
  const render = async (): Promise<{ corefile: string; upstream: string; stubs: number }> => {
    const base = await readFile(opts.baseCorefilePath, 'utf8');
    const r = renderCorefile({
      base,
      localIps: opts.localIps,
      upstreamSvc: opts.upstreamSvc,
      env,
      upstreamNameservers: kubeDns.upstreamNameservers,
      stubDomains: kubeDns.stubDomains,
      dnsPort: opts.dnsPort,
    });
    for (const w of r.warnings) log.warn(w);
    return { corefile: r.corefile, upstream: r.upstream, stubs: r.stubDomainCount };
  };

  const announce = (r: { corefile: string; upstream: string; stubs: number }): void => {
    log.info(`Updated Corefile with ${r.stubs} custom stubdomains and upstream servers ${r.upstream}`);
    log.info(`Using config file:\n${r.corefile}`);
  };

  if (templateMode) {
    await loadKubeDns();
    let r: { corefile: string; upstream: string; stubs: number };
    try {
      r = await render();
    } catch (err) {
      metrics.inc(SETUP_ERROR_TYPES.configmap);
      await metrics.close();
      if (err instanceof TemplateError) throw new AgentError(`cannot render ${opts.baseCorefilePath}: ${err.message}`, { cause: err });
      throw new AgentError(`cannot read ${opts.baseCorefilePath}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await writeFileAtomic(opts.corefilePath, r.corefile);
    } catch (err) {
      await metrics.close();
      throw new AgentError(`cannot write ${opts.corefilePath}: ${(err as Error).message}`, { cause: err });
    }
    announce(r);
  } else {
    log.info(`Template ${opts.baseCorefilePath} not found, serving ${opts.corefilePath} as is`);
  }

  // --- 2. interface ------------------------------------------------------------------------
  const iface = opts.setupInterface
    ? new InterfaceManager({ name: opts.interfaceName, type: opts.interfaceType, ips: opts.localIps }, runner)
    : undefined;

  const ensureInterface = async (startup: boolean): Promise<void> => {
    if (!iface) return;
    try {
      const res = await iface.ensure();
      if (res.created) log.info(`Added interface - ${opts.interfaceName}`);
      else if (res.addedAddrs.length > 0) log.info(`Added back addresses ${res.addedAddrs.join(', ')} to interface ${opts.interfaceName}`);
    } catch (err) {
      const e = err instanceof InterfaceError ? err : new InterfaceError(IFACE_ERROR_CODES.check, String(err));
      if (e.code === IFACE_ERROR_CODES.check) {
        log.error(`Error checking interface ${opts.interfaceName} - ${e.message}`);
        metrics.inc(SETUP_ERROR_TYPES.interfaceCheck);
      } else {
        log.error(`Failed to add non-existent interface ${opts.interfaceName}: ${e.message}`);
        metrics.inc(SETUP_ERROR_TYPES.interfaceAdd);
      }
      if (startup && e.code === IFACE_ERROR_CODES.unsupported) throw e;
    }
  };

  try {
    await ensureInterface(true);
  } catch (err) {
    await metrics.close();
    throw err;
  }

  const iptables = opts.setupIptables
    ? new IptablesManager(nodeLocalDnsRules(opts.localIps, opts.dnsPort, opts.healthPort), {
        runner,
        log,
        onError: (type) => metrics.inc(type),
      })
    : undefined;

  // --- 3. engine ---------------------------------------------------------------------------
  let engine: EngineHandle;
  try {
    engine = await deps.startEngine(opts.corefilePath, [...opts.localIps], opts.dnsPort);
  } catch (err) {
    // As node-cache on a fatal CoreDNS start: tear down, including rules a killed predecessor
    // left, so the node's DNS traffic goes back to kube-dns instead of to a closed port.
    if (!opts.skipTeardown) {
      log.info('Tearing down');
      await iptables?.teardown();
      await iface?.remove().catch((e: unknown) => log.error(String((e as Error).message ?? e)));
    }
    await metrics.close();
    throw err;
  }

  // --- 4. pidfile, iptables ----------------------------------------------------------------
  if (opts.pidfile !== '') {
    try {
      await writeFile(opts.pidfile, `${process.pid}\n`);
    } catch (err) {
      log.error(`Failed to write pidfile ${opts.pidfile}: ${(err as Error).message}`);
    }
  }
  await iptables?.ensureAll();

  // --- 5. periodic network sync ------------------------------------------------------------
  let stopping = false;
  let syncing: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    if (syncing) return syncing;
    syncing = (async () => {
      if (stopping) return;
      await iptables?.ensureAll();
      if (stopping) return;
      await ensureInterface(false);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };
  const timer = setInterval(() => void sync(), opts.syncIntervalMs);

  // --- 6. ConfigMap / template changes -----------------------------------------------------
  let current = templateMode ? await readOptional(opts.corefilePath) : undefined;
  const doRefresh = async (): Promise<void> => {
    if (!templateMode || stopping) return;
    await loadKubeDns();
    let r: { corefile: string; upstream: string; stubs: number };
    try {
      r = await render();
    } catch (err) {
      log.error(`Failed to update Corefile from ${opts.baseCorefilePath}, keeping the current one: ${(err as Error).message}`);
      metrics.inc(SETUP_ERROR_TYPES.configmap);
      return;
    }
    if (r.corefile === current) return;
    const previous = current;
    try {
      await writeFileAtomic(opts.corefilePath, r.corefile);
    } catch (err) {
      log.error(`Failed to write config file ${opts.corefilePath} - ${(err as Error).message}`);
      metrics.inc(SETUP_ERROR_TYPES.configmap);
      return;
    }
    announce(r);
    try {
      await engine.reload();
      current = r.corefile;
    } catch (err) {
      log.error(`Reload of ${opts.corefilePath} failed, still serving the previous configuration: ${(err as Error).message}`);
      metrics.inc(SETUP_ERROR_TYPES.configmap);
      if (previous !== undefined) {
        await writeFileAtomic(opts.corefilePath, previous).catch((e: unknown) =>
          log.error(`Failed to restore ${opts.corefilePath}: ${(e as Error).message}`),
        );
      }
    }
  };

  let refreshChain: Promise<void> = Promise.resolve();
  /** Refreshes run one at a time, in call order. */
  const refresh = (): Promise<void> => (refreshChain = refreshChain.then(doRefresh, doRefresh));

  let watcher: ConfigWatcher | undefined;
  if (templateMode) {
    const sources: WatchSource[] = [
      {
        name: 'kube-dns',
        dir: opts.kubeDnsConfigMapDir,
        version: async () => {
          try {
            return (await readConfigDir(opts.kubeDnsConfigMapDir)).version;
          } catch (err) {
            // An unreadable directory is a (changed) state of its own; refresh logs the error.
            return `error:${(err as Error).message}`;
          }
        },
      },
      { name: 'node-local-dns', dir: dirname(opts.baseCorefilePath), version: () => fileVersion(opts.baseCorefilePath) },
    ];
    watcher = new ConfigWatcher(sources, {
      intervalMs: deps.configPollMs ?? DEFAULT_CONFIG_POLL_MS,
      onChange: () => refresh(),
      onError: (name, err) => log.error(`Failed to sync ${name} config: ${String((err as Error)?.message ?? err)}`),
    });
    await watcher.start();
  }
  const setUp = [iface ? `interface ${opts.interfaceName}` : '', iptables ? `${iptables.rules.length} iptables rules` : ''].filter((x) => x !== '');
  log.info(
    `Start-up complete: serving ${opts.localIps.length > 0 ? opts.localIps.join(', ') : opts.corefilePath}` +
      (setUp.length > 0 ? `; ${setUp.join(' and ')} in place` : ''),
  );

  // --- 7. shutdown -------------------------------------------------------------------------
  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= (async () => {
      stopping = true;
      clearInterval(timer);
      await watcher?.stop();
      await syncing;
      try {
        await engine.stop();
      } catch (err) {
        log.error(`Error stopping the DNS server: ${(err as Error).message}`);
      }
      if (!opts.skipTeardown) {
        log.info('Tearing down');
        await iptables?.teardown();
        if (iface) {
          try {
            await iface.remove();
          } catch (err) {
            log.error((err as Error).message);
          }
        }
      }
      if (opts.pidfile !== '') await rm(opts.pidfile, { force: true }).catch(() => undefined);
      await metrics.close();
    })();
    return shutdownPromise;
  };

  return {
    shutdown,
    sync,
    refresh: async () => {
      if (watcher) await watcher.poll();
      await refresh();
    },
    metrics,
    get metricsAddress() {
      return metricsAddress;
    },
  };
}
