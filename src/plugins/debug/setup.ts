/**
 * `debug` (CoreDNS plugin/debug): takes no arguments and sets the block's `server.debug`.
 * Setup-only (no handler). What it switches on is process-wide, as in CoreDNS: when any
 * block of the loaded config has `debug`, the engine turns on `[DEBUG]` log lines
 * (src/util/log.ts setDebugOutput). Unlike CoreDNS, panics stay recovered (see README.md).
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { argCountError, noBlock } from '../../corefile/setup-helpers.ts';

class DebugPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = false;
  readonly name = 'debug';
  compose(next: Handler): Handler {
    return next;
  }
}

export const debugSetup: PluginSetup = {
  name: 'debug',
  setup(d: Directive, ctx: SetupContext): Plugin {
    // CoreDNS: any argument is an ArgErr naming it.
    if (d.args.length > 0) argCountError(d.args[0]!);
    noBlock(d);
    ctx.server.debug = true;
    return new DebugPlugin();
  },
};
