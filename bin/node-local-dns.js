#!/usr/bin/env node
// Entry for the `node-local-dns` command: Node.js 24 runs the TypeScript sources directly.
import { main } from '../src/main.ts';

await main(process.argv.slice(2));
