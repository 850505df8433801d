/**
 * Zone routing without strings: a query goes to the block whose zone is the longest
 * suffix of its qname (CoreDNS's rule), compared on the wire bytes, case-insensitively.
 */
import { encodeName, lowerByte } from '../wire/name.ts';
import type { Request } from './request.ts';

export interface ZoneRoute<T> {
  /** Normalised zone text (`cluster.local.`). */
  zone: string;
  /** Lower-cased wire form of the zone. */
  wire: Uint8Array;
  labelCount: number;
  target: T;
}

export class ZoneTable<T> {
  /** Sorted by label count, longest first, so the first match is the longest suffix. */
  private readonly routes: ZoneRoute<T>[] = [];

  add(zone: string, target: T): void {
    const wire = encodeName(zone);
    for (let i = 0; i < wire.length; i++) wire[i] = lowerByte(wire[i]!);
    let labelCount = 0;
    for (let p = 0; wire[p] !== 0; p += wire[p]! + 1) labelCount++;
    this.routes.push({ zone, wire, labelCount, target });
    this.routes.sort((a, b) => b.labelCount - a.labelCount || b.wire.length - a.wire.length);
  }

  get size(): number {
    return this.routes.length;
  }

  all(): readonly ZoneRoute<T>[] {
    return this.routes;
  }

  /** The route of the longest matching zone, or null (the server then answers REFUSED). */
  match(req: Request): ZoneRoute<T> | null {
    const msg = req.msg;
    const end = req.qnameEnd;
    const n = req.labelCount;
    const routes = this.routes;
    for (let r = 0; r < routes.length; r++) {
      const route = routes[r]!;
      const z = route.labelCount;
      if (z > n) continue;
      if (z === 0) return route;
      const start = 12 + req.labelOffsets[n - z]!;
      const wire = route.wire;
      if (end - start !== wire.length) continue;
      let ok = true;
      for (let i = 0; i < wire.length; i++) {
        if (lowerByte(msg[start + i]!) !== wire[i]) {
          ok = false;
          break;
        }
      }
      if (ok) return route;
    }
    return null;
  }
}
