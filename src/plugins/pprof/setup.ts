/**
 * `pprof [ADDRESS] [{ block [RATE] }]` (CoreDNS plugin/pprof). Go's pprof HTTP endpoints have
 * no Node.js counterpart, so the directive is parsed with CoreDNS's syntax and errors and then
 * does nothing: no listener is opened. Setup logs one warning saying what to use instead.
 */
import { isMainThread } from 'node:worker_threads';
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { excerpt } from '../../corefile/errors.ts';
import { AddressError, splitHostPort } from '../../metrics/http-endpoints.ts';

const PPROF_DEFAULT_ADDRESS = 'localhost:6053';

export interface PprofConfig {
  address: string;
  /** Block profile rate; 0 when `block` is absent. */
  blockRate: number;
}

class PprofPlugin implements Plugin {
  readonly scope = PluginScope.PROCESS;
  readonly handler = false;
  readonly name = 'pprof';
  readonly config: PprofConfig;
  constructor(config: PprofConfig) {
    this.config = config;
  }
  compose(next: Handler): Handler {
    return next;
  }
}

export function parsePprof(d: Directive): PprofConfig {
  const cfg: PprofConfig = { address: PPROF_DEFAULT_ADDRESS, blockRate: 0 };
  if (d.args.length > 1) argCountError(d.args[d.args.length - 1]!);
  if (d.args.length === 1) {
    const tok = d.args[0]!;
    try {
      splitHostPort(tok.text);
    } catch (err) {
      if (err instanceof AddressError) errorAt(tok, err.message);
      throw err;
    }
    cfg.address = tok.text;
  }
  for (const line of blockLines(d)) {
    if (line.name !== 'block') errorAt(line, `unknown property '${excerpt(line.name)}'`);
    if (line.args.length > 1) argCountError(line.args[line.args.length - 1]!);
    cfg.blockRate = 1;
    if (line.args.length === 1) {
      const t = line.args[0]!;
      // Go's strconv.Atoi: optional sign, decimal digits.
      if (!/^[+-]?[0-9]+$/.test(t.text) || !Number.isSafeInteger(Number(t.text))) {
        errorAt(t, `property 'block' invalid integer value '${excerpt(t.text)}'`);
      }
      cfg.blockRate = Number(t.text);
    }
  }
  return cfg;
}

function pprofWarning(cfg: PprofConfig): string {
  return (
    `plugin/pprof: Go profiling endpoints do not exist in node-local-dns: nothing listens on ${cfg.address}. ` +
    'Profile the Node.js process instead: start it with --cpu-prof or --heap-prof (NODE_OPTIONS), or attach the inspector (--inspect=127.0.0.1:9229)'
  );
}

export const pprofSetup: PluginSetup = {
  name: 'pprof',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const cfg = parsePprof(d);
    // Serving worker threads load the same config: the main thread alone says it, once per load.
    if (isMainThread) ctx.log.warn(pprofWarning(cfg));
    return new PprofPlugin(cfg);
  },
};
