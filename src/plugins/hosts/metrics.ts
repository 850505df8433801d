/**
 * The hosts plugin's metric families (CoreDNS plugin/hosts/metrics.go): names, help texts and
 * labels as CoreDNS registers them. Every serving thread reads the file itself and reports the
 * same values, so the families merge by maximum across threads.
 */
import type { MetricsOut } from '../../plugin.ts';

const HOSTS_METRICS = {
  entries: {
    name: 'coredns_hosts_entries',
    help: 'The combined number of entries in hosts and Corefile.',
  },
  reloadTimestamp: {
    name: 'coredns_hosts_reload_timestamp_seconds',
    help: 'The timestamp of the last reload of hosts file.',
  },
} as const;

export interface HostsMetricsState {
  /** The hosts file path (the `hostsfile` label). */
  path: string;
  /** Entries of the file plus the inline ones, or null before the file was first read. */
  entries: number | null;
  /** Modification time (s since the epoch) of the file version last read, or null. */
  reloadTimestampSec: number | null;
}

/**
 * CoreDNS sets both gauges when it (re)reads the file, not before: a plugin whose file was
 * never read exports neither.
 */
export function collectHosts(s: HostsMetricsState, out: MetricsOut): void {
  if (s.entries !== null) {
    out.family(HOSTS_METRICS.entries.name, HOSTS_METRICS.entries.help, 'gauge', { merge: 'max' }).add({ hostsfile: s.path }, s.entries);
  }
  if (s.reloadTimestampSec !== null) {
    out.family(HOSTS_METRICS.reloadTimestamp.name, HOSTS_METRICS.reloadTimestamp.help, 'gauge', { merge: 'max' }).add({}, s.reloadTimestampSec);
  }
}
