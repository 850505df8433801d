/**
 * The hosts plugin's query path and file watcher (CoreDNS plugin/hosts: hosts.go, hostsfile.go).
 *
 * Answers, for a query whose name is in the plugin's zones (PTR queries: any name):
 *  - A / AAAA: the name's addresses (file entries first, then inline ones), TTL `ttl`, owner
 *    name the query name in lower case, AA set, NOERROR.
 *  - PTR: the names of the address the reverse name stands for. No names: the query goes to
 *    the next plugin whatever `fallthrough` says, as in CoreDNS.
 *  - No answer records and the name has neither A nor AAAA entries: the next plugin when
 *    `fallthrough` covers the name, else SERVFAIL (CoreDNS returns SERVFAIL there because it has
 *    no SOA for an NXDOMAIN; the reply carries no records and no cache keeps it).
 *  - No answer records but the name has addresses of the other family, or the query type is
 *    another one: NODATA (NOERROR, AA, no records), or with `fallthrough_unsupported` the next
 *    plugin for types other than A, AAAA, PTR when `fallthrough` covers the name.
 *  - Names outside the zones (other types than PTR): the next plugin.
 *
 * The file is read when the plugin starts and then every `reload` interval when its
 * modification time (ns) or size changed; reads go through util/read-regular.ts (non-blocking
 * open, regular files only, at most MAX_HOSTS_FILE_BYTES) and parsing yields to the event loop
 * every few thousand lines. A file that is missing, unreadable, not a regular file or too large
 * keeps the entries read last; this is logged once per distinct reason, and once when it is
 * read again. Queries that arrive before the first read finished wait for it (at most
 * MAX_WAITING of them; more are answered from what is loaded: the inline entries).
 */
import { stat } from 'node:fs/promises';
import { PluginScope } from '../../plugin.ts';
import type { BlockInfo, Handler, Logger, MetricsOut, Plugin } from '../../plugin.ts';
import { Proto, type Request } from '../../server/request.ts';
import { encodeMessage, replyTo, type RR } from '../../wire/codec.ts';
import { Flag, QClass, QType, Rcode } from '../../wire/codes.ts';
import { readRegularFile, ReadRegularError } from '../../util/read-regular.ts';
import { HostsMap, lookupAddr, lookupHost, parseHostsText, parseHostsTextAsync } from './hostsfile.ts';
import { addressFromReverse } from './ip.ts';
import { ZoneList } from './zones.ts';
import { collectHosts } from './metrics.ts';

/**
 * Largest hosts file read (bytes). Parsed entries take about four times the file's size in
 * heap (a 9.5 MB list of 200,000 names: 39 MB, PTR entries included), in every serving thread;
 * 8 MiB keeps the largest file at about a quarter of the 128 MiB V8 old generation.
 */
export const MAX_HOSTS_FILE_BYTES = 8 * 1024 * 1024;

/** Queries held while the first read of the file is in progress. */
const MAX_WAITING = 1024;

/**
 * Records put in one answer at most: a 64 KiB message holds fewer, so a PTR for an address
 * thousands of blocklist names share is not built in full only to be truncated.
 */
const MAX_ANSWER_RECORDS = 4096;

export interface HostsOptions {
  /** The hosts file. */
  path: string;
  /** Zones the plugin serves (Origins). */
  zones: string[];
  /** TTL of every record made (s). */
  ttlSec: number;
  /** Make PTR entries (no_reverse turns it off). */
  autoReverse: boolean;
  /** Period of the file check (ms); 0: read once at start. */
  reloadMs: number;
  /** Fallthrough zones; null without `fallthrough`. */
  fall: string[] | null;
  /** `fallthrough_unsupported`. */
  fallthroughUnsupported: boolean;
  /** Inline entry lines of the Corefile. */
  inline: string[];
}

export interface HostsDeps {
  log: Logger;
  /** Reason key the setup already logged (a missing file), so start does not log it again. */
  initialFailure?: string;
}

const EMPTY = new HostsMap();

class HostsHandler implements Handler {
  private readonly hosts: HostsPlugin;
  private readonly next: Handler;
  constructor(hosts: HostsPlugin, next: Handler) {
    this.hosts = hosts;
    this.next = next;
  }
  serve(req: Request): void {
    this.hosts.serve(req, this.next);
  }
}

export class HostsPlugin implements Plugin {
  readonly name = 'hosts';
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly options: HostsOptions;

  /** Entries of the file (last good read) and of the Corefile. */
  file: HostsMap = EMPTY;
  readonly inline: HostsMap;
  /** Entries made from the file: count for the metric; null before the first good read. */
  private fileEntries: number | null = null;
  private readonly inlineEntries: number;
  /** mtime (ns) and size of the version read last; -1 before. */
  private mtimeNs = -1n;
  private size = -1;
  private reloadTimestampSec: number | null = null;

  private readonly zones: ZoneList;
  private readonly fall: ZoneList | null;
  private readonly log: Logger;
  /** The reason of the current read failure ('' while reads succeed): logged once. */
  private failure: string;

  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private checking: Promise<void> | null = null;
  /** False until the first read attempt ended; queries wait meanwhile. */
  private loaded = false;
  private waiting: { req: Request; next: Handler }[] = [];

  constructor(options: HostsOptions, deps: HostsDeps) {
    this.options = options;
    this.log = deps.log;
    this.failure = deps.initialFailure ?? '';
    this.zones = new ZoneList(options.zones);
    this.fall = options.fall === null ? null : new ZoneList(options.fall);
    this.inline = options.inline.length === 0 ? EMPTY : parseHostsText(options.inline.join('\n'), this.parseOptions());
    this.inlineEntries = this.inline.count();
  }

  private parseOptions(): { zones: ZoneList; autoReverse: boolean } {
    return { zones: this.zones, autoReverse: this.options.autoReverse };
  }

  compose(next: Handler): Handler {
    return new HostsHandler(this, next);
  }

  /** A reload keeps the entries of the plugin it replaces when they were read the same way. */
  takeOver(previous: Plugin): void {
    if (!(previous instanceof HostsPlugin)) return;
    const a = previous.options;
    const b = this.options;
    if (a.path !== b.path || a.autoReverse !== b.autoReverse || a.zones.join(' ') !== b.zones.join(' ')) return;
    if (!previous.loaded) return;
    this.file = previous.file;
    this.fileEntries = previous.fileEntries;
    this.mtimeNs = previous.mtimeNs;
    this.size = previous.size;
    this.reloadTimestampSec = previous.reloadTimestampSec;
    this.failure = previous.failure;
    this.loaded = true;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.runCheck();
  }

  stop(): void {
    this.running = false;
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.release();
  }

  /** Resolves once a check in progress (if any) has finished. For tests. */
  async idle(): Promise<void> {
    while (this.checking !== null) await this.checking;
  }

  /** Runs one file check now (tests; the timer calls it too). */
  checkNow(): Promise<void> {
    if (this.checking === null) this.runCheck();
    return this.idle();
  }

  private runCheck(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.checking = this.check()
      .catch((err: unknown) => {
        // check() handles file errors itself; anything else is a bug, never a crash.
        this.log.error(`plugin/hosts: reading ${this.options.path} failed: ${(err as Error).message}`);
      })
      .finally(() => {
        this.checking = null;
        this.loaded = true;
        this.release();
        this.schedule();
      });
  }

  private schedule(): void {
    if (!this.running || this.options.reloadMs === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.runCheck();
    }, this.options.reloadMs);
    this.timer.unref();
  }

  /** Answers the queries that waited for the first read. */
  private release(): void {
    if (this.waiting.length === 0) return;
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) {
      try {
        this.answer(w.req, w.next);
      } catch (err) {
        w.req.fail(this.name, Rcode.SERVFAIL, err as Error);
      }
    }
  }

  private failed(reason: string, detail: string): void {
    if (this.failure === reason) return;
    this.failure = reason;
    const kept = this.fileEntries === null ? 'no entries from it yet' : `keeping the ${this.fileEntries} entries read before`;
    this.log.warn(`plugin/hosts: ${detail}; ${kept}`);
  }

  /** One look at the file: re-read and swap in when its mtime or size changed. */
  private async check(): Promise<void> {
    const path = this.options.path;
    let st;
    try {
      st = await stat(path, { bigint: true });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      this.failed(e.code ?? 'stat', `${path}: cannot be read: ${e.code ?? e.message}`);
      return;
    }
    if (!this.running) return;
    if (!st.isFile()) {
      this.failed('not-regular', `${path}: is not a regular file`);
      return;
    }
    const size = Number(st.size);
    if (st.mtimeNs === this.mtimeNs && size === this.size) {
      this.recovered();
      return;
    }
    let buf: Buffer;
    try {
      buf = await readRegularFile(path, MAX_HOSTS_FILE_BYTES);
    } catch (err) {
      if (!(err instanceof ReadRegularError)) throw err;
      this.failed(err.errno ?? err.failure, err.message);
      return;
    }
    if (!this.running) return;
    const map = await parseHostsTextAsync(buf.toString('utf8'), this.parseOptions(), () => !this.running);
    if (map === null) return;
    this.file = map;
    this.fileEntries = map.count();
    this.mtimeNs = st.mtimeNs;
    this.size = size;
    this.reloadTimestampSec = Number(st.mtimeNs) / 1e9;
    this.log.debug?.(`plugin/hosts: Parsed hosts file into ${this.fileEntries} entries`);
    this.recovered();
  }

  private recovered(): void {
    if (this.failure === '') return;
    this.failure = '';
    this.log.info(`plugin/hosts: ${this.options.path}: read again, ${this.fileEntries ?? 0} entries`);
  }

  collect(_block: BlockInfo, out: MetricsOut): void {
    collectHosts(
      {
        path: this.options.path,
        entries: this.fileEntries === null ? null : this.fileEntries + this.inlineEntries,
        reloadTimestampSec: this.reloadTimestampSec,
      },
      out,
    );
  }

  /** Whether `fallthrough` covers lower-case `qname`. */
  private through(qname: string): boolean {
    return this.fall !== null && this.fall.contains(qname);
  }

  serve(req: Request, next: Handler): void {
    if (!this.loaded) {
      if (this.waiting.length < MAX_WAITING) {
        this.waiting.push({ req, next });
        return;
      }
    }
    this.answer(req, next);
  }

  private answer(req: Request, next: Handler): void {
    const qname = req.name().toLowerCase();
    const qtype = req.qtype;
    if (qtype !== QType.PTR && !this.zones.contains(qname)) {
      next.serve(req);
      return;
    }
    const file = this.file;
    const inline = this.inline;
    let values: readonly string[];
    let type: number;
    switch (qtype) {
      case QType.PTR:
        values = lookupAddr(file, inline, addressFromReverse(qname));
        if (values.length === 0) {
          next.serve(req);
          return;
        }
        type = QType.PTR;
        break;
      case QType.A:
        values = lookupHost(file, inline, qname, true);
        type = QType.A;
        break;
      case QType.AAAA:
        values = lookupHost(file, inline, qname, false);
        type = QType.AAAA;
        break;
      default:
        if (this.options.fallthroughUnsupported && this.through(qname)) {
          next.serve(req);
          return;
        }
        values = [];
        type = 0;
    }
    if (values.length === 0 && lookupHost(file, inline, qname, true).length === 0 && lookupHost(file, inline, qname, false).length === 0) {
      if (this.through(qname)) {
        next.serve(req);
        return;
      }
      req.fail(this.name, Rcode.SERVFAIL, null);
      return;
    }
    const ttl = this.options.ttlSec;
    const n = Math.min(values.length, MAX_ANSWER_RECORDS);
    const answer: RR[] = new Array(n);
    for (let i = 0; i < n; i++) answer[i] = { name: qname, type, class: QClass.IN, ttl, data: values[i]! };
    const m = replyTo(req, { answer });
    m.flags |= Flag.AA;
    let out: Buffer;
    try {
      out = encodeMessage(m, { maxSize: req.proto === Proto.TCP ? 0xffff : Math.max(512, req.udpSize) });
    } catch (err) {
      // A name of the file that is no valid domain name (a label over 63 bytes ...).
      req.fail(this.name, Rcode.SERVFAIL, err as Error);
      return;
    }
    req.reply(out, out.length, this.name);
  }
}
