/**
 * How many serving workers `-workers 0` (the default) means.
 *
 * One per CPU this process may run on (os.availableParallelism(): the affinity mask, so a pod
 * pinned by the static CPU manager or started under `taskset` counts only its CPUs), at most
 * MAX_AUTO_WORKERS. Why a cap: node-local-dns shares its node with the workloads it serves, and
 * each worker adds ~14 MiB of RSS plus its own cache (a name is cached once per worker) and its
 * own upstream connections, while one worker already answers ~10^5 cached queries per second;
 * beyond 4 the kernel's own UDP processing (softirq) rather than the workers limits throughput
 * on typical nodes. `-workers N` sets any count explicitly.
 */
import { availableParallelism } from 'node:os';

export const MAX_AUTO_WORKERS = 4;

/** The automatic worker count for `available` usable CPUs. */
export function autoWorkerCount(available: number = availableParallelism()): number {
  return Math.max(1, Math.min(MAX_AUTO_WORKERS, Math.floor(available)));
}

/** `-workers` flag value to worker count (0: automatic). */
export function resolveWorkerCount(flag: number): number {
  return flag > 0 ? Math.floor(flag) : autoWorkerCount();
}
