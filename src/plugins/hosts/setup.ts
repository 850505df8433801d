/**
 * `hosts` directive, read as CoreDNS's plugin/hosts/setup.go reads it:
 *
 *   hosts [FILE [ZONES...]] {
 *       [INLINE]
 *       ttl SECONDS
 *       no_reverse
 *       reload DURATION
 *       fallthrough [ZONES...]
 *       fallthrough_unsupported
 *   }
 *
 * FILE defaults to /etc/hosts; ZONES to the server block's zones. Defaults: ttl 3600, reload 5s
 * (0 turns reloading off), PTR entries made. Every block line before a `fallthrough` line that
 * is no property is an inline hosts line; after it, an unknown word is an error. A FILE given
 * in the Corefile is looked at once here: missing is a warning (it may appear later), a
 * directory is a warning, any other failure to stat it is an error. Error texts are CoreDNS's.
 */
import { statSync } from 'node:fs';
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { DurationError, parseGoDurationNs } from '../../util/duration.ts';
import { HostsPlugin, type HostsOptions } from './hosts.ts';
import { zonesFromArgs } from './zones.ts';

const DEFAULT_HOSTS_PATH = '/etc/hosts';
const DEFAULT_TTL_SEC = 3600;
const DEFAULT_RELOAD_MS = 5000;

/** Go's os error texts for the errno codes a stat may fail with. */
const GO_ERRNO_TEXT: Record<string, string> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOTDIR: 'not a directory',
  ELOOP: 'too many levels of symbolic links',
  ENAMETOOLONG: 'file name too long',
  EIO: 'input/output error',
  EOVERFLOW: 'value too large for defined data type',
};

/** Go's strconv.Atoi on a 64-bit platform; null where it fails. */
function atoi(text: string): number | null {
  if (!/^[+-]?[0-9]+$/.test(text)) return null;
  const v = BigInt(text);
  if (v > (1n << 63n) - 1n || v < -(1n << 63n)) return null;
  return Number(v);
}

export interface ParsedHosts {
  options: HostsOptions;
  /** Warnings CoreDNS logs while setting up (a missing file, a directory). */
  warnings: string[];
  /** The file was missing at setup (its first read need not log it again). */
  missing: boolean;
}

/** Parses a `hosts` directive (exported for tests). */
export function parseHosts(d: Directive, blockZones: readonly string[]): ParsedHosts {
  const options: HostsOptions = {
    path: DEFAULT_HOSTS_PATH,
    zones: [...blockZones],
    ttlSec: DEFAULT_TTL_SEC,
    autoReverse: true,
    reloadMs: DEFAULT_RELOAD_MS,
    fall: null,
    fallthroughUnsupported: false,
    inline: [],
  };
  const warnings: string[] = [];
  let missing = false;
  let args: Token[] = d.args;
  if (args.length >= 1) {
    const pathTok = args[0]!;
    options.path = pathTok.text;
    args = args.slice(1);
    try {
      if (statSync(options.path).isDirectory()) warnings.push(`plugin/hosts: Hosts file ${JSON.stringify(options.path)} is a directory`);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e.code !== 'ENOENT') {
        const why = (e.code !== undefined ? GO_ERRNO_TEXT[e.code] : undefined) ?? e.message;
        errorAt(pathTok, `unable to access hosts file '${options.path}': stat ${options.path}: ${why}`);
      }
      warnings.push(`plugin/hosts: File does not exist: ${options.path}`);
      missing = true;
    }
    if (args.length > 0) options.zones = zonesFromArgs(args.map((a) => a.text));
  }

  let unsupportedLine: Directive | null = null;
  for (const line of blockLines(d)) {
    const rest = line.args;
    if (line.block !== null) argCountError(rest.length > 0 ? rest[rest.length - 1]! : line);
    switch (line.name) {
      case 'fallthrough':
        options.fall = rest.length === 0 ? ['.'] : zonesFromArgs(rest.map((a) => a.text));
        break;
      case 'fallthrough_unsupported':
        if (rest.length !== 0) argCountError(rest[rest.length - 1]!);
        options.fallthroughUnsupported = true;
        unsupportedLine = line;
        break;
      case 'no_reverse':
        options.autoReverse = false;
        break;
      case 'ttl': {
        if (rest.length < 1) errorAt(line, 'ttl needs a time in second');
        const ttl = atoi(rest[0]!.text);
        if (ttl === null) errorAt(rest[0]!, 'ttl needs a number of second');
        if (ttl <= 0 || ttl > 65535) errorAt(rest[0]!, 'ttl provided is invalid');
        options.ttlSec = ttl;
        break;
      }
      case 'reload': {
        if (rest.length !== 1) errorAt(rest.length > 0 ? rest[rest.length - 1]! : line, 'reload needs a duration (zero seconds to disable)');
        const word = rest[0]!.text;
        let ns: bigint;
        try {
          ns = parseGoDurationNs(word);
        } catch (err) {
          if (err instanceof DurationError) errorAt(rest[0]!, `invalid duration for reload '${word}'`);
          throw err;
        }
        if (ns < 0n) errorAt(rest[0]!, `invalid negative duration for reload '${word}'`);
        // Timers count whole milliseconds: a positive period under 1 ms runs every millisecond.
        options.reloadMs = ns === 0n ? 0 : Math.max(1, Math.round(Number(ns) / 1e6));
        break;
      }
      default:
        if (options.fall === null || options.fall.length === 0) {
          options.inline.push([line.name, ...rest.map((a) => a.text)].join(' '));
          break;
        }
        errorAt(line, `unknown property '${line.name}'`);
    }
  }
  if (options.fallthroughUnsupported && (options.fall === null || options.fall.length === 0)) {
    errorAt(unsupportedLine!, 'fallthrough_unsupported requires fallthrough');
  }
  return { options, warnings, missing };
}

export const hostsSetup: PluginSetup = {
  name: 'hosts',
  setup(d: Directive, ctx: SetupContext): Plugin {
    const parsed = parseHosts(d, ctx.zones);
    for (const w of parsed.warnings) ctx.log.warn(w);
    return new HostsPlugin(parsed.options, { log: ctx.log, initialFailure: parsed.missing ? 'ENOENT' : '' });
  },
};
