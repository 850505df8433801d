import { readFileSync } from 'node:fs';

/** The package version (package.json), shown by `-version` and in coredns_build_info. */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;
