/**
 * The node agent: what k8s-dns-node-cache does around CoreDNS, in node-cache's order. NodeAgent
 * runs the steps; `run()` lists them in order, one method each.
 *
 *  1. Render the Corefile from `-basecorefile` (when that file exists; otherwise `-conf` is served
 *     as is) with the kube-dns ConfigMap from `-kubednscm`, and write it to `-conf`
 *     (corefile-writer.ts).
 *  2. Set up the interface holding the local IPs (`-setupinterface`, network.ts).
 *  3. Start the DNS engine on the written Corefile.
 *  4. Only then install the iptables rules (`-setupiptables`, written by the back end `-rulesbackend`
 *     chooses: rules.ts), so that a server that fails to start
 *     never receives the node's DNS traffic; write `-pidfile`. (A primary joining a live peer
 *     checks the rules before step 3: that peer already serves the addresses.)
 *  5. Every `-syncinterval`: re-ensure rules and interface, counting failures in
 *     coredns_nodecache_setup_errors_total.
 *  6. On a change of the ConfigMap directory or of the template: re-render, and `reload()` the
 *     engine when the Corefile changed (config-refresh.ts). An invalid ConfigMap keeps the last
 *     good values; a failed reload keeps the engine on its old configuration and restores the old file.
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
 *  - Two instances of one role (a DaemonSet rolling with `maxSurge: 1`: the new pod starts beside
 *    the old one) are peers like a primary and a standby. The one that started first maintains
 *    the rules and the interface; a later primary checks them once before serving and then
 *    leaves the periodic sync to the older one while it serves, so two instances never add the
 *    same rule at once; it takes over when the older one stops (or stops answering).
 *
 * Readiness (`ready` plugin, through the engine's readyCheck): ready once start-up is complete
 * (serving, and for a primary its rules in place), and not while a newer instance of its role is
 * starting. Instances of one role share the HTTP ports (SO_REUSEPORT), so kubelet's readiness
 * probe of the new pod may reach the old instance: the new instance announces itself
 * (`joining`, standby.ts) before it binds anything, and from then until it serves the old one
 * answers 503 too, so the new pod cannot be reported Ready, and the old one SIGTERMed, early.
 */
import { isIP, type AddressInfo } from 'node:net';
import { splitListenAddress, type Options } from '../cli/options.ts';
import type { Logger } from '../plugin.ts';
import { agentLog } from '../util/log.ts';
import { VERSION } from '../version.ts';
import { ConfigRefresher } from './config-refresh.ts';
import { CorefileWriter, isFile, type RenderedCorefile } from './corefile-writer.ts';
import type { CommandRunner } from './exec.ts';
import { canonicalIp } from './iface.ts';
import { NodeNetwork } from './network.ts';
import { removePidfile, writePidfile } from './pidfile.ts';
import { SetupErrorType, SetupMetrics } from './setup-metrics.ts';
import { TemplateError } from './template.ts';
import { PeerPhase, PeerRole, PeerRegistry, SocketAdoption, describePeer, networkNamespaceId, peerScope, waitForLocalIps, type LivePeer } from './standby.ts';

export interface EngineHandle {
  /** The cluster's zones for the next reload (the engine hands them to every worker then). */
  setClusterZones(zones: readonly string[]): void;
  /** Re-reads the Corefile; rejects (keeping the running configuration) when it is invalid. */
  reload(): Promise<void>;
  /** Stops serving after draining in-flight queries. */
  stop(): Promise<void>;
}

export interface AgentDeps {
  /** `readyCheck`: the engine's readiness also requires it (the header's "Readiness"). */
  startEngine(corefilePath: string, defaultBind: string[], dnsPort: number, clusterZones: readonly string[], readyCheck: () => boolean): Promise<EngineHandle>;
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

export const AgentErrorCode = {
  CONFIG: 'ERR_AGENT_CONFIG',
} as const;

export class AgentError extends Error {
  readonly code = AgentErrorCode.CONFIG;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'AgentError';
  }
}

/** How often an instance that heard `joining` looks whether the newer instance serves yet. */
const JOINER_WATCH_MS = 1000;

/** node-cache's period for syncing the ConfigMap directories. */
export const DEFAULT_CONFIG_POLL_MS = 10_000;

/** The package version shown in the start-up line. */
export function agentVersion(): string {
  return VERSION;
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

/**
 * A timer callback running `run`: a tick that fails is logged and the next tick runs as usual;
 * nothing a tick meets (a tool that cannot be started, EMFILE, a peer directory gone) may stop
 * the timer or the process.
 */
function tick(log: Logger, what: string, run: () => Promise<void>): () => void {
  return (): void => {
    run().catch((err: unknown) => log.error(`${what} failed, retrying at the next tick: ${(err as Error)?.stack ?? String(err)}`));
  };
}

/** One agent run: `run()` lists the steps in order; each step is one method below, in that order. */
class NodeAgent {
  readonly metrics: SetupMetrics;
  readonly #opts: Options;
  readonly #deps: AgentDeps;
  readonly #log: Logger;
  readonly #version: string;
  readonly #role: PeerRole;
  readonly #corefile: CorefileWriter;
  readonly #network: NodeNetwork;
  #metricsStarted = false;
  /** Membership of `-peerdir`, once registered. */
  #registry: PeerRegistry | undefined;
  /** `-basecorefile` exists: the Corefile is rendered from it and kept up to date. */
  #templateMode = false;
  /** A primary joining a live peer checked the rules before serving (not again after). */
  #rulesCheckedBeforeServing = false;
  #engine: EngineHandle | undefined;
  /** Every `-syncinterval`: the network sync (primary) or the look at the primary (standby). */
  #periodicTimer: NodeJS.Timeout | undefined;
  /** The network sync in progress; a sync asked for meanwhile joins it. */
  #syncing: Promise<void> | undefined;
  /** Standby: serves the live primaries' listening UDP sockets too (standby.ts SocketAdoption); undefined without the addon. */
  #adoption: SocketAdoption | undefined;
  /** Standby: whether a primary was alive at the last look (undefined before the first). */
  #primaryAlive: boolean | undefined;
  #refresher: ConfigRefresher | undefined;
  /** Start-up is complete: serving, and (primary) the rules are in place. */
  #startedUp = false;
  /** A newer instance of our role announced itself and does not serve yet: not ready meanwhile. */
  #newerStarting = false;
  #joinerWatch: NodeJS.Timeout | undefined;
  /** At the last periodic tick an older serving primary maintained the set-up (logged on change). */
  #deferring = false;
  #stopping = false;
  #shutdown: Promise<void> | undefined;

  constructor(opts: Options, deps: AgentDeps) {
    this.#opts = opts;
    this.#deps = deps;
    this.#log = deps.log ?? agentLog;
    this.#version = deps.version ?? agentVersion();
    this.metrics = new SetupMetrics({ processMetrics: deps.processMetrics ?? true });
    this.#role = opts.standby ? PeerRole.STANDBY : PeerRole.PRIMARY;
    const shared = { log: this.#log, metrics: this.metrics };
    this.#corefile = new CorefileWriter(opts, { env: deps.env ?? process.env, ...shared });
    this.#network = new NodeNetwork(opts, { runner: deps.runner, ...shared });
  }

  /** Starts up, in node-cache's order (the numbers are the header's steps); resolves once serving. */
  async run(): Promise<AgentHandle> {
    this.#logStart();
    this.#checkOptions();
    this.#logRole();
    // The set-up metrics listener: on one of the local IPs it can bind only once the interface
    // holds them (after step 2); any other address now.
    if (!listensOnLocalIp(this.#opts.metricsListenAddress, this.#opts.localIps)) await this.#startMetrics();
    await this.#joinPeers(); // 0
    await this.#renderCorefile(); // 1
    await this.#setUpInterface(); // 2
    await this.#startMetrics();
    await this.#network.chooseRules();
    await this.#checkRulesBeforeServing();
    const engine = await this.#serve(); // 3
    await writePidfile(this.#opts.pidfile, this.#log); // 4
    await this.#installRules();
    await this.#startPeriodicSync(); // 5
    await this.#startConfigRefresh(engine); // 6
    this.#logReady();
    return this.#handle();
  }

  /** Runs one periodic network check (rules, then interface) now; joins one in progress. */
  sync(): Promise<void> {
    if (this.#syncing) return this.#syncing;
    this.#syncing = (async () => {
      if (this.#stopping) return;
      await this.#network.rules?.ensureAll();
      if (this.#stopping) return;
      await this.#network.ensureInterface(false);
    })().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  /** Re-reads ConfigMap and template now and reloads the engine if the Corefile changed. */
  async refresh(): Promise<void> {
    await this.#refresher?.pollAndRefresh();
  }

  /** 7. Stops the engine (it drains), then tears down if last; removes the pidfile. Idempotent. */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  #logStart(): void {
    this.#log.info(`Starting node-local-dns ${this.#version}`);
    this.#log.info(`Using Corefile ${this.#opts.corefilePath}`);
  }

  #checkOptions(): void {
    const opts = this.#opts;
    if ((opts.setupInterface || opts.setupIptables) && opts.localIps.length === 0) {
      throw new AgentError('-localip is required to set up the interface or iptables rules (or pass -setupinterface=false -setupiptables=false)');
    }
    if (this.#role === PeerRole.STANDBY && (opts.peerDir === '' || opts.localIps.length === 0)) {
      throw new AgentError('-standby needs -localip and a -peerdir shared with the primary');
    }
  }

  #logRole(): void {
    const opts = this.#opts;
    if (this.#role === PeerRole.STANDBY) {
      this.#log.info(
        `Role: standby - serves ${opts.localIps.join(', ')} beside the primary; never sets up or repairs the ` +
          `interface or the iptables rules; removes them on exit only if no other instance is alive`,
      );
      return;
    }
    const rulesName = opts.rulesBackend === 'auto' ? 'packet-filter rules (-rulesbackend auto)' : `${opts.rulesBackend} rules`;
    const managed = [opts.setupInterface ? `interface ${opts.interfaceName}` : '', opts.setupIptables ? rulesName : ''].filter((x) => x !== '');
    this.#log.info(
      `Role: primary - sets up and maintains ${managed.length > 0 ? managed.join(' and ') : 'nothing (set-up disabled)'}; ` +
        `on exit removes them only if no other instance is alive`,
    );
  }

  /** The set-up metrics listener, once; an address that cannot be bound is retried in the background (setup-metrics.ts). */
  async #startMetrics(): Promise<void> {
    if (this.#metricsStarted || this.#opts.metricsListenAddress === '') return;
    this.#metricsStarted = true;
    await this.metrics.listenWithRetry(this.#opts.metricsListenAddress, { log: this.#log });
  }

  /** 0. Peer registration: before anything is set up, so a leaving peer sees us. Fatal for a standby only. */
  async #joinPeers(): Promise<void> {
    const opts = this.#opts;
    if (opts.peerDir === '') return;
    try {
      this.#registry = await PeerRegistry.join({
        dir: opts.peerDir,
        role: this.#role,
        scope: peerScope(await networkNamespaceId(this.#deps.runner), opts.localIps, opts.dnsPort),
        version: this.#version,
        log: this.#log,
      });
      this.#log.info(`Registered as ${this.#role} in ${opts.peerDir} (${this.#registry.path})`);
      this.#registry.onJoining((role) => this.#onPeerJoining(role));
      const older = (await this.#registry.announceJoining()).filter((p) => p.name.role === this.#role);
      if (older.length > 0) this.#log.info(`Joining ${older.map(describePeer).join(', ')} of the same role (a rolling update with surge, or a restart)`);
    } catch (err) {
      if (this.#role === PeerRole.STANDBY) {
        await this.metrics.close();
        throw new AgentError(`standby cannot register in ${opts.peerDir}: ${(err as Error).message}`, { cause: err });
      }
      this.#log.error(`Cannot register in peer directory ${opts.peerDir}, tearing down on exit regardless of other instances: ${(err as Error).message}`);
    }
  }

  /** Releases what start-up acquired before a failed start returns. */
  async #abandon(): Promise<void> {
    await this.#registry?.leave();
    await this.metrics.close();
  }

  /** 1. Template mode: renders the Corefile with the kube-dns ConfigMap and writes it to `-conf`. */
  async #renderCorefile(): Promise<void> {
    const corefile = this.#corefile;
    this.#templateMode = await isFile(corefile.basePath);
    if (!this.#templateMode) {
      this.#log.info(`Template ${corefile.basePath} not found, serving ${corefile.path} as is`);
      return;
    }
    await corefile.loadKubeDns();
    let r: RenderedCorefile;
    try {
      r = await corefile.render();
    } catch (err) {
      this.metrics.inc(SetupErrorType.CONFIGMAP);
      await this.#abandon();
      if (err instanceof TemplateError) throw new AgentError(`cannot render ${corefile.basePath}: ${err.message}`, { cause: err });
      throw new AgentError(`cannot read ${corefile.basePath}: ${(err as Error).message}`, { cause: err });
    }
    try {
      await corefile.write(r.corefile);
    } catch (err) {
      await this.#abandon();
      throw new AgentError(`cannot write ${corefile.path}: ${(err as Error).message}`, { cause: err });
    }
    corefile.announce(r);
  }

  /** 2. A primary sets the interface up; a standby waits for the local IPs (the engine cannot bind them before). */
  async #setUpInterface(): Promise<void> {
    try {
      if (this.#role === PeerRole.PRIMARY) await this.#network.ensureInterface(true);
      else await waitForLocalIps(this.#opts.localIps, { log: this.#log, signal: this.#deps.signal });
    } catch (err) {
      await this.#abandon();
      throw err;
    }
  }

  /**
   * A primary joining a live peer checks the rules before it starts serving: the peer already
   * answers for the addresses, so the rules may exist before our sockets do, and the CPU burst
   * of the checks (one iptables process per rule) does not land while our sockets take their
   * first share of the traffic. Alone, node-cache's order applies: rules only once serving.
   */
  async #checkRulesBeforeServing(): Promise<void> {
    const rules = this.#network.rules;
    if (this.#role !== PeerRole.PRIMARY || !this.#registry || !rules) return;
    const live = await this.#registry.peers();
    if (live.length === 0) return;
    this.#rulesCheckedBeforeServing = true;
    this.#log.info(`Joining ${live.map(describePeer).join(', ')}: checking the ${rules.kind} rules before serving`);
    await rules.ensureAll();
  }

  /** 3. Starts the DNS engine on the written Corefile. */
  async #serve(): Promise<EngineHandle> {
    const opts = this.#opts;
    try {
      this.#engine = await this.#deps.startEngine(opts.corefilePath, [...opts.localIps], opts.dnsPort, this.#corefile.clusterZones, () => this.#isReady());
      return this.#engine;
    } catch (err) {
      // As node-cache on a fatal CoreDNS start: tear down, including rules a killed predecessor
      // left, so the node's DNS traffic goes back to kube-dns instead of to a closed port (unless
      // another instance serves it).
      await this.#teardownIfLast();
      await this.metrics.close();
      throw err;
    }
  }

  /** 4. A primary installs the rules once serving, so that a server that fails to start never receives the node's DNS traffic. */
  async #installRules(): Promise<void> {
    if (this.#role === PeerRole.PRIMARY && !this.#rulesCheckedBeforeServing) await this.#network.rules?.ensureAll();
  }

  /** 5. Every `-syncinterval`: a primary re-ensures rules and interface (also when a peer asks); a standby watches the primary. */
  async #startPeriodicSync(): Promise<void> {
    const syncIntervalMs = this.#opts.syncIntervalMs;
    if (this.#role === PeerRole.PRIMARY) {
      const syncTick = tick(this.#log, 'Periodic network sync', () => this.#maintain());
      this.#periodicTimer = setInterval(syncTick, syncIntervalMs);
      this.#registry?.onSync(syncTick);
    } else {
      this.#periodicTimer = setInterval(
        tick(this.#log, 'Watching the primary', () => this.#watchPrimary()),
        syncIntervalMs,
      );
      await this.#watchPrimary();
    }
  }

  /**
   * Primary, each tick (and on a peer's `sync`): the network sync, unless an older primary serves
   * (it maintains the set-up; two writers could add one rule twice) or a newer one is starting
   * (it checks the rules itself before serving).
   */
  async #maintain(): Promise<void> {
    const older = this.#newerStarting ? [] : await this.#olderServingPrimaries();
    const defer = this.#newerStarting || older.length > 0;
    if (defer !== this.#deferring) {
      this.#deferring = defer;
      if (older.length > 0) this.#log.info(`Leaving the network sync to the older ${older.map(describePeer).join(', ')}`);
      else if (!defer) this.#log.info('Maintaining the network set-up (no older primary serves)');
    }
    if (!defer) await this.sync();
  }

  /** Live primaries of our scope that started before us and serve (a silent one does not count: we maintain then). */
  async #olderServingPrimaries(): Promise<LivePeer[]> {
    const registry = this.#registry;
    if (!registry) return [];
    const mine = registry.status();
    return (await registry.peers()).filter(
      (p) =>
        p.name.role === PeerRole.PRIMARY &&
        p.status?.phase === PeerPhase.SERVING &&
        (p.status.startedAt < mine.startedAt || (p.status.startedAt === mine.startedAt && p.status.id < mine.id)),
    );
  }

  #isReady(): boolean {
    return this.#startedUp && !this.#newerStarting && !this.#stopping;
  }

  /** A peer announced itself (`joining`): if it is a newer instance of our role, not ready until it serves. */
  #onPeerJoining(role: PeerRole): void {
    if (role !== this.#role || !this.#startedUp || this.#stopping || this.#newerStarting) return;
    this.#newerStarting = true;
    this.#log.info(`A newer ${role} is starting: /ready answers 503 here until it serves (it shares the probe port)`);
    this.#joinerWatch = setInterval(
      tick(this.#log, 'Watching the starting instance', () => this.#watchJoiner()),
      JOINER_WATCH_MS,
    );
  }

  /** Ready again once no live instance of our role is starting (a silent one counts as starting). */
  async #watchJoiner(): Promise<void> {
    const registry = this.#registry;
    if (!registry || !this.#newerStarting) return;
    const starting = (await registry.peers()).filter(
      (p) => p.name.role === this.#role && p.status?.phase !== PeerPhase.SERVING && p.status?.phase !== PeerPhase.STOPPING,
    );
    if (starting.length > 0 || !this.#newerStarting) return;
    this.#stopWatchingJoiner();
    this.#log.info(`The newer ${this.#role} serves (or is gone): ready again`);
  }

  #stopWatchingJoiner(): void {
    clearInterval(this.#joinerWatch);
    this.#joinerWatch = undefined;
    this.#newerStarting = false;
  }

  /** Standby: logs when the primary goes away or comes back (nothing else changes). */
  async #watchPrimary(): Promise<void> {
    const registry = this.#registry;
    if (!registry || this.#stopping) return;
    const peers = await registry.peers();
    if (this.#stopping) return;
    this.#adoption ??= SocketAdoption.create(this.#log);
    this.#adoption?.update(peers);
    const primaries = peers.filter((p) => p.name.role === PeerRole.PRIMARY);
    const alive = primaries.length > 0;
    if (alive === this.#primaryAlive || this.#stopping) return;
    this.#primaryAlive = alive;
    if (alive) this.#log.info(`standby: primary alive: ${primaries.map(describePeer).join(', ')}`);
    else {
      this.#log.warn(
        `standby: no live primary in ${this.#opts.peerDir}; serving alone. The interface and iptables rules are not ` +
          'maintained until a primary runs (is the primary started with the same -peerdir?)',
      );
    }
  }

  /** 6. Template mode: re-render and reload on a change of the ConfigMap or the template (config-refresh.ts). */
  async #startConfigRefresh(engine: EngineHandle): Promise<void> {
    if (!this.#templateMode) return;
    this.#refresher = new ConfigRefresher({
      corefile: this.#corefile,
      engine,
      kubeDnsConfigMapDir: this.#opts.kubeDnsConfigMapDir,
      pollMs: this.#deps.configPollMs ?? DEFAULT_CONFIG_POLL_MS,
      log: this.#log,
      metrics: this.metrics,
    });
    await this.#refresher.start();
  }

  #logReady(): void {
    const opts = this.#opts;
    if (this.#registry) this.#registry.phase = PeerPhase.SERVING;
    this.#startedUp = true;
    if (this.#role === PeerRole.STANDBY) {
      this.#log.info(`Start-up complete: serving ${opts.localIps.join(', ')} as standby; interface and iptables rules are the primary's`);
      return;
    }
    const setUp = this.#network.describe();
    this.#log.info(
      `Start-up complete: serving ${opts.localIps.length > 0 ? opts.localIps.join(', ') : opts.corefilePath}` +
        (setUp.length > 0 ? `; ${setUp.join(' and ')} in place` : ''),
    );
  }

  #handle(): AgentHandle {
    const metrics = this.metrics;
    return {
      shutdown: () => this.shutdown(),
      sync: () => this.sync(),
      refresh: () => this.refresh(),
      metrics,
      get metricsAddress() {
        return metrics.address;
      },
    };
  }

  /** 7. The shutdown, in order: no more ticks or refreshes, the engine drains, then the set-up goes if we are the last. */
  async #stop(): Promise<void> {
    this.#stopping = true;
    if (this.#registry) this.#registry.phase = PeerPhase.STOPPING;
    clearInterval(this.#periodicTimer);
    this.#stopWatchingJoiner();
    await this.#refresher?.stop();
    await this.#syncing;
    if (this.#adoption && this.#registry) this.#adoption.stop(await this.#registry.peers());
    try {
      await this.#engine?.stop();
    } catch (err) {
      this.#log.error(`Error stopping the DNS server: ${(err as Error).message}`);
    }
    await this.#teardownIfLast();
    await removePidfile(this.#opts.pidfile);
    await this.metrics.close();
  }

  /**
   * Leaves the peer directory, then removes rules and interface unless `-skipteardown` or a live
   * peer remains. Leaving before looking makes the last instance to leave see no peer, so two
   * instances stopping together never both keep the set-up.
   */
  async #teardownIfLast(): Promise<void> {
    const opts = this.#opts;
    const registry = this.#registry;
    await registry?.leave();
    if (opts.skipTeardown || !this.#network.managed) return;
    if (registry) {
      const peers = await registry.peers();
      if (peers.length > 0) {
        this.#log.info(`Not tearing down: ${peers.length} other instance(s) still serve ${opts.localIps.join(', ')}: ${peers.map(describePeer).join(', ')}`);
        return;
      }
      this.#log.info(`No other instance alive in ${opts.peerDir}: this ${this.#role} is the last one`);
    }
    this.#log.info('Tearing down');
    await this.#network.remove();
    if (registry) {
      // A primary that registered while we were removing things puts them back now rather than
      // at its next periodic sync.
      for (const p of (await registry.peers()).filter((x) => x.name.role === PeerRole.PRIMARY)) {
        this.#log.info(`${describePeer(p)} started during the teardown: asking it to restore the set-up`);
        await registry.requestSync(p);
      }
    }
  }
}

export async function runAgent(opts: Options, deps: AgentDeps): Promise<AgentHandle> {
  return new NodeAgent(opts, deps).run();
}
