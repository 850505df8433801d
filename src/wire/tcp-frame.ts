/**
 * DNS over TCP framing (RFC 1035 §4.2.2, RFC 7766 §8): every message is preceded by its length
 * as two bytes, big-endian. One implementation for both sides: the server's connections
 * (src/server/tcp.ts, frames are views into the received bytes) and forward's upstream
 * connections and health probes (src/plugins/forward, frames are copies they may keep).
 */
import { Header } from './codes.ts';
import { u16, setU16 } from './header.ts';

/** Bytes of the length prefix. */
export const FRAME_PREFIX = 2;

/** Smallest frame that can hold a DNS message (a header); anything shorter means the stream is not DNS. */
export const MIN_FRAME = Header.SIZE;

/** Writes the prefix for a message of `len` bytes at out[0..2). */
export function writeFramePrefix(out: Uint8Array, len: number): void {
  setU16(out, 0, len);
}

/** Sets the ID of the message framed in out (the header after the prefix). */
export function setFramedMessageId(out: Uint8Array, id: number): void {
  setU16(out, FRAME_PREFIX + Header.ID, id);
}

/** out[0..len+2) = the length prefix and msg[0..len). */
export function frameInto(out: Buffer, msg: Buffer, len: number): void {
  setU16(out, 0, len);
  msg.copy(out, FRAME_PREFIX, 0, len);
}

/** A new buffer holding msg[0..len) framed. */
export function framed(msg: Buffer, len: number): Buffer {
  const out = Buffer.allocUnsafe(len + FRAME_PREFIX);
  frameInto(out, msg, len);
  return out;
}

/**
 * Received bytes of a TCP stream, taken apart into messages. Chunks are kept as they came;
 * a frame split across chunks is joined once, when complete (a frame sent a byte at a time
 * costs O(n) copying, not O(n²)), and a frame within one chunk is a view into it unless the
 * caller asks for a copy. The caller decides when to take (it may pause) and what a length
 * below MIN_FRAME means.
 */
export class FrameBuffer {
  private chunks: Buffer[] = [];
  /** Bytes received and not yet taken. */
  bytes = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** Body length of the first frame, or -1 while its prefix has not arrived. */
  nextLength(): number {
    if (this.bytes < FRAME_PREFIX) return -1;
    const a = this.chunks[0]!;
    return a.length >= FRAME_PREFIX ? u16(a, 0) : (a[0]! << 8) | this.chunks[1]![0]!;
  }

  /** Whether a whole frame is buffered. */
  hasFrame(): boolean {
    const len = this.nextLength();
    return len >= 0 && this.bytes >= FRAME_PREFIX + len;
  }

  /**
   * The first frame's message, removed from the buffer, or null while it is incomplete.
   * `copy`: a buffer of its own; otherwise a view into the received chunk when the frame lies
   * within one.
   */
  take(copy: boolean): Buffer | null {
    const len = this.nextLength();
    if (len < 0 || this.bytes < FRAME_PREFIX + len) return null;
    const total = FRAME_PREFIX + len;
    const head = this.chunks[0]!;
    let msg: Buffer;
    if (head.length >= total) {
      msg = head.subarray(FRAME_PREFIX, total);
      if (copy) msg = Buffer.from(msg);
      if (head.length === total) this.chunks.shift();
      else this.chunks[0] = head.subarray(total);
    } else {
      msg = Buffer.allocUnsafe(len);
      let skip = FRAME_PREFIX;
      let filled = 0;
      while (filled < len || skip > 0) {
        const c = this.chunks[0]!;
        const from = Math.min(skip, c.length);
        skip -= from;
        const n = Math.min(c.length - from, len - filled);
        c.copy(msg, filled, from, from + n);
        filled += n;
        if (from + n === c.length) this.chunks.shift();
        else this.chunks[0] = c.subarray(from + n);
      }
    }
    this.bytes -= total;
    return msg;
  }

  /**
   * Between reads: drops the chunk list when empty, and when only part of a larger read is
   * left (an incomplete frame), keeps a copy of that part instead of the whole read.
   */
  compact(): void {
    if (this.bytes === 0) this.chunks.length = 0;
    else if (this.chunks.length === 1 && this.chunks[0]!.buffer.byteLength > 2 * this.bytes) {
      this.chunks[0] = Buffer.from(this.chunks[0]!);
    }
  }

  /** Replaces the last chunk kept by a copy (its bytes then no longer belong to the caller's buffer). */
  copyLast(): void {
    const n = this.chunks.length;
    if (n > 0) this.chunks[n - 1] = Buffer.from(this.chunks[n - 1]!);
  }

  clear(): void {
    this.chunks = [];
    this.bytes = 0;
  }
}

/**
 * Push-style reader over FrameBuffer: every complete frame goes to `onFrame` as a buffer of
 * its own (the chunk may be reused); a length below MIN_FRAME is a framing error.
 */
export class FrameReader {
  private readonly onFrame: (frame: Buffer) => void;
  private readonly buf = new FrameBuffer();
  /** The offending length after push() returned false. */
  badLength = -1;

  constructor(onFrame: (frame: Buffer) => void) {
    this.onFrame = onFrame;
  }

  /** Feeds a chunk; returns false on a framing error (the stream is then unusable). */
  push(chunk: Buffer): boolean {
    const b = this.buf;
    b.push(chunk);
    for (;;) {
      const len = b.nextLength();
      if (len < 0) break;
      if (len < MIN_FRAME) {
        this.badLength = len;
        return false;
      }
      const frame = b.take(true);
      if (frame === null) break;
      this.onFrame(frame);
    }
    // The caller may reuse the chunk: what is kept of it (a partial frame) becomes a copy.
    if (b.bytes === 0) b.compact();
    else b.copyLast();
    return true;
  }

  /** True when no partial frame is buffered. */
  get idle(): boolean {
    return this.buf.bytes === 0;
  }
}
