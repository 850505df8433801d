/**
 * Rendering node-cache's template Corefile (`Corefile.base`, the `node-local-dns` ConfigMap) into
 * the Corefile that is served, the way k8s-dns-node-cache does it:
 *
 *  - `__PILLAR__LOCAL__DNS__`     → the `-localip` addresses, space-separated (a `bind` line lists
 *                                   both families of a dual-stack list); followed by `:PORT` (an
 *                                   address, as in `health __PILLAR__LOCAL__DNS__:8080`), the first
 *                                   `-localip` address alone, in brackets when IPv6
 *                                   (`health [fd00::10]:8080`);
 *  - `__PILLAR__DNS__SERVER__`    → removed (its address is already part of `-localip`);
 *  - `__PILLAR__CLUSTER__DNS__`   → the cluster IP of `-upstreamsvc`, read from the environment
 *                                   variable Kubernetes sets for it (`KUBE_DNS_UPSTREAM_SERVICE_HOST`
 *                                   for `kube-dns-upstream`), in brackets when IPv6 and followed by
 *                                   `:PORT` (`forward . __PILLAR__CLUSTER__DNS__` takes a bare IPv6
 *                                   address, as CoreDNS's forward does);
 *  - `__PILLAR__UPSTREAM__SERVERS__` → the kube-dns ConfigMap's `upstreamNameservers`, or
 *                                   `/etc/resolv.conf` when there are none. With custom upstreams a
 *                                   `forward . __PILLAR__UPSTREAM__SERVERS__ { force_tcp }` block is
 *                                   turned into a plain `forward` line (custom upstreams get UDP);
 *  - each `stubDomains` entry becomes an extra server block appended at the end. Unlike node-cache
 *    the block carries the template's first `prometheus` address (`:9253` in the stock Corefile;
 *    `{$NODE_LOCAL_DNS_METRICS_PORT}` forms stay as written, so a standby whose metrics port
 *    differs uses its own), so stub traffic shows up in the metrics. A template without
 *    `prometheus` gets stub blocks without it.
 *
 * Differences on purpose: node-cache writes every `-localip` address, unbracketed, in front of
 * `:PORT` too, which CoreDNS rejects for more than one address or an IPv6 one (`health
 * 169.254.20.10 10.96.0.10:8080`, `health fd00::10:8080`); for one IPv4 address the output is
 * the same. A missing or malformed service variable is a `TemplateError` naming the
 * variable (node-cache writes `<nil>` into the Corefile); stub blocks are emitted in sorted order
 * (node-cache follows Go's random map order); the TCP→UDP rewrite tolerates any indentation.
 */
import { isIP } from 'node:net';
import { parseCorefile } from '../corefile/parser.ts';
import { parseServerKey } from '../corefile/address.ts';

export const PILLAR = {
  localDns: '__PILLAR__LOCAL__DNS__',
  dnsServer: '__PILLAR__DNS__SERVER__',
  clusterDns: '__PILLAR__CLUSTER__DNS__',
  upstreamServers: '__PILLAR__UPSTREAM__SERVERS__',
} as const;

const DEFAULT_RESOLV_CONF = '/etc/resolv.conf';
/** Cache TTL of generated stub domain blocks (seconds), as node-cache. */
const STUB_CACHE_TTL_SEC = 30;
/** The metrics listener of the stock Corefile (what stub blocks get when the template uses it). */
const STUB_PROMETHEUS_ADDR = ':9253';

const TemplateErrorCode = {
  SERVICE_ENV: 'ERR_TEMPLATE_SERVICE_ENV',
  LOCAL_IPS: 'ERR_TEMPLATE_LOCAL_IPS',
} as const;
type TemplateErrorCode = (typeof TemplateErrorCode)[keyof typeof TemplateErrorCode];

export class TemplateError extends Error {
  readonly code: TemplateErrorCode;
  constructor(code: TemplateErrorCode, message: string) {
    super(message);
    this.name = 'TemplateError';
    this.code = code;
  }
}

/**
 * The environment variable holding a service's cluster IP
 * (Kubernetes service environment variables: upper case, `-` → `_`, suffix `_SERVICE_HOST`).
 */
export function serviceHostEnvName(serviceName: string): string {
  return `${serviceName.replaceAll('-', '_').toUpperCase()}_SERVICE_HOST`;
}

/** The cluster IP of `serviceName` from `env`; TemplateError when absent or not an IP address. */
export function clusterDnsIp(serviceName: string, env: Readonly<Record<string, string | undefined>>): string {
  const name = serviceHostEnvName(serviceName);
  const value = env[name];
  if (value === undefined || value === '') {
    throw new TemplateError(
      TemplateErrorCode.SERVICE_ENV,
      `the template uses ${PILLAR.clusterDns} but environment variable ${name} (cluster IP of service ` + `"${serviceName}", see -upstreamsvc) is not set`,
    );
  }
  if (isIP(value.trim()) === 0) {
    throw new TemplateError(
      TemplateErrorCode.SERVICE_ENV,
      `environment variable ${name} (cluster IP of service "${serviceName}") is not an IP address: ${JSON.stringify(value)}`,
    );
  }
  return value.trim();
}

/** An IP address as the host part of `HOST:PORT` (CoreDNS's, Go's JoinHostPort): IPv6 in brackets. */
export function hostForPort(ip: string): string {
  return isIP(ip) === 6 ? `[${ip}]` : ip;
}

export interface RenderInput {
  /** Contents of Corefile.base. */
  base: string;
  /** `-localip` addresses. */
  localIps: readonly string[];
  /** `-upstreamsvc`. */
  upstreamSvc: string;
  env: Readonly<Record<string, string | undefined>>;
  /** kube-dns ConfigMap `upstreamNameservers` (may be empty). */
  upstreamNameservers: readonly string[];
  /** kube-dns ConfigMap `stubDomains`: domain → nameservers. */
  stubDomains: ReadonlyMap<string, readonly string[]>;
  /** `-dns.port`, used in the stub domain blocks' keys. */
  dnsPort: number;
  /** Used when there are no custom upstreams; default /etc/resolv.conf. */
  resolvConf?: string;
}

export interface RenderResult {
  corefile: string;
  /** What replaced __PILLAR__UPSTREAM__SERVERS__ (space-separated servers, or the resolv.conf path). */
  upstream: string;
  stubDomainCount: number;
  /**
   * Zones of the template's blocks that forward to `__PILLAR__CLUSTER__DNS__` (kube-dns through
   * `-upstreamsvc`): the cluster zones, whatever the cluster domain is called. Empty when the
   * template has none or cannot be parsed (the served Corefile's own check reports that).
   */
  clusterZones: string[];
  /** Non-fatal findings for the log (unknown __PILLAR__ variables left, missing TCP block). */
  warnings: string[];
}

/**
 * A stub domain server block (node-cache's layout, plus `prometheus` on `metricsAddress` unless
 * it is null).
 */
export function stubDomainBlock(
  domain: string,
  servers: readonly string[],
  localIps: readonly string[],
  dnsPort: number,
  metricsAddress: string | null = STUB_PROMETHEUS_ADDR,
): string {
  return (
    `\n${domain}:${dnsPort} {\n` +
    `    errors\n` +
    `    cache ${STUB_CACHE_TTL_SEC}\n` +
    `    bind ${localIps.join(' ')}\n` +
    `    forward . ${servers.join(' ')}\n` +
    (metricsAddress === null ? '' : `    prometheus ${metricsAddress}\n`) +
    `}\n`
  );
}

/** The address of the template's first `prometheus` directive, or null when it has none. */
export function firstPrometheusAddress(corefile: string): string | null {
  const m = /^[ \t]*prometheus(?:[ \t]+([^\s#]+))?(?:[ \t]+\{)?[ \t]*(?:#.*)?$/m.exec(corefile);
  if (m === null) return null;
  // `prometheus` alone, or `prometheus {`, listens on CoreDNS's default address.
  const address = m[1];
  return address === undefined || address === '{' ? 'localhost:9153' : address;
}

/** `forward . __PILLAR__UPSTREAM__SERVERS__ { force_tcp }` with its indentation captured. */
const TCP_UPSTREAM_BLOCK = /^([ \t]*)forward[ \t]+\.[ \t]+__PILLAR__UPSTREAM__SERVERS__[ \t]*\{[ \t]*\r?\n[ \t]*force_tcp[ \t]*\r?\n[ \t]*\}[ \t]*$/gm;

export function renderCorefile(input: RenderInput): RenderResult {
  const warnings: string[] = [];
  let text = input.base;

  if (text.includes(PILLAR.localDns) && input.localIps.length === 0) {
    throw new TemplateError(TemplateErrorCode.LOCAL_IPS, `the template uses ${PILLAR.localDns} but no -localip was given`);
  }

  const customUpstream = input.upstreamNameservers.join(' ');
  let upstream: string;
  if (customUpstream === '') {
    upstream = input.resolvConf ?? DEFAULT_RESOLV_CONF;
    text = text.replaceAll(PILLAR.upstreamServers, upstream);
  } else {
    upstream = customUpstream;
    let replacedTcp = false;
    text = text.replace(TCP_UPSTREAM_BLOCK, (_m, indent: string) => {
      replacedTcp = true;
      return `${indent}forward . ${customUpstream}`;
    });
    if (text.includes(PILLAR.upstreamServers)) {
      if (!replacedTcp) warnings.push('no TCP upstream forward block found; assuming the upstream forward already uses UDP');
      text = text.replaceAll(PILLAR.upstreamServers, customUpstream);
    }
  }

  if (text.includes(PILLAR.clusterDns)) {
    const ip = clusterDnsIp(input.upstreamSvc, input.env);
    text = text.replaceAll(`${PILLAR.clusterDns}:`, `${hostForPort(ip)}:`).replaceAll(PILLAR.clusterDns, ip);
  }
  if (input.localIps.length > 0) text = text.replaceAll(`${PILLAR.localDns}:`, `${hostForPort(input.localIps[0]!)}:`);
  text = text.replaceAll(PILLAR.localDns, input.localIps.join(' '));
  text = text.replaceAll(PILLAR.dnsServer, '');

  const leftovers = new Set(text.match(/__PILLAR__[A-Z_]*__/g) ?? []);
  for (const v of leftovers) warnings.push(`template variable ${v} is not substituted by node-local-dns and was left as is`);

  const domains = [...input.stubDomains.keys()].sort();
  let stubs = '';
  const metricsAddress = firstPrometheusAddress(text);
  for (const d of domains) stubs += stubDomainBlock(d, input.stubDomains.get(d)!, input.localIps, input.dnsPort, metricsAddress);

  return { corefile: text + stubs, upstream, stubDomainCount: domains.length, clusterZones: clusterZonesOf(input.base), warnings };
}

/** The zones of the blocks of `base` that send to `__PILLAR__CLUSTER__DNS__` (their forward), sorted, unique. */
export function clusterZonesOf(base: string): string[] {
  const zones = new Set<string>();
  try {
    // No environment: `{$VAR}` placeholders stay words, which is all the keys and forwards need.
    for (const block of parseCorefile(base, 'Corefile.base', {})) {
      const toClusterDns = block.directives.some((d) => d.args.some((a) => a.text === PILLAR.clusterDns));
      if (!toClusterDns) continue;
      for (const key of block.keys) zones.add(parseServerKey(key).zone);
    }
  } catch {
    return [];
  }
  return [...zones].sort();
}
