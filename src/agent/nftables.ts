/**
 * The nftables back end (`-rulesbackend nftables`): node-cache's rules (iptables.ts,
 * nodeLocalDnsRules: the same 12 per local IP) in one table of our own,
 * `table inet node-local-dns`, instead of rules inserted into the raw and filter tables that
 * kube-proxy and the distribution share. One `inet` table holds IPv4 and IPv6 rules alike.
 *
 *   chain raw-prerouting  { type filter hook prerouting priority raw;    policy accept; ... notrack }
 *   chain raw-output      { type filter hook output     priority raw;    policy accept; ... notrack }
 *   chain filter-input    { type filter hook input      priority filter; policy accept; ... accept }
 *   chain filter-output   { type filter hook output     priority filter; policy accept; ... accept }
 *
 * Priority `raw` (-300) runs before connection tracking (-200), so NOTRACK'ed packets are
 * never tracked and never reach NAT chains: kube-proxy's DNAT of the kube-dns service IP (its
 * own `kube-proxy` table in nftables mode, iptables' nat table otherwise) does not apply to
 * them, and kube-proxy's filter chains match `ct state new` only. The ACCEPT chains mirror the
 * iptables back end; in nftables an accept ends only the base chain it is in, so they do not
 * override a drop in another table's chain (neither does the iptables rule in another table).
 *
 * Every change is one `nft -f -` transaction that replaces the whole table
 * (`table X; delete table X; table X { ... }`): no moment with half the rules, no duplicate.
 * ensureAll() reads the table back (`nft -j list table`), compares it with the expected rules
 * and chains, and re-applies the whole table when anything is missing, extra or changed.
 * teardown() deletes the table. Failures are counted as errortype `iptables` of
 * coredns_nodecache_setup_errors_total (the packet-filter rules, whichever tool writes them), so
 * the alerts and dashboards built on node-cache's label values keep working.
 */
import { isIP } from 'node:net';
import type { Logger } from '../plugin.ts';
import { execRunner, firstLine, type CommandRunner } from './exec.ts';
import { canonicalIp } from './iface.ts';
import type { IptablesRule } from './iptables.ts';
import type { EnsureRulesResult, RulesBackend, TeardownRulesResult } from './rules.ts';
import { SetupErrorType } from './setup-metrics.ts';

export const NFT_TABLE_FAMILY = 'inet';
export const NFT_TABLE_NAME = 'node-local-dns';
/** `inet node-local-dns`, as nft commands name it. */
export const NFT_TABLE = `${NFT_TABLE_FAMILY} ${NFT_TABLE_NAME}`;

export interface NftChainSpec {
  name: string;
  hook: 'prerouting' | 'input' | 'output';
  /** Numeric priority (`raw` = -300, `filter` = 0), as `nft -j` reports it. */
  prio: number;
  /** The priority keyword written in the script. */
  prioName: 'raw' | 'filter';
}

/** The table's chains, in the order they are written. */
export const NFT_CHAINS: readonly NftChainSpec[] = [
  { name: 'raw-prerouting', hook: 'prerouting', prio: -300, prioName: 'raw' },
  { name: 'raw-output', hook: 'output', prio: -300, prioName: 'raw' },
  { name: 'filter-input', hook: 'input', prio: 0, prioName: 'filter' },
  { name: 'filter-output', hook: 'output', prio: 0, prioName: 'filter' },
];

export interface NftRule {
  chain: string;
  /** Address match: `ip` or `ip6`. */
  family: 'ip' | 'ip6';
  dir: 'saddr' | 'daddr';
  /** Canonical address text. */
  addr: string;
  proto: 'tcp' | 'udp';
  portDir: 'sport' | 'dport';
  port: number;
  verdict: 'notrack' | 'accept';
  comment: string;
}

function argAfter(args: readonly string[], flag: string): string | undefined {
  const i = args.indexOf(flag);
  return i >= 0 ? args[i + 1] : undefined;
}

/** The nftables form of one of node-cache's iptables rules (same match, verdict and comment). */
export function nftRuleFromIptables(rule: IptablesRule): NftRule {
  const a = rule.args;
  const dst = argAfter(a, '-d');
  const addr = dst ?? argAfter(a, '-s');
  const proto = argAfter(a, '-p');
  const port = Number(dst !== undefined ? argAfter(a, '--dport') : argAfter(a, '--sport'));
  const target = argAfter(a, '-j');
  const comment = argAfter(a, '--comment') ?? '';
  if (addr === undefined || (proto !== 'tcp' && proto !== 'udp') || !Number.isInteger(port) || (target !== 'NOTRACK' && target !== 'ACCEPT')) {
    throw new Error(`cannot express iptables rule ${JSON.stringify(a)} in nftables`);
  }
  return {
    chain: `${rule.table}-${rule.chain.toLowerCase()}`,
    family: isIP(addr) === 6 ? 'ip6' : 'ip',
    dir: dst !== undefined ? 'daddr' : 'saddr',
    addr: canonicalIp(addr),
    proto,
    portDir: dst !== undefined ? 'dport' : 'sport',
    port,
    verdict: target === 'NOTRACK' ? 'notrack' : 'accept',
    comment,
  };
}

/** The rule statement as nft writes and lists it. */
export function nftRuleText(r: NftRule): string {
  return `${r.family} ${r.dir} ${r.addr} ${r.proto} ${r.portDir} ${r.port} ${r.verdict} comment ${JSON.stringify(r.comment)}`;
}

/** Log rendering of a rule: `{inet node-local-dns raw-prerouting [ip daddr ... notrack comment "..."]}`. */
export function formatNftRule(r: NftRule): string {
  return `{${NFT_TABLE} ${r.chain} [${nftRuleText(r)}]}`;
}

function ruleKey(r: NftRule): string {
  return `${r.chain}|${nftRuleText(r)}`;
}

/**
 * The `nft -f -` script that replaces the table atomically: declaring the table first makes the
 * `delete` valid when it does not exist yet; the three commands are one transaction.
 */
export function nftReplaceScript(rules: readonly NftRule[]): string {
  let s = `table ${NFT_TABLE}\ndelete table ${NFT_TABLE}\ntable ${NFT_TABLE} {\n`;
  for (const c of NFT_CHAINS) {
    s += `\tchain ${c.name} {\n\t\ttype filter hook ${c.hook} priority ${c.prioName}; policy accept;\n`;
    for (const r of rules) if (r.chain === c.name) s += `\t\t${nftRuleText(r)}\n`;
    s += '\t}\n';
  }
  return `${s}}\n`;
}

/** The script that deletes the table whether or not it exists (one transaction). */
export const NFT_DELETE_SCRIPT = `table ${NFT_TABLE}\ndelete table ${NFT_TABLE}\n`;

/** What `nft -j list table` showed, reduced to what the comparison needs. */
export interface NftTableState {
  chains: { name: string; type?: string; hook?: string; prio?: number; policy?: string }[];
  /** Per rule: its key when it is one of the forms we write, else `?chain|<json>`. */
  ruleKeys: string[];
  /** Rules recognised, for logs. */
  rules: (NftRule | undefined)[];
}

type Json = Record<string, unknown>;

function asObj(v: unknown): Json | undefined {
  return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Json) : undefined;
}

function payloadMatch(e: unknown): { protocol: string; field: string; right: unknown } | undefined {
  const m = asObj(asObj(e)?.match);
  if (!m || m.op !== '==') return undefined;
  const p = asObj(asObj(m.left)?.payload);
  if (!p || typeof p.protocol !== 'string' || typeof p.field !== 'string') return undefined;
  return { protocol: p.protocol, field: p.field, right: m.right };
}

/** Recognises a rule of the form nftRuleText writes; undefined for anything else. */
export function parseNftJsonRule(chain: string, comment: unknown, expr: unknown): NftRule | undefined {
  if (!Array.isArray(expr) || expr.length !== 3) return undefined;
  const a = payloadMatch(expr[0]);
  const p = payloadMatch(expr[1]);
  const v = asObj(expr[2]);
  if (!a || !p || !v) return undefined;
  if ((a.protocol !== 'ip' && a.protocol !== 'ip6') || (a.field !== 'saddr' && a.field !== 'daddr') || typeof a.right !== 'string') return undefined;
  if ((p.protocol !== 'tcp' && p.protocol !== 'udp') || (p.field !== 'sport' && p.field !== 'dport') || typeof p.right !== 'number') return undefined;
  const keys = Object.keys(v);
  if (keys.length !== 1 || (keys[0] !== 'notrack' && keys[0] !== 'accept')) return undefined;
  let addr: string;
  try {
    addr = canonicalIp(a.right);
  } catch {
    return undefined;
  }
  return {
    chain,
    family: a.protocol,
    dir: a.field,
    addr,
    proto: p.protocol,
    portDir: p.field,
    port: p.right,
    verdict: keys[0],
    comment: typeof comment === 'string' ? comment : '',
  };
}

/** Parses `nft -j list table inet node-local-dns` output. Throws on malformed JSON. */
export function parseNftTableJson(text: string): NftTableState {
  const doc = asObj(JSON.parse(text));
  const items = doc?.nftables;
  if (!Array.isArray(items)) throw new Error('no "nftables" array');
  const state: NftTableState = { chains: [], ruleKeys: [], rules: [] };
  for (const item of items) {
    const o = asObj(item);
    const chain = asObj(o?.chain);
    if (chain) {
      state.chains.push({
        name: String(chain.name),
        type: typeof chain.type === 'string' ? chain.type : undefined,
        hook: typeof chain.hook === 'string' ? chain.hook : undefined,
        prio: typeof chain.prio === 'number' ? chain.prio : undefined,
        policy: typeof chain.policy === 'string' ? chain.policy : undefined,
      });
      continue;
    }
    const rule = asObj(o?.rule);
    if (rule) {
      const name = String(rule.chain);
      const r = parseNftJsonRule(name, rule.comment, rule.expr);
      state.rules.push(r);
      state.ruleKeys.push(r ? ruleKey(r) : `?${name}|${JSON.stringify(rule.expr)}`);
    }
  }
  return state;
}

export interface NftDiff {
  /** Expected rules not present. */
  missing: NftRule[];
  /** Rules present beyond the expected ones (duplicates, foreign or changed rules). */
  extra: number;
  /** Chains missing, extra, or with another hook, priority, type or policy. */
  chainProblems: string[];
}

/** Compares the table read back with the expected rules (as multisets) and chains. */
export function diffNftTable(expected: readonly NftRule[], state: NftTableState): NftDiff {
  const have = new Map<string, number>();
  for (const k of state.ruleKeys) have.set(k, (have.get(k) ?? 0) + 1);
  const missing: NftRule[] = [];
  for (const r of expected) {
    const k = ruleKey(r);
    const n = have.get(k) ?? 0;
    if (n > 0) have.set(k, n - 1);
    else missing.push(r);
  }
  let extra = 0;
  for (const n of have.values()) extra += n;
  const chainProblems: string[] = [];
  for (const c of NFT_CHAINS) {
    const got = state.chains.find((x) => x.name === c.name);
    if (!got) chainProblems.push(`chain ${c.name} missing`);
    else if (got.type !== 'filter' || got.hook !== c.hook || got.prio !== c.prio || got.policy !== 'accept') {
      chainProblems.push(`chain ${c.name} is "type ${got.type} hook ${got.hook} priority ${got.prio} policy ${got.policy}"`);
    }
  }
  for (const x of state.chains) if (!NFT_CHAINS.some((c) => c.name === x.name)) chainProblems.push(`unexpected chain ${x.name}`);
  return { missing, extra, chainProblems };
}

export class NftablesError extends Error {
  readonly code = 'ERR_NFTABLES' as const;
  readonly errorType: SetupErrorType = SetupErrorType.IPTABLES;
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'NftablesError';
  }
}

export interface NftablesManagerOptions {
  runner?: CommandRunner;
  log: Logger;
  /** One call per failed nft operation. */
  onError?(type: SetupErrorType, err: NftablesError): void;
}

function isNoSuchTable(stderr: string): boolean {
  return /No such file or directory|does not exist/i.test(stderr);
}

export class NftablesManager implements RulesBackend {
  readonly kind = 'nftables' as const;
  readonly rules: readonly NftRule[];
  readonly #run: CommandRunner;
  readonly #log: Logger;
  readonly #onError: ((type: SetupErrorType, err: NftablesError) => void) | undefined;

  constructor(rules: readonly IptablesRule[], opts: NftablesManagerOptions) {
    this.rules = rules.map(nftRuleFromIptables);
    this.#run = opts.runner ?? execRunner;
    this.#log = opts.log;
    this.#onError = opts.onError;
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  describe(): string {
    return `nftables table ${NFT_TABLE} (${this.rules.length} rules)`;
  }

  async #nft(args: readonly string[], input?: string): Promise<{ code: number; stdout: string; stderr: string }> {
    try {
      return await this.#run('nft', args, input === undefined ? undefined : { input });
    } catch (err) {
      throw new NftablesError((err as Error).message, { cause: err });
    }
  }

  /** The table as it is now, or null when it does not exist. Throws NftablesError. */
  async read(): Promise<NftTableState | null> {
    const r = await this.#nft(['-j', 'list', 'table', NFT_TABLE_FAMILY, NFT_TABLE_NAME]);
    if (r.code !== 0) {
      if (isNoSuchTable(r.stderr)) return null;
      throw new NftablesError(`error listing table ${NFT_TABLE}: ${firstLine(r.stderr) || `exit status ${r.code}`}`);
    }
    try {
      return parseNftTableJson(r.stdout);
    } catch (err) {
      throw new NftablesError(`cannot parse "nft -j list table ${NFT_TABLE}" output: ${(err as Error).message}`);
    }
  }

  /** Replaces the whole table with the expected one in one transaction. Throws NftablesError. */
  async apply(): Promise<void> {
    const r = await this.#nft(['-f', '-'], nftReplaceScript(this.rules));
    if (r.code !== 0) throw new NftablesError(`error applying table ${NFT_TABLE}: ${firstLine(r.stderr) || `exit status ${r.code}`}`);
  }

  #fail(err: unknown, what: string): void {
    const e = err instanceof NftablesError ? err : new NftablesError(String((err as Error)?.message ?? err));
    this.#log.error(`Error ${what} nftables table ${NFT_TABLE}, error - ${e.message}`);
    this.#onError?.(e.errorType, e);
  }

  /**
   * Reads the table back and, when a rule is missing, an extra rule exists or a chain differs,
   * re-applies the whole table (logging each rule put back). Never throws.
   */
  async ensureAll(): Promise<EnsureRulesResult> {
    const res: EnsureRulesResult = { added: 0, existing: 0, errors: 0 };
    try {
      const state = await this.read();
      const diff: NftDiff = state ? diffNftTable(this.rules, state) : { missing: [...this.rules], extra: 0, chainProblems: [] };
      if (state !== null && diff.missing.length === 0 && diff.extra === 0 && diff.chainProblems.length === 0) {
        res.existing = this.rules.length;
        this.#log.debug?.(`nftables table ${NFT_TABLE} for nodelocaldns already in place (${this.rules.length} rules)`);
        return res;
      }
      await this.apply();
      res.added = diff.missing.length;
      res.existing = this.rules.length - diff.missing.length;
      for (const r of diff.missing) this.#log.info(`Added back nodelocaldns rule - ${formatNftRule(r)}`);
      if (diff.extra > 0 || diff.chainProblems.length > 0) {
        const why = [...diff.chainProblems, ...(diff.extra > 0 ? [`${diff.extra} unexpected rule(s)`] : [])];
        this.#log.info(`Replaced nftables table ${NFT_TABLE}: ${why.join('; ')}`);
      }
    } catch (err) {
      res.errors++;
      this.#fail(err, 'checking/adding');
    }
    return res;
  }

  /** Deletes the table (every rule in it). Never throws. */
  async teardown(): Promise<TeardownRulesResult> {
    try {
      const state = await this.read().catch(() => undefined);
      if (state === null) return { removed: 0, errors: 0 };
      const r = await this.#nft(['-f', '-'], NFT_DELETE_SCRIPT);
      if (r.code !== 0) throw new NftablesError(`error deleting table ${NFT_TABLE}: ${firstLine(r.stderr) || `exit status ${r.code}`}`);
      return { removed: state?.ruleKeys.length ?? 0, errors: 0 };
    } catch (err) {
      this.#fail(err, 'deleting');
      return { removed: 0, errors: 1 };
    }
  }
}
