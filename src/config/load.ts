/**
 * From Corefile text to configured server blocks: parse, resolve each block's keys into
 * (zone, port), set up its plugins through the registry, and compose each chain once, in
 * the order of src/plugins/order.ts. Setup has no side effects (nothing is bound or started),
 * so a config that fails to load leaves the running one untouched.
 *
 * Loading never holds the serving thread for long: imports are read asynchronously (callback fs)
 * (parseCorefileAsync), the Corefile's size and block count are bounded (src/corefile/limits.ts),
 * and the event loop gets a turn between groups of server blocks, so DNS keeps being answered
 * while a large configuration is built.
 */
import {
  defaultServerConfig,
  type Handler,
  type Plugin,
  type SetupContext,
  type BlockInfo,
  type EngineHooks,
  type Clock,
  type Logger,
  type ErrorSink,
  type ServerConfig,
} from '../plugin.ts';
import type { Directive, ServerBlock } from '../corefile/types.ts';
import type { Request } from '../server/request.ts';
import { parseCorefileAsync } from '../corefile/parser.ts';
import { excerpt } from '../corefile/errors.ts';
import type { ConfigLimits } from '../corefile/limits.ts';
import { parseServerKey } from '../corefile/address.ts';
import { errorAt } from '../corefile/setup-helpers.ts';
import { pluginIndex } from '../plugins/order.ts';
import { loadPluginSetups, pluginSetups } from '../plugins/registry.ts';
import { Rcode } from '../wire/codes.ts';

export interface LoadedBlock extends BlockInfo {
  /** The block's keys as written, for matching blocks across reloads. */
  key: string;
  chain: Handler;
  errorSink: ErrorSink | null;
  /** The block's server settings as its plugins left them (listen hosts, timeouts, debug). */
  server: ServerConfig;
  file: string;
  line: number;
}

export interface LoadedConfig {
  blocks: LoadedBlock[];
  text: string;
  file: string;
}

export interface LoadOptions {
  /** Addresses for blocks without `bind` (node-cache: the -localip list). */
  defaultBind: string[];
  /** Port for keys without one (`-dns.port`). */
  defaultPort: number;
  env: Record<string, string | undefined>;
  /** The cluster's zones (SetupContext.clusterZones). */
  clusterZones?: readonly string[];
  clock: Clock;
  log: Logger;
  engine: EngineHooks;
  /** Shared by the blocks of this load. */
  shared?: Map<string, unknown>;
  /** Bounds of this load (default: src/corefile/limits.ts DEFAULT_CONFIG_LIMITS). */
  limits?: Partial<ConfigLimits>;
  /**
   * false: set every plugin up (the validation, the ServerConfig) but compose no chain (each
   * block's chain answers SERVFAIL): for a thread that serves no DNS itself. Default true.
   */
  compose?: boolean;
}

/** Server blocks set up between two turns of the event loop. */
const BLOCKS_PER_TURN = 50;

function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** The end of every chain: nothing answered, so SERVFAIL (CoreDNS's "no next plugin found"). */
const TERMINAL: Handler = {
  serve(req: Request): void {
    req.fail('', Rcode.SERVFAIL, new Error('no next plugin found'));
  },
};

/**
 * CoreDNS's server label, `dns://` + Go's TCPAddr text: IPv6 in canonical form (lower case,
 * compressed) in brackets (`dns://[fd00::10]:53` for `bind FD00:0::10`), IPv4-mapped IPv6 as IPv4.
 */
export function serverLabel(address: string, port: number): string {
  if (!address.includes(':')) return `dns://${address}:${port}`;
  let host = address;
  try {
    host = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    // not a plain IPv6 literal (a zone): as written
  }
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(host);
  if (mapped) {
    const hi = Number.parseInt(mapped[1]!, 16);
    const lo = Number.parseInt(mapped[2]!, 16);
    return `dns://${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}:${port}`;
  }
  return `dns://[${host}]:${port}`;
}

function mergeDirectives(list: Directive[]): Directive {
  const first = list[0]!;
  if (list.length === 1) return first;
  return { ...first, args: list.flatMap((d) => d.args), block: list.some((d) => d.block) ? list.flatMap((d) => d.block ?? []) : null };
}

export async function loadConfig(text: string, file: string, opts: LoadOptions): Promise<LoadedConfig> {
  const serverBlocks = await parseCorefileAsync(text, file, opts.env, { limits: opts.limits });
  // The plugins this Corefile names that are not loaded yet (src/plugins/registry.ts).
  await loadPluginSetups(serverBlocks.flatMap((b) => b.directives.map((d) => d.name)));
  const shared = opts.shared ?? new Map<string, unknown>();
  const blocks: LoadedBlock[] = [];
  const seen = new Map<string, string>();
  for (let blockIndex = 0; blockIndex < serverBlocks.length; blockIndex++) {
    if (blockIndex > 0 && blockIndex % BLOCKS_PER_TURN === 0) await nextTurn();
    const sb = serverBlocks[blockIndex]!;
    for (const lb of loadBlock(sb, blockIndex, file, opts, shared)) {
      for (const zone of lb.zones) {
        for (const addr of lb.addresses) {
          const k = `${zone}|${addr}|${lb.port}`;
          if (seen.has(k)) throw errorAt(sb.keys[0]!, `cannot serve dns://${zone}:${lb.port} on ${addr} - it is already defined`);
          seen.set(k, lb.key);
        }
      }
      blocks.push(lb);
    }
  }
  return { blocks, text, file };
}

function loadBlock(sb: ServerBlock, blockIndex: number, file: string, opts: LoadOptions, shared: Map<string, unknown>): LoadedBlock[] {
  // Group the block's keys by port: each port is served by its own plugin instances.
  const byPort = new Map<number, string[]>();
  for (const tok of sb.keys) {
    const a = parseServerKey(tok);
    const port = a.port ?? opts.defaultPort;
    const zones = byPort.get(port) ?? [];
    // CoreDNS checks every key of every block: `a.com:53 A.com.:53` is the same zone twice.
    if (zones.includes(a.zone)) throw errorAt(tok, `cannot serve dns://${a.zone}:${port} - it is already defined`);
    zones.push(a.zone);
    byPort.set(port, zones);
  }
  // Directives by name, checked against the registry.
  const byName = new Map<string, Directive[]>();
  for (const d of sb.directives) {
    const setup = pluginSetups().get(d.name);
    if (setup === undefined) {
      if (pluginIndex(d.name) >= 0) throw errorAt(d, `plugin '${excerpt(d.name)}' is not supported by node-local-dns`);
      throw errorAt(d, `Unknown directive '${excerpt(d.name)}'`);
    }
    const list = byName.get(d.name) ?? [];
    if (list.length > 0 && setup.repeatable !== true) throw errorAt(d, `plugin/${d.name}: this plugin can only be used once per Server Block`);
    list.push(d);
    byName.set(d.name, list);
  }
  const ordered = [...byName.keys()].sort((a, b) => pluginIndex(a) - pluginIndex(b));
  const key = sb.keys.map((k) => k.text).join(' ');
  const out: LoadedBlock[] = [];
  for (const [port, zones] of byPort) {
    // Plugins are set up in chain order; each sees the server settings the earlier ones made.
    const server = defaultServerConfig(opts.defaultBind);
    const ctx: SetupContext = {
      zones,
      port,
      blockIndex,
      file,
      shared,
      env: opts.env,
      clusterZones: opts.clusterZones,
      clock: opts.clock,
      log: opts.log,
      engine: opts.engine,
      server,
      get serverLabels(): string[] {
        return server.listenHosts.map((a) => serverLabel(a, port));
      },
    };
    const plugins: Plugin[] = [];
    for (const name of ordered) {
      const setup = pluginSetups().get(name)!;
      const list = byName.get(name)!;
      plugins.push(list.length > 1 && setup.setupAll !== undefined ? setup.setupAll(list, ctx) : setup.setup(mergeDirectives(list), ctx));
    }
    let chain: Handler = TERMINAL;
    if (opts.compose !== false) for (let i = plugins.length - 1; i >= 0; i--) chain = plugins[i]!.compose(chain);
    out.push({
      key: `${key}@${port}`,
      zones,
      port,
      addresses: [...server.listenHosts],
      serverLabels: ctx.serverLabels,
      plugins,
      chain,
      errorSink: plugins.find((p) => p.errorSink !== undefined)?.errorSink ?? null,
      server,
      file: sb.file,
      line: sb.line,
    });
  }
  return out;
}
