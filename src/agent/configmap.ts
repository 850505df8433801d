/**
 * The kube-dns ConfigMap as node-cache reads it: a mounted directory (`-kubednscm`, default
 * /etc/kube-dns) with one file per key. Keys used: `stubDomains` (JSON object: domain → list of
 * nameservers) and `upstreamNameservers` (JSON list, at most 3). `federations` is accepted and
 * ignored; other keys are ignored.
 *
 * Validation follows kube-dns/node-cache: a stub domain is a DNS-1123 subdomain (lower case
 * letters, digits, `-` and `.`, at most 253 characters); every nameserver is an IP address with
 * an optional port (`1.2.3.4`, `1.2.3.4:5353`, `[fd00::1]:53`). Additionally a stub domain needs at
 * least one nameserver (an empty list would render an invalid `forward` line).
 *
 * Directory reading follows kube-dns's file sync: top-level regular files only (symlinks are
 * followed), hidden names (`..data`, `..2024_...`) skipped, contents must be UTF-8; the version
 * is a SHA-256 over `name NUL data NUL` in name order, '' for an empty or missing directory.
 * Bounds: a file that is not a regular file (a FIFO would block the read forever) or a
 * directory whose visible files hold more than MAX_CONFIGMAP_BYTES (Kubernetes' own limit for
 * a ConfigMap) is a ConfigMapError: the agent keeps its last good values and counts it.
 *
 * Kubernetes updates ConfigMap volumes by writing a new hidden directory and atomically swapping
 * the `..data` symlink, so `ConfigWatcher` watches directories (not files) and compares versions;
 * polling is the source of truth, fs.watch only makes it react sooner.
 */
import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from '../util/fs-async.ts';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { TextDecoder } from 'node:util';
import { DEFAULT_CONFIG_LIMITS } from '../corefile/limits.ts';
import { ReadFailure, ReadRegularError, readRegularFile } from '../util/read-regular.ts';

const CONFIGMAP_KEYS = {
  stubDomains: 'stubDomains',
  upstreamNameservers: 'upstreamNameservers',
  federations: 'federations',
} as const;

const MAX_UPSTREAM_NAMESERVERS = 3;
/** Bytes read from a ConfigMap directory in all (Kubernetes refuses ConfigMaps over 1 MiB). */
const MAX_CONFIGMAP_BYTES = 1 << 20;
/** Bytes of a watched single file (the Corefile template): the engine's Corefile limit. */
export const MAX_TEMPLATE_BYTES = DEFAULT_CONFIG_LIMITS.maxConfigBytes;

export interface KubeDnsConfig {
  /** Stub domain → nameservers, in the order given. */
  stubDomains: Map<string, string[]>;
  upstreamNameservers: string[];
}

export function emptyKubeDnsConfig(): KubeDnsConfig {
  return { stubDomains: new Map(), upstreamNameservers: [] };
}

export class ConfigMapError extends Error {
  readonly code = 'ERR_CONFIGMAP' as const;
  /** The ConfigMap key (file) at fault, when known. */
  readonly key: string | undefined;
  constructor(message: string, key?: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'ConfigMapError';
    this.key = key;
  }
}

const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Kubernetes' IsDNS1123Subdomain. */
export function isDns1123Subdomain(name: string): boolean {
  return name.length <= 253 && DNS1123_SUBDOMAIN.test(name);
}

/** True for `ip`, `ipv4:port` and `[ipv6]:port` with port 1..65535. */
export function isNameserverAddress(ns: string): boolean {
  if (isIP(ns) !== 0) return true;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(ns);
  if (!m) return false;
  const host = m[1] ?? m[2]!;
  const fam = isIP(host);
  if (fam === 0 || (m[1] !== undefined && fam !== 6) || (m[2] !== undefined && fam !== 4)) return false;
  const port = Number(m[3]);
  return port >= 1 && port <= 65535;
}

function parseJson(key: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigMapError(`invalid JSON in ${key}: ${(err as Error).message}`, key, { cause: err });
  }
}

/** Parses and validates the ConfigMap data (key → file contents). Throws ConfigMapError. */
export function parseKubeDnsConfig(data: ReadonlyMap<string, string> | Readonly<Record<string, string>>): KubeDnsConfig {
  const get = (k: string): string | undefined => (data instanceof Map ? data.get(k) : (data as Record<string, string>)[k]);
  const cfg = emptyKubeDnsConfig();

  const stubText = get(CONFIGMAP_KEYS.stubDomains);
  if (stubText !== undefined) {
    const key = CONFIGMAP_KEYS.stubDomains;
    const v = parseJson(key, stubText);
    if (v !== null) {
      if (typeof v !== 'object' || Array.isArray(v)) throw new ConfigMapError(`${key} must be a JSON object of domain → nameserver list`, key);
      for (const [domain, list] of Object.entries(v as Record<string, unknown>)) {
        if (!isDns1123Subdomain(domain)) throw new ConfigMapError(`invalid domain name: ${JSON.stringify(domain)}`, key);
        if (list === null) throw new ConfigMapError(`stub domain ${domain} has no nameservers`, key);
        if (!Array.isArray(list) || !list.every((x) => typeof x === 'string')) {
          throw new ConfigMapError(`nameservers of stub domain ${domain} must be a JSON list of strings`, key);
        }
        if (list.length === 0) throw new ConfigMapError(`stub domain ${domain} has no nameservers`, key);
        for (const ns of list as string[]) {
          if (!isNameserverAddress(ns)) throw new ConfigMapError(`invalid nameserver ${JSON.stringify(ns)} for stub domain ${domain}`, key);
        }
        cfg.stubDomains.set(domain, [...(list as string[])]);
      }
    }
  }

  const upText = get(CONFIGMAP_KEYS.upstreamNameservers);
  if (upText !== undefined) {
    const key = CONFIGMAP_KEYS.upstreamNameservers;
    const v = parseJson(key, upText);
    if (v !== null) {
      if (!Array.isArray(v) || !v.every((x) => typeof x === 'string')) {
        throw new ConfigMapError(`${key} must be a JSON list of strings`, key);
      }
      if (v.length > MAX_UPSTREAM_NAMESERVERS) {
        throw new ConfigMapError(`${key} cannot have more than ${MAX_UPSTREAM_NAMESERVERS} entries`, key);
      }
      for (const ns of v as string[]) {
        if (!isNameserverAddress(ns)) throw new ConfigMapError(`invalid upstream nameserver ${JSON.stringify(ns)}`, key);
      }
      cfg.upstreamNameservers = [...(v as string[])];
    }
  }
  return cfg;
}

export interface DirSnapshot {
  exists: boolean;
  /** '' when the directory is missing or holds no visible file. */
  version: string;
  files: Map<string, string>;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function isNotFound(err: unknown): boolean {
  const code = err instanceof ReadRegularError ? err.errno : (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Reads a mounted ConfigMap directory (see the module comment). Throws ConfigMapError on I/O errors. */
export async function readConfigDir(dir: string): Promise<DirSnapshot> {
  let names: string[];
  try {
    const st = await stat(dir);
    if (!st.isDirectory()) throw new ConfigMapError(`config path ${dir} is not a directory`);
    names = (await readdir(dir)).sort();
  } catch (err) {
    if (err instanceof ConfigMapError) throw err;
    if (isNotFound(err)) return { exists: false, version: '', files: new Map() };
    throw new ConfigMapError(`cannot read ${dir}: ${(err as Error).message}`, undefined, { cause: err });
  }
  const hash = createHash('sha256');
  const files = new Map<string, string>();
  let budget = MAX_CONFIGMAP_BYTES;
  for (const name of names) {
    if (name.startsWith('.')) continue;
    const path = join(dir, name);
    let buf: Buffer;
    try {
      if ((await stat(path)).isDirectory()) continue;
      buf = await readRegularFile(path, budget);
    } catch (err) {
      // A file vanishing between readdir and read is an update in progress: the next poll sees it.
      if (isNotFound(err)) continue;
      if (err instanceof ReadRegularError && err.failure === ReadFailure.TOO_LARGE) {
        throw new ConfigMapError(`${dir} holds more than ${MAX_CONFIGMAP_BYTES} bytes (at ${name})`, name, { cause: err });
      }
      throw new ConfigMapError(err instanceof ReadRegularError ? err.message : `cannot read ${path}: ${(err as Error).message}`, name, { cause: err });
    }
    budget -= buf.length;
    let text: string;
    try {
      text = utf8.decode(buf);
    } catch {
      throw new ConfigMapError(`non-utf8 data in ${path}`, name);
    }
    hash.update(name).update('\0').update(buf).update('\0');
    files.set(name, text);
  }
  return { exists: true, version: files.size > 0 ? hash.digest('hex') : '', files };
}

/** Reads and validates the kube-dns ConfigMap directory. Throws ConfigMapError. */
export async function loadKubeDnsConfig(dir: string): Promise<{ config: KubeDnsConfig; version: string; exists: boolean }> {
  const snap = await readConfigDir(dir);
  return { config: parseKubeDnsConfig(snap.files), version: snap.version, exists: snap.exists };
}

/** Version of one file's contents ('' when missing); ReadRegularError for anything but a regular file of at most maxBytes. */
export async function fileVersion(path: string, maxBytes = MAX_TEMPLATE_BYTES): Promise<string> {
  try {
    return createHash('sha256')
      .update(await readRegularFile(path, maxBytes))
      .digest('hex');
  } catch (err) {
    if (isNotFound(err)) return '';
    throw err;
  }
}

export interface WatchSource {
  /** Passed to onChange. */
  name: string;
  /** Directory to fs.watch for early notification. */
  dir: string;
  /** Current version of the watched content. */
  version(): Promise<string>;
}

export interface ConfigWatcherOptions {
  /** Poll period; kube-dns and node-cache poll every 10 s. */
  intervalMs: number;
  /** Called (not awaited concurrently: polls are serialised) when a source's version changes. */
  onChange(name: string): void | Promise<void>;
  onError?(name: string, err: unknown): void;
}

/** Debounce between an fs.watch event and the check it triggers (the `..data` swap is several events). */
const FS_EVENT_DEBOUNCE_MS = 100;

export class ConfigWatcher {
  readonly #sources: WatchSource[];
  readonly #opts: ConfigWatcherOptions;
  readonly #versions = new Map<string, string>();
  readonly #fsWatchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;

  constructor(sources: WatchSource[], opts: ConfigWatcherOptions) {
    this.#sources = sources;
    this.#opts = opts;
  }

  /** Records the current versions (no callback for them) and starts watching. */
  async start(): Promise<void> {
    for (const s of this.#sources) {
      try {
        this.#versions.set(s.name, await s.version());
      } catch (err) {
        this.#versions.set(s.name, '');
        this.#opts.onError?.(s.name, err);
      }
      try {
        const w = watch(s.dir, { persistent: false }, () => this.#schedule());
        w.on('error', () => undefined);
        this.#fsWatchers.push(w);
      } catch {
        // Directory missing or not watchable: polling still covers it.
      }
    }
    this.#timer = setInterval(() => void this.poll(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  #schedule(): void {
    if (this.#stopped) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.poll(), FS_EVENT_DEBOUNCE_MS);
    this.#debounce.unref();
  }

  /** Checks every source now; resolves after the callbacks for any changes have finished. */
  poll(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        for (const s of this.#sources) {
          if (this.#stopped) return;
          let v: string;
          try {
            v = await s.version();
          } catch (err) {
            this.#opts.onError?.(s.name, err);
            continue;
          }
          if (v !== this.#versions.get(s.name)) {
            this.#versions.set(s.name, v);
            try {
              await this.#opts.onChange(s.name);
            } catch (err) {
              this.#opts.onError?.(s.name, err);
            }
          }
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#timer);
    clearTimeout(this.#debounce);
    for (const w of this.#fsWatchers) w.close();
    this.#fsWatchers.length = 0;
    await this.#running;
  }
}
