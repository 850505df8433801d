/** Every plugin node-local-dns implements, by directive name. Their order is in order.ts. */
import type { PluginSetup } from '../plugin.ts';
import { bindSetup } from './bind/setup.ts';
import { errorsSetup } from './errors/setup.ts';
import { logSetup } from './log/setup.ts';
import { cacheSetup } from './cache/setup.ts';
import { forwardSetup } from './forward/setup.ts';
import { prometheusSetup } from './prometheus/setup.ts';
import { healthSetup } from './health/setup.ts';
import { readySetup } from './ready/setup.ts';
import { reloadSetup } from './reload/setup.ts';
import { loopSetup } from './loop/setup.ts';

export const PLUGIN_SETUPS: ReadonlyMap<string, PluginSetup> = new Map(
  [bindSetup, errorsSetup, logSetup, cacheSetup, forwardSetup, prometheusSetup, healthSetup, readySetup, reloadSetup, loopSetup].map((s) => [s.name, s]),
);
