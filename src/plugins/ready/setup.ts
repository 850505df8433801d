/**
 * Setup of `ready [ADDRESS] { monitor until-ready|continuously }` (CoreDNS
 * plugin/ready/setup.go); the plugin itself is in ready.ts.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { blockLines, errorAt, expectArgs, unknownPropertyError } from '../../corefile/setup-helpers.ts';
import { httpEndpoints, listenAddressArg } from '../../metrics/http-endpoints.ts';
import { MonitorMode, ReadyPlugin, type MonitorModeValue, type ReadyOptions } from './ready.ts';

const DEFAULT_READY_ADDRESS = ':8181';

/** Parses the directive (no side effects). */
export function parseReady(d: Directive): ReadyOptions {
  const address = listenAddressArg(d, DEFAULT_READY_ADDRESS);
  let monitor: MonitorModeValue = MonitorMode.UNTIL_READY;
  for (const line of blockLines(d)) {
    if (line.name !== 'monitor') unknownPropertyError(line);
    const mode = expectArgs(line, 1, 1)[0]!;
    if (mode.text !== MonitorMode.UNTIL_READY && mode.text !== MonitorMode.CONTINUOUSLY) {
      errorAt(mode, `monitor type '${mode.text}' not supported`);
    }
    monitor = mode.text;
  }
  return { address, monitor };
}

export const readySetup: PluginSetup = {
  name: 'ready',
  setup(d: Directive, ctx: SetupContext): Plugin {
    return new ReadyPlugin(parseReady(d), { endpoints: httpEndpoints, engine: ctx.engine });
  },
};
