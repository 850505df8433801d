/**
 * Metrics read from the plugins at scrape time: coredns_plugin_enabled for the blocks that
 * record metrics, each configured plugin's own families (Plugin.collect, defined in the
 * plugin's folder), the families every plugin exports whatever the config
 * (PluginSetup.collectGlobal), this thread's DNS TCP listener metrics and its UDP I/O path.
 * Nothing here knows a plugin: it reads the contract of src/plugin.ts.
 */
import type { BlockInfo, EngineHooks, MetricsOut } from '../plugin.ts';
import type { Collector } from './hub.ts';
import { collectTcp, tcpBudget } from '../server/tcp.ts';
import { collectUdpIo } from '../server/udp-native.ts';

export const PLUGIN_ENABLED = {
  name: 'coredns_plugin_enabled',
  help: 'A metric that indicates whether a plugin is enabled on per server and zone basis.',
} as const;

/** coredns_plugin_enabled for blocks whose plugins enable metrics (CoreDNS sets it from prometheus's setup). */
export function collectPluginEnabled(blocks: readonly BlockInfo[], out: MetricsOut): void {
  for (const b of blocks) {
    if (!b.plugins.some((p) => p.enablesMetrics === true)) continue;
    const f = out.family(PLUGIN_ENABLED.name, PLUGIN_ENABLED.help, 'gauge', { merge: 'max' });
    for (const server of b.serverLabels) {
      for (const zone of b.zones) {
        for (const p of b.plugins) if (p.handler) f.add({ name: p.name, server, view: '', zone }, 1);
      }
    }
  }
}

/** Collects from the engine's serving blocks and from every plugin compiled in (EngineHooks.pluginSetups). */
export class EngineCollector implements Collector {
  private engine: EngineHooks | null = null;

  /** The engine whose blocks are read (the same for the process lifetime; set again harmlessly). */
  attach(engine: EngineHooks): void {
    this.engine = engine;
  }

  collect(out: MetricsOut): void {
    collectTcp(tcpBudget, out);
    collectUdpIo(out);
    if (this.engine === null) return;
    for (const s of this.engine.pluginSetups()) s.collectGlobal?.(out);
    const blocks = this.engine.blocks();
    collectPluginEnabled(blocks, out);
    for (const b of blocks) for (const p of b.plugins) p.collect?.(b, out);
  }
}
