/**
 * Bounds on what one configuration load reads and builds. The container's memory limit is
 * 256 MiB and the configuration's share of it is 16 MiB (Corefile and imports, parsed, and the
 * per-block structures); these bounds keep a load inside that share and keep the time one load
 * holds the serving thread short. node-cache's Corefiles are a few KiB with four or five
 * blocks; a large inline table a few hundred KiB: no real Corefile comes near these values.
 *
 * Measured on Node.js 24 (this machine, 2 cores):
 *  - parsed words are retained at ~95 bytes each (a 1 MiB Corefile of table lines is ~48,000
 *    words, ~4.5 MiB parsed); 100,000 words are at most ~9.5 MiB;
 *  - the text is parsed in one go, ~0.1-0.2 s per MiB: 512 KiB bounds that synchronous step
 *    to ~0.1 s; everything after it yields (blocks are set up 50 at a time between event-loop
 *    turns);
 *  - a server block with `cache` and `forward` costs ~7 KiB of heap before any query
 *    (1,000 blocks ~7 MiB).
 * So a maximal load stays within 16 MiB, and a Corefile of 10,000 blocks (790 KiB) is refused
 * after ~0.2 s instead of holding the thread for seconds and gigabytes (measured before this
 * bound: 1.6 s of setup, +63 MiB heap; with every block's cache fully reserved, 3 GB RSS).
 *
 * A load that crosses a bound fails with a CorefileError naming the file and line (start-up
 * exits, a reload keeps the running configuration).
 */
export interface ConfigLimits {
  /** Bytes of the Corefile plus every imported file, counted each time a file is imported. */
  maxConfigBytes: number;
  /** Words after every import and snippet expansion (snippets can multiply a small file). */
  maxWords: number;
  /** Server blocks after imports. */
  maxServerBlocks: number;
  /** Files read through `import` (every glob match counts, each time it is imported). */
  maxImportedFiles: number;
  /** Imports nested inside imports (file or snippet). */
  maxImportDepth: number;
}

export const DEFAULT_CONFIG_LIMITS: ConfigLimits = {
  maxConfigBytes: 512 * 1024,
  maxWords: 100_000,
  maxServerBlocks: 1_000,
  maxImportedFiles: 256,
  maxImportDepth: 32,
};
