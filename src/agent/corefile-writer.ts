/**
 * The agent's Corefile: renders `-basecorefile` (template.ts) with the last good kube-dns
 * ConfigMap (`-kubednscm`, configmap.ts) and writes it to `-conf` atomically (a reader never
 * sees a partial file). It also tracks the cluster zones the engine gets with every start and
 * reload: the operator's (NODE_LOCAL_DNS_CLUSTER_ZONES) when set, otherwise the template's
 * cluster blocks (src/config/cluster-zones.ts).
 *
 * Contract: `render()` throws TemplateError or an I/O error and changes nothing on disk; an
 * invalid ConfigMap never throws (`loadKubeDns()` logs, counts and keeps the last good values).
 */
import { rename, stat, writeFile } from '../util/fs-async.ts';
import { basename, dirname, join } from 'node:path';
import type { Options } from '../cli/options.ts';
import { CLUSTER_ZONES_ENV, DEFAULT_CLUSTER_ZONES, clusterZonesFrom } from '../config/cluster-zones.ts';
import type { Logger } from '../plugin.ts';
import { readRegularFile } from '../util/read-regular.ts';
import { ConfigMapError, MAX_TEMPLATE_BYTES, emptyKubeDnsConfig, loadKubeDnsConfig, type KubeDnsConfig } from './configmap.ts';
import { SetupErrorType, type SetupMetrics } from './setup-metrics.ts';
import { renderCorefile } from './template.ts';

/** One rendering of the template. */
export interface RenderedCorefile {
  corefile: string;
  /** The upstream servers, for the log line. */
  upstream: string;
  /** How many stub domains the ConfigMap added. */
  stubs: number;
}

/** True when `path` is a regular file (template mode: `-basecorefile` exists). */
export async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}

/** Writes through a temporary file and rename, so a reader never sees a partial Corefile. */
async function writeFileAtomic(path: string, data: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  await writeFile(tmp, data, { mode: 0o644 });
  await rename(tmp, path);
}

type CorefileOptions = Pick<Options, 'corefilePath' | 'baseCorefilePath' | 'kubeDnsConfigMapDir' | 'localIps' | 'upstreamSvc' | 'dnsPort'>;

export class CorefileWriter {
  /** `-conf`: the Corefile the engine serves. */
  readonly path: string;
  /** `-basecorefile`: the template. */
  readonly basePath: string;
  readonly #opts: CorefileOptions;
  readonly #env: Readonly<Record<string, string | undefined>>;
  readonly #log: Logger;
  readonly #metrics: SetupMetrics;
  #kubeDns: KubeDnsConfig = emptyKubeDnsConfig();
  /** The operator named the zones: the template's blocks do not change them. */
  readonly #clusterZonesPreset: boolean;
  #clusterZones: readonly string[];
  /** The template's zones last logged, so that the line appears only when they change. */
  #clusterZonesShown = '';

  constructor(opts: CorefileOptions, o: { env: Readonly<Record<string, string | undefined>>; log: Logger; metrics: SetupMetrics }) {
    this.#opts = opts;
    this.path = opts.corefilePath;
    this.basePath = opts.baseCorefilePath;
    this.#env = o.env;
    this.#log = o.log;
    this.#metrics = o.metrics;
    this.#clusterZonesPreset = (o.env[CLUSTER_ZONES_ENV] ?? '').trim() !== '';
    this.#clusterZones = clusterZonesFrom(o.env);
  }

  /** The cluster zones for the engine's next start or reload. */
  get clusterZones(): readonly string[] {
    return this.#clusterZones;
  }

  /** Re-reads `-kubednscm`; a missing directory or an invalid ConfigMap keeps the last good values. */
  async loadKubeDns(): Promise<void> {
    try {
      const { config, exists } = await loadKubeDnsConfig(this.#opts.kubeDnsConfigMapDir);
      if (!exists) return;
      this.#kubeDns = config;
    } catch (err) {
      const msg = err instanceof ConfigMapError ? err.message : String(err);
      this.#log.error(`Invalid kube-dns ConfigMap in ${this.#opts.kubeDnsConfigMapDir}, keeping the last good values: ${msg}`);
      this.#metrics.inc(SetupErrorType.CONFIGMAP);
    }
  }

  /** Renders the Corefile text; throws TemplateError or I/O errors. */
  async render(): Promise<RenderedCorefile> {
    // Never blocks (a FIFO) nor reads without bound (src/util/read-regular.ts).
    const base = (await readRegularFile(this.basePath, MAX_TEMPLATE_BYTES)).toString('utf8');
    const r = renderCorefile({
      base,
      localIps: this.#opts.localIps,
      upstreamSvc: this.#opts.upstreamSvc,
      env: this.#env,
      upstreamNameservers: this.#kubeDns.upstreamNameservers,
      stubDomains: this.#kubeDns.stubDomains,
      dnsPort: this.#opts.dnsPort,
    });
    for (const w of r.warnings) this.#log.warn(w);
    if (!this.#clusterZonesPreset) {
      this.#clusterZones = r.clusterZones.length > 0 ? r.clusterZones : DEFAULT_CLUSTER_ZONES;
      const shown = r.clusterZones.join(',');
      if (shown !== this.#clusterZonesShown && shown !== '') {
        this.#log.info(`Cluster zones (served stale when every upstream fails, unless a cache block says otherwise): ${shown}`);
      }
      this.#clusterZonesShown = shown;
    }
    return { corefile: r.corefile, upstream: r.upstream, stubs: r.stubDomainCount };
  }

  /** Writes `text` to `-conf` (atomically). */
  write(text: string): Promise<void> {
    return writeFileAtomic(this.path, text);
  }

  /** The Corefile `-conf` holds now, or undefined when it cannot be read. */
  async current(): Promise<string | undefined> {
    try {
      return (await readRegularFile(this.path, MAX_TEMPLATE_BYTES)).toString('utf8');
    } catch {
      return undefined;
    }
  }

  /** node-cache's lines after a Corefile was written. */
  announce(r: RenderedCorefile): void {
    this.#log.info(`Updated Corefile with ${r.stubs} custom stubdomains and upstream servers ${r.upstream}`);
    this.#log.info(`Using config file:\n${r.corefile}`);
  }
}
