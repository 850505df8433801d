/**
 * Entry point of `node --test test/fuzz/` (the folder's package.json names it as its main):
 * Node's test runner does not expand a folder into its test files, so this loads them all.
 * `npm test` runs the *.test.ts files directly and never loads this one.
 *
 *   FUZZ_RUNS=1000000 node --test test/fuzz/            long run of every target
 *   FUZZ_SEED=<seed> node --test test/fuzz/wire.test.ts  replay a reported failure
 */
import './wire.test.ts';
import './frames.test.ts';
import './cache.test.ts';
import './regressions.test.ts';
