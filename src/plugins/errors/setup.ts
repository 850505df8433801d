/**
 * `errors [FILE] { consolidate DURATION REGEXP [LEVEL] }` (CoreDNS plugin/errors).
 * Plugin errors (`req.reportError`) are logged as
 * `[ERROR] plugin/errors: 2 example.org. A: <error>` (rcode, qname, qtype, message).
 * `consolidate` groups errors matching REGEXP and prints one line per DURATION:
 * `N errors like 'REGEXP' occurred in last DURATION`.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext, Logger } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import type { Directive } from '../../corefile/types.ts';
import { errorAt, expectArgs, blockLines, durationArgMs, unknownPropertyError } from '../../corefile/setup-helpers.ts';
import { formatGoDuration } from '../../util/duration.ts';
import { typeName } from '../../wire/codes.ts';
import { pluginLogger } from '../../util/log.ts';

export interface ConsolidateRule {
  periodMs: number;
  pattern: RegExp;
  source: string;
  level: 'warning' | 'error' | 'info' | 'debug';
}

export class ErrorsPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = 'errors';
  readonly rules: ConsolidateRule[];
  private readonly log: Logger;
  private readonly counts: number[];
  private timers: NodeJS.Timeout[] = [];
  /** Errors reported, for tests and metrics. */
  reported = 0;

  constructor(rules: ConsolidateRule[], log: Logger = pluginLogger('errors')) {
    this.rules = rules;
    this.log = log;
    this.counts = rules.map(() => 0);
  }

  /** The sink the server installs on requests of this block. */
  readonly errorSink = (req: Request, _plugin: string, err: Error): void => {
    this.reported++;
    // CoreDNS matches consolidate patterns against the error text alone, and logs the
    // lower-cased qname (state.Name()).
    for (let i = 0; i < this.rules.length; i++) {
      if (this.rules[i]!.pattern.test(err.message)) {
        this.counts[i]!++;
        return;
      }
    }
    this.log.error(`${req.rcode < 0 ? 2 : req.rcode} ${req.name().toLowerCase()} ${typeName(req.qtype)}: ${err.message}`);
  };

  compose(next: Handler): Handler {
    return next;
  }

  start(): void {
    this.rules.forEach((rule, i) => {
      const t = setInterval(() => {
        const n = this.counts[i]!;
        if (n === 0) return;
        this.counts[i] = 0;
        const line = `${n} errors like '${rule.source}' occurred in last ${formatGoDuration(rule.periodMs)}`;
        if (rule.level === 'error') this.log.error(line);
        else if (rule.level === 'warning') this.log.warn(line);
        else this.log.info(line);
      }, rule.periodMs);
      t.unref();
      this.timers.push(t);
    });
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }
}

function parseConsolidate(line: Directive): ConsolidateRule {
  const args = expectArgs(line, 2, 3);
  const periodMs = durationArgMs(args[0]!);
  let pattern: RegExp;
  try {
    pattern = new RegExp(args[1]!.text);
  } catch (e) {
    throw errorAt(args[1]!, `invalid regexp '${args[1]!.text}': ${(e as Error).message}`);
  }
  let level: ConsolidateRule['level'] = 'error';
  if (args[2]) {
    const l = args[2].text;
    if (l !== 'warning' && l !== 'error' && l !== 'info' && l !== 'debug') throw errorAt(args[2], `unknown log level argument in consolidate: ${l}`);
    level = l;
  }
  return { periodMs, pattern, source: args[1]!.text, level };
}

export const errorsSetup: PluginSetup = {
  name: 'errors',
  setup(d: Directive, _ctx: SetupContext): Plugin {
    const args = expectArgs(d, 0, 1);
    if (args[0] && args[0].text !== 'stdout') throw errorAt(args[0], `invalid log file: ${args[0].text}`);
    const rules: ConsolidateRule[] = [];
    for (const line of blockLines(d)) {
      if (line.name === 'consolidate') rules.push(parseConsolidate(line));
      else throw unknownPropertyError(line);
    }
    return new ErrorsPlugin(rules);
  },
};
