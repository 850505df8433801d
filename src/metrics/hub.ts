/**
 * The metrics hub: everything the `prometheus` plugin serves, gathered at scrape time.
 * Collectors (zone stats, process-wide metrics, the engine collector) write plain samples into
 * a SnapshotBuilder; with worker threads each worker sends its `snapshot()` and `gather()`
 * merges them (snapshot.ts). `render()` writes the text exposition (exposition.ts) with the
 * rendering thread's process metrics (process_*, nodejs_*: node-metrics.ts, prom-client's
 * default-metric names without prom-client) beside it, families sorted by name. Their
 * event-loop and GC figures count from the first render.
 * `scrape()` serves /metrics: at most one render per SCRAPE_RENDER_INTERVAL_MS, its bytes and
 * gzip shared by every scrape it answers (RenderScheduler: a render costs ~1 ms of the thread
 * that serves DNS; rendered per scrape, 10k scrapes took that share from DNS and grew V8's
 * heapTotal 15 -> 51 MiB (garbage rate, not a leak) and, one zlib stream each, RSS +110 MiB).
 */
import { NodeProcessMetrics } from './node-metrics.ts';
import { SnapshotBuilder, mergeSnapshots, type FamilySnapshot, type MetricsSnapshot } from './snapshot.ts';
import { ZoneStatsRegistry, zoneStatsRegistry } from './zone-stats.ts';
import { ProcessMetrics } from './process-metrics.ts';
import { withLegacyFamilies } from './legacy.ts';
import { formatFamily } from './exposition.ts';

/** Scrapes of one exposition render it at most this often (see RenderScheduler). */
export const SCRAPE_RENDER_INTERVAL_MS = 1000;

/** One rendered exposition: its bytes, and their gzip, made on first demand and kept. */
export class RenderedExposition {
  readonly body: Buffer;
  #gzip: Promise<Buffer> | null = null;

  constructor(text: string) {
    this.body = Buffer.from(text, 'utf8');
  }

  /** The body gzipped, once per render, on zlib's thread pool (node:zlib loaded on first use). */
  gzip(): Promise<Buffer> {
    this.#gzip ??= new Promise<Buffer>((resolve, reject) => {
      process.getBuiltinModule('node:zlib').gzip(this.body, (err, out) => (err ? reject(err) : resolve(out)));
    });
    return this.#gzip;
  }
}

/**
 * Coalesces scrapes into renders: at most one render per `intervalMs`, never two at once.
 * A request joins the next render to start after it arrived, so every answer reflects the
 * state at or after the request (a scrape right after an event sees it); that render starts
 * on the next turn of the event loop when the last one started `intervalMs` ago or more,
 * else when the interval is over. N clients scraping back to back therefore cost one render
 * per interval, and each waits at most `intervalMs` plus one render for its answer.
 */
export class RenderScheduler {
  readonly intervalMs: number;
  /** Renders started so far. */
  renders = 0;
  readonly #render: () => Promise<string>;
  #lastStartMs = -Infinity;
  #queued: PromiseWithResolvers<RenderedExposition> | null = null;
  #running = false;
  #timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(render: () => Promise<string>, intervalMs = SCRAPE_RENDER_INTERVAL_MS) {
    this.#render = render;
    this.intervalMs = intervalMs;
  }

  /** The next render (started after this call). */
  request(): Promise<RenderedExposition> {
    if (this.#queued === null) {
      this.#queued = Promise.withResolvers<RenderedExposition>();
      this.#schedule();
    }
    return this.#queued.promise;
  }

  #schedule(): void {
    if (this.#timer !== null) return;
    const waitMs = this.#lastStartMs + this.intervalMs - performance.now();
    const fire = () => {
      this.#timer = null;
      this.#start();
    };
    this.#timer = waitMs > 0 ? setTimeout(fire, Math.ceil(waitMs)) : setImmediate(fire);
    this.#timer.unref();
  }

  #start(): void {
    const q = this.#queued;
    if (q === null || this.#running) return; // a running render schedules the next when it ends
    if (performance.now() < this.#lastStartMs + this.intervalMs) {
      this.#schedule();
      return;
    }
    this.#queued = null;
    this.#running = true;
    this.#lastStartMs = performance.now();
    this.renders++;
    const finish = () => {
      this.#running = false;
      if (this.#queued !== null) this.#schedule();
    };
    Promise.resolve()
      .then(() => this.#render())
      .then(
        (text) => {
          finish();
          q.resolve(new RenderedExposition(text));
        },
        (err: unknown) => {
          finish();
          q.reject(err);
        },
      );
  }
}

export interface Collector {
  collect(out: SnapshotBuilder): void;
}

export interface RenderOptions {
  /** Also serve the CoreDNS 1.6-era names (see legacy.ts). */
  legacy?: boolean;
}

export class MetricsHub {
  readonly zoneStats: ZoneStatsRegistry;
  readonly process: ProcessMetrics;
  private readonly collectors = new Set<Collector>();
  private remote: (() => Promise<MetricsSnapshot[]>) | null = null;
  private readonly wantDefaultMetrics: boolean;
  /** The process_* and nodejs_* metrics, loaded on the first render (see the module comment). */
  private defaultMetrics: NodeProcessMetrics | null = null;
  private readonly renderIntervalMs: number;
  /** The scrape schedulers, by exposition (with the 1.6 names or without). */
  private readonly scrapes = new Map<boolean, RenderScheduler>();

  constructor(opts: { zoneStats?: ZoneStatsRegistry; process?: ProcessMetrics; defaultMetrics?: boolean; renderIntervalMs?: number } = {}) {
    this.zoneStats = opts.zoneStats ?? new ZoneStatsRegistry();
    this.process = opts.process ?? new ProcessMetrics();
    this.wantDefaultMetrics = opts.defaultMetrics ?? true;
    this.renderIntervalMs = opts.renderIntervalMs ?? SCRAPE_RENDER_INTERVAL_MS;
  }

  /**
   * What a /metrics request is answered with: the next render of the exposition, shared with
   * every other scrape it answers, at most one per render interval (RenderScheduler). Counted
   * in nodelocaldns_metrics_renders_total.
   */
  scrape(opts: RenderOptions = {}): Promise<RenderedExposition> {
    const legacy = opts.legacy ?? false;
    let s = this.scrapes.get(legacy);
    if (s === undefined) {
      s = new RenderScheduler(() => {
        this.process.metricsRenders++;
        return this.render({ legacy });
      }, this.renderIntervalMs);
      this.scrapes.set(legacy, s);
    }
    return s.request();
  }

  /** Adds a collector; returns the function that removes it. */
  addCollector(c: Collector): () => void {
    this.collectors.add(c);
    return () => this.collectors.delete(c);
  }

  /** Installs the source of the other workers' snapshots (null: this thread only). */
  setRemoteSnapshots(fn: (() => Promise<MetricsSnapshot[]>) | null): void {
    this.remote = fn;
  }

  /** This thread's samples, as a plain structured-clone-safe object. */
  snapshot(): MetricsSnapshot {
    const b = new SnapshotBuilder();
    this.process.collect(b);
    this.zoneStats.collect(b);
    for (const c of this.collectors) c.collect(b);
    return b.build();
  }

  /** This thread's snapshot merged with the workers' (when a remote source is installed). */
  async gather(): Promise<MetricsSnapshot> {
    const local = this.snapshot();
    if (this.remote === null) return local;
    return mergeSnapshots([local, ...(await this.remote())]);
  }

  /** The text exposition format 0.0.4 content type (as prom-client's Registry.PROMETHEUS_CONTENT_TYPE). */
  get contentType(): string {
    return PROMETHEUS_CONTENT_TYPE;
  }

  /**
   * The Prometheus text exposition (format 0.0.4): the gathered families and this thread's
   * process metrics, formatted by exposition.ts, sorted by family name.
   */
  async render(opts: RenderOptions = {}): Promise<string> {
    let snap = await this.gather();
    if (opts.legacy) snap = withLegacyFamilies(snap);
    if (this.wantDefaultMetrics) this.defaultMetrics ??= await loadNodeProcessMetrics();
    return renderExposition(snap.families, this.defaultMetrics);
  }

  /** Stops the process metrics' event-loop histogram and GC observer (tests). */
  close(): void {
    this.defaultMetrics?.stop();
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * A new NodeProcessMetrics. Its module is imported statically, not on the first scrape: a
 * TypeScript module first imported after start-up and missing from the compile cache would
 * load Node's type stripper (+24–30 MiB RSS) into a serving process (bench/PROFILE.md).
 */
export async function loadNodeProcessMetrics(): Promise<NodeProcessMetrics> {
  return new NodeProcessMetrics();
}

/**
 * The text exposition of these families and (when given) the process metrics, every family
 * with samples formatted by exposition.ts, sorted by family name.
 */
export async function renderExposition(families: readonly FamilySnapshot[], processMetrics: NodeProcessMetrics | null): Promise<string> {
  const all = [...families];
  if (processMetrics !== null) {
    const b = new SnapshotBuilder();
    await processMetrics.collect(b);
    all.push(...b.build().families);
  }
  const blocks: [name: string, text: string][] = [];
  for (const f of all) if (f.samples.length > 0) blocks.push([f.name, formatFamily(f)]);
  blocks.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  let out = '';
  for (let i = 0; i < blocks.length; i++) out += (i === 0 ? '' : '\n\n') + blocks[i]![1];
  return `${out}\n`;
}

let defaultHub: MetricsHub | null = null;

/** The process's hub (created on first use, with the process metrics). */
export function metricsHub(): MetricsHub {
  defaultHub ??= new MetricsHub({ zoneStats: zoneStatsRegistry });
  return defaultHub;
}
