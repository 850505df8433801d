/**
 * dnstap's counters. CoreDNS's dnstap exports no Prometheus metric (it logs
 * "Dropped dnstap messages: N" every 10 s); these are node-local-dns's own, per SOCKET as
 * written in the Corefile, summed over serving threads, kept for the process lifetime
 * (a reload's stopped instances fold their counts into the retired totals).
 */
import type { MetricsOut } from '../../plugin.ts';
import type { Tap } from './dnstap.ts';

const DNSTAP_METRICS = {
  sent: { name: 'nodelocaldns_dnstap_sent_total', help: 'Counter of dnstap messages handed to the receiver connection, by socket.' },
  dropped: {
    name: 'nodelocaldns_dnstap_dropped_total',
    help: 'Counter of dnstap messages dropped (queue full, no receiver connection, lost with a connection), by socket.',
  },
  connects: { name: 'nodelocaldns_dnstap_connects_total', help: 'Counter of Frame Streams handshakes completed with the receiver, by socket.' },
} as const;

interface Totals {
  sent: number;
  dropped: number;
  connects: number;
}

const retired = new Map<string, Totals>();

function families(out: MetricsOut) {
  return {
    sent: out.family(DNSTAP_METRICS.sent.name, DNSTAP_METRICS.sent.help, 'counter'),
    dropped: out.family(DNSTAP_METRICS.dropped.name, DNSTAP_METRICS.dropped.help, 'counter'),
    connects: out.family(DNSTAP_METRICS.connects.name, DNSTAP_METRICS.connects.help, 'counter'),
  };
}

/** The running taps' counts. */
export function collectDnstap(taps: readonly Tap[], out: MetricsOut): void {
  const f = families(out);
  for (const t of taps) {
    const labels = { socket: t.config.socket };
    f.sent.add(labels, t.client.sent);
    f.dropped.add(labels, t.client.dropped);
    f.connects.add(labels, t.client.connects);
  }
}

/** A stopped instance's counts, kept for the process lifetime. */
export function retireDnstap(taps: readonly Tap[]): void {
  for (const t of taps) {
    const r = retired.get(t.config.socket) ?? { sent: 0, dropped: 0, connects: 0 };
    r.sent += t.client.sent;
    r.dropped += t.client.dropped;
    r.connects += t.client.connects;
    retired.set(t.config.socket, r);
  }
}

export function collectDnstapGlobal(out: MetricsOut): void {
  if (retired.size === 0) return;
  const f = families(out);
  for (const [socket, r] of retired) {
    const labels = { socket };
    f.sent.add(labels, r.sent);
    f.dropped.add(labels, r.dropped);
    f.connects.add(labels, r.connects);
  }
}
