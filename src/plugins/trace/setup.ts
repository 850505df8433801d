/**
 * `trace [ENDPOINT-TYPE] [ENDPOINT] [{ every N; service NAME; client_server [BOOL];
 * datadog_analytics_rate [RATE]; zipkin_max_backlog_size N; zipkin_max_batch_size N;
 * zipkin_max_batch_interval D }]` (CoreDNS plugin/trace). node-local-dns has no OpenTracing
 * (Zipkin/Datadog) exporter: the directive is parsed with CoreDNS's syntax, defaults and error
 * texts, then traces nothing and sends nothing. Setup logs one warning saying what to use instead.
 */
import { isMainThread } from 'node:worker_threads';
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { excerpt } from '../../corefile/errors.ts';
import { parseGoBool } from '../../cli/flags.ts';
import { DurationError, parseGoDurationMs } from '../../util/duration.ts';

/** Endpoint types CoreDNS supports, with their default endpoint. */
const TRACE_PROVIDERS: Readonly<Record<string, string>> = { zipkin: 'localhost:9411', datadog: 'localhost:8126' };

export interface TraceConfig {
  endpointType: string;
  endpoint: string;
  every: number;
  serviceName: string;
  clientServer: boolean;
  datadogAnalyticsRate: number;
  zipkinMaxBacklogSize: number;
  zipkinMaxBatchSize: number;
  zipkinMaxBatchIntervalMs: number;
}

class TracePlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  /** CoreDNS registers trace as a handler (so coredns_plugin_enabled lists it); ours passes through. */
  readonly handler = true;
  readonly name = 'trace';
  readonly config: TraceConfig;
  constructor(config: TraceConfig) {
    this.config = config;
  }
  compose(next: Handler): Handler {
    return next;
  }
}

function normalizeEndpoint(at: Token | Directive, type: string, ep: string): [string, string] {
  const dflt = TRACE_PROVIDERS[type];
  if (dflt === undefined || !Object.hasOwn(TRACE_PROVIDERS, type)) errorAt(at, `tracing endpoint type '${excerpt(type)}' is not supported`);
  let endpoint = ep === '' ? dflt : ep;
  if (type === 'zipkin' && !endpoint.includes('http')) endpoint = `http://${endpoint}/api/v2/spans`;
  return [type, endpoint];
}

function syntaxError(t: Token, fn: string): never {
  return errorAt(t, `strconv.${fn}: parsing ${JSON.stringify(t.text)}: invalid syntax`);
}

function rangeError(t: Token, fn: string): never {
  return errorAt(t, `strconv.${fn}: parsing ${JSON.stringify(t.text)}: value out of range`);
}

/** Go's strconv.ParseUint(s, 10, 64), within JavaScript's safe integers. */
function parseUint(t: Token): number {
  if (!/^[0-9]+$/.test(t.text)) syntaxError(t, 'ParseUint');
  const v = BigInt(t.text);
  if (v >= 1n << 64n) rangeError(t, 'ParseUint');
  return Number(v);
}

/** Go's strconv.Atoi. */
function atoi(t: Token): number {
  if (!/^[+-]?[0-9]+$/.test(t.text)) syntaxError(t, 'Atoi');
  const v = BigInt(t.text);
  if (v >= 1n << 63n || v < -(1n << 63n)) rangeError(t, 'Atoi');
  return Number(v);
}

/** Go's strconv.ParseFloat(s, 64) for the decimal forms, infinities and NaN. */
function parseFloat64(t: Token): number {
  const s = t.text;
  if (/^[+-]?(inf|infinity)$/i.test(s)) return s.startsWith('-') ? -Infinity : Infinity;
  if (/^nan$/i.test(s)) return NaN;
  if (!/^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$/.test(s)) syntaxError(t, 'ParseFloat');
  const v = Number(s);
  if (!Number.isFinite(v)) rangeError(t, 'ParseFloat');
  return v;
}

/** Go's %f: six decimals. */
function goF(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? '+Inf' : '-Inf';
  return v.toFixed(6);
}

export function parseTrace(d: Directive): TraceConfig {
  const cfg: TraceConfig = {
    endpointType: 'zipkin',
    endpoint: '',
    every: 1,
    serviceName: 'coredns',
    clientServer: false,
    datadogAnalyticsRate: 0,
    zipkinMaxBacklogSize: 0,
    zipkinMaxBatchSize: 0,
    zipkinMaxBatchIntervalMs: 0,
  };
  const a = d.args;
  if (a.length === 0) [cfg.endpointType, cfg.endpoint] = normalizeEndpoint(d, 'zipkin', '');
  else if (a.length === 1) [cfg.endpointType, cfg.endpoint] = normalizeEndpoint(a[0]!, 'zipkin', a[0]!.text);
  else if (a.length === 2) [cfg.endpointType, cfg.endpoint] = normalizeEndpoint(a[0]!, a[0]!.text.toLowerCase(), a[1]!.text);
  else argCountError(a[a.length - 1]!);

  for (const line of blockLines(d)) {
    const args = line.args;
    const exactlyOne = (): Token => {
      if (args.length !== 1) argCountError(args.length === 0 ? line : args[args.length - 1]!);
      return args[0]!;
    };
    const atMostOne = (): Token | null => {
      if (args.length > 1) argCountError(args[args.length - 1]!);
      return args[0] ?? null;
    };
    switch (line.name) {
      case 'every':
        cfg.every = parseUint(exactlyOne());
        break;
      case 'service':
        cfg.serviceName = exactlyOne().text;
        break;
      case 'client_server': {
        const t = atMostOne();
        cfg.clientServer = true;
        if (t !== null) {
          try {
            cfg.clientServer = parseGoBool(t.text);
          } catch {
            syntaxError(t, 'ParseBool');
          }
        }
        break;
      }
      case 'datadog_analytics_rate': {
        const t = atMostOne();
        cfg.datadogAnalyticsRate = t === null ? 0 : parseFloat64(t);
        const r = cfg.datadogAnalyticsRate;
        if (r > 1 || r < 0) errorAt(t ?? line, `datadog analytics rate must be between 0 and 1, '${goF(r)}' is not supported`);
        break;
      }
      case 'zipkin_max_backlog_size':
        cfg.zipkinMaxBacklogSize = atoi(exactlyOne());
        break;
      case 'zipkin_max_batch_size':
        cfg.zipkinMaxBatchSize = atoi(exactlyOne());
        break;
      case 'zipkin_max_batch_interval': {
        const t = exactlyOne();
        try {
          cfg.zipkinMaxBatchIntervalMs = parseGoDurationMs(t.text);
        } catch (err) {
          if (err instanceof DurationError) errorAt(t, err.message);
          throw err;
        }
        break;
      }
      default:
        errorAt(line, `unknown property '${excerpt(line.name)}'`);
    }
  }
  return cfg;
}

function traceWarning(cfg: TraceConfig): string {
  return (
    `plugin/trace: OpenTracing is not available in node-local-dns: no spans are sent to ${cfg.endpoint} (${cfg.endpointType}). ` +
    'Follow queries with the log or dnstap plugins; for timing profile the Node.js process (--cpu-prof, or the inspector with --inspect=127.0.0.1:9229)'
  );
}

export const traceSetup: PluginSetup = {
  name: 'trace',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const cfg = parseTrace(d);
    // Serving worker threads load the same config: the main thread alone says it, once per load.
    if (isMainThread) ctx.log.warn(traceWarning(cfg));
    return new TracePlugin(cfg);
  },
};
