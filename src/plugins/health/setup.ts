/**
 * Setup of `health [ADDRESS] { lameduck DURATION }` (CoreDNS plugin/health/setup.go); the
 * plugin itself is in health.ts.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt, expectArgs } from '../../corefile/setup-helpers.ts';
import { DurationError, parseGoDurationMs } from '../../util/duration.ts';
import { pluginLogger } from '../../util/log.ts';
import { healthMetrics } from './metrics.ts';
import { httpEndpoints, listenAddressArg } from '../../metrics/http-endpoints.ts';
import { HealthPlugin, type HealthOptions } from './health.ts';

const DEFAULT_HEALTH_ADDRESS = ':8080';

/** Parses the directive (no side effects). */
export function parseHealth(d: Directive): HealthOptions {
  const address = listenAddressArg(d, DEFAULT_HEALTH_ADDRESS);
  let lameduckMs = 0;
  for (const line of blockLines(d)) {
    // CoreDNS answers any other property with an argument count error.
    if (line.name !== 'lameduck' || line.block !== null) argCountError(line);
    const dur = expectArgs(line, 1, 1)[0]!;
    try {
      // A negative lameduck is accepted and means none, as in CoreDNS.
      lameduckMs = Math.max(0, parseGoDurationMs(dur.text));
    } catch (err) {
      if (err instanceof DurationError) errorAt(dur, `unable to parse lameduck duration value: ${JSON.stringify(dur.text)}: ${err.message}`);
      throw err;
    }
  }
  return { address, lameduckMs };
}

export const healthSetup: PluginSetup = {
  name: 'health',
  collectGlobal: (out) => healthMetrics.collect(out),
  setup(d: Directive, ctx: SetupContext): Plugin {
    const opts = parseHealth(d);
    return new HealthPlugin(opts, { metrics: healthMetrics, endpoints: httpEndpoints, engine: ctx.engine, log: pluginLogger('health') });
  },
};
