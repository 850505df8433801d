/**
 * Renders deploy/kubernetes/nodelocaldns.yaml (the `__PILLAR__` template) for one cluster,
 * with the same substitutions as the sed commands of the upstream install guide:
 *
 *   iptables mode (kube-proxy --proxy-mode=iptables): the cache listens on the
 *     link-local address AND the kube-dns ClusterIP, so pods keep their resolv.conf.
 *     __PILLAR__DNS__SERVER__, __PILLAR__LOCAL__DNS__, __PILLAR__DNS__DOMAIN__ are replaced;
 *     __PILLAR__CLUSTER__DNS__ stays for the agent (kube-dns-upstream ClusterIP).
 *   ipvs mode (also for kube-proxy's nftables mode): kube-proxy owns the kube-dns ClusterIP, so the cache listens on
 *     the link-local address only: every " __PILLAR__DNS__SERVER__" / ",__PILLAR__DNS__SERVER__"
 *     is removed and __PILLAR__CLUSTER__DNS__ becomes the kube-dns ClusterIP.
 *
 * __PILLAR__UPSTREAM__SERVERS__ is always left to the agent.
 *
 * Usage:
 *   node deploy/render.ts --dns-server 10.96.0.10 [--local-dns 169.254.20.10]
 *     [--domain cluster.local] [--mode iptables|ipvs] [--image REF] [--output FILE]
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const TEMPLATE_PATH = fileURLToPath(new URL('./kubernetes/nodelocaldns.yaml', import.meta.url));

export const MODES = ['iptables', 'ipvs'] as const;
export type Mode = (typeof MODES)[number];

export interface RenderOptions {
  mode: Mode;
  /** ClusterIP of the kube-dns Service. */
  dnsServer: string;
  /** Link-local address the cache listens on. */
  localDns: string;
  /** Cluster domain, without trailing dot. */
  domain: string;
  /** Replaces the template's image reference when set. */
  image?: string;
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
    throw new RenderError(RenderErrorCode.BadMode, `--mode must be iptables or ipvs, not "${opts.mode}"`);
  }
  for (const [flag, value] of [['--dns-server', opts.dnsServer], ['--local-dns', opts.localDns]] as const) {
    if (isIP(value) === 0) {
      throw new RenderError(RenderErrorCode.BadAddress, `${flag} must be an IP address, not "${value}"`);
    }
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

/**
 * Renders the template text. Pure: same input, same output.
 * @throws RenderError on a bad option or when a placeholder other than the agent's remains.
 */
export function renderManifest(template: string, opts: RenderOptions): string {
  validate(opts);
  let out = stripHeader(template);
  if (opts.mode === 'ipvs') {
    out = out.replaceAll('__PILLAR__CLUSTER__DNS__', opts.dnsServer);
    out = out.replace(/[ |,]__PILLAR__DNS__SERVER__/g, '');
  } else {
    out = out.replaceAll('__PILLAR__DNS__SERVER__', opts.dnsServer);
  }
  out = out.replaceAll('__PILLAR__LOCAL__DNS__', opts.localDns).replaceAll('__PILLAR__DNS__DOMAIN__', opts.domain);
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
  ].join(' ');
  return `# Rendered by: node deploy/render.ts ${flags}\n# From deploy/kubernetes/nodelocaldns.yaml; edit the template, not this output.\n${out}`;
}

const USAGE = `usage: node deploy/render.ts --dns-server IP [--local-dns 169.254.20.10] [--domain cluster.local]
                           [--mode iptables|ipvs] [--image REF] [--template FILE] [--output FILE]`;

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
        template: { type: 'string', default: TEMPLATE_PATH },
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
    const rendered = renderManifest(readFileSync(values.template, 'utf8'), {
      mode: values.mode as Mode,
      dnsServer: values['dns-server'],
      localDns: values['local-dns'],
      domain: values.domain.replace(/\.$/, ''),
      image: values.image,
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
