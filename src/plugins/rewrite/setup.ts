/**
 * Setup of `rewrite` (CoreDNS plugin/rewrite/setup.go):
 *
 *   rewrite [continue|stop] FIELD [TYPE] [FROM TO|TTL|...] [OPTIONS]
 *   rewrite [continue|stop] {
 *       FIELD ...
 *       [answer ...]
 *   }
 *
 * Each `rewrite` line of a block is one rule; the rules of all lines run in line order in one
 * handler. As in CoreDNS, a line with fewer than two words reads its block's words as the
 * rest of the rule (all lines of the block joined), which is how `name ...` and `answer ...`
 * on separate lines make one rule. Errors carry CoreDNS's texts after `plugin/rewrite: `.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { errorAt } from '../../corefile/setup-helpers.ts';
import { RewritePlugin } from './rewrite.ts';
import { RuleError, newRule, type Rule } from './rules.ts';

function ruleOf(d: Directive): Rule {
  const words = d.args.map((t) => t.text);
  if (words.length < 2 && d.block !== null) {
    for (const line of d.block) {
      words.push(line.name, ...line.args.map((t) => t.text));
      if (line.block !== null) errorAt(line, 'plugin/rewrite: a rule line takes no block');
    }
  } else if (d.block !== null) {
    errorAt(d, `plugin/rewrite: a rule with its words on the ${d.name} line takes no block`);
  }
  try {
    return newRule(words);
  } catch (err) {
    if (err instanceof RuleError) errorAt(d, `plugin/rewrite: ${err.message}`);
    throw err;
  }
}

export const rewriteSetup: PluginSetup = {
  name: 'rewrite',
  repeatable: true,
  setupAll(ds: readonly Directive[], _ctx: SetupContext): Plugin {
    return new RewritePlugin(ds.map(ruleOf));
  },
  setup(d: Directive, _ctx: SetupContext): Plugin {
    return new RewritePlugin([ruleOf(d)]);
  },
};
