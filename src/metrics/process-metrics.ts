/**
 * Process-wide CoreDNS metrics that are not per zone: build info, the health plugin's self
 * check, and the reload plugin's counters. Plain fields, exported at scrape time.
 *
 * As in CoreDNS (where these are registered when the plugin package is compiled in), the
 * plain counters and the health histogram are exported from the start with zero values;
 * coredns_reload_version_info appears once a Corefile change was seen.
 */
import { Histogram } from './histogram.ts';
import { SLIM_TIME_BUCKETS } from './labels.ts';
import type { SnapshotBuilder } from './snapshot.ts';
import { VERSION } from '../version.ts';

export const PROCESS_METRICS = {
  buildInfo: {
    name: 'coredns_build_info',
    help: "A metric with a constant '1' value labeled by version, revision, and goversion from which CoreDNS was built.",
  },
  healthDuration: { name: 'coredns_health_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took.' },
  healthFailures: { name: 'coredns_health_request_failures_total', help: 'The number of times the health check failed.' },
  reloadFailed: { name: 'coredns_reload_failed_total', help: 'Counter of the number of failed reload attempts.' },
  reloadVersion: {
    name: 'coredns_reload_version_info',
    help: "A metric with a constant '1' value labeled by hash, and value which type of hash generated.",
  },
} as const;

export interface BuildInfo {
  version: string;
  revision: string;
  /** CoreDNS puts runtime.Version() here; we put the Node.js version (`v24.x.y`). */
  goversion: string;
}

export class ProcessMetrics {
  buildInfo: BuildInfo = { version: VERSION, revision: process.env.NODE_LOCAL_DNS_REVISION ?? '', goversion: process.version };
  /** coredns_health_request_duration_seconds (plugin.SlimTimeBuckets). */
  readonly healthDuration = new Histogram(SLIM_TIME_BUCKETS);
  healthFailures = 0;
  reloadFailed = 0;
  /** The digest of the last Corefile change the reload plugin saw, if any. */
  reloadVersion: { hash: string; value: string } | null = null;

  collect(out: SnapshotBuilder): void {
    const b = PROCESS_METRICS;
    out.family(b.buildInfo.name, b.buildInfo.help, 'gauge', { merge: 'max' }).add({ ...this.buildInfo }, 1);
    out.family(b.healthDuration.name, b.healthDuration.help, 'histogram', { bounds: SLIM_TIME_BUCKETS })
      .addHistogram({}, this.healthDuration.bucketCounts(), this.healthDuration.sum);
    out.family(b.healthFailures.name, b.healthFailures.help, 'counter').add({}, this.healthFailures);
    out.family(b.reloadFailed.name, b.reloadFailed.help, 'counter').add({}, this.reloadFailed);
    if (this.reloadVersion) {
      out.family(b.reloadVersion.name, b.reloadVersion.help, 'gauge', { merge: 'max' }).add({ ...this.reloadVersion }, 1);
    }
  }
}
