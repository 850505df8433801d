/**
 * Byte arena of the packet cache (dnsdist keeps cached responses in preallocated memory too).
 *
 * Cached responses live in slabs carved into chunks of one power-of-two size class
 * (64 B ... 4 KiB) each; a freed chunk goes on its class's free stack and is handed out again.
 * A class's first slab holds only a few chunks (at least 1 KiB) and each further slab of the
 * class is twice the size of the previous one, up to 64 KiB: a cache that holds a handful of
 * responses (one per server block of a large Corefile) reserves a few KiB, not 64 KiB per
 * class, and a filling cache still takes a new slab only every 64 KiB.
 * A response therefore costs no JavaScript object of its own: before, every stored response
 * was a Buffer (an ArrayBuffer, a view and a malloc'd backing store) that the young-generation
 * collector copied at least twice and that became old-generation garbage once evicted. Under
 * a flood of unique names (every insert evicts) that garbage was most of the GC work and of
 * the peak RSS (bench/PROFILE.md, "Cache entries without garbage").
 *
 * Contract:
 *  - `alloc(n)` returns a handle to at least `n` bytes, or NO_CHUNK when `n` is above the
 *    largest class or the arena has its maximum of 2 GiB (the caller then allocates a buffer of
 *    its own: rare, large responses).
 *  - `slab(handle)` and `offset(handle)` locate the chunk; the bytes stay put until
 *    `free(handle)`, after which the chunk may be handed out again at once.
 *  - Memory is never returned: the arena holds as many chunks per class as were ever in use
 *    at the same time, which the cache's capacity bounds (capacity × 4 KiB at worst; about
 *    capacity × 256 B for typical answers).
 */
import { Buffer } from 'node:buffer';

/** Largest slab (and the bound on a chunk's offset within its slab). */
export const SLAB_BYTES = 1 << 16;
/** Smallest first slab of a class; the first slab holds at least FIRST_SLAB_CHUNKS chunks. */
const MIN_SLAB_BYTES = 1 << 10;
const FIRST_SLAB_CHUNKS = 4;
/** Smallest chunk: 64 bytes (2^6). */
const MIN_SHIFT = 6;
/** Largest chunk: 4 KiB (2^12); larger responses get their own buffer. */
const MAX_SHIFT = 12;
export const MAX_CHUNK_BYTES = 1 << MAX_SHIFT;
const CLASSES = MAX_SHIFT - MIN_SHIFT + 1;
/** Handle bits: slab index above, byte offset within the slab below. */
const OFFSET_BITS = 16;
const OFFSET_MASK = SLAB_BYTES - 1;
/** Slab indexes must fit the 31 bits left of a non-negative int32 handle. */
const MAX_SLABS = 1 << (31 - OFFSET_BITS);

/** Shared empty arrays of a new arena: its free stacks and slab table are allocated on first use. */
const EMPTY_STACK = new Int32Array(0);
const NO_SLABS = new Uint8Array(0);
const FIRST_STACK_LENGTH = 16;

/** Returned by alloc() for sizes above MAX_CHUNK_BYTES. */
export const NO_CHUNK = -1;

/** Size class of a chunk of `n` bytes (0 = 64 B). */
function classOf(n: number): number {
  if (n <= 1 << MIN_SHIFT) return 0;
  return 32 - Math.clz32(n - 1) - MIN_SHIFT;
}

export class ByteArena {
  private readonly slabs: Buffer[] = [];
  /** Size class of each slab (allocated with the first slab: an unused arena holds no buffer). */
  private slabClass = NO_SLABS;
  /** Per class: a stack of free handles. */
  private readonly freeStacks: Int32Array[] = [];
  private readonly freeCounts: number[] = [];
  /** Per class: the slab being carved, the next free offset in it and its size (-1/0: none yet). */
  private readonly carveSlab: number[] = [];
  private readonly carveOffset: number[] = [];
  private readonly carveLimit: number[] = [];
  /** Bytes held in slabs. */
  reservedBytes = 0;
  /** Chunks handed out and not freed. */
  chunksInUse = 0;

  constructor() {
    for (let c = 0; c < CLASSES; c++) {
      this.freeStacks.push(EMPTY_STACK);
      this.freeCounts.push(0);
      this.carveSlab.push(-1);
      this.carveOffset.push(0);
      this.carveLimit.push(0);
    }
  }

  /** A chunk of at least n bytes (n >= 1), or NO_CHUNK (see the file comment). */
  alloc(n: number): number {
    if (n > MAX_CHUNK_BYTES) return NO_CHUNK;
    const c = classOf(n);
    const free = this.freeCounts[c]!;
    if (free > 0) {
      this.freeCounts[c] = free - 1;
      this.chunksInUse++;
      return this.freeStacks[c]![free - 1]!;
    }
    const size = 1 << (c + MIN_SHIFT);
    let off = this.carveOffset[c]!;
    if (off + size > this.carveLimit[c]!) {
      if (this.slabs.length >= MAX_SLABS) return NO_CHUNK;
      const prev = this.carveLimit[c]!;
      const bytes = prev === 0 ? Math.max(MIN_SLAB_BYTES, FIRST_SLAB_CHUNKS * size) : Math.min(SLAB_BYTES, prev * 2);
      this.carveSlab[c] = this.newSlab(c, bytes);
      this.carveLimit[c] = bytes;
      off = 0;
    }
    this.carveOffset[c] = off + size;
    this.chunksInUse++;
    return (this.carveSlab[c]! << OFFSET_BITS) | off;
  }

  /** Returns a chunk from alloc(); it may be handed out again at once. */
  free(handle: number): void {
    const c = this.slabClass[handle >>> OFFSET_BITS]!;
    let stack = this.freeStacks[c]!;
    const n = this.freeCounts[c]!;
    if (n === stack.length) {
      const grown = new Int32Array(Math.max(FIRST_STACK_LENGTH, stack.length * 2));
      grown.set(stack);
      this.freeStacks[c] = stack = grown;
    }
    stack[n] = handle;
    this.freeCounts[c] = n + 1;
    this.chunksInUse--;
  }

  slab(handle: number): Buffer {
    return this.slabs[handle >>> OFFSET_BITS]!;
  }

  offset(handle: number): number {
    return handle & OFFSET_MASK;
  }

  /** Usable bytes of the chunk behind `handle` (its class size). */
  chunkBytes(handle: number): number {
    return 1 << (this.slabClass[handle >>> OFFSET_BITS]! + MIN_SHIFT);
  }

  private newSlab(c: number, bytes: number): number {
    const index = this.slabs.length;
    this.slabs.push(Buffer.allocUnsafeSlow(bytes));
    this.reservedBytes += bytes;
    if (index === this.slabClass.length) {
      const grown = new Uint8Array(Math.max(FIRST_STACK_LENGTH, this.slabClass.length * 2));
      grown.set(this.slabClass);
      this.slabClass = grown;
    }
    this.slabClass[index] = c;
    return index;
  }
}
