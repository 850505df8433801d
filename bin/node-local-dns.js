#!/usr/bin/env -S node --max-semi-space-size=4 --max-old-space-size=128
// Entry for the `node-local-dns` command. Plain JavaScript so that Node's compile cache
// (type-stripped sources and V8 code, keyed by file content) is on before any TypeScript
// module loads: start-up and memory then skip stripping (bench/PROFILE.md). The cache lives
// in $NODE_COMPILE_CACHE, else in Node's default temporary directory.
import { enableCompileCache } from 'node:module';

enableCompileCache(process.env.NODE_COMPILE_CACHE);
const { main } = await import('../src/main.ts');
await main(process.argv.slice(2));
