/**
 * The node's network set-up the agent manages: the interface holding the local IPs
 * (`-setupinterface`, iface.ts) and the NOTRACK/ACCEPT rules (`-setupiptables`, written by the
 * back end `-rulesbackend` chooses, rules.ts). Which role may create, repair or remove them, and
 * when, is the agent's decision (agent.ts); this module only does it.
 *
 * Contract: failures are logged and counted in SetupMetrics and never thrown, except an
 * interface type the kernel does not support at start-up (`ensureInterface(true)`), which is fatal.
 */
import type { Options } from '../cli/options.ts';
import type { Logger } from '../plugin.ts';
import type { CommandRunner } from './exec.ts';
import { InterfaceErrorCode, InterfaceError, InterfaceManager } from './iface.ts';
import { chooseRulesBackend, createRulesBackend, type RulesBackend } from './rules.ts';
import { SetupErrorType, type SetupMetrics } from './setup-metrics.ts';

type NetworkOptions = Pick<
  Options,
  'setupInterface' | 'setupIptables' | 'interfaceName' | 'interfaceType' | 'localIps' | 'rulesBackend' | 'ipFamilies' | 'dnsPort' | 'healthPort'
>;

export class NodeNetwork {
  /** The interface, when `-setupinterface`. */
  readonly iface: InterfaceManager | undefined;
  /** The rules, when `-setupiptables`, once `chooseRules()` ran. */
  rules: RulesBackend | undefined;
  readonly #opts: NetworkOptions;
  readonly #runner: CommandRunner | undefined;
  readonly #log: Logger;
  readonly #metrics: SetupMetrics;

  constructor(opts: NetworkOptions, o: { runner: CommandRunner | undefined; log: Logger; metrics: SetupMetrics }) {
    this.#opts = opts;
    this.#runner = o.runner;
    this.#log = o.log;
    this.#metrics = o.metrics;
    this.iface = opts.setupInterface ? new InterfaceManager({ name: opts.interfaceName, type: opts.interfaceType, ips: opts.localIps }, o.runner) : undefined;
  }

  /** True when there is anything to tear down. */
  get managed(): boolean {
    return this.iface !== undefined || this.rules !== undefined;
  }

  /** Creates the interface or puts back its missing addresses. At start-up an unsupported interface type throws. */
  async ensureInterface(startup: boolean): Promise<void> {
    if (!this.iface) return;
    const name = this.#opts.interfaceName;
    try {
      const res = await this.iface.ensure();
      if (res.created) this.#log.info(`Added interface - ${name}`);
      else if (res.addedAddrs.length > 0) this.#log.info(`Added back addresses ${res.addedAddrs.join(', ')} to interface ${name}`);
    } catch (err) {
      const e = err instanceof InterfaceError ? err : new InterfaceError(InterfaceErrorCode.CHECK, String(err));
      if (e.code === InterfaceErrorCode.CHECK) {
        this.#log.error(`Error checking interface ${name} - ${e.message}`);
        this.#metrics.inc(SetupErrorType.INTERFACE_CHECK);
      } else {
        this.#log.error(`Failed to add non-existent interface ${name}: ${e.message}`);
        this.#metrics.inc(SetupErrorType.INTERFACE_ADD);
      }
      if (startup && e.code === InterfaceErrorCode.UNSUPPORTED) throw e;
    }
  }

  /** Picks the rules back end (`-rulesbackend`), when `-setupiptables`; installs nothing yet. */
  async chooseRules(): Promise<void> {
    const opts = this.#opts;
    if (!opts.setupIptables) return;
    const choice = await chooseRulesBackend(opts.rulesBackend, { runner: this.#runner, families: opts.ipFamilies });
    // The default (iptables) logs nothing new: node-cache's start-up lines stay as they were.
    if (opts.rulesBackend !== 'iptables') this.#log.info(`Rules back end: ${choice.kind} (${choice.reason})`);
    this.rules = createRulesBackend(choice.kind, {
      localIps: opts.localIps,
      dnsPort: opts.dnsPort,
      healthPort: opts.healthPort,
      runner: this.#runner,
      log: this.#log,
      onError: (type) => this.#metrics.inc(type),
    });
  }

  /** What is in place, for the start-up line: `interface nodelocaldns`, `24 iptables rules`. */
  describe(): string[] {
    return [this.iface ? `interface ${this.#opts.interfaceName}` : '', this.rules ? this.rules.describe() : ''].filter((x) => x !== '');
  }

  /** Removes the rules, then the interface. */
  async remove(): Promise<void> {
    await this.rules?.teardown();
    if (this.iface) {
      try {
        await this.iface.remove();
      } catch (err) {
        this.#log.error((err as Error).message);
      }
    }
  }
}
