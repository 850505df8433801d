/**
 * What `-conf`-only mode (flags given, no `-localip`: the Corefile served as is, no interface,
 * rules or template) adds around the engine once it serves:
 *  - `-pidfile`, written once serving and removed on exit, as in agent mode;
 *  - the set-up metrics listener (coredns_nodecache_setup_errors_total, all 0 here since
 *    nothing is set up, nodelocaldns_setup_metrics_listen_errors_total and the process_*
 *    metrics) on `-metrics-listen-address`, but only when that flag is given explicitly: its
 *    default 0.0.0.0:9353 is the agent's, and a plain CoreDNS-style `-conf` run does not open
 *    a second port unasked. Bound with the agent's retry (setup-metrics.ts).
 */
import type { Options } from '../cli/options.ts';
import { removePidfile, writePidfile } from './pidfile.ts';
import type { SetupMetrics } from './setup-metrics.ts';

export interface ServerExtras {
  readonly metrics: SetupMetrics | undefined;
  stop(): Promise<void>;
}

export async function startServerExtras(opts: Options, log: { info(msg: string): void; error(msg: string): void }): Promise<ServerExtras> {
  let metrics: SetupMetrics | undefined;
  if (opts.given.has('metrics-listen-address') && opts.metricsListenAddress !== '') {
    // Loaded only when asked for: it loads prom-client (bench/PROFILE.md, Footprint).
    const { SetupMetrics } = await import('./setup-metrics.ts');
    metrics = new SetupMetrics();
    await metrics.listenWithRetry(opts.metricsListenAddress, { log });
  }
  await writePidfile(opts.pidfile, log);
  return {
    metrics,
    stop: async () => {
      await removePidfile(opts.pidfile);
      await metrics?.close();
    },
  };
}
