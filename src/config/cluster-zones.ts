/**
 * The cluster's zones, a configuration input (not a Corefile setting): the cache serves them
 * stale by default when every upstream fails. The node agent names them from the template's
 * blocks that forward to `__PILLAR__CLUSTER__DNS__` (src/agent/template.ts), through
 * CLUSTER_ZONES_ENV unless the operator set it; without either, DEFAULT_CLUSTER_ZONES.
 */
import { normalizeZone } from '../corefile/address.ts';

/** The cluster zones when nothing says otherwise: node-cache's stock Corefile has a block for each. */
export const DEFAULT_CLUSTER_ZONES: readonly string[] = ['cluster.local.', 'in-addr.arpa.', 'ip6.arpa.'];

/** Environment variable naming the cluster zones (comma- or space-separated). */
export const CLUSTER_ZONES_ENV = 'NODE_LOCAL_DNS_CLUSTER_ZONES';

/** The cluster zones named by `env` (CLUSTER_ZONES_ENV), or DEFAULT_CLUSTER_ZONES when unset or empty. */
export function clusterZonesFrom(env: Readonly<Record<string, string | undefined>>): string[] {
  const named = (env[CLUSTER_ZONES_ENV] ?? '').split(/[\s,]+/).filter((z) => z !== '');
  return named.length > 0 ? named.map(normalizeZone) : [...DEFAULT_CLUSTER_ZONES];
}
