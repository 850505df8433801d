/**
 * Growable writer for DNS messages (pg-protocol style). Names are written with
 * compression (RFC 1035 §4.1.4) against suffixes already written by this writer.
 */
import { Limits } from './codes.ts';
import { WireError, WireErrorCode } from './errors.ts';
import { nameToLabels, lowerByte } from './name.ts';

export class Writer {
  private buf: Buffer;
  pos = 0;
  /** Suffix (as label-joined key, lower-cased when `foldCase`) → offset, for name compression. */
  private readonly suffixes = new Map<string, number>();
  /**
   * Whether a name may point at a suffix that differs only in case. The codec says no, so
   * every name decodes with the case it was written with (0x20-randomised questions, owners).
   */
  private readonly foldCase: boolean;

  constructor(initialSize = 512, foldCase = true) {
    this.buf = Buffer.allocUnsafe(initialSize);
    this.foldCase = foldCase;
  }

  private ensure(n: number): void {
    const want = this.pos + n;
    if (want <= this.buf.length) return;
    if (want > Limits.MAX_MESSAGE) throw new WireError(WireErrorCode.TOO_LARGE, `message would exceed ${Limits.MAX_MESSAGE} bytes`);
    let size = this.buf.length * 2;
    while (size < want) size *= 2;
    const next = Buffer.allocUnsafe(Math.min(size, Limits.MAX_MESSAGE));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf[this.pos++] = (v >>> 8) & 0xff;
    this.buf[this.pos++] = v & 0xff;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32BE(v >>> 0, this.pos);
    this.pos += 4;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  /** Overwrites a 16-bit value already written (counts, RDLENGTH). */
  patchU16(offset: number, v: number): this {
    if (offset + 2 > this.pos) throw new WireError(WireErrorCode.TRUNCATED, `patch at ${offset} beyond written data`);
    this.buf[offset] = (v >>> 8) & 0xff;
    this.buf[offset + 1] = v & 0xff;
    return this;
  }

  /**
   * Writes a presentation-format name. With `compress`, the longest suffix already written
   * at an offset below 0x4000 is replaced by a pointer.
   */
  name(name: string, compress = true): this {
    const labels = nameToLabels(name);
    for (let i = 0; i < labels.length; i++) {
      const key = suffixKey(labels, i, this.foldCase);
      if (compress) {
        const at = this.suffixes.get(key);
        if (at !== undefined) {
          this.u16(0xc000 | at);
          return this;
        }
      }
      if (this.pos < 0x4000 && !this.suffixes.has(key)) this.suffixes.set(key, this.pos);
      const l = labels[i]!;
      this.u8(l.length);
      this.bytes(l);
    }
    this.u8(0);
    return this;
  }

  /**
   * Cuts what was written back to `offset` (a record that did not fit): the bytes past it are
   * dropped and so are the compression targets they offered, so no later name points there.
   */
  rollback(offset: number): this {
    if (offset < 0 || offset > this.pos) throw new WireError(WireErrorCode.TRUNCATED, `rollback to ${offset} beyond written data`);
    this.pos = offset;
    for (const [key, at] of this.suffixes) if (at >= offset) this.suffixes.delete(key);
    return this;
  }

  /** The written bytes (a view of the internal buffer; copy if the writer is reused). */
  finish(): Buffer {
    return this.buf.subarray(0, this.pos);
  }
}

function suffixKey(labels: Uint8Array[], from: number, foldCase: boolean): string {
  let s = '';
  for (let i = from; i < labels.length; i++) {
    const l = labels[i]!;
    for (let j = 0; j < l.length; j++) s += String.fromCharCode(foldCase ? lowerByte(l[j]!) : l[j]!);
    s += '\u0000';
  }
  return s;
}
