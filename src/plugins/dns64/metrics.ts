/**
 * coredns_dns64_requests_translated_total{server}: responses the dns64 plugin synthesized.
 * As CoreDNS's counter vector, it is process-wide (reloads keep it) and has a sample only
 * for a server that translated at least once. Each serving thread counts its own; scrapes sum them.
 */
import type { MetricsOut } from '../../plugin.ts';

const DNS64_TRANSLATED = {
  name: 'coredns_dns64_requests_translated_total',
  help: 'Counter of DNS requests translated by dns64.',
} as const;

/** Translations by server label (`dns://[::1]:53`), this thread, since start. */
export const translatedByServer = new Map<string, number>();

export function countTranslated(server: string): void {
  translatedByServer.set(server, (translatedByServer.get(server) ?? 0) + 1);
}

export function collectDns64Global(out: MetricsOut): void {
  if (translatedByServer.size === 0) return;
  const f = out.family(DNS64_TRANSLATED.name, DNS64_TRANSLATED.help, 'counter');
  for (const [server, n] of translatedByServer) f.add({ server }, n);
}
