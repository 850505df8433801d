/**
 * Plugin life cycle steps shared by the Server (query-scoped plugins) and the ControlPlane
 * (process-scoped ones): each takes the predicate that picks the plugins its caller runs.
 * Plugins start and stop in Corefile order (block by block, chain order within a block).
 */
import type { Logger, Plugin } from '../plugin.ts';
import type { LoadedBlock, LoadedConfig } from '../config/load.ts';

type PluginFilter = (p: Plugin) => boolean;

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function startPlugins(blocks: readonly LoadedBlock[], runs: PluginFilter): Promise<void> {
  for (const b of blocks) for (const p of b.plugins) if (p.start && runs(p)) await p.start();
}

/** Stops each plugin; an error is logged and the others still stop. */
export async function stopPlugins(blocks: readonly LoadedBlock[], runs: PluginFilter, log: Logger): Promise<void> {
  for (const b of blocks) {
    for (const p of b.plugins) {
      if (!p.stop || !runs(p)) continue;
      try {
        await p.stop();
      } catch (err) {
        log.error(`stopping plugin ${p.name}: ${(err as Error).message}`);
      }
    }
  }
}

/**
 * Reload: each plugin of `next` picked by `runs` takes over from the plugin of the same name in
 * the same block (same keys and port) of `old` (Plugin.takeOver): caches keep their entries,
 * counters stay monotonic.
 */
export function takeOver(old: LoadedConfig, next: LoadedConfig, runs: PluginFilter): void {
  const oldByKey = new Map<string, LoadedBlock>(old.blocks.map((b) => [b.key, b]));
  for (const b of next.blocks) {
    const prev = oldByKey.get(b.key);
    if (prev === undefined) continue;
    for (const p of b.plugins) {
      if (p.takeOver === undefined || !runs(p)) continue;
      const previous = prev.plugins.find((q) => q.name === p.name);
      if (previous !== undefined) p.takeOver(previous);
    }
  }
}

/**
 * CoreDNS's log.Fatal: logs `msg`, writes `[FATAL] msg` to stderr, then `onFatal(msg)` and a
 * throw (tests, workers: the caller decides how the process ends), or exits with status 1.
 */
export function fatal(log: Logger, msg: string, onFatal?: (msg: string) => void): never {
  log.error(msg);
  process.stderr.write(`[FATAL] ${msg}\n`);
  if (onFatal) {
    onFatal(msg);
    throw new Error(msg);
  }
  process.exit(1);
}
