/**
 * `dnstap SOCKET [full] [WRITEBUFFER] [QUEUE] { identity ID; version VER; extra EXTRA; skipverify }`
 * as CoreDNS's plugin/dnstap/setup.go reads it; several `dnstap` lines in a block are several
 * taps, each getting every message. SOCKET: `unix:///path`, `tcp://host:port`, or a bare path
 * (a Unix socket). The second argument turns on wire messages only when it is exactly `full`
 * (anything else there is ignored, as CoreDNS does). WRITEBUFFER (MiB, 1..1024) and QUEUE
 * (× 10,000 messages, 1..4096) are CoreDNS's multipliers.
 */
import { hostname } from 'node:os';
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, errorAt, expectArgs, unknownPropertyError } from '../../corefile/setup-helpers.ts';
import { VERSION } from '../../version.ts';
import { DnstapPlugin, Tap, PLUGIN_NAME, type TapConfig } from './dnstap.ts';
import { FRAMESTREAM_DEFAULTS, FrameStreamClient, type Endpoint, type FrameStreamOptions } from './framestream.ts';
import { collectDnstapGlobal } from './metrics.ts';

/** CoreDNS's base sizes: 10,000 queued messages, 1 MiB TCP write buffer. */
const QUEUE_BASE = 10_000;
const WRITE_BUFFER_BASE = 1024 * 1024;
const MAX_WRITE_BUFFER_MULTIPLE = 1024;
const MAX_QUEUE_MULTIPLE = 4096;
/**
 * Our own bound on the bytes a tap's queue holds (per serving thread), whatever QUEUE says:
 * CoreDNS's largest queue (40,960,000 messages) would not fit in node-cache's memory limit.
 */
const QUEUE_MAX_BYTES = 32 * 1024 * 1024;

export interface ParsedTap {
  config: TapConfig;
  endpoint: Endpoint;
  queueCapacity: number;
  writeBufferBytes: number;
}

function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** strconv.Atoi's checks with Go's error text. */
function atoi(t: Token, what: string): number {
  if (!/^[+-]?[0-9]+$/.test(t.text)) errorAt(t, `dnstap: invalid ${what} ${goQuote(t.text)}: strconv.Atoi: parsing ${goQuote(t.text)}: invalid syntax`);
  const v = Number(t.text);
  if (!Number.isSafeInteger(v) || Math.abs(v) > 2 ** 63)
    errorAt(t, `dnstap: invalid ${what} ${goQuote(t.text)}: strconv.Atoi: parsing ${goQuote(t.text)}: value out of range`);
  return v;
}

function parseEndpoint(t: Token): Endpoint {
  const text = t.text;
  if (text.startsWith('tls://')) {
    errorAt(t, `dnstap: tls:// endpoints are not supported by node-local-dns: ${text} (use unix:// or tcp://)`);
  }
  if (text.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      return argCountError(t);
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    if (host === '' || url.port === '') errorAt(t, `dnstap: missing port in address ${goQuote(url.host || text.slice(6))}`);
    return { kind: 'tcp', host, port: Number(url.port) };
  }
  const path = text.startsWith('unix://') ? text.slice('unix://'.length) : text;
  if (path === '') argCountError(t);
  return { kind: 'unix', path };
}

function parseDnstap(d: Directive): ParsedTap {
  const args = expectArgs(d, 1, Infinity);
  if (args[0]!.text === 'listen') {
    if (args.length < 2) errorAt(d, 'dnstap listen requires an endpoint argument');
    errorAt(args[0]!, 'dnstap listen (accepting sink connections) is not supported by node-local-dns; give the address of a receiver to connect to');
  }
  const endpoint = parseEndpoint(args[0]!);
  let writeMultiple = 1;
  let queueMultiple = 1;
  if (args.length >= 3) {
    const v = atoi(args[2]!, 'MultipleTcpWriteBuf');
    if (v < 1 || v > MAX_WRITE_BUFFER_MULTIPLE)
      errorAt(args[2]!, `dnstap: MultipleTcpWriteBuf must be between 1 and ${MAX_WRITE_BUFFER_MULTIPLE} (MiB units): ${v}`);
    writeMultiple = v;
  }
  if (args.length >= 4) {
    const v = atoi(args[3]!, 'MultipleQueue');
    if (v < 1 || v > MAX_QUEUE_MULTIPLE) errorAt(args[3]!, `dnstap: MultipleQueue must be between 1 and ${MAX_QUEUE_MULTIPLE} (x10k messages): ${v}`);
    queueMultiple = v;
  }
  const config: TapConfig = {
    socket: args[0]!.text,
    full: args.length >= 2 && args[1]!.text === 'full',
    identity: Buffer.from(hostname()),
    version: Buffer.from(`node-local-dns-${VERSION}`),
    extra: null,
    skipVerify: false,
  };
  for (const line of d.block ?? []) {
    // Caddy reads the block word by word: a surplus word on a line is taken as the next property.
    const one = (): string => {
      if (line.args.length === 0) argCountError(line);
      if (line.args.length > 1) unknownPropertyError({ ...line, name: line.args[1]!.text, line: line.args[1]!.line });
      return line.args[0]!.text;
    };
    switch (line.name) {
      case 'identity':
        config.identity = Buffer.from(one());
        break;
      case 'version':
        config.version = Buffer.from(one());
        break;
      case 'extra':
        config.extra = one();
        break;
      case 'skipverify':
        if (line.args.length > 0) unknownPropertyError({ ...line, name: line.args[0]!.text, line: line.args[0]!.line });
        config.skipVerify = true;
        break;
      case 'tls':
        errorAt(line, 'tls directive only valid for listeners');
        break;
      default:
        unknownPropertyError(line);
    }
  }
  return { config, endpoint, queueCapacity: queueMultiple * QUEUE_BASE, writeBufferBytes: writeMultiple * WRITE_BUFFER_BASE };
}

/** Options for tests: shorter timers. */
export type DnstapTuning = Partial<Omit<FrameStreamOptions, 'endpoint' | 'queueCapacity' | 'writeBufferBytes'>>;

function makeDnstapSetup(tuning: DnstapTuning = {}): PluginSetup {
  const build = (ds: readonly Directive[], ctx: SetupContext): Plugin => {
    const taps = ds.map((d) => {
      const p = parseDnstap(d);
      const opts: FrameStreamOptions = {
        ...FRAMESTREAM_DEFAULTS,
        ...tuning,
        endpoint: p.endpoint,
        queueCapacity: p.queueCapacity,
        queueMaxBytes: QUEUE_MAX_BYTES,
        writeBufferBytes: p.writeBufferBytes,
      };
      return new Tap(p.config, new FrameStreamClient(opts, ctx.log));
    });
    return new DnstapPlugin(taps, ctx.clock, (m) => ctx.log.error(m));
  };
  return {
    name: PLUGIN_NAME,
    repeatable: true,
    collectGlobal: collectDnstapGlobal,
    setupAll: build,
    setup: (d, ctx) => build([d], ctx),
  };
}

export const dnstapSetup: PluginSetup = makeDnstapSetup();
