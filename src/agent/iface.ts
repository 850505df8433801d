/**
 * The interface holding the local listen IPs (node-cache's `nodelocaldns` dummy device), managed
 * with iproute2's `ip` run through a CommandRunner (execFile, no shell).
 *
 * ensure(): when the link is missing it is created with the configured type (`dummy`, or `bridge`
 * where the kernel has no dummy link type) and gets every local IP as a host address (/32, /128);
 * when it exists, missing addresses are added back. As node-cache, the link is left
 * administratively down: the kernel installs local routes for its addresses regardless, and a
 * down link never takes part in forwarding. IPv6 addresses are added with `nodad` so they are
 * usable at once.
 *
 * remove(): deletes the link (and with it its addresses).
 */
import { isIP } from 'node:net';
import { execRunner, firstLine, type CommandRunner } from './exec.ts';

export const InterfaceErrorCode = {
  UNSUPPORTED: 'ERR_IFACE_UNSUPPORTED',
  ADD: 'ERR_IFACE_ADD',
  CHECK: 'ERR_IFACE_CHECK',
  REMOVE: 'ERR_IFACE_REMOVE',
} as const;
export type InterfaceErrorCode = (typeof InterfaceErrorCode)[keyof typeof InterfaceErrorCode];

export class InterfaceError extends Error {
  readonly code: InterfaceErrorCode;
  constructor(code: InterfaceErrorCode, message: string) {
    super(message);
    this.name = 'InterfaceError';
    this.code = code;
  }
}

export interface InterfaceSpec {
  name: string;
  /** iproute2 link type: `dummy` (node-cache's) or `bridge`. */
  type: string;
  ips: readonly string[];
}

export interface EnsureInterfaceResult {
  /** True when the link did not exist and was created. */
  created: boolean;
  /** Addresses (as given) that were missing and were added. */
  addedAddrs: string[];
}

/** Canonical text of an IP address (lower-case, compressed IPv6), for comparisons. */
export function canonicalIp(ip: string): string {
  const fam = isIP(ip);
  if (fam === 4) return ip;
  if (fam === 6) return new URL(`http://[${ip}]/`).hostname.slice(1, -1);
  throw new InterfaceError(InterfaceErrorCode.CHECK, `not an IP address: ${JSON.stringify(ip)}`);
}

/** `ip link add` failed because the kernel does not know the link type. */
export function isUnsupportedLinkType(stderr: string): boolean {
  return /unknown device type|not supported/i.test(stderr);
}

function isMissingDevice(stderr: string): boolean {
  return /does not exist|cannot find device/i.test(stderr);
}

function isAddressPresent(stderr: string): boolean {
  return /file exists|already assigned/i.test(stderr);
}

interface IpAddrJson {
  ifname?: string;
  addr_info?: { family?: string; local?: string; prefixlen?: number }[];
}

export class InterfaceManager {
  readonly spec: InterfaceSpec;
  readonly #run: CommandRunner;

  constructor(spec: InterfaceSpec, runner: CommandRunner = execRunner) {
    this.spec = { name: spec.name, type: spec.type, ips: [...spec.ips] };
    this.#run = runner;
  }

  /** The link's addresses as `ip/prefixlen`, or null when the link does not exist. */
  async addresses(): Promise<string[] | null> {
    const r = await this.#run('ip', ['-j', 'addr', 'show', 'dev', this.spec.name]);
    if (r.code !== 0) {
      if (isMissingDevice(r.stderr)) return null;
      throw new InterfaceError(InterfaceErrorCode.CHECK, `cannot inspect interface ${this.spec.name}: ${firstLine(r.stderr) || `ip exited with ${r.code}`}`);
    }
    let parsed: IpAddrJson[];
    try {
      parsed = JSON.parse(r.stdout) as IpAddrJson[];
    } catch {
      throw new InterfaceError(InterfaceErrorCode.CHECK, `cannot parse "ip -j addr show dev ${this.spec.name}" output`);
    }
    const out: string[] = [];
    for (const link of parsed) {
      for (const a of link.addr_info ?? []) {
        if (a.local !== undefined && a.prefixlen !== undefined) out.push(`${canonicalIp(a.local)}/${a.prefixlen}`);
      }
    }
    return out;
  }

  async exists(): Promise<boolean> {
    return (await this.addresses()) !== null;
  }

  /**
   * Creates the link if missing and adds missing addresses. Throws InterfaceError:
   * ERR_IFACE_UNSUPPORTED when the kernel lacks the link type, ERR_IFACE_ADD when creating the
   * link or its addresses failed, ERR_IFACE_CHECK when inspecting or repairing an existing link failed.
   */
  async ensure(): Promise<EnsureInterfaceResult> {
    const { name, type } = this.spec;
    let current = await this.addresses();
    const created = current === null;
    if (current === null) {
      const r = await this.#run('ip', ['link', 'add', name, 'type', type]);
      if (r.code !== 0 && !isAddressPresent(r.stderr)) {
        const cause = firstLine(r.stderr) || `ip exited with ${r.code}`;
        if (isUnsupportedLinkType(r.stderr)) {
          throw new InterfaceError(
            InterfaceErrorCode.UNSUPPORTED,
            `cannot create interface ${name}: this kernel has no "${type}" link type ` +
              `(${type === 'dummy' ? 'the dummy module is not built or not loaded' : 'the link type is unavailable'}; ip said: ${cause}). ` +
              `Work around it with -interfacetype=bridge, or with -setupinterface=false after putting ` +
              `${this.spec.ips.join(', ')} on an interface yourself.`,
          );
        }
        throw new InterfaceError(InterfaceErrorCode.ADD, `cannot create interface ${name} of type ${type}: ${cause}`);
      }
      current = [];
    }
    const have = new Set(current.map((a) => a.split('/')[0]));
    const addedAddrs: string[] = [];
    for (const ip of this.spec.ips) {
      if (have.has(canonicalIp(ip))) continue;
      const v6 = isIP(ip) === 6;
      const args = v6 ? ['-6', 'addr', 'add', `${ip}/128`, 'dev', name, 'nodad'] : ['addr', 'add', `${ip}/32`, 'dev', name];
      const r = await this.#run('ip', args);
      if (r.code !== 0) {
        if (isAddressPresent(r.stderr)) continue;
        throw new InterfaceError(
          created ? InterfaceErrorCode.ADD : InterfaceErrorCode.CHECK,
          `cannot add address ${ip} to interface ${name}: ${firstLine(r.stderr) || `ip exited with ${r.code}`}`,
        );
      }
      addedAddrs.push(ip);
    }
    return { created, addedAddrs };
  }

  /** Deletes the link; false when it did not exist. */
  async remove(): Promise<boolean> {
    const r = await this.#run('ip', ['link', 'del', this.spec.name]);
    if (r.code === 0) return true;
    if (isMissingDevice(r.stderr)) return false;
    throw new InterfaceError(InterfaceErrorCode.REMOVE, `cannot delete interface ${this.spec.name}: ${firstLine(r.stderr) || `ip exited with ${r.code}`}`);
  }
}
