/**
 * The reload plugin's metrics (CoreDNS plugin/reload/metrics.go): failed reloads, and the
 * digest of the last Corefile change seen. The counter is registered at start in CoreDNS, so
 * it is exported from the start (PluginSetup.collectGlobal); the version once a change was seen.
 */
import type { MetricsOut } from '../../plugin.ts';

const RELOAD_METRICS = {
  failed: { name: 'coredns_reload_failed_total', help: 'Counter of the number of failed reload attempts.' },
  version: { name: 'coredns_reload_version_info', help: "A metric with a constant '1' value labeled by hash, and value which type of hash generated." },
} as const;

export class ReloadMetrics {
  failed = 0;
  /** The digest of the last Corefile change seen, if any. */
  version: { hash: string; value: string } | null = null;

  collect(out: MetricsOut): void {
    const M = RELOAD_METRICS;
    out.family(M.failed.name, M.failed.help, 'counter').add({}, this.failed);
    if (this.version !== null) out.family(M.version.name, M.version.help, 'gauge', { merge: 'max' }).add({ ...this.version }, 1);
  }
}

/** This process's (the reload check runs once per process, in the control thread). */
export const reloadMetrics = new ReloadMetrics();
