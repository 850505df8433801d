/**
 * Message IDs for upstream queries (RFC 5452 §4.3: IDs must be unpredictable). Drawn from the
 * CSPRNG in batches so the hot path pays one array read per ID.
 */
import { getRandomValues } from 'node:crypto';

const BATCH = 4096;
const pool = new Uint16Array(BATCH);
let next = BATCH;

/** A uniformly random 16-bit message ID from the CSPRNG. */
export function randomId(): number {
  if (next === BATCH) {
    getRandomValues(pool);
    next = 0;
  }
  return pool[next++]!;
}

/**
 * A random ID not in flight in `inUse` (one socket's or connection's queries), or -1 when all
 * 65536 are taken. Random draws first; only a nearly full map falls back to a linear scan.
 */
export function freeId(inUse: ReadonlyMap<number, unknown>): number {
  let id = randomId();
  if (!inUse.has(id)) return id;
  for (let tries = 1; tries < 64; tries++) {
    id = randomId();
    if (!inUse.has(id)) return id;
  }
  if (inUse.size >= 65536) return -1;
  while (inUse.has(id)) id = (id + 1) & 0xffff;
  return id;
}
