/**
 * node-local-dns entry point.
 *  - No flags at all: serve the embedded default Corefile on 127.0.0.1:5353 (loopback,
 *    unprivileged), forwarding to the nameservers of /etc/resolv.conf.
 *  - `-localip ...`: the node agent (node-cache compatible: templating, interface, iptables).
 *  - Otherwise: serve `-conf FILE` as written (blocks without `bind` listen on 127.0.0.1).
 * Signals: SIGTERM/SIGINT drain and exit 0 (a second one exits at once); SIGUSR1 reloads.
 * Exceptions escaping outside query handling (a socket or timer callback, an unhandled
 * rejection) are logged, counted in coredns_panics_total and survived; more than 10 within 60 s
 * exit 1 (src/util/panic.ts). A broken stdout/stderr never ends the process (src/util/log.ts).
 * `-workers N` serving threads (0: the default, one; src/workers/count.ts).
 *
 * Start-up: Node's compile cache (type-stripped sources and V8 code) is enabled before the
 * engine is imported, so a restart skips type stripping (see bench/PROFILE.md); only this file's
 * own static imports are loaded before it. NODE_COMPILE_CACHE chooses the directory
 * (default: $TMPDIR/node-compile-cache), NODE_DISABLE_COMPILE_CACHE=1 turns it off.
 */
import { enableCompileCache } from 'node:module';
import type { ControlPlane } from './engine/control-plane.ts';
import { parseOptions, optionsUsage, type Options } from './cli/options.ts';
import { FlagHelpRequested, flagExitCode } from './cli/flags.ts';
import { guardOutputStreams, setQuiet, log } from './util/log.ts';
import { VERSION } from './version.ts';

/** The embedded default: a caching forwarder on loopback. */
export const EMBEDDED_COREFILE = `.:5353 {
    errors
    cache 30
    forward . /etc/resolv.conf
}
`;

/**
 * The `-plugins` listing in the shape CoreDNS prints it (caddy's DescribePlugins, then
 * fmt.Println's newline): the server type, the Corefile loaders coremain registers, and the
 * directives as `dns.NAME`, sorted.
 */
export function describePlugins(names: readonly string[]): string {
  const others = names.map((n) => `dns.${n}`).sort();
  return `Server types:\n  dns\n\nCaddyfile loaders:\n  flag\n  default\n\nOther plugins:\n${others.map((n) => `  ${n}\n`).join('')}\n`;
}

/** Aborted by the first SIGTERM/SIGINT: ends waits during start-up (a standby waiting for its IPs). */
const startupAbort = new AbortController();

interface Stoppable {
  shutdown(): Promise<void>;
  reload(reason: string): Promise<void>;
}

/**
 * Signals are handled from the first moment: a SIGTERM that arrives while the agent is still
 * starting waits for start-up to finish and then shuts down cleanly (teardown included),
 * instead of Node's default of dying with the interface and rules left behind.
 */
function installSignals(appReady: Promise<Stoppable>): void {
  let stopping = false;
  const onStop = (sig: string) => {
    if (stopping) {
      log.warn(`received ${sig} again, exiting now`);
      process.exit(1);
    }
    stopping = true;
    log.info(`${sig} received: shutting down`);
    startupAbort.abort();
    appReady
      .then((app) => app.shutdown())
      .then(
        () => process.exit(0),
        (err) => {
          log.error(`shutdown: ${(err as Error).message}`);
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => onStop('SIGTERM'));
  process.on('SIGINT', () => onStop('SIGINT'));
  process.on('SIGUSR1', () => {
    appReady.then((app) => app.reload('SIGUSR1')).catch((err) => log.error(`reload on SIGUSR1: ${(err as Error).message}`));
  });
}

async function startEngine(
  opts: Options | null,
  corefilePath: string | null,
  defaultBind: string[],
  dnsPort: number,
  text?: string,
  clusterZones?: readonly string[],
  readyCheck?: () => boolean,
): Promise<ControlPlane> {
  const [{ startServing }, { resolveWorkerCount }] = await Promise.all([import('./workers/start.ts'), import('./workers/count.ts')]);
  const workers = resolveWorkerCount(opts?.workers ?? 0);
  const { engine } = await startServing({
    corefilePath,
    corefileText: text,
    defaultBind,
    defaultPort: dnsPort,
    workers,
    quiet: opts?.quiet ?? false,
    clusterZones,
    readyCheck,
  });
  return engine;
}

async function runServer(opts: Options | null): Promise<Stoppable> {
  const engine =
    opts === null
      ? await startEngine(null, null, ['127.0.0.1'], 53, EMBEDDED_COREFILE)
      : await startEngine(opts, opts.corefilePath, ['127.0.0.1'], opts.dnsPort);
  log.info(`node-local-dns-${VERSION} (Node.js ${process.version}) serving`);
  // -pidfile and (when asked for) the set-up metrics listener, as in agent mode.
  const extras = opts === null ? undefined : await (await import('./agent/server-mode.ts')).startServerExtras(opts, log);
  return {
    shutdown: async () => {
      await engine.stop();
      await extras?.stop();
    },
    reload: (reason) => engine.reload(reason),
  };
}

async function runAgentMode(opts: Options): Promise<Stoppable> {
  const { runAgent } = await import('./agent/agent.ts');
  let engine: ControlPlane | null = null;
  const agent = await runAgent(opts, {
    startEngine: async (corefilePath: string, defaultBind: string[], dnsPort: number, clusterZones: readonly string[], readyCheck: () => boolean) => {
      engine = await startEngine(opts, corefilePath, defaultBind, dnsPort, undefined, clusterZones, readyCheck);
      const e = engine;
      return { setClusterZones: (zones) => e.setClusterZones(zones), reload: () => e.reload('configmap'), stop: () => e.stop() };
    },
    signal: startupAbort.signal,
  });
  return {
    shutdown: () => agent.shutdown(),
    reload: (reason) => (engine ? engine.reload(reason) : Promise.resolve()),
  };
}

/** Installs the process-wide last line of defence (see the header). */
async function installPanicGuard(): Promise<void> {
  guardOutputStreams();
  const [{ PanicGuard }, { countPanic }] = await Promise.all([import('./util/panic.ts'), import('./metrics/zone-stats.ts')]);
  new PanicGuard({ log, count: countPanic }).install();
}

export async function main(argv: string[]): Promise<void> {
  if (process.env.NODE_DISABLE_COMPILE_CACHE === undefined) enableCompileCache();
  await installPanicGuard();
  let opts: Options;
  try {
    opts = parseOptions(argv);
  } catch (err) {
    if (err instanceof FlagHelpRequested) {
      process.stdout.write(optionsUsage('node-local-dns', VERSION));
      process.exit(0);
    }
    const code = flagExitCode(err);
    process.stderr.write(`${(err as Error).message}\n`);
    process.stderr.write(optionsUsage('node-local-dns', VERSION));
    process.exit(code ?? 2);
  }
  if (opts.version) {
    process.stdout.write(`node-local-dns-${VERSION}\nlinux/${process.arch}, node${process.versions.node}\n`);
    return;
  }
  if (opts.plugins) {
    // As coremain: -version first, then -plugins prints the list and exits 0.
    const { pluginNames } = await import('./plugins/registry.ts');
    process.stdout.write(describePlugins(pluginNames()));
    return;
  }
  setQuiet(opts.quiet);
  for (const f of opts.ignoredFlags) log.warn(`flag -${f.flag} ignored: ${f.reason}`);
  const appReady = !opts.flagsGiven ? runServer(null) : opts.localIps.length > 0 ? runAgentMode(opts) : runServer(opts);
  installSignals(appReady);
  try {
    await appReady;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ERR_PEER_ABORTED') {
      log.info(`${(err as Error).message}: exiting`);
      process.exit(0);
    }
    process.stderr.write(`[FATAL] ${(err as Error).message}\n`);
    process.exit(1);
  }
}

if (import.meta.main) {
  await main(process.argv.slice(2));
}
