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
