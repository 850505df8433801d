/**
 * Bounds-checked cursor over a DNS message (pg-protocol style): every read checks the
 * remaining length and throws a WireError rather than reading past the end.
 */
import { WireError, WireErrorCode } from './errors.ts';
import { readName, skipName } from './name.ts';

export class Reader {
  readonly buf: Uint8Array;
  /** End of the readable region (exclusive). */
  readonly end: number;
  pos: number;

  constructor(buf: Uint8Array, pos = 0, end = buf.length) {
    if (end > buf.length) end = buf.length;
    this.buf = buf;
    this.pos = pos;
    this.end = end;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  private need(n: number): void {
    if (this.pos + n > this.end) {
      throw new WireError(WireErrorCode.TRUNCATED, `need ${n} bytes at offset ${this.pos}, have ${this.end - this.pos}`, this.pos);
    }
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++]!;
  }

  u16(): number {
    this.need(2);
    const v = (this.buf[this.pos]! << 8) | this.buf[this.pos + 1]!;
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const b = this.buf;
    const p = this.pos;
    const v = ((b[p]! << 24) >>> 0) + ((b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!);
    this.pos += 4;
    return v;
  }

  /** A view (no copy) of the next n bytes. */
  bytes(n: number): Uint8Array {
    this.need(n);
    const v = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return v;
  }

  skip(n: number): void {
    this.need(n);
    this.pos += n;
  }

  /** A possibly compressed name, as text (slow path). */
  name(): string {
    const { name, next } = readName(this.buf, this.pos, this.end);
    this.pos = next;
    return name;
  }

  skipName(): void {
    const next = skipName(this.buf, this.pos, this.end);
    if (next < 0) throw new WireError(WireErrorCode.BAD_POINTER, `malformed name at offset ${this.pos}`, this.pos);
    this.pos = next;
  }
}
