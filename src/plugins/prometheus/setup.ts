/**
 * Setup of `prometheus [ADDRESS] { legacy_metrics }` (CoreDNS plugin/metrics/setup.go); the
 * plugin itself is in prometheus.ts, the options are documented in README.md.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { blockLines, errorAt, expectArgs } from '../../corefile/setup-helpers.ts';
import { metricsHub } from '../../metrics/hub.ts';
import { httpEndpoints, listenAddressArg } from '../../metrics/http-endpoints.ts';
import { PrometheusPlugin, type PrometheusOptions } from './prometheus.ts';

/** CoreDNS's default metrics address. */
const DEFAULT_METRICS_ADDRESS = 'localhost:9153';

/** Parses the directive (no side effects). */
export function parsePrometheus(d: Directive): PrometheusOptions {
  const address = listenAddressArg(d, DEFAULT_METRICS_ADDRESS);
  let legacy = false;
  for (const line of blockLines(d)) {
    switch (line.name) {
      case 'legacy_metrics':
      case 'runtime_metrics':
        expectArgs(line, 0, 0);
        if (line.name === 'legacy_metrics') legacy = true;
        break;
      case 'tls':
        errorAt(line, 'tls is not supported by node-local-dns');
        break;
      default:
        errorAt(line, `unknown option: ${line.name}`);
    }
  }
  return { address, legacy };
}

export const prometheusSetup: PluginSetup = {
  name: 'prometheus',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const opts = parsePrometheus(d);
    return new PrometheusPlugin(opts, {
      hub: metricsHub(),
      endpoints: httpEndpoints,
      engine: ctx.engine,
      serverLabels: ctx.serverLabels,
      zones: ctx.zones,
    });
  },
};
