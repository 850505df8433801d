/**
 * Renders deploy/kubernetes/nodelocaldns.yaml (the `__PILLAR__` template) for one cluster,
 * or with --standby deploy/kubernetes/nodelocaldns-standby.yaml (the standby DaemonSet and its
 * metrics Service, applied after the primary for restarts without an outage: docs/zero-downtime.md),
 * with the same substitutions as the sed commands of the upstream install guide:
 *
 *   iptables mode (kube-proxy --proxy-mode=iptables): the cache listens on the
 *     link-local address AND the kube-dns ClusterIP, so pods keep their resolv.conf.
 *     __PILLAR__DNS__SERVER__, __PILLAR__LOCAL__DNS__, __PILLAR__DNS__DOMAIN__ are replaced;
 *     __PILLAR__CLUSTER__DNS__ stays for the agent (kube-dns-upstream ClusterIP).
 *   nftables mode (kube-proxy --proxy-mode=nftables): as iptables mode, plus `-rulesbackend nftables`:
 *     the NOTRACK/ACCEPT rules go into the agent's own `table inet node-local-dns`.
 *   ipvs mode: kube-proxy owns the kube-dns ClusterIP, so the cache listens on
 *     the link-local address only: every " __PILLAR__DNS__SERVER__" / ",__PILLAR__DNS__SERVER__"
 *     is removed and __PILLAR__CLUSTER__DNS__ becomes the kube-dns ClusterIP.
 *
 * __PILLAR__UPSTREAM__SERVERS__ is always left to the agent.
 *
 * Dual-stack: --local-dns and --dns-server take one address per family, comma-separated
 * (`--local-dns 169.254.20.10,fd00::10 --dns-server 10.96.0.10,fd00:10:96::a`). Then `-localip`
 * lists the link-local addresses, then the kube-dns ClusterIPs (comma-separated), `bind` lines
 * list them all, the `health`/`ready` addresses and the probes take the first link-local address
 * (IPv6 in brackets where a port follows), and a second `health` on the other family's
 * link-local address goes into the last server block (CoreDNS allows one `health` per block).
 * IPVS mode's __PILLAR__CLUSTER__DNS__ becomes both ClusterIPs (`forward . 10.96.0.10 fd00:10:96::a`).
 * With one address each the output is what the sed commands make (IPv6 `HOST:PORT` aside:
 * bracketed here, as CoreDNS needs).
 *
 * Usage:
 *   node deploy/render.ts --dns-server 10.96.0.10 [--local-dns 169.254.20.10]
 *     [--domain cluster.local] [--mode iptables|ipvs|nftables] [--image REF] [--standby] [--output FILE]
 *
 * Both DaemonSets roll new pod first (maxSurge 1, maxUnavailable 0): an upgrade needs no
 * standby (docs/operations.md "Upgrades"); the standby is a warm spare against crashes. It is a
 * separate output on purpose: the two DaemonSets are updated one after the other (standby
 * first), never in one `kubectl apply`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const TEMPLATE_PATH = fileURLToPath(new URL('./kubernetes/nodelocaldns.yaml', import.meta.url));
/** The standby DaemonSet's template (--standby); it uses the primary's ConfigMap and ServiceAccount. */
export const STANDBY_TEMPLATE_PATH = fileURLToPath(new URL('./kubernetes/nodelocaldns-standby.yaml', import.meta.url));

export const MODES = ['iptables', 'ipvs', 'nftables'] as const;
export type Mode = (typeof MODES)[number];

export interface RenderOptions {
  mode: Mode;
  /** ClusterIP of the kube-dns Service; dual-stack: one per family, comma-separated. */
  dnsServer: string;
  /** Link-local address the cache listens on; dual-stack: one per family, comma-separated. */
  localDns: string;
  /** Cluster domain, without trailing dot. */
  domain: string;
  /** Replaces the template's image reference when set. */
  image?: string;
  /** The template is the standby's (only changes the provenance header). */
  standby?: boolean;
}

export const RenderErrorCode = {
  BadMode: 'RENDER_BAD_MODE',
  BadAddress: 'RENDER_BAD_ADDRESS',
  BadDomain: 'RENDER_BAD_DOMAIN',
  BadImage: 'RENDER_BAD_IMAGE',
  LeftoverPillar: 'RENDER_LEFTOVER_PILLAR',
  BadArguments: 'RENDER_BAD_ARGUMENTS',
} as const;
export type RenderErrorCode = (typeof RenderErrorCode)[keyof typeof RenderErrorCode];

export class RenderError extends Error {
  readonly code: RenderErrorCode;
  constructor(code: RenderErrorCode, message: string) {
    super(message);
    this.name = 'RenderError';
    this.code = code;
  }
}

/** Variables the agent substitutes at start-up; they must survive rendering. */
const AGENT_PILLARS = new Set(['__PILLAR__CLUSTER__DNS__', '__PILLAR__UPSTREAM__SERVERS__']);

/** RFC 1123 labels separated by dots (the form kubelet accepts for --cluster-domain). */
const DOMAIN_RE = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;
/** An image reference: no whitespace, no YAML-significant characters. */
const IMAGE_RE = /^[a-z0-9][a-z0-9._\-/:@]*$/i;

function validate(opts: RenderOptions): void {
  if (!MODES.includes(opts.mode)) {
    throw new RenderError(RenderErrorCode.BadMode, `--mode must be iptables, ipvs or nftables, not "${opts.mode}"`);
  }
  for (const [flag, value] of [
    ['--dns-server', opts.dnsServer],
    ['--local-dns', opts.localDns],
  ] as const) {
    const list = value.split(',');
    for (const ip of list) {
      if (isIP(ip) === 0) throw new RenderError(RenderErrorCode.BadAddress, `${flag} must be an IP address, not "${ip}"`);
    }
    if (list.length > 2 || (list.length === 2 && isIP(list[0]!) === isIP(list[1]!))) {
      throw new RenderError(RenderErrorCode.BadAddress, `${flag} takes one address, or one IPv4 and one IPv6 address (dual-stack), not "${value}"`);
    }
  }
  const families = (v: string): string =>
    v
      .split(',')
      .map((ip) => isIP(ip))
      .sort()
      .join();
  if (opts.localDns.includes(',') !== opts.dnsServer.includes(',') || families(opts.localDns) !== families(opts.dnsServer)) {
    throw new RenderError(RenderErrorCode.BadAddress, `--local-dns and --dns-server need the same IP families, not "${opts.localDns}" and "${opts.dnsServer}"`);
  }
  if (!DOMAIN_RE.test(opts.domain)) {
    throw new RenderError(RenderErrorCode.BadDomain, `--domain must be a DNS name without trailing dot, not "${opts.domain}"`);
  }
  if (opts.image !== undefined && !IMAGE_RE.test(opts.image)) {
    throw new RenderError(RenderErrorCode.BadImage, `--image is not an image reference: "${opts.image}"`);
  }
}

/** Drops the template's leading comment block: it explains the placeholders being replaced. */
function stripHeader(template: string): string {
  const lines = template.split('\n');
  const first = lines.findIndex((line) => line.trim() !== '' && !line.startsWith('#'));
  return lines.slice(first < 0 ? lines.length : first).join('\n');
}

/** An IP address as the host of `HOST:PORT`: IPv6 in brackets. */
function hostForPort(ip: string): string {
  return isIP(ip) === 6 ? `[${ip}]` : ip;
}

/**
 * The address placeholders, by context: `HOST:PORT` (health, ready) → the first link-local
 * address; `bind` lines → every address, space-separated; the `-localip` argument → every
 * address, comma-separated; the probes' `host:` → the first link-local address. Dual-stack adds
 * `health` on the second link-local address to the last server block.
 */
function substituteAddresses(text: string, local: readonly string[], dns: readonly string[]): string {
  let out = text.replaceAll('__PILLAR__LOCAL__DNS__:', `${hostForPort(local[0]!)}:`);
  const second = local[1];
  if (second !== undefined) {
    const health = /^([ \t]*)health \S+:(\S+)$/m.exec(out);
    const binds = [...out.matchAll(/^[ \t]*bind __PILLAR__LOCAL__DNS__.*$/gm)];
    const lastBind = binds.at(-1);
    if (health && lastBind && lastBind.index > health.index) {
      const at = lastBind.index + lastBind[0].length;
      out = `${out.slice(0, at)}\n${health[1]}health ${hostForPort(second)}:${health[2]}${out.slice(at)}`;
    }
  }
  out = out.replace(/^([ \t]*bind .*)$/gm, (line) =>
    line.replaceAll('__PILLAR__LOCAL__DNS__', local.join(' ')).replaceAll('__PILLAR__DNS__SERVER__', dns.join(' ')),
  );
  out = out.replace(
    /^([ \t]*- )__PILLAR__LOCAL__DNS__(,__PILLAR__DNS__SERVER__)?$/gm,
    (_m, item: string, withDns: string | undefined) => `${item}${[...local, ...(withDns ? dns : [])].join(',')}`,
  );
  return out.replaceAll('__PILLAR__LOCAL__DNS__', local[0]!).replaceAll('__PILLAR__DNS__SERVER__', dns.join(','));
}

/**
 * Renders the template text. Pure: same input, same output.
 * @throws RenderError on a bad option or when a placeholder other than the agent's remains.
 */
export function renderManifest(template: string, opts: RenderOptions): string {
  validate(opts);
  let out = stripHeader(template);
  if (opts.mode === 'nftables') {
    // The iptables variant, with the rules written by the nftables back end (a table of its own).
    const before = out;
    out = out.replace(/^(\s*)- -peerdir$/m, '$1- -rulesbackend\n$1- nftables\n$1- -peerdir');
    if (out === before) throw new RenderError(RenderErrorCode.BadArguments, 'template has no "- -peerdir" argument to put -rulesbackend nftables before');
  }
  const dns = opts.dnsServer.split(',');
  if (opts.mode === 'ipvs') {
    out = out.replaceAll('__PILLAR__CLUSTER__DNS__', dns.join(' '));
    out = out.replace(/[ |,]__PILLAR__DNS__SERVER__/g, '');
  }
  out = substituteAddresses(out, opts.localDns.split(','), dns).replaceAll('__PILLAR__DNS__DOMAIN__', opts.domain);
  if (opts.image !== undefined) {
    out = out.replace(/^(\s*image:\s*)\S+$/gm, `$1${opts.image}`);
  }
  const leftovers = [...new Set(out.match(/__PILLAR__[A-Z_]+?__(?![A-Z])/g) ?? [])].filter((p) => !AGENT_PILLARS.has(p));
  if (leftovers.length > 0) {
    throw new RenderError(RenderErrorCode.LeftoverPillar, `template placeholders left unreplaced: ${leftovers.join(', ')}`);
  }
  const flags = [
    `--mode ${opts.mode}`,
    `--dns-server ${opts.dnsServer}`,
    `--local-dns ${opts.localDns}`,
    `--domain ${opts.domain}`,
    ...(opts.image === undefined ? [] : [`--image ${opts.image}`]),
    ...(opts.standby === true ? ['--standby'] : []),
  ].join(' ');
  const source = opts.standby === true ? 'nodelocaldns-standby.yaml' : 'nodelocaldns.yaml';
  return `# Rendered by: node deploy/render.ts ${flags}\n# From deploy/kubernetes/${source}; edit the template, not this output.\n${out}`;
}

const USAGE = `usage: node deploy/render.ts --dns-server IP[,IPv6] [--local-dns 169.254.20.10[,fd00::10]] [--domain cluster.local]
                           [--mode iptables|ipvs|nftables] [--image REF] [--standby] [--template FILE] [--output FILE]
  dual-stack: one address per family, comma-separated, in --dns-server and --local-dns
  --standby  render the standby DaemonSet (deploy/kubernetes/nodelocaldns-standby.yaml) instead of
             the primary bundle; apply it after the primary (docs/zero-downtime.md)`;

/** CLI entry: returns the process exit code. */
export function main(argv: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        'dns-server': { type: 'string' },
        'local-dns': { type: 'string', default: '169.254.20.10' },
        domain: { type: 'string', default: 'cluster.local' },
        mode: { type: 'string', default: 'iptables' },
        image: { type: 'string' },
        standby: { type: 'boolean', default: false },
        template: { type: 'string' },
        output: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (values['dns-server'] === undefined) {
    process.stderr.write(`--dns-server is required (kubectl -n kube-system get svc kube-dns -o jsonpath='{.spec.clusterIP}')\n${USAGE}\n`);
    return 2;
  }
  try {
    const template = values.template ?? (values.standby ? STANDBY_TEMPLATE_PATH : TEMPLATE_PATH);
    const rendered = renderManifest(readFileSync(template, 'utf8'), {
      mode: values.mode as Mode,
      dnsServer: values['dns-server'],
      localDns: values['local-dns'],
      domain: values.domain.replace(/\.$/, ''),
      image: values.image,
      standby: values.standby,
    });
    if (values.output === undefined) process.stdout.write(rendered);
    else writeFileSync(values.output, rendered);
    return 0;
  } catch (err) {
    if (err instanceof RenderError) {
      process.stderr.write(`render: ${err.message}\n`);
      return 1;
    }
    throw err;
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = main(process.argv.slice(2));
}
