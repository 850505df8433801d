/**
 * The node agent: what k8s-dns-node-cache does around CoreDNS, in node-cache's order.
 *
 *  1. Render the Corefile from `-basecorefile` (when that file exists; otherwise `-conf` is served
 *     as is) with the kube-dns ConfigMap from `-kubednscm`, and write it to `-conf`.
 *  2. Set up the interface holding the local IPs (`-setupinterface`).
 *  3. Start the DNS engine on the written Corefile.
 *  4. Only then install the iptables rules (`-setupiptables`, written by the back end `-rulesbackend`
 *     chooses: rules.ts), so that a server that fails to start
 *     never receives the node's DNS traffic; write `-pidfile`. (A primary joining a live peer
 *     checks the rules before step 3: that peer already serves the addresses.)
 *  5. Every `-syncinterval`: re-ensure rules and interface, counting failures in
 *     coredns_nodecache_setup_errors_total.
 *  6. On a change of the ConfigMap directory or of the template: re-render, and `reload()` the
 *     engine when the Corefile changed. An invalid ConfigMap keeps the last good values; a failed
 *     reload keeps the engine on its old configuration and restores the old file.
 *  7. shutdown(): stop the engine (it drains), then remove rules and interface unless
 *     `-skipteardown` or another instance still serves the local IPs; remove the pidfile.
 *
 * Roles (see standby.ts for the liveness contract through `-peerdir`):
 *  - primary (default): steps 1-7 as above.
 *  - standby (`-standby`): serves the same local IPs beside the primary (SO_REUSEPORT) so either
 *    can restart without a gap. It never creates or repairs the interface or the rules: it waits
 *    for the local IPs to exist before starting the engine (step 2), skips steps 4 (rules) and 5.
 *  - Either role, when it stops or fails to start, tears the set-up down only if it is the last
 *    live instance: leaving rules and an interface with nobody listening is the outage
 *    node-cache's teardown exists to prevent, and removing them under a live peer is one too.
 */
import { rename, stat, writeFile } from 'node:fs/promises';
import { isIP, type AddressInfo } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { splitListenAddress, type Options } from '../cli/options.ts';
import type { Logger } from '../plugin.ts';
import { agentLog } from '../util/log.ts';
import { readRegularFile } from '../util/read-regular.ts';
import { VERSION } from '../version.ts';
import {
  ConfigMapError,
  ConfigWatcher,
  MAX_TEMPLATE_BYTES,
  emptyKubeDnsConfig,
  fileVersion,
  loadKubeDnsConfig,
  readConfigDir,
  type KubeDnsConfig,
  type WatchSource,
} from './configmap.ts';
import type { CommandRunner } from './exec.ts';
import { IFACE_ERROR_CODES, InterfaceError, InterfaceManager, canonicalIp } from './iface.ts';
import { chooseRulesBackend, createRulesBackend, type RulesBackend } from './rules.ts';
import { removePidfile, writePidfile } from './pidfile.ts';
import { SETUP_ERROR_TYPES, SetupMetrics } from './setup-metrics.ts';
import { TemplateError, renderCorefile } from './template.ts';
import { CLUSTER_ZONES_ENV, DEFAULT_CLUSTER_ZONES, clusterZonesFrom } from '../config/cluster-zones.ts';
import {
  PEER_PHASES,
  PEER_ROLES,
  PeerRegistry,
  describePeer,
  networkNamespaceId,
  peerScope,
  waitForLocalIps,
  type PeerRole,
} from './standby.ts';

export interface EngineHandle {
  /** The cluster's zones for the next reload (the engine hands them to every worker then). */
  setClusterZones(zones: readonly string[]): void;
  /** Re-reads the Corefile; rejects (keeping the running configuration) when it is invalid. */
  reload(): Promise<void>;
  /** Stops serving after draining in-flight queries. */
  stop(): Promise<void>;
}

export interface AgentDeps {
  startEngine(corefilePath: string, defaultBind: string[], dnsPort: number, clusterZones: readonly string[]): Promise<EngineHandle>;
  log?: Logger;
  /** Environment for __PILLAR__CLUSTER__DNS__ (default process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /** Runs ip/iptables/nft (default: execFile in this process's network namespace). */
  runner?: CommandRunner;
  /** Shown in the start-up line (default: VERSION from package.json). */
  version?: string;
  /** ConfigMap/template poll period (default 10 s, as node-cache). */
  configPollMs?: number;
  /** Include process_* metrics on the set-up metrics endpoint (default true). */
  processMetrics?: boolean;
  /** Aborts waits during start-up (a standby waiting for the local IPs); runAgent then rejects with PeerError `ERR_PEER_ABORTED`. */
  signal?: AbortSignal;
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

/** True when `address` (host:port) names one of the local IPs, which exist only once the interface does. */
export function listensOnLocalIp(address: string, localIps: readonly string[]): boolean {
  if (address === '') return false;
  let host: string;
  try {
    host = splitListenAddress(address, 'metrics-listen-address').host;
  } catch {
    return false;
  }
  if (isIP(host) === 0) return false;
  const h = canonicalIp(host);
  return localIps.some((ip) => canonicalIp(ip) === h);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return (await readRegularFile(path, MAX_TEMPLATE_BYTES)).toString('utf8');
  } catch {
    return undefined;
  }
}

export async function runAgent(opts: Options, deps: AgentDeps): Promise<AgentHandle> {
  const log = deps.log ?? agentLog;
  const env = deps.env ?? process.env;
  const metrics = new SetupMetrics({ processMetrics: deps.processMetrics ?? true });
  const runner = deps.runner;

  const role: PeerRole = opts.standby ? PEER_ROLES.standby : PEER_ROLES.primary;
  log.info(`Starting node-local-dns ${deps.version ?? agentVersion()}`);
  log.info(`Using Corefile ${opts.corefilePath}`);

  if ((opts.setupInterface || opts.setupIptables) && opts.localIps.length === 0) {
    throw new AgentError('-localip is required to set up the interface or iptables rules (or pass -setupinterface=false -setupiptables=false)');
  }
  if (role === PEER_ROLES.standby && (opts.peerDir === '' || opts.localIps.length === 0)) {
    throw new AgentError('-standby needs -localip and a -peerdir shared with the primary');
  }
  const managed = [opts.setupInterface ? `interface ${opts.interfaceName}` : '', opts.setupIptables ? (opts.rulesBackend === 'auto' ? 'packet-filter rules (-rulesbackend auto)' : `${opts.rulesBackend} rules`) : ''].filter((x) => x !== '');
  if (role === PEER_ROLES.standby) {
    log.info(
      `Role: standby - serves ${opts.localIps.join(', ')} beside the primary; never sets up or repairs the ` +
        `interface or the iptables rules; removes them on exit only if no other instance is alive`,
    );
  } else {
    log.info(
      `Role: primary - sets up and maintains ${managed.length > 0 ? managed.join(' and ') : 'nothing (set-up disabled)'}; ` +
        `on exit removes them only if no other instance is alive`,
    );
  }

  // The set-up metrics listener: on one of the local IPs it can bind only once the interface
  // holds them (after step 2); any other address now. Either way an address that cannot be bound
  // is retried in the background (setup-metrics.ts), each failure logged and counted.
  let metricsStarted = false;
  const startMetrics = async (): Promise<void> => {
    if (metricsStarted || opts.metricsListenAddress === '') return;
    metricsStarted = true;
    await metrics.listenWithRetry(opts.metricsListenAddress, { log });
  };
  if (!listensOnLocalIp(opts.metricsListenAddress, opts.localIps)) await startMetrics();

  // --- 0. peer registration: before anything is set up, so a leaving peer sees us ---------
  let registry: PeerRegistry | undefined;
  if (opts.peerDir !== '') {
    try {
      registry = await PeerRegistry.join({
        dir: opts.peerDir,
        role,
        scope: peerScope(await networkNamespaceId(runner), opts.localIps, opts.dnsPort),
        version: deps.version ?? agentVersion(),
        log,
      });
      log.info(`Registered as ${role} in ${opts.peerDir} (${registry.path})`);
    } catch (err) {
      if (role === PEER_ROLES.standby) {
        await metrics.close();
        throw new AgentError(`standby cannot register in ${opts.peerDir}: ${(err as Error).message}`, { cause: err });
      }
      log.error(`Cannot register in peer directory ${opts.peerDir}, tearing down on exit regardless of other instances: ${(err as Error).message}`);
    }
  }
  /** Releases what start-up acquired before a failed start returns. */
  const abandon = async (): Promise<void> => {
    await registry?.leave();
    await metrics.close();
  };

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

  // The cache's stale default follows the template's cluster blocks unless the operator named
  // the zones (src/config/cluster-zones.ts); they go to the engine with every start and reload.
  const clusterZonesPreset = (env[CLUSTER_ZONES_ENV] ?? '').trim() !== '';
  let clusterZones: readonly string[] = clusterZonesFrom(env);
  let clusterZonesShown = '';

  /** Renders the Corefile text; throws TemplateError or I/O errors. */
  const render = async (): Promise<{ corefile: string; upstream: string; stubs: number }> => {
    // Never blocks (a FIFO) nor reads without bound (src/util/read-regular.ts).
    const base = (await readRegularFile(opts.baseCorefilePath, MAX_TEMPLATE_BYTES)).toString('utf8');
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
    if (!clusterZonesPreset) {
      clusterZones = r.clusterZones.length > 0 ? r.clusterZones : DEFAULT_CLUSTER_ZONES;
      const shown = r.clusterZones.join(',');
      if (shown !== clusterZonesShown && shown !== '') {
        log.info(`Cluster zones (served stale when every upstream fails, unless a cache block says otherwise): ${shown}`);
      }
      clusterZonesShown = shown;
    }
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
      await abandon();
      if (err instanceof TemplateError) throw new AgentError(`cannot render ${opts.baseCorefilePath}: ${err.message}`, { cause: err });
      throw new AgentError(`cannot read ${opts.baseCorefilePath}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await writeFileAtomic(opts.corefilePath, r.corefile);
    } catch (err) {
      await abandon();
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
    if (role === PEER_ROLES.primary) {
      await ensureInterface(true);
    } else {
      // The engine cannot bind addresses the node does not have yet.
      await waitForLocalIps(opts.localIps, { log, signal: deps.signal });
    }
  } catch (err) {
    await abandon();
    throw err;
  }
  await startMetrics();

  let rules: RulesBackend | undefined;
  if (opts.setupIptables) {
    const choice = await chooseRulesBackend(opts.rulesBackend, { runner, ipv6: opts.ipFamily === 6 });
    // The default (iptables) logs nothing new: node-cache's start-up lines stay as they were.
    if (opts.rulesBackend !== 'iptables') log.info(`Rules back end: ${choice.kind} (${choice.reason})`);
    rules = createRulesBackend(choice.kind, {
      localIps: opts.localIps,
      dnsPort: opts.dnsPort,
      healthPort: opts.healthPort,
      runner,
      log,
      onError: (type) => metrics.inc(type),
    });
  }

  /**
   * Leaves the peer directory, then removes rules and interface unless `-skipteardown` or a live
   * peer remains. Leaving before looking makes the last instance to leave see no peer, so two
   * instances stopping together never both keep the set-up.
   */
  const teardownIfLast = async (): Promise<void> => {
    await registry?.leave();
    if (opts.skipTeardown || (!iface && !rules)) return;
    if (registry) {
      const peers = await registry.peers();
      if (peers.length > 0) {
        log.info(`Not tearing down: ${peers.length} other instance(s) still serve ${opts.localIps.join(', ')}: ${peers.map(describePeer).join(', ')}`);
        return;
      }
      log.info(`No other instance alive in ${opts.peerDir}: this ${role} is the last one`);
    }
    log.info('Tearing down');
    await rules?.teardown();
    if (iface) {
      try {
        await iface.remove();
      } catch (err) {
        log.error((err as Error).message);
      }
    }
    if (registry) {
      // A primary that registered while we were removing things puts them back now rather than
      // at its next periodic sync.
      for (const p of (await registry.peers()).filter((x) => x.name.role === PEER_ROLES.primary)) {
        log.info(`${describePeer(p)} started during the teardown: asking it to restore the set-up`);
        await registry.requestSync(p);
      }
    }
  };

  // A primary joining a live peer checks the rules before it starts serving: the peer already
  // answers for the addresses, so the rules may exist before our sockets do, and the CPU burst
  // of the checks (one iptables process per rule) does not land while our sockets take their
  // first share of the traffic. Alone, node-cache's order applies: rules only once serving.
  let rulesFirst = false;
  if (role === PEER_ROLES.primary && registry && rules) {
    const live = await registry.peers();
    if (live.length > 0) {
      rulesFirst = true;
      log.info(`Joining ${live.map(describePeer).join(', ')}: checking the ${rules.kind} rules before serving`);
      await rules.ensureAll();
    }
  }

  // --- 3. engine ---------------------------------------------------------------------------
  let engine: EngineHandle;
  try {
    engine = await deps.startEngine(opts.corefilePath, [...opts.localIps], opts.dnsPort, clusterZones);
  } catch (err) {
    // As node-cache on a fatal CoreDNS start: tear down, including rules a killed predecessor
    // left, so the node's DNS traffic goes back to kube-dns instead of to a closed port (unless
    // another instance serves it).
    await teardownIfLast();
    await metrics.close();
    throw err;
  }

  // --- 4. pidfile, iptables ----------------------------------------------------------------
  await writePidfile(opts.pidfile, log);
  if (role === PEER_ROLES.primary && !rulesFirst) await rules?.ensureAll();

  // --- 5. periodic network sync (primary) / primary watch (standby) --------------------------
  let stopping = false;
  let syncing: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    if (syncing) return syncing;
    syncing = (async () => {
      if (stopping) return;
      await rules?.ensureAll();
      if (stopping) return;
      await ensureInterface(false);
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };
  let primaryAlive: boolean | undefined;
  /** Standby: logs when the primary goes away or comes back (nothing else changes). */
  const watchPrimary = async (): Promise<void> => {
    if (!registry || stopping) return;
    const primaries = (await registry.peers()).filter((p) => p.name.role === PEER_ROLES.primary);
    const alive = primaries.length > 0;
    if (alive === primaryAlive || stopping) return;
    primaryAlive = alive;
    if (alive) log.info(`standby: primary alive: ${primaries.map(describePeer).join(', ')}`);
    else {
      log.warn(
        `standby: no live primary in ${opts.peerDir}; serving alone. The interface and iptables rules are not ` +
          'maintained until a primary runs (is the primary started with the same -peerdir?)',
      );
    }
  };
  // A tick that fails is logged and the next tick runs as usual: nothing a tick meets (a tool
  // that cannot be started, EMFILE, a peer directory gone) may stop the timer or the process.
  const tick = (what: string, run: () => Promise<void>) => (): void => {
    run().catch((err: unknown) => log.error(`${what} failed, retrying at the next tick: ${(err as Error)?.stack ?? String(err)}`));
  };
  const syncTick = tick('Periodic network sync', sync);
  const watchTick = tick('Watching the primary', watchPrimary);
  const timer = role === PEER_ROLES.primary ? setInterval(syncTick, opts.syncIntervalMs) : setInterval(watchTick, opts.syncIntervalMs);
  if (role === PEER_ROLES.primary) registry?.onSync(syncTick);
  else await watchPrimary();

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
      engine.setClusterZones(clusterZones);
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
  const setUp = [iface ? `interface ${opts.interfaceName}` : '', rules ? rules.describe() : ''].filter((x) => x !== '');
  if (registry) registry.phase = PEER_PHASES.serving;
  if (role === PEER_ROLES.standby) {
    log.info(`Start-up complete: serving ${opts.localIps.join(', ')} as standby; interface and iptables rules are the primary's`);
  } else {
    log.info(
      `Start-up complete: serving ${opts.localIps.length > 0 ? opts.localIps.join(', ') : opts.corefilePath}` +
        (setUp.length > 0 ? `; ${setUp.join(' and ')} in place` : ''),
    );
  }

  // --- 7. shutdown -------------------------------------------------------------------------
  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    shutdownPromise ??= (async () => {
      stopping = true;
      if (registry) registry.phase = PEER_PHASES.stopping;
      clearInterval(timer);
      await watcher?.stop();
      await syncing;
      try {
        await engine.stop();
      } catch (err) {
        log.error(`Error stopping the DNS server: ${(err as Error).message}`);
      }
      await teardownIfLast();
      await removePidfile(opts.pidfile);
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
      return metrics.address;
    },
  };
}
