/** Every plugin node-local-dns implements, by directive name. Their order is in order.ts. */
import type { PluginSetup } from '../plugin.ts';
import { bindSetup } from './bind/setup.ts';
import { errorsSetup } from './errors/setup.ts';
import { logSetup } from './log/setup.ts';
import { cacheSetup } from './cache/setup.ts';
import { bufsizeSetup } from './bufsize/setup.ts';
import { loadbalanceSetup } from './loadbalance/setup.ts';
import { whoamiSetup } from './whoami/setup.ts';
import { forwardSetup } from './forward/setup.ts';
import { prometheusSetup } from './prometheus/setup.ts';
import { healthSetup } from './health/setup.ts';
import { readySetup } from './ready/setup.ts';
import { reloadSetup } from './reload/setup.ts';
import { loopSetup } from './loop/setup.ts';
import { dnstapSetup } from './dnstap/setup.ts';
import { metadataSetup } from './metadata/setup.ts';
import { hostsSetup } from './hosts/setup.ts';
import { rewriteSetup } from './rewrite/setup.ts';
import { templateSetup } from './template/setup.ts';
import { debugSetup } from './debug/setup.ts';
import { timeoutsSetup } from './timeouts/setup.ts';
import { pprofSetup } from './pprof/setup.ts';
import { traceSetup } from './trace/setup.ts';
import { dns64Setup } from './dns64/setup.ts';

/**
 * Every setup, one per line. Read through pluginSetups(), built on first use: plugins import
 * core modules that read the registry (metrics), so nothing here may run at import time.
 */
function allSetups(): PluginSetup[] {
  return [
    bindSetup,
    errorsSetup,
    logSetup,
    cacheSetup,
    bufsizeSetup,
    loadbalanceSetup,
    whoamiSetup,
    forwardSetup,
    prometheusSetup,
    healthSetup,
    readySetup,
    reloadSetup,
    loopSetup,
    dnstapSetup,
    metadataSetup,
    hostsSetup,
    rewriteSetup,
    templateSetup,
    debugSetup,
    timeoutsSetup,
    pprofSetup,
    traceSetup,
    dns64Setup,
  ];
}

let byName: ReadonlyMap<string, PluginSetup> | null = null;

/** The implemented plugins by directive name. */
export function pluginSetups(): ReadonlyMap<string, PluginSetup> {
  byName ??= new Map(allSetups().map((s) => [s.name, s]));
  return byName;
}
