/**
 * The NOTRACK/ACCEPT rules for the local IPs, behind one interface with two back ends
 * (`-rulesbackend`): `iptables` (iptables.ts, node-cache's rules inserted into the raw and filter
 * tables through iptables/ip6tables, the default) and `nftables` (nftables.ts, the same rules in
 * a table of our own, `table inet node-local-dns`). `auto` picks one once at start-up:
 * nftables when kube-proxy runs in nftables mode (a `kube-proxy` table of any family exists) or
 * when no iptables binary is installed, iptables otherwise.
 */
import { constants as fsConstants } from 'node:fs';
import { access } from '../util/fs-async.ts';
import { delimiter, join } from 'node:path';
import type { RulesBackendName } from '../cli/options.ts';
import type { Logger } from '../plugin.ts';
import { execRunner, type CommandRunner } from './exec.ts';
import { IptablesManager, nodeLocalDnsRules } from './iptables.ts';
import { NftablesManager } from './nftables.ts';
import type { SetupErrorType } from './setup-metrics.ts';

export { RULES_BACKENDS, type RulesBackendName } from '../cli/options.ts';

export interface EnsureRulesResult {
  added: number;
  existing: number;
  errors: number;
}

export interface TeardownRulesResult {
  removed: number;
  errors: number;
}

/** What the agent needs of a back end. Neither method throws: failures are logged and counted. */
export interface RulesBackend {
  readonly kind: 'iptables' | 'nftables';
  readonly ruleCount: number;
  /** For the start-up line: `24 iptables rules`, `nftables table inet node-local-dns (24 rules)`. */
  describe(): string;
  /** Checks the rules and puts back what is missing. */
  ensureAll(): Promise<EnsureRulesResult>;
  /** Removes every rule (and copy of a rule) the back end installs. */
  teardown(): Promise<TeardownRulesResult>;
}

/** True when an executable `name` is on `path` (a PATH-style list). */
export async function onPath(name: string, path: string | undefined): Promise<boolean> {
  for (const dir of (path ?? '').split(delimiter)) {
    if (dir === '') continue;
    try {
      await access(join(dir, name), fsConstants.X_OK);
      return true;
    } catch {
      // next
    }
  }
  return false;
}

export interface BackendChoice {
  kind: 'iptables' | 'nftables';
  /** Why, for the log line. */
  reason: string;
}

/** The iptables binary writing rules of an IP family. */
function iptablesBinary(family: 4 | 6): string {
  return family === 6 ? 'ip6tables' : 'iptables';
}

/**
 * `auto`: nftables when `nft list tables` shows a table named `kube-proxy` (kube-proxy's
 * nftables mode creates `ip kube-proxy` and `ip6 kube-proxy`), or when the iptables binary of one
 * of the local IPs' families (`iptables`, `ip6tables`; both for dual-stack) is not installed;
 * iptables otherwise.
 */
export async function chooseRulesBackend(
  requested: RulesBackendName,
  o: { runner?: CommandRunner; families: readonly (4 | 6)[]; path?: string },
): Promise<BackendChoice> {
  if (requested !== 'auto') return { kind: requested, reason: '-rulesbackend ' + requested };
  const run = o.runner ?? execRunner;
  let nftNote = '';
  try {
    const r = await run('nft', ['list', 'tables']);
    if (r.code === 0) {
      const t = /^table (\S+) kube-proxy$/m.exec(r.stdout);
      if (t) return { kind: 'nftables', reason: `auto: kube-proxy runs in nftables mode (table ${t[1]} kube-proxy exists)` };
      nftNote = 'no kube-proxy nftables table';
    } else {
      nftNote = `nft list tables failed: ${r.stderr.trim().split('\n')[0] || `exit status ${r.code}`}`;
    }
  } catch (err) {
    nftNote = `nft not usable: ${(err as Error).message}`;
  }
  const bins = (o.families.length > 0 ? o.families : [4 as const]).map(iptablesBinary);
  for (const bin of bins) {
    if (!(await onPath(bin, o.path ?? process.env.PATH))) {
      return { kind: 'nftables', reason: `auto: no ${bin} binary on PATH (${nftNote})` };
    }
  }
  return { kind: 'iptables', reason: `auto: ${nftNote}; ${bins.join(' and ')} ${bins.length > 1 ? 'are' : 'is'} installed` };
}

export interface RulesBackendOptions {
  localIps: readonly string[];
  dnsPort: number;
  healthPort: number;
  runner?: CommandRunner;
  log: Logger;
  onError?(type: SetupErrorType): void;
}

/** The back end of the given kind for node-cache's rules of the local IPs. */
export function createRulesBackend(kind: 'iptables' | 'nftables', o: RulesBackendOptions): RulesBackend {
  const rules = nodeLocalDnsRules(o.localIps, o.dnsPort, o.healthPort);
  const onError = o.onError ? (type: SetupErrorType) => o.onError!(type) : undefined;
  return kind === 'nftables'
    ? new NftablesManager(rules, { runner: o.runner, log: o.log, onError })
    : new IptablesManager(rules, { runner: o.runner, log: o.log, onError });
}
