/**
 * `forward` directive, parsed as CoreDNS's plugin/forward/setup.go does:
 *
 *   forward FROM TO... {
 *       except IGNORED_NAMES...
 *       force_tcp
 *       prefer_udp
 *       expire DURATION
 *       max_fails INTEGER
 *       health_check DURATION [no_rec] [domain FQDN]
 *       policy random|round_robin|sequential
 *       max_concurrent INTEGER
 *   }
 *
 * FROM is a zone (`.`, `cluster.local`, a CIDR as a reverse zone; a port or dns:// prefix is
 * ignored as in CoreDNS's Host.NormalizeExact). TO is `IP`, `IP:port`, `dns://IP[:port]`,
 * `[v6]:port`, or a resolv.conf-format file whose `nameserver` lines are used with port 53;
 * at most 15 upstreams in all. Defaults are CoreDNS's: expire 10s, max_fails 2, health_check
 * 0.5s with RD set and domain `.`, policy random; without `max_concurrent`, a share of the
 * default in-flight budget (budget.ts: 10,000 per config load, split evenly) instead of
 * CoreDNS's no limit.
 * Only plain DNS is spoken: tls://, https://, grpc://, quic:// and the TLS/DoH options are
 * configuration errors. Errors carry CoreDNS's wording at the offending line.
 */
import { isIP } from 'node:net';
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import { collectForwardGlobal } from './metrics.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt, expectArgs } from '../../corefile/setup-helpers.ts';
import { AddressError, splitHostPort } from '../../metrics/http-endpoints.ts';
import { DurationError, formatGoDurationNs, parseGoDurationNs } from '../../util/duration.ts';
import { nameToLabels } from '../../wire/name.ts';
import { DEFAULT_INFLIGHT_TOTAL, sharedBudget } from './budget.ts';
import { ForwardPlugin, PLUGIN_NAME, type ForwardSettings, type ForwardTuning } from './forward.ts';
import { POLICY_NAMES, type PolicyName } from './policy.ts';
import { readResolvConf } from './resolvconf.ts';
import type { UpstreamAddress } from './transport-udp.ts';

/** CoreDNS's limit on upstreams per forward (`max` in setup.go). */
const MAX_UPSTREAMS = 15;

const SETTINGS_DEFAULTS = {
  expireMs: 10_000,
  maxFails: 2,
  healthCheckMs: 500,
  hcRecursionDesired: true,
  hcDomain: '.',
  policy: 'random' as PolicyName,
  /** Not set: the default in-flight budget applies (budget.ts). */
  maxConcurrent: null,
} as const;

/** Transport prefixes CoreDNS knows (plugin/pkg/transport); only dns:// is supported here. */
const SCHEMES = ['dns', 'tls', 'https', 'grpc', 'quic', 'https3', 'unix'] as const;

/** Options CoreDNS's forward has that node-local-dns does not implement. */
const UNSUPPORTED_OPTIONS = new Set([
  'tls',
  'tls_servername',
  'max_idle_conns',
  'max_connect_attempts',
  'doh_method',
  'next',
  'next_on_nodata',
  'failfast_all_unhealthy_upstreams',
  'failover',
  'resolver',
  'max_age',
]);

const UINT32_MAX = 0xffffffffn;
const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** parse.Transport: the scheme and the rest. */
function splitScheme(s: string): [string, string] {
  for (const sc of SCHEMES) if (s.startsWith(sc + '://')) return [sc, s.slice(sc.length + 3)];
  return ['dns', s];
}

/** miekg/dns IsDomainName, via our name encoder's checks (empty labels, 63/255 octet limits). */
function isDomainName(s: string): boolean {
  try {
    nameToLabels(s);
    return true;
  } catch {
    return false;
  }
}

function fqdnLower(s: string): string {
  const l = s.toLowerCase();
  return l.endsWith('.') ? l : l + '.';
}

function reverseV4(octets: number[], count: number): string {
  return [...octets.slice(0, count).reverse().map(String), 'in-addr', 'arpa', ''].join('.');
}

function ipv6Nibbles(ip: string): string[] {
  let text = ip.toLowerCase();
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const b = v4.slice(1, 5).map(Number);
    text = text.slice(0, v4.index) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const hg = head ? head.split(':') : [];
  const tg = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : new Array<string>(8 - hg.length - tg.length).fill('0');
  return [...hg, ...fill, ...tg].flatMap((g) => g.padStart(4, '0').split(''));
}

/**
 * CoreDNS's plugin.Host(s).NormalizeExact(): strips a transport prefix and a `:port`, turns a
 * CIDR into reverse zones (IPv4: the classful /8, /16, /24 or /32 networks it covers; IPv6:
 * the nibble-aligned zone that covers it), else lower-cases and qualifies the name.
 * Returns [] when the text is not a valid zone.
 */
export function normalizeExact(text: string): string[] {
  let [, s] = splitScheme(text);
  const colon = s.lastIndexOf(':');
  if (colon === s.length - 1) return [];
  if (colon !== -1 && /^[0-9]+$/.test(s.slice(colon + 1)) && !s.slice(0, colon).endsWith(':')) s = s.slice(0, colon);
  const cidr = /^([^/]+)\/([0-9]{1,3})$/.exec(s);
  if (cidr) {
    const ip = cidr[1]!;
    const ones = Number(cidr[2]);
    if (isIP(ip) === 4 && ones <= 32) {
      const o = ip.split('.').map(Number);
      const addr = ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]!;
      const newLen = ones <= 8 ? 8 : ones <= 16 ? 16 : ones <= 24 ? 24 : 32;
      const mask = ones === 0 ? 0 : (0xffffffff << (32 - ones)) >>> 0;
      const base = (addr & mask) >>> 0;
      const count = 2 ** (newLen - ones);
      const step = 2 ** (32 - newLen);
      const zones: string[] = [];
      for (let i = 0; i < count; i++) {
        const a = base + i * step;
        zones.push(reverseV4([a >>> 24, (a >>> 16) & 0xff, (a >>> 8) & 0xff, a & 0xff], newLen / 8));
      }
      return zones;
    }
    if (isIP(ip) === 6 && ones <= 128) {
      const keep = Math.floor(ones / 4);
      return [[...ipv6Nibbles(ip).slice(0, keep).reverse(), 'ip6', 'arpa', ''].join('.')];
    }
  }
  if (s.length > 255 || !isDomainName(s)) return [];
  return [fqdnLower(s)];
}

function hostPortLabel(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function toAddress(host: string, port: number): UpstreamAddress {
  const bare = host.replace(/%.*$/, '');
  return { host, port, family: isIP(bare) === 6 ? 6 : 4, to: hostPortLabel(host, port) };
}

/** Go's net.SplitHostPort as [host, port]; null where it fails (CoreDNS then takes the word as a bare IP or a file). */
function hostAndPort(s: string): [string, string] | null {
  try {
    const { host, port } = splitHostPort(s);
    return [host, port];
  } catch (err) {
    if (err instanceof AddressError) return null;
    throw err;
  }
}

function parsePort(tok: Token, text: string): number {
  if (!/^[0-9]{1,5}$/.test(text) || Number(text) > 65535) errorAt(tok, `invalid port ${goQuote(text)} in ${goQuote(tok.text)}`);
  return Number(text);
}

/** parse.HostPortOrFile for one TO word: upstream addresses, or the error CoreDNS gives. */
function parseTo(tok: Token): UpstreamAddress[] {
  const [scheme, rest] = splitScheme(tok.text);
  if (scheme !== 'dns') {
    errorAt(tok, `'${scheme}' is not supported as a destination protocol in forward: ${tok.text} (node-local-dns forwards plain DNS over UDP and TCP only)`);
  }
  const hp = hostAndPort(rest);
  if (hp !== null) {
    const [host, portText] = hp;
    if (isIP(host.replace(/%.*$/, '')) !== 0) return [toAddress(host, parsePort(tok, portText))];
  } else {
    const bare = rest.replace(/^\[(.*)\]$/, '$1');
    if (isIP(bare.replace(/%.*$/, '')) !== 0) return [toAddress(bare, 53)];
  }
  const conf = readResolvConf(rest);
  if (conf === null) errorAt(tok, `not an IP address or file: ${goQuote(rest)}`);
  return conf.nameservers.map((ns) => {
    if (isIP(ns.replace(/%.*$/, '')) === 0) errorAt(tok, `nameserver ${goQuote(ns)} in ${rest} is not an IP address`);
    return toAddress(ns, 53);
  });
}

/** strconv.ParseUint(s, 10, 32) with Go's error text. */
function parseUint32(tok: Token): number {
  if (!/^[0-9]+$/.test(tok.text)) errorAt(tok, `strconv.ParseUint: parsing ${goQuote(tok.text)}: invalid syntax`);
  if (BigInt(tok.text) > UINT32_MAX) errorAt(tok, `strconv.ParseUint: parsing ${goQuote(tok.text)}: value out of range`);
  return Number(tok.text);
}

/** strconv.Atoi with Go's error text. */
function atoi(tok: Token): number {
  if (!/^[+-]?[0-9]+$/.test(tok.text)) errorAt(tok, `strconv.Atoi: parsing ${goQuote(tok.text)}: invalid syntax`);
  const v = BigInt(tok.text);
  if (v > INT64_MAX || v < INT64_MIN) errorAt(tok, `strconv.Atoi: parsing ${goQuote(tok.text)}: value out of range`);
  return Number(v);
}

/** time.ParseDuration in nanoseconds, with Go's error text. */
function durationNs(tok: Token): bigint {
  try {
    return parseGoDurationNs(tok.text);
  } catch (err) {
    if (err instanceof DurationError) errorAt(tok, err.message);
    throw err;
  }
}

function nsToMs(ns: bigint): number {
  return Number(ns) / 1e6;
}

/** Parses one `forward` directive into settings (no sockets opened). */
export function parseForward(d: Directive, ctx: Pick<SetupContext, 'log'>): ForwardSettings {
  const args = expectArgs(d, 2, Infinity);
  const fromTok = args[0]!;
  const zones = normalizeExact(fromTok.text);
  if (zones.length === 0) errorAt(fromTok, `unable to normalize '${fromTok.text}'`);
  const from = zones[0]!;
  if (zones.length > 1) {
    ctx.log.warn(`plugin/forward: Unsupported CIDR notation: '${fromTok.text}' expands to multiple zones. Using only '${from}'.`);
  }

  const upstreams: UpstreamAddress[] = [];
  for (const tok of args.slice(1)) upstreams.push(...parseTo(tok));
  if (upstreams.length === 0) errorAt(d, 'no nameservers found');
  if (upstreams.length > MAX_UPSTREAMS) errorAt(d, `more than ${MAX_UPSTREAMS} TOs configured: ${upstreams.length}`);

  const s: ForwardSettings = {
    from,
    ignored: [],
    upstreams,
    forceTcp: false,
    preferUdp: false,
    expireMs: SETTINGS_DEFAULTS.expireMs,
    maxFails: SETTINGS_DEFAULTS.maxFails,
    healthCheckMs: SETTINGS_DEFAULTS.healthCheckMs,
    hcRecursionDesired: SETTINGS_DEFAULTS.hcRecursionDesired,
    hcDomain: SETTINGS_DEFAULTS.hcDomain,
    policy: SETTINGS_DEFAULTS.policy,
    maxConcurrent: SETTINGS_DEFAULTS.maxConcurrent,
  };

  for (const line of blockLines(d)) parseProperty(line, s);
  return s;
}

function parseProperty(line: Directive, s: ForwardSettings): void {
  switch (line.name) {
    case 'except': {
      const names = expectArgs(line, 1, Infinity);
      for (const t of names) s.ignored.push(...normalizeExact(t.text));
      return;
    }
    case 'max_fails':
      s.maxFails = parseUint32(expectArgs(line, 1, 1)[0]!);
      return;
    case 'health_check': {
      const a = expectArgs(line, 1, 4);
      const ns = durationNs(a[0]!);
      if (ns < 0n) errorAt(a[0]!, `health_check can't be negative: ${ns}`);
      s.healthCheckMs = nsToMs(ns);
      s.hcDomain = '.';
      for (let i = 1; i < a.length; i++) {
        const opt = a[i]!;
        if (opt.text === 'no_rec') s.hcRecursionDesired = false;
        else if (opt.text === 'domain') {
          const dom = a[++i];
          if (dom === undefined) argCountError(opt);
          if (dom.text.length > 255 || !isDomainName(dom.text)) errorAt(dom, `health_check: invalid domain name ${dom.text}`);
          s.hcDomain = fqdnLower(dom.text);
        } else errorAt(opt, `health_check: unknown option ${opt.text}`);
      }
      return;
    }
    case 'force_tcp':
      expectArgs(line, 0, 0);
      s.forceTcp = true;
      return;
    case 'prefer_udp':
      expectArgs(line, 0, 0);
      s.preferUdp = true;
      return;
    case 'expire': {
      const t = expectArgs(line, 1, 1)[0]!;
      const ns = durationNs(t);
      if (ns < 0n) errorAt(t, `expire can't be negative: ${formatGoDurationNs(ns)}`);
      s.expireMs = nsToMs(ns);
      return;
    }
    case 'policy': {
      const t = expectArgs(line, 1, 1)[0]!;
      if (!(POLICY_NAMES as readonly string[]).includes(t.text)) errorAt(t, `unknown policy '${t.text}'`);
      s.policy = t.text as PolicyName;
      return;
    }
    case 'max_concurrent': {
      const t = expectArgs(line, 1, 1)[0]!;
      const n = atoi(t);
      if (n < 0) errorAt(t, `max_concurrent can't be negative: ${n}`);
      s.maxConcurrent = n;
      return;
    }
    default:
      if (UNSUPPORTED_OPTIONS.has(line.name)) {
        errorAt(line, `'${line.name}' is not supported by node-local-dns's forward (plain DNS over UDP and TCP only)`);
      }
      errorAt(line, `unknown property '${line.name}'`);
  }
}

/** Registry entry. `tuning` is for tests (shorter timeouts); the Corefile never sets it. */
export function makeForwardSetup(tuning: Partial<ForwardTuning> = {}): PluginSetup {
  return {
    name: PLUGIN_NAME,
    collectGlobal: collectForwardGlobal,
    setup(d: Directive, ctx: SetupContext): Plugin {
      const settings = parseForward(d, ctx);
      const budget = settings.maxConcurrent === null ? sharedBudget(ctx.shared, tuning.inflightBudgetTotal ?? DEFAULT_INFLIGHT_TOTAL) : undefined;
      return new ForwardPlugin(settings, { clock: ctx.clock, log: ctx.log, budget }, tuning);
    },
  };
}

export const forwardSetup: PluginSetup = makeForwardSetup();
