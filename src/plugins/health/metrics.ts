/**
 * The health plugin's metrics (CoreDNS plugin/health/metrics.go): the self check's duration
 * and failures. Registered at start in CoreDNS, so exported with zero values from the start
 * (PluginSetup.collectGlobal) whether or not a block has `health`.
 */
import type { MetricsOut } from '../../plugin.ts';
import { Histogram } from '../../metrics/histogram.ts';
import { SLIM_TIME_BUCKETS } from '../../metrics/labels.ts';

const HEALTH_METRICS = {
  duration: { name: 'coredns_health_request_duration_seconds', help: 'Histogram of the time (in seconds) each request took.' },
  failures: { name: 'coredns_health_request_failures_total', help: 'The number of times the health check failed.' },
} as const;

export class HealthMetrics {
  /** Self check durations (plugin.SlimTimeBuckets). */
  readonly duration = new Histogram(SLIM_TIME_BUCKETS);
  failures = 0;

  collect(out: MetricsOut): void {
    const M = HEALTH_METRICS;
    out.family(M.duration.name, M.duration.help, 'histogram', { bounds: SLIM_TIME_BUCKETS }).addHistogram({}, this.duration.bucketCounts(), this.duration.sum);
    out.family(M.failures.name, M.failures.help, 'counter').add({}, this.failures);
  }
}

/** This thread's (the self check runs once per process, in the control thread). */
export const healthMetrics = new HealthMetrics();
