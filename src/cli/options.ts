/**
 * The node-local-dns command line: every flag a k8s-dns-node-cache DaemonSet may pass (node-cache's
 * own flags plus the CoreDNS flags node-cache forwards to coremain), and a few of ours.
 *
 * Compatibility notes (how node-cache flags are read here):
 *  - `-conf` (CoreDNS) names the Corefile to serve; the template is rendered into it. node-cache's
 *    own `-corefile` names the same file and is used when `-conf` is absent. `confGiven` tells
 *    whether `-conf` was on the command line; `flagsGiven` is false for an empty command line
 *    (then the caller runs its embedded default configuration).
 *  - `-syncinterval`: node-cache declares a Go duration flag and then multiplies the value by one
 *    second, so its default `60` (shown as `60ns`) means 60 s. Rule applied here:
 *      * a bare integer `N`            → N seconds;
 *      * an integer count of `ns` (`60ns`) → that many seconds (node-cache's reading);
 *      * any other Go duration (`60s`, `1m30s`, `500ms`) → taken literally.
 *    The result must be positive.
 *  - `-localip` is optional at parse time (an empty list); each given entry must be an IPv4 or IPv6
 *    address. node-cache requires one family; here IPv4 and IPv6 may be mixed (dual-stack, e.g.
 *    `169.254.20.10,fd00::10,10.96.0.10,fd00::a`): every address is treated alike, as node-cache
 *    treats its list (docs/operations.md "Dual-stack").
 *  - Accepted and ignored, with a note in `ignoredFlags`: `-initialdelay` (node-cache versions that
 *    had it), `-setupebtables` (ebtables redirect is not implemented), `-reloadwithsignal`
 *    (reloads are always in-process here).
 */
import { isIP } from 'node:net';
import { FlagError, FlagSet, FlagValueError, formatGoDurationMs } from './flags.ts';
import { parseGoDurationMs } from '../util/duration.ts';

export const DEFAULTS = {
  conf: '/etc/Corefile',
  baseCorefile: '/etc/coredns/Corefile.base',
  kubeDnsConfigMapDir: '/etc/kube-dns',
  upstreamSvc: 'kube-dns',
  interfaceName: 'nodelocaldns',
  interfaceType: 'dummy',
  syncIntervalMs: 60_000,
  healthPort: 8080,
  metricsListenAddress: '0.0.0.0:9353',
  dnsPort: 53,
  rulesBackend: 'iptables',
} as const;

/** `-rulesbackend` values (src/agent/rules.ts). */
export const RULES_BACKENDS = ['iptables', 'nftables', 'auto'] as const;
export type RulesBackendName = (typeof RULES_BACKENDS)[number];

/** Link types `-interfacetype` accepts: both hold addresses with no peer or lower device. */
export const INTERFACE_TYPES = ['dummy', 'bridge'] as const;
export type InterfaceType = (typeof INTERFACE_TYPES)[number];

export interface Options {
  /** Local listen IPs from `-localip`, in the order given (empty when not given). */
  localIps: string[];
  /** IP families of `localIps` in order of first appearance (`[4, 6]` for dual-stack; empty when none). */
  ipFamilies: (4 | 6)[];
  /** The Corefile served (and written from the template): `-conf`, else `-corefile`. */
  corefilePath: string;
  confGiven: boolean;
  /** False when the command line held no flag at all. */
  flagsGiven: boolean;
  baseCorefilePath: string;
  kubeDnsConfigMapDir: string;
  upstreamSvc: string;
  setupInterface: boolean;
  interfaceName: string;
  interfaceType: InterfaceType;
  setupIptables: boolean;
  /** `-rulesbackend`: which tool writes the rules (src/agent/rules.ts). */
  rulesBackend: RulesBackendName;
  syncIntervalMs: number;
  healthPort: number;
  /** `host:port` of the setup-error metrics listener; '' disables it. */
  metricsListenAddress: string;
  skipTeardown: boolean;
  dnsPort: number;
  pidfile: string;
  quiet: boolean;
  version: boolean;
  plugins: boolean;
  /** Serving threads; 0 = the default (src/workers/count.ts: one). */
  workers: number;
  standby: boolean;
  /** `-peerdir`: directory where instances serving the same IPs find each other ('' disables; see src/agent/standby.ts). */
  peerDir: string;
  /** Flags that were given but have no effect here, with the reason (for a startup warning). */
  ignoredFlags: { flag: string; reason: string }[];
  /** Names of all flags given on the command line. */
  given: ReadonlySet<string>;
}

/** `-syncinterval` value parser (see the module comment for the rule). */
export function parseSyncInterval(text: string): number {
  const t = text.trim();
  let ms: number;
  if (/^\+?\d+$/.test(t)) {
    ms = Number(t.replace('+', '')) * 1000;
  } else if (/^\+?\d+ns$/.test(t)) {
    ms = Number(t.replace('+', '').slice(0, -2)) * 1000;
  } else {
    try {
      ms = parseGoDurationMs(t);
    } catch {
      throw new FlagValueError('parse error');
    }
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new FlagValueError('must be positive');
  if (ms > 2_147_483_647) throw new FlagValueError('value out of range');
  return ms;
}

function parsePort(text: string, what: string): number {
  if (!/^\d{1,5}$/.test(text)) throw new FlagError(`invalid ${what} specified - ${JSON.stringify(text)}`);
  const n = Number(text);
  if (n < 1 || n > 65535) throw new FlagError(`invalid ${what} specified - ${JSON.stringify(text)}`);
  return n;
}

/** Splits `host:port` / `[v6]:port` / `:port`; throws FlagError on malformed input. */
export function splitListenAddress(addr: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):(\d{1,5})$/.exec(addr);
  if (!m) throw new FlagError(`invalid value ${JSON.stringify(addr)} for flag -${flag}: want host:port`);
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && isIP(host) !== 6) {
    throw new FlagError(`invalid value ${JSON.stringify(addr)} for flag -${flag}: bad IPv6 address`);
  }
  const port = Number(m[3]);
  if (port > 65535) throw new FlagError(`invalid value ${JSON.stringify(addr)} for flag -${flag}: bad port`);
  return { host, port };
}

/** The flag definitions, for parsing and for `-h`. */
export function optionsFlagSet(programName = 'node-local-dns', version = ''): FlagSet {
  const header =
    `Runs node-local-dns${version ? ` ${version}` : ''}, a NodeLocal DNSCache agent: a caching DNS server ` +
    `on the given local IPs,\nwith the network set-up of k8s-dns-node-cache.\n\n`;
  const fs = new FlagSet(programName, header);
  // node-cache flags
  fs.string('localip', '', 'comma-separated list of IP addresses the cache listens on (IPv4, IPv6, or both for dual-stack)');
  fs.bool('setupinterface', true, 'create the network interface holding the local IPs');
  fs.string('interfacename', DEFAULTS.interfaceName, 'name of the network interface to create');
  fs.custom(
    'syncinterval',
    DEFAULTS.syncIntervalMs,
    'how often the interface and iptables rules are re-checked: ' + 'a Go `duration`, or a bare number of seconds',
    {
      typeName: 'duration',
      parse: parseSyncInterval,
      format: formatGoDurationMs,
    },
  );
  fs.string(
    'metrics-listen-address',
    DEFAULTS.metricsListenAddress,
    'host:port serving the set-up error metrics on /metrics (empty: off). ' +
      'On a local IP it is bound once the interface holds it; an address that cannot be bound is retried every 1s to 30s ' +
      '(counted in nodelocaldns_setup_metrics_listen_errors_total). Without -localip (-conf only) served only when this flag is given',
  );
  fs.bool('setupiptables', true, 'install the NOTRACK/ACCEPT iptables rules for the local IPs (with the back end of -rulesbackend)');
  fs.string('basecorefile', DEFAULTS.baseCorefile, 'template Corefile with __PILLAR__ variables; when missing, the Corefile is served as is');
  fs.string('corefile', DEFAULTS.conf, 'Corefile to write from the template and serve (overridden by -conf)');
  fs.string('kubednscm', DEFAULTS.kubeDnsConfigMapDir, 'directory where the kube-dns ConfigMap (stubDomains, upstreamNameservers) is mounted');
  fs.string('upstreamsvc', DEFAULTS.upstreamSvc, 'service whose cluster IP (from $<NAME>_SERVICE_HOST) replaces __PILLAR__CLUSTER__DNS__');
  fs.string('health-port', String(DEFAULTS.healthPort), 'port of the health endpoint (its traffic is exempted from conntrack)');
  fs.bool('skipteardown', false, 'leave the interface and iptables rules in place on exit');
  fs.custom('initialdelay', 0, 'accepted for compatibility with older node-cache versions; ignored', {
    typeName: 'duration',
    parse: parseSyncInterval,
    format: formatGoDurationMs,
    isZero: (v) => v === 0,
  });
  fs.bool('setupebtables', false, 'accepted for compatibility with node-cache; ebtables rules are not installed');
  fs.bool('reloadwithsignal', false, 'accepted for compatibility with node-cache; reloads are always in-process');
  // CoreDNS flags node-cache forwards
  fs.string('conf', DEFAULTS.conf, 'Corefile to load');
  fs.string('dns.port', String(DEFAULTS.dnsPort), 'default port for server blocks without one');
  fs.string('pidfile', '', 'file to write the process id to once serving, in every mode (removed on a clean exit)');
  fs.bool('quiet', false, 'no initialisation output');
  fs.bool('version', false, 'print the version and exit');
  fs.bool('plugins', false, 'list the available plugins and exit');
  // node-local-dns flags
  fs.string(
    'rulesbackend',
    DEFAULTS.rulesBackend,
    'how the NOTRACK/ACCEPT rules are written: iptables (rules in the raw and filter tables, ' +
      'as node-cache), nftables (one table of its own, "inet node-local-dns", replaced atomically with nft), or auto ' +
      '(nftables when a kube-proxy nftables table exists or iptables is not installed)',
  );
  fs.string('interfacetype', DEFAULTS.interfaceType, `link type of the interface: ${INTERFACE_TYPES.join(' or ')}`);
  fs.int('workers', 0, 'number of serving threads, each with its own cache (0: the default, 1)');
  fs.bool('standby', false, 'start as a standby instance beside a running one');
  fs.string(
    'peerdir',
    '/run/node-local-dns',
    'directory (a hostPath shared by primary and standby) where instances find each other; ' +
      'an instance removes the interface and rules on exit only if no other is alive (empty: always, as node-cache)',
  );
  return fs;
}

/** The `-h` text. */
export function optionsUsage(programName = 'node-local-dns', version = ''): string {
  return optionsFlagSet(programName, version).usage();
}

/**
 * Parses and validates the command line (without the program name).
 * Throws FlagError (exit 2) for bad flags or values, FlagHelpRequested (exit 0) for `-h`.
 */
export function parseOptions(argv: readonly string[]): Options {
  const p = optionsFlagSet().parse(argv);
  if (p.args.length > 0) throw new FlagError(`extra command line arguments: [${p.args.join(' ')}]`);

  const localIps: string[] = [];
  const ipFamilies: (4 | 6)[] = [];
  if (p.has('localip')) {
    for (const raw of p.string('localip').split(',')) {
      const fam = isIP(raw);
      if (fam === 0) throw new FlagError(`invalid localip specified - ${JSON.stringify(raw)}`);
      if (!ipFamilies.includes(fam as 4 | 6)) ipFamilies.push(fam as 4 | 6);
      localIps.push(raw);
    }
  }

  const interfaceName = p.string('interfacename');
  if (!/^[^\s/:]{1,15}$/.test(interfaceName) || interfaceName === '.' || interfaceName === '..') {
    throw new FlagError(`invalid interface name specified - ${JSON.stringify(interfaceName)}`);
  }
  const interfaceType = p.string('interfacetype');
  if (!(INTERFACE_TYPES as readonly string[]).includes(interfaceType)) {
    throw new FlagError(`invalid value ${JSON.stringify(interfaceType)} for flag -interfacetype: want ${INTERFACE_TYPES.join(' or ')}`);
  }
  const rulesBackend = p.string('rulesbackend');
  if (!(RULES_BACKENDS as readonly string[]).includes(rulesBackend)) {
    throw new FlagError(`invalid value ${JSON.stringify(rulesBackend)} for flag -rulesbackend: want ${RULES_BACKENDS.join(', ')}`);
  }
  const metricsListenAddress = p.string('metrics-listen-address');
  if (metricsListenAddress !== '') splitListenAddress(metricsListenAddress, 'metrics-listen-address');
  const upstreamSvc = p.string('upstreamsvc');
  if (upstreamSvc === '') throw new FlagError('invalid value "" for flag -upstreamsvc: empty service name');
  const workers = p.number('workers');
  if (workers < 0) throw new FlagError(`invalid value "${workers}" for flag -workers: must not be negative`);

  const ignoredFlags: { flag: string; reason: string }[] = [];
  if (p.has('initialdelay')) ignoredFlags.push({ flag: 'initialdelay', reason: 'iptables rules are installed as soon as the server is up' });
  if (p.has('setupebtables') && p.bool('setupebtables')) {
    ignoredFlags.push({ flag: 'setupebtables', reason: 'ebtables rules are not supported' });
  }
  if (p.has('reloadwithsignal')) ignoredFlags.push({ flag: 'reloadwithsignal', reason: 'reloads are always in-process' });

  return {
    localIps,
    ipFamilies,
    corefilePath: p.has('conf') ? p.string('conf') : p.string('corefile'),
    confGiven: p.has('conf'),
    flagsGiven: p.set.size > 0,
    baseCorefilePath: p.string('basecorefile'),
    kubeDnsConfigMapDir: p.string('kubednscm'),
    upstreamSvc,
    setupInterface: p.bool('setupinterface'),
    interfaceName,
    interfaceType: interfaceType as InterfaceType,
    setupIptables: p.bool('setupiptables'),
    rulesBackend: rulesBackend as RulesBackendName,
    syncIntervalMs: p.number('syncinterval'),
    healthPort: parsePort(p.string('health-port'), 'healthcheck port'),
    metricsListenAddress,
    skipTeardown: p.bool('skipteardown'),
    dnsPort: parsePort(p.string('dns.port'), 'port'),
    pidfile: p.string('pidfile'),
    quiet: p.bool('quiet'),
    version: p.bool('version'),
    plugins: p.bool('plugins'),
    workers,
    standby: p.bool('standby'),
    peerDir: p.string('peerdir'),
    ignoredFlags,
    given: p.set,
  };
}
