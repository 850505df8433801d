/**
 * The hosts file format (hosts(5)) as CoreDNS's hosts plugin reads it, and the lookups over it.
 *
 *  - A line is `ADDRESS NAME [NAME...]`; text from `#` to the end of the line is a comment;
 *    fields are separated by white space; lines with fewer than two fields, or whose first field
 *    is not an IPv4/IPv6 address (see ip.ts), are skipped. A trailing CR is dropped (CRLF files).
 *  - Names are lower-cased and made fully qualified. Names outside the plugin's zones are
 *    skipped. A name whose first label is `*` is a wildcard: it matches exactly one more label
 *    (`*.example.com.` matches `a.example.com.`, neither `example.com.` nor `a.b.example.com.`),
 *    and makes no PTR entry.
 *  - An IPv4-mapped IPv6 address (`::ffff:10.0.0.2`) is an IPv4 address: it gives A records
 *    and its PTR entry is under in-addr.arpa.
 *  - Repeated names and addresses are kept as often as they are written (answers repeat them),
 *    as CoreDNS does.
 *  - A line longer than 65535 bytes ends the parse: the lines before it count, the rest of the
 *    file is ignored (Go's bufio.Scanner limit, which CoreDNS hits the same way).
 */
import { normalizeZone } from '../../corefile/address.ts';
import { ipText, isV4, parseIp } from './ip.ts';
import type { ZoneList } from './zones.ts';

/** Address fields remembered while parsing one file (distinct addresses beyond it are parsed each time). */
const MAX_REMEMBERED_ADDRESSES = 4096;

/** Longest line Go's default bufio.Scanner returns. */
const MAX_LINE_BYTES = 65535;

/** Go's unicode.IsSpace set (bytes.Fields separators). */
const FIELD_SEPARATORS = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+/;

export class HostsMap {
  /** Exact names (lower case, fully qualified) to addresses (Go's IP.String() text). */
  readonly name4 = new Map<string, string[]>();
  readonly name6 = new Map<string, string[]>();
  /** Wildcard owner names (`*.example.com.`) to addresses. */
  readonly wild4 = new Map<string, string[]>();
  readonly wild6 = new Map<string, string[]>();
  /** Address text to names, for PTR (empty with no_reverse). */
  readonly addr = new Map<string, string[]>();
  /** While parsing: address fields seen and what they parse to (null: no address). */
  readonly addressTexts = new Map<string, { v4: boolean; text: string } | null>();

  /**
   * Entries as CoreDNS counts them for coredns_hosts_entries: every address of every name
   * (exact and wildcard) plus every name of every address.
   */
  count(): number {
    let n = 0;
    for (const m of [this.name4, this.name6, this.wild4, this.wild6, this.addr]) for (const v of m.values()) n += v.length;
    return n;
  }
}

export interface ParseOptions {
  /** Names outside these zones are skipped. */
  zones: ZoneList;
  /** Make PTR entries (false with no_reverse). */
  autoReverse: boolean;
}

function push(m: Map<string, string[]>, key: string, value: string): void {
  const list = m.get(key);
  if (list === undefined) m.set(key, [value]);
  else list.push(value);
}

/**
 * Parses hosts lines into `into`. Returns false when a line over MAX_LINE_BYTES stopped the
 * parse (the lines before it were added).
 */
function parseLines(lines: readonly string[], from: number, to: number, opts: ParseOptions, into: HostsMap): boolean {
  const addresses = into.addressTexts;
  for (let i = from; i < to; i++) {
    let line = lines[i]!;
    // UTF-16 units are at most 3 UTF-8 bytes each: count bytes only for long lines.
    if (line.length * 3 > MAX_LINE_BYTES && Buffer.byteLength(line) > MAX_LINE_BYTES) return false;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const hash = line.indexOf('#');
    if (hash >= 0) line = line.slice(0, hash);
    const f = line.split(FIELD_SEPARATORS);
    // split leaves an empty first field for leading white space and an empty last one for trailing.
    let a = 0;
    let b = f.length;
    if (b > 0 && f[0] === '') a++;
    if (b > a && f[b - 1] === '') b--;
    if (b - a < 2) continue;
    // Blocklists repeat one address on every line: parse it once and share its text.
    let known = addresses.get(f[a]!);
    if (known === undefined) {
      const ip = parseIp(f[a]!);
      known = ip === null ? null : { v4: isV4(ip), text: ipText(ip) };
      if (addresses.size < MAX_REMEMBERED_ADDRESSES) addresses.set(f[a]!, known);
    }
    if (known === null) continue;
    const v4 = known.v4;
    const text = known.text;
    for (let j = a + 1; j < b; j++) {
      const name = normalizeZone(f[j]!);
      if (!opts.zones.contains(name)) continue;
      if (name.length >= 2 && name[0] === '*' && name[1] === '.') {
        push(v4 ? into.wild4 : into.wild6, name, text);
        continue;
      }
      push(v4 ? into.name4 : into.name6, name, text);
      if (opts.autoReverse) push(into.addr, text, name);
    }
  }
  return true;
}

/** Splits hosts text into lines (a final line without a newline counts). */
function splitLines(text: string): string[] {
  const lines = text.split('\n');
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  return lines;
}

/** Parses hosts text at once (inline entries, tests). */
export function parseHostsText(text: string, opts: ParseOptions): HostsMap {
  const map = new HostsMap();
  const lines = splitLines(text);
  parseLines(lines, 0, lines.length, opts, map);
  map.addressTexts.clear();
  return map;
}

/** Lines parsed between two yields to the event loop when a file is parsed in the background. */
const PARSE_SLICE_LINES = 512;

/**
 * Parses hosts text in slices of PARSE_SLICE_LINES lines, yielding to the event loop between
 * them, so a large file does not hold up queries. `cancelled()` is checked at each slice.
 * Resolves to null when cancelled.
 */
export async function parseHostsTextAsync(text: string, opts: ParseOptions, cancelled: () => boolean): Promise<HostsMap | null> {
  const map = new HostsMap();
  const lines = splitLines(text);
  for (let i = 0; i < lines.length; i += PARSE_SLICE_LINES) {
    if (i > 0) await new Promise<void>((resolve) => setImmediate(resolve));
    if (cancelled()) return null;
    if (!parseLines(lines, i, Math.min(lines.length, i + PARSE_SLICE_LINES), opts, map)) break;
  }
  map.addressTexts.clear();
  return map;
}

/**
 * `*.` plus all but the first label of `name` (lower case, fully qualified), or '' for a name
 * of one label or the root (miekg/dns NextLabel, which skips escaped dots).
 */
export function wildcardOf(name: string): string {
  for (let i = 0; i < name.length - 1; i++) {
    if (name.charCodeAt(i) !== 0x2e) continue;
    let backslashes = 0;
    for (let j = i - 1; j >= 0 && name.charCodeAt(j) === 0x5c; j--) backslashes++;
    if (backslashes % 2 === 1) continue;
    return '*.' + name.slice(i + 1);
  }
  return '';
}

/** The addresses of `name` in one map: its exact entry, else its wildcard's. */
function lookupIn(exact: Map<string, string[]>, wild: Map<string, string[]>, name: string): string[] | undefined {
  const hit = exact.get(name);
  if (hit !== undefined) return hit;
  if (wild.size === 0) return undefined;
  const pattern = wildcardOf(name);
  return pattern === '' ? undefined : wild.get(pattern);
}

const NONE: readonly string[] = [];

/**
 * Addresses of `name` (lower case, fully qualified): the file's first, then the inline ones',
 * each map answering with its exact entry or else its wildcard entry.
 */
export function lookupHost(file: HostsMap, inline: HostsMap, name: string, v4: boolean): readonly string[] {
  const a = v4 ? lookupIn(file.name4, file.wild4, name) : lookupIn(file.name6, file.wild6, name);
  const b = v4 ? lookupIn(inline.name4, inline.wild4, name) : lookupIn(inline.name6, inline.wild6, name);
  if (a === undefined) return b ?? NONE;
  if (b === undefined) return a;
  return a.concat(b);
}

/** Names of address text `addr` ('' for none): the file's first, then the inline ones. */
export function lookupAddr(file: HostsMap, inline: HostsMap, addr: string): readonly string[] {
  if (addr === '') return NONE;
  const a = file.addr.get(addr);
  const b = inline.addr.get(addr);
  if (a === undefined) return b ?? NONE;
  if (b === undefined) return a;
  return a.concat(b);
}
