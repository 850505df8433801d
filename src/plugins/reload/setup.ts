/**
 * Setup of `reload [INTERVAL] [JITTER]` (CoreDNS plugin/reload/setup.go); the checker and the
 * plugin are in reload.ts.
 */
import { randomInt } from 'node:crypto';
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { errorAt, expectArgs, noBlock } from '../../corefile/setup-helpers.ts';
import { DurationError, parseGoDurationMs } from '../../util/duration.ts';
import { pluginLogger } from '../../util/log.ts';
import { reloadMetrics } from './metrics.ts';
import { ReloadChecker, ReloadPlugin, type ReloadOptions } from './reload.ts';

const DEFAULT_INTERVAL_MS = 30_000;
const DEFAULT_JITTER_MS = 15_000;
const MIN_INTERVAL_MS = 2_000;
const MIN_JITTER_MS = 1_000;

function durationArg(tok: Token): number {
  try {
    return parseGoDurationMs(tok.text);
  } catch (err) {
    if (err instanceof DurationError) errorAt(tok, err.message);
    throw err;
  }
}

export function parseReload(d: Directive): ReloadOptions {
  noBlock(d);
  const args = expectArgs(d, 0, 2);
  const intervalMs = args.length > 0 ? durationArg(args[0]!) : DEFAULT_INTERVAL_MS;
  if (intervalMs < MIN_INTERVAL_MS) errorAt(args[0] ?? d, 'interval value must be greater or equal to 2s');
  let jitterMs = args.length > 1 ? durationArg(args[1]!) : DEFAULT_JITTER_MS;
  if (jitterMs < MIN_JITTER_MS) errorAt(args[1] ?? d, 'jitter value must be greater or equal to 1s');
  if (jitterMs > intervalMs / 2) jitterMs = intervalMs / 2;
  return { intervalMs, jitterMs };
}

/** INTERVAL plus a uniform draw in [-JITTER/2, JITTER/2) (CoreDNS: rand.Int63n(j) - j/2). */
export function jitteredIntervalMs(opts: ReloadOptions, rand: (maxExclusive: number) => number = (m) => randomInt(m)): number {
  const j = Math.max(1, Math.floor(opts.jitterMs));
  return opts.intervalMs + rand(j) - Math.floor(j / 2);
}

const SHARED_KEY = 'reload/checker';

export const reloadSetup: PluginSetup = {
  name: 'reload',
  collectGlobal: (out) => reloadMetrics.collect(out),
  setup(d: Directive, ctx: SetupContext): Plugin {
    const options = parseReload(d);
    const period = jitteredIntervalMs(options);
    let checker = ctx.shared.get(SHARED_KEY) as ReloadChecker | undefined;
    if (checker === undefined) {
      checker = new ReloadChecker(period, { engine: ctx.engine, env: ctx.env, metrics: reloadMetrics, log: pluginLogger('reload') });
      ctx.shared.set(SHARED_KEY, checker);
    } else {
      checker.periodMs = period;
    }
    return new ReloadPlugin(options, checker);
  },
};
