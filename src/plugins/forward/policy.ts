/**
 * Upstream selection policies (CoreDNS forward's policy.go semantics). A policy writes the
 * order in which a query tries the upstreams, as indices into the configured list, into `out`
 * (length >= n); no allocation per query.
 */

export const POLICY_NAMES = ['random', 'round_robin', 'sequential'] as const;
export type PolicyName = (typeof POLICY_NAMES)[number];

export interface Policy {
  readonly name: PolicyName;
  order(n: number, out: Uint8Array): void;
}

/** A uniformly random permutation (n = 2 is a coin flip, as in CoreDNS). */
export class RandomPolicy implements Policy {
  readonly name = 'random' as const;
  order(n: number, out: Uint8Array): void {
    for (let i = 0; i < n; i++) out[i] = i;
    // Fisher–Yates.
    for (let i = n - 1; i > 0; i--) {
      const j = (Math.random() * (i + 1)) | 0;
      const t = out[i]!;
      out[i] = out[j]!;
      out[j] = t;
    }
  }
}

/**
 * Round robin: each query starts one further along, the others keep their configured order
 * after it (CoreDNS increments before use, so the first query starts at index 1).
 */
export class RoundRobinPolicy implements Policy {
  readonly name = 'round_robin' as const;
  private robin = 0;
  order(n: number, out: Uint8Array): void {
    this.robin = (this.robin + 1) >>> 0;
    const first = this.robin % n;
    out[0] = first;
    let k = 1;
    for (let i = 0; i < n; i++) if (i !== first) out[k++] = i;
  }
}

/** Always the configured order. */
export class SequentialPolicy implements Policy {
  readonly name = 'sequential' as const;
  order(n: number, out: Uint8Array): void {
    for (let i = 0; i < n; i++) out[i] = i;
  }
}

export function makePolicy(name: PolicyName): Policy {
  switch (name) {
    case 'round_robin':
      return new RoundRobinPolicy();
    case 'sequential':
      return new SequentialPolicy();
    default:
      return new RandomPolicy();
  }
}
