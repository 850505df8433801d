/**
 * Setup of `loop` (CoreDNS plugin/loop/setup.go): no arguments; the probe zone is the block's
 * first zone and the probed address its first listener. The plugin is in loop.ts.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { expectArgs, noBlock } from '../../corefile/setup-helpers.ts';
import { LoopPlugin } from './loop.ts';

export const loopSetup: PluginSetup = {
  name: 'loop',
  setup(d: Directive, ctx: SetupContext): Plugin {
    expectArgs(d, 0, 0);
    noBlock(d);
    const label = ctx.serverLabels[0] ?? `dns://:${ctx.port}`;
    const address = label.startsWith('dns://') ? label.slice('dns://'.length) : label;
    return new LoopPlugin({ zone: ctx.zones[0] ?? '.', address }, { engine: ctx.engine });
  },
};
