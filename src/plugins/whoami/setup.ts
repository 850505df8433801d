/**
 * `whoami` (CoreDNS plugin/whoami): no arguments, no block. A terminal handler: it answers every
 * query that reaches it (see whoami.ts) and never calls the plugins after it.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { argCountError, noBlock } from '../../corefile/setup-helpers.ts';
import { WhoamiHandler } from './whoami.ts';

export class WhoamiPlugin implements Plugin {
  readonly name = 'whoami';
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  compose(_next: Handler): Handler {
    return new WhoamiHandler();
  }
}

export const whoamiSetup: PluginSetup = {
  name: 'whoami',
  setup(d: Directive): Plugin {
    // CoreDNS: any argument is an ArgErr naming the first one.
    if (d.args.length > 0) argCountError(d.args[0]!);
    noBlock(d);
    return new WhoamiPlugin();
  },
};
