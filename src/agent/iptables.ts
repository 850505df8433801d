/**
 * node-cache's iptables rules for each local IP, so that DNS traffic to and from the cache skips
 * connection tracking (no conntrack entries, no DNAT by kube-proxy for the kube-dns service IP
 * when it is one of the local IPs) and is accepted despite filter rules that only pass tracked
 * flows. Per IP, in node-cache's order (dns = -dns.port, health = -health-port):
 *
 *   raw    PREROUTING  tcp/udp -d IP --dport dns      NOTRACK   (queries arriving from pods)
 *   filter INPUT       tcp/udp -d IP --dport dns      ACCEPT
 *   raw    OUTPUT      tcp/udp -s IP --sport dns      NOTRACK   (answers)
 *   filter OUTPUT      tcp/udp -s IP --sport dns      ACCEPT
 *   raw    OUTPUT      tcp/udp -d IP --dport dns      NOTRACK   (queries from host-network pods)
 *   raw    OUTPUT      tcp     -d IP --dport health   NOTRACK   (liveness probe)
 *   raw    OUTPUT      tcp     -s IP --sport health   NOTRACK
 *
 * Every rule carries node-cache's comment (`NodeLocal DNS Cache: skip conntrack` on NOTRACK rules,
 * `NodeLocal DNS Cache: allow DNS traffic` on ACCEPT rules) and is inserted at the top of its chain
 * (`-I chain 1`) so it is evaluated before kube-proxy's rules. IPv6 addresses use ip6tables.
 * Every call passes `-w 5` to wait for the xtables lock; a lock time-out is classified apart
 * (`iptables_lock`) from other failures (`iptables`), as node-cache's metrics do.
 */
import { isIP } from 'node:net';
import type { Logger } from '../plugin.ts';
import { execRunner, firstLine, type CommandRunner } from './exec.ts';
import type { EnsureRulesResult, RulesBackend, TeardownRulesResult } from './rules.ts';
import { SetupErrorType } from './setup-metrics.ts';

export type { EnsureRulesResult } from './rules.ts';

export const IPTABLES_COMMENTS = {
  skipConntrack: 'NodeLocal DNS Cache: skip conntrack',
  allowTraffic: 'NodeLocal DNS Cache: allow DNS traffic',
} as const;

/** Seconds each iptables call waits for the xtables lock. */
export const XTABLES_LOCK_WAIT_SEC = 5;
/** Upper bound of delete rounds per rule in teardown (a rule may have been added several times). */
const MAX_DELETE_ROUNDS = 64;

export type IptablesTable = 'raw' | 'filter';
export type IptablesChain = 'PREROUTING' | 'INPUT' | 'OUTPUT';

export interface IptablesRule {
  table: IptablesTable;
  chain: IptablesChain;
  /** Rule specification after the chain name. */
  args: readonly string[];
  /** Managed with ip6tables. */
  ipv6: boolean;
}

export const IptablesErrorCode = {
  FAILED: 'ERR_IPTABLES',
  LOCK: 'ERR_IPTABLES_LOCK',
} as const;

export class IptablesError extends Error {
  readonly code: (typeof IptablesErrorCode)[keyof typeof IptablesErrorCode];
  /** Error type for coredns_nodecache_setup_errors_total. */
  readonly errorType: SetupErrorType;
  constructor(message: string, stderr: string) {
    super(message);
    this.name = 'IptablesError';
    this.errorType = classifyIptablesError(stderr);
    this.code = this.errorType === SetupErrorType.IPTABLES_LOCK ? IptablesErrorCode.LOCK : IptablesErrorCode.FAILED;
  }
}

/** `iptables_lock` when another process held the xtables lock past our wait, else `iptables`. */
export function classifyIptablesError(stderr: string): SetupErrorType {
  return /holding the xtables lock|xtables lock/i.test(stderr) ? SetupErrorType.IPTABLES_LOCK : SetupErrorType.IPTABLES;
}

/** The rules for the given local IPs, in node-cache's order (12 per IP). */
export function nodeLocalDnsRules(localIps: readonly string[], dnsPort: number, healthPort: number): IptablesRule[] {
  const rules: IptablesRule[] = [];
  const dns = String(dnsPort);
  const health = String(healthPort);
  for (const ip of localIps) {
    const ipv6 = isIP(ip) === 6;
    const r = (table: IptablesTable, chain: IptablesChain, proto: string, dir: '-d' | '-s', port: string): void => {
      const notrack = table === 'raw';
      rules.push({
        table,
        chain,
        ipv6,
        args: [
          '-p',
          proto,
          dir,
          ip,
          dir === '-d' ? '--dport' : '--sport',
          port,
          '-j',
          notrack ? 'NOTRACK' : 'ACCEPT',
          '-m',
          'comment',
          '--comment',
          notrack ? IPTABLES_COMMENTS.skipConntrack : IPTABLES_COMMENTS.allowTraffic,
        ],
      });
    };
    r('raw', 'PREROUTING', 'tcp', '-d', dns);
    r('raw', 'PREROUTING', 'udp', '-d', dns);
    r('filter', 'INPUT', 'tcp', '-d', dns);
    r('filter', 'INPUT', 'udp', '-d', dns);
    r('raw', 'OUTPUT', 'tcp', '-s', dns);
    r('raw', 'OUTPUT', 'udp', '-s', dns);
    r('filter', 'OUTPUT', 'tcp', '-s', dns);
    r('filter', 'OUTPUT', 'udp', '-s', dns);
    r('raw', 'OUTPUT', 'tcp', '-d', dns);
    r('raw', 'OUTPUT', 'udp', '-d', dns);
    r('raw', 'OUTPUT', 'tcp', '-d', health);
    r('raw', 'OUTPUT', 'tcp', '-s', health);
  }
  return rules;
}

/** node-cache's log rendering of a rule (Go's `%v` of {table chain args}). */
export function formatRule(rule: IptablesRule): string {
  return `{${rule.table} ${rule.chain} [${rule.args.join(' ')}]}`;
}

/** The rule as `iptables-save` prints it (for tests and diagnostics); IPv4 prefix /32, IPv6 /128. */
export function ruleSaveLine(rule: IptablesRule): string {
  const a = rule.args;
  const get = (flag: string): string | undefined => {
    const i = a.indexOf(flag);
    return i >= 0 ? a[i + 1] : undefined;
  };
  const proto = get('-p')!;
  const dst = get('-d');
  const src = get('-s');
  const addr = dst ?? src!;
  const prefix = rule.ipv6 ? 128 : 32;
  const port = dst !== undefined ? `--dport ${get('--dport')}` : `--sport ${get('--sport')}`;
  return (
    `-A ${rule.chain} ${dst !== undefined ? '-d' : '-s'} ${addr}/${prefix} -p ${proto} -m ${proto} ${port} ` +
    `-m comment --comment "${get('--comment')}" -j ${get('-j')}`
  );
}

export interface IptablesManagerOptions {
  runner?: CommandRunner;
  log: Logger;
  /** Receives one call per failed iptables operation. */
  onError?(type: SetupErrorType, err: IptablesError): void;
  lockWaitSec?: number;
}

export class IptablesManager implements RulesBackend {
  readonly kind = 'iptables' as const;
  readonly rules: readonly IptablesRule[];
  readonly #run: CommandRunner;
  readonly #log: Logger;
  readonly #onError: ((type: SetupErrorType, err: IptablesError) => void) | undefined;
  readonly #wait: string;

  constructor(rules: readonly IptablesRule[], opts: IptablesManagerOptions) {
    this.rules = rules;
    this.#run = opts.runner ?? execRunner;
    this.#log = opts.log;
    this.#onError = opts.onError;
    this.#wait = String(opts.lockWaitSec ?? XTABLES_LOCK_WAIT_SEC);
  }

  get ruleCount(): number {
    return this.rules.length;
  }

  describe(): string {
    return `${this.rules.length} iptables rules`;
  }

  async #exec(rule: IptablesRule, op: '-C' | '-I' | '-D'): Promise<{ code: number; stderr: string }> {
    const bin = rule.ipv6 ? 'ip6tables' : 'iptables';
    const args = ['-w', this.#wait, '-t', rule.table, op, rule.chain, ...(op === '-I' ? ['1'] : []), ...rule.args];
    const r = await this.#run(bin, args);
    return { code: r.code, stderr: r.stderr };
  }

  /** True when the rule is present. Exit status 1 means absent; anything else is an IptablesError. */
  async check(rule: IptablesRule): Promise<boolean> {
    const r = await this.#exec(rule, '-C');
    if (r.code === 0) return true;
    if (r.code === 1 && !/xtables lock/i.test(r.stderr)) return false;
    throw new IptablesError(`error checking rule: ${firstLine(r.stderr) || `exit status ${r.code}`}`, r.stderr);
  }

  async insert(rule: IptablesRule): Promise<void> {
    const r = await this.#exec(rule, '-I');
    if (r.code !== 0) throw new IptablesError(`error inserting rule: ${firstLine(r.stderr) || `exit status ${r.code}`}`, r.stderr);
  }

  async delete(rule: IptablesRule): Promise<void> {
    const r = await this.#exec(rule, '-D');
    if (r.code !== 0) throw new IptablesError(`error deleting rule: ${firstLine(r.stderr) || `exit status ${r.code}`}`, r.stderr);
  }

  #fail(err: unknown, what: string, rule: IptablesRule): void {
    const e = err instanceof IptablesError ? err : new IptablesError(String((err as Error)?.message ?? err), '');
    if (e.errorType === SetupErrorType.IPTABLES_LOCK) {
      this.#log.info(`Error ${what} iptables rule ${formatRule(rule)}, due to xtables lock in use, retrying later`);
    } else {
      this.#log.error(`Error ${what} iptables rule ${formatRule(rule)}, error - ${e.message}`);
    }
    this.#onError?.(e.errorType, e);
  }

  /** Checks every rule and inserts the missing ones at the top of their chain. Never throws. */
  async ensureAll(): Promise<EnsureRulesResult> {
    const res: EnsureRulesResult = { added: 0, existing: 0, errors: 0 };
    for (const rule of this.rules) {
      try {
        if (await this.check(rule)) {
          res.existing++;
          this.#log.debug?.(`iptables rule ${formatRule(rule)} for nodelocaldns already exists`);
          continue;
        }
        await this.insert(rule);
        res.added++;
        this.#log.info(`Added back nodelocaldns rule - ${formatRule(rule)}`);
      } catch (err) {
        res.errors++;
        this.#fail(err, 'checking/adding', rule);
      }
    }
    return res;
  }

  /**
   * Deletes every copy of every rule: delete, then `-C`, again while the check still finds one.
   * A delete that finds no such rule (exit status 1) ends the loop. Never throws.
   */
  async teardown(): Promise<TeardownRulesResult> {
    let removed = 0;
    let errors = 0;
    for (const rule of this.rules) {
      for (let round = 0; round < MAX_DELETE_ROUNDS; round++) {
        try {
          const r = await this.#exec(rule, '-D');
          if (r.code === 1 && !/xtables lock/i.test(r.stderr)) break;
          if (r.code !== 0) throw new IptablesError(`error deleting rule: ${firstLine(r.stderr) || `exit status ${r.code}`}`, r.stderr);
          removed++;
          if (!(await this.check(rule))) break;
        } catch (err) {
          errors++;
          this.#fail(err, 'deleting', rule);
          break;
        }
      }
    }
    return { removed, errors };
  }
}
