/**
 * `timeouts { read D; write D; idle D }` (CoreDNS plugin/timeouts): the read, write and idle
 * timeouts of the block's TCP listener. Setup-only: it sets the block's
 * `server.readTimeoutMs / writeTimeoutMs / idleTimeoutMs`, which the engine hands to each
 * listener of the block (TcpListener.setTimeouts). UDP has no connection, so nothing changes there.
 *
 * Parsing as CoreDNS: no arguments on the `timeouts` line, one value per option line, a value
 * is a Go duration or a bare integer of seconds, each between 1 s and 24 h, at least one
 * option. `maxtcpqueries` (a newer CoreDNS option) is not supported: see README.md.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { excerpt } from '../../corefile/errors.ts';
import { parseGoDurationNs, formatGoDurationNs } from '../../util/duration.ts';

const MIN_NS = 1_000_000_000n;
const MAX_NS = 24n * 3_600_000_000_000n;

export interface TimeoutsConfig {
  readTimeoutMs: number | null;
  writeTimeoutMs: number | null;
  idleTimeoutMs: number | null;
}

export class TimeoutsPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = false;
  readonly name = 'timeouts';
  readonly config: TimeoutsConfig;
  constructor(config: TimeoutsConfig) {
    this.config = config;
  }
  compose(next: Handler): Handler {
    return next;
  }
}

/** CoreDNS's durations.NewDurationFromArg: a bare integer means seconds. */
function durationNs(t: Token): bigint {
  const arg = /^[+-]?[0-9]+$/.test(t.text) ? `${t.text}s` : t.text;
  try {
    return parseGoDurationNs(arg);
  } catch {
    return errorAt(t, `failed to parse duration '${excerpt(arg)}'`);
  }
}

export function parseTimeouts(d: Directive): TimeoutsConfig {
  if (d.args.length > 0) argCountError(d.args[0]!);
  const out: TimeoutsConfig = { readTimeoutMs: null, writeTimeoutMs: null, idleTimeoutMs: null };
  let n = 0;
  for (const line of blockLines(d)) {
    if (line.args.length !== 1) argCountError(line.args.length === 0 ? line : line.args[line.args.length - 1]!);
    const tok = line.args[0]!;
    // CoreDNS checks the value before the option name.
    const ns = durationNs(tok);
    if (ns < MIN_NS || ns > MAX_NS) errorAt(tok, `timeout provided '${formatGoDurationNs(ns)}' needs to be between 1 second and 24 hours`);
    const ms = Number(ns / 1_000_000n);
    switch (line.name) {
      case 'read':
        out.readTimeoutMs = ms;
        break;
      case 'write':
        out.writeTimeoutMs = ms;
        break;
      case 'idle':
        out.idleTimeoutMs = ms;
        break;
      default:
        errorAt(line, `unknown option: '${excerpt(line.name)}'`);
    }
    n++;
  }
  if (n === 0) errorAt(d, 'timeouts block with no timeouts specified');
  return out;
}

export const timeoutsSetup: PluginSetup = {
  name: 'timeouts',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const cfg = parseTimeouts(d);
    if (cfg.readTimeoutMs !== null) ctx.server.readTimeoutMs = cfg.readTimeoutMs;
    if (cfg.writeTimeoutMs !== null) ctx.server.writeTimeoutMs = cfg.writeTimeoutMs;
    if (cfg.idleTimeoutMs !== null) ctx.server.idleTimeoutMs = cfg.idleTimeoutMs;
    return new TimeoutsPlugin(cfg);
  },
};
