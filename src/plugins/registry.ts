/**
 * Every plugin node-local-dns implements, by directive name (their order is in order.ts).
 *
 * The plugins of node-cache's stock Corefile (bind, errors, cache, forward, prometheus, health,
 * reload, loop) and `ready` (the shipped manifests' Corefile) are loaded with the process; the
 * others are loaded when a Corefile first names them (loadPluginSetups, awaited by the config
 * loader), so a node that does not use `template` or `dnstap` does not pay for their code in
 * every serving thread (about 10 MiB of RSS for all of them; `log` alone brings the whole
 * message codec). test/footprint/idle-modules.test.ts checks that the stock Corefile loads none
 * of the others. A module loaded later must be in the compile cache (the image warms it), or
 * Node loads its type stripper to read it (+20 MiB, bench/PROFILE.md Footprint): `ready` stays
 * eager for that reason.
 */
import type { PluginSetup } from '../plugin.ts';
import { bindSetup } from './bind/setup.ts';
import { errorsSetup } from './errors/setup.ts';
import { cacheSetup } from './cache/setup.ts';
import { forwardSetup } from './forward/setup.ts';
import { prometheusSetup } from './prometheus/setup.ts';
import { healthSetup } from './health/setup.ts';
import { readySetup } from './ready/setup.ts';
import { reloadSetup } from './reload/setup.ts';
import { loopSetup } from './loop/setup.ts';

/** Loaded with the process: node-cache's stock Corefile uses these. */
function eagerSetups(): PluginSetup[] {
  return [bindSetup, errorsSetup, cacheSetup, forwardSetup, prometheusSetup, healthSetup, readySetup, reloadSetup, loopSetup];
}

/** Loaded on first use, one line each. */
const LAZY_SETUPS: Readonly<Record<string, () => Promise<PluginSetup>>> = {
  bufsize: async () => (await import('./bufsize/setup.ts')).bufsizeSetup,
  debug: async () => (await import('./debug/setup.ts')).debugSetup,
  dns64: async () => (await import('./dns64/setup.ts')).dns64Setup,
  dnstap: async () => (await import('./dnstap/setup.ts')).dnstapSetup,
  hosts: async () => (await import('./hosts/setup.ts')).hostsSetup,
  loadbalance: async () => (await import('./loadbalance/setup.ts')).loadbalanceSetup,
  log: async () => (await import('./log/setup.ts')).logSetup,
  metadata: async () => (await import('./metadata/setup.ts')).metadataSetup,
  pprof: async () => (await import('./pprof/setup.ts')).pprofSetup,
  rewrite: async () => (await import('./rewrite/setup.ts')).rewriteSetup,
  template: async () => (await import('./template/setup.ts')).templateSetup,
  timeouts: async () => (await import('./timeouts/setup.ts')).timeoutsSetup,
  trace: async () => (await import('./trace/setup.ts')).traceSetup,
  whoami: async () => (await import('./whoami/setup.ts')).whoamiSetup,
};

/** Built on first use: plugins import core modules that read the registry, so nothing runs at import time. */
let loaded: Map<string, PluginSetup> | null = null;

function loadedMap(): Map<string, PluginSetup> {
  loaded ??= new Map(eagerSetups().map((s) => [s.name, s]));
  return loaded;
}

/** Names of every implemented plugin, loaded or not (`-plugins`, "not supported" errors). */
export function pluginNames(): string[] {
  return [...loadedMap().keys(), ...Object.keys(LAZY_SETUPS).filter((n) => !loadedMap().has(n))];
}

/** The setups loaded so far, by name (a Corefile's plugins are loaded before its setup runs). */
export function pluginSetups(): ReadonlyMap<string, PluginSetup> {
  return loadedMap();
}

/** Loads the setups of these directive names that are implemented and not loaded yet. */
export async function loadPluginSetups(names: Iterable<string>): Promise<void> {
  const map = loadedMap();
  for (const name of new Set(names)) {
    const load = Object.hasOwn(LAZY_SETUPS, name) ? LAZY_SETUPS[name] : undefined;
    if (map.has(name) || load === undefined) continue;
    map.set(name, await load());
  }
}

/** Loads every setup (`-plugins`, tests that walk them all). */
export async function loadAllPluginSetups(): Promise<ReadonlyMap<string, PluginSetup>> {
  await loadPluginSetups(Object.keys(LAZY_SETUPS));
  return loadedMap();
}
