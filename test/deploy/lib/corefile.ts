/**
 * The Corefile of a manifest as the agent serves it: rendered with the agent's own templating
 * (src/agent/template.ts: __PILLAR__ variables, kube-dns ConfigMap upstreams) and parsed with
 * the agent's own parser (src/corefile/parser.ts). Then the facts the manifests must agree
 * with: DNS ports, bind addresses, and the health/ready/prometheus listeners.
 */
import { parseCorefile } from '../../../src/corefile/parser.ts';
import { renderCorefile } from '../../../src/agent/template.ts';
import type { ServerBlock } from '../../../src/corefile/types.ts';

export interface Listener {
  /** '' when the address has no host part (`:9253` = every address). */
  host: string;
  port: number;
}

export interface CorefileFacts {
  text: string;
  blocks: ServerBlock[];
  /** Zone keys as written, in order. */
  keys: string[];
  dnsPorts: Set<number>;
  /** `bind` arguments per block, in order. */
  binds: string[][];
  /** `forward` arguments per block (first word is the zone `.`). */
  forwards: string[][];
  prometheus: Listener[];
  health: Listener[];
  ready: Listener[];
}

/** `host:port`, `[v6]:port` or `:port`. */
export function splitHostPort(text: string): Listener {
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(text);
  if (m === null) throw new Error(`not host:port: ${text}`);
  return { host: m[1] ?? m[2] ?? '', port: Number(m[3]) };
}

export interface TemplateInput {
  /** -localip addresses. */
  localIps: string[];
  /** ClusterIP of kube-dns-upstream, as KUBE_DNS_UPSTREAM_SERVICE_HOST would carry it. */
  upstreamServiceIp: string;
  /** -upstreamsvc. */
  upstreamSvc?: string;
}

/** Renders a Corefile.base like the agent does at start-up, without a kube-dns ConfigMap. */
export function renderLikeAgent(base: string, input: TemplateInput): { corefile: string; warnings: string[] } {
  const upstreamSvc = input.upstreamSvc ?? 'kube-dns-upstream';
  const envName = `${upstreamSvc.replaceAll('-', '_').toUpperCase()}_SERVICE_HOST`;
  const out = renderCorefile({
    base,
    localIps: input.localIps,
    upstreamSvc,
    env: { [envName]: input.upstreamServiceIp },
    upstreamNameservers: [],
    stubDomains: new Map(),
    dnsPort: 53,
  });
  return { corefile: out.corefile, warnings: out.warnings };
}

/**
 * Parses with the agent's parser and collects the listener facts. `env` holds the variables
 * `{$NAME}` reads (the container's env: the HTTP ports of each instance); an unset one is
 * empty, as in CoreDNS, and leaves a listener without a port.
 */
export function corefileFacts(text: string, file = 'Corefile', env: Record<string, string> = {}): CorefileFacts {
  const blocks = parseCorefile(text, file, env);
  const facts: CorefileFacts = {
    text,
    blocks,
    keys: [],
    dnsPorts: new Set(),
    binds: [],
    forwards: [],
    prometheus: [],
    health: [],
    ready: [],
  };
  for (const block of blocks) {
    for (const key of block.keys) {
      facts.keys.push(key.text);
      const m = /:(\d+)$/.exec(key.text);
      facts.dnsPorts.add(m === null ? 53 : Number(m[1]));
    }
    for (const d of block.directives) {
      const args = d.args.map((a) => a.text);
      if (d.name === 'bind') facts.binds.push(args);
      if (d.name === 'forward') facts.forwards.push(args);
      if (d.name === 'prometheus') facts.prometheus.push(splitHostPort(args[0] ?? 'localhost:9153'));
      if (d.name === 'health') facts.health.push(splitHostPort(args[0] ?? ':8080'));
      if (d.name === 'ready') facts.ready.push(splitHostPort(args[0] ?? ':8181'));
    }
  }
  return facts;
}
