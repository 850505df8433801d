/**
 * The `weighted` policy's weight file (CoreDNS plugin/loadbalance weighted.go): read when the
 * block starts, then every `reload` interval (when its contents changed), into a WeightTable the
 * query path reads. File format:
 *
 *     # comment
 *     www.example.com        <- a domain name (a line of one word that is not an IP address)
 *     100.64.1.1 3           <- an address of that name and its weight, 1..255
 *
 * Error texts are CoreDNS's.
 */
import { isIP } from 'node:net';
import { readRegularFile } from '../../util/read-regular.ts';
import type { Logger } from '../../plugin.ts';
import { WeightTable } from '../../wire/weights.ts';
import { ipBytes } from '../../wire/ip.ts';

/** Largest weight file read (a weight file is a few lines per name). */
const MAX_WEIGHT_FILE_BYTES = 16 << 20;

export function parseWeights(text: string, fileName: string): WeightTable {
  const table = new WeightTable();
  let domain = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.length === 0 || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (fields.length === 1) {
      if (isIP(fields[0]!) !== 0) {
        throw new Error(`wrong domain name:"${fields[0]}" in weight file ${fileName}. (Maybe a missing weight value?)`);
      }
      domain = fields[0]!.endsWith('.') ? fields[0]! : `${fields[0]}.`;
    } else if (fields.length === 2) {
      const ip = isIP(fields[0]!) !== 0 && !fields[0]!.includes('%') ? ipBytes(fields[0]!) : null;
      if (ip === null) throw new Error(`wrong IP address:"${fields[0]}" in weight file ${fileName}`);
      const w = /^[0-9]+$/.test(fields[1]!) ? Number(fields[1]) : -1;
      if (w < 1 || w > 255) throw new Error(`wrong weight value:"${fields[1]}" in weight file ${fileName}`);
      if (domain === '') throw new Error(`missing domain name in weight file ${fileName}`);
      try {
        table.add(domain, ip, w);
      } catch {
        throw new Error(`wrong domain name:"${domain}" in weight file ${fileName}`);
      }
    } else {
      throw new Error(`could not parse weight line:"${line}" in weight file ${fileName}`);
    }
  }
  return table;
}

/** Holds the current table; reloads it on a timer. */
export class WeightFile {
  readonly fileName: string;
  readonly reloadMs: number;
  table: WeightTable | null = null;
  private lastText: string | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly log: Logger;
  constructor(fileName: string, reloadMs: number, log: Logger) {
    this.fileName = fileName;
    this.reloadMs = reloadMs;
    this.log = log;
  }

  /** Reads the file; true when it was opened (whether or not it changed). Parse errors throw. */
  async update(): Promise<boolean> {
    let buf: Buffer;
    try {
      buf = await readRegularFile(this.fileName, MAX_WEIGHT_FILE_BYTES);
    } catch {
      return false;
    }
    const text = buf.toString('utf8');
    if (text === this.lastText) return true;
    this.lastText = text;
    this.table = parseWeights(text, this.fileName);
    this.log.info(`plugin/loadbalance: Successfully reloaded weight file ${this.fileName}`);
    return true;
  }

  /** CoreDNS's OnStartup: a missing file is an error unless it will be retried. */
  async start(): Promise<void> {
    let opened: boolean;
    try {
      opened = await this.update();
    } catch (err) {
      throw new Error(`plugin/loadbalance: ${(err as Error).message}`);
    }
    if (!opened) {
      if (this.reloadMs === 0) throw new Error('plugin/loadbalance: weight file open error');
      this.log.warn(`plugin/loadbalance: Failed to open weight file:weight file open error. Will try again in ${this.reloadMs / 1000}s`);
    }
    if (this.reloadMs > 0) {
      this.timer = setInterval(() => {
        this.update().then(
          (opened) => {
            if (!opened) this.log.error('plugin/loadbalance: weight file open error');
          },
          (err: Error) => this.log.error(`plugin/loadbalance: ${err.message}`),
        );
      }, this.reloadMs);
      this.timer.unref();
    }
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}
