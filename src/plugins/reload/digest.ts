/**
 * The configuration digest the reload plugin compares: SHA-512 over a canonical JSON form of
 * the parsed Corefile (server block keys, then every directive's name, file, line, arguments
 * and nested lines), as CoreDNS hashes the JSON of its parsed server blocks. So comment and
 * white-space edits do not trigger a reload, moved or changed lines do, and imported files
 * count with their contents. The hex value is not byte-identical to CoreDNS's (its JSON is
 * Caddy's token dump), only equivalent in what it detects.
 */
import { createHash } from 'node:crypto';
import { parseCorefileAsync } from '../../corefile/parser.ts';
import type { Env } from '../../corefile/lexer.ts';
import type { Directive, ServerBlock } from '../../corefile/types.ts';

interface CanonicalDirective {
  name: string;
  file: string;
  line: number;
  args: string[];
  block: CanonicalDirective[] | null;
}

function canonicalDirective(d: Directive): CanonicalDirective {
  return {
    name: d.name,
    file: d.file,
    line: d.line,
    args: d.args.map((a) => a.text),
    block: d.block === null ? null : d.block.map(canonicalDirective),
  };
}

/** SHA-512 (hex) of parsed server blocks. */
function digestOfBlocks(blocks: readonly ServerBlock[]): string {
  const canonical = blocks.map((b) => ({ keys: b.keys.map((k) => k.text), directives: b.directives.map(canonicalDirective) }));
  return createHash('sha512').update(JSON.stringify(canonical)).digest('hex');
}

/**
 * Parses Corefile text, its imports read asynchronously (regular files within the
 * configuration limits only), and returns its digest.
 * @throws CorefileError when the text does not parse (the reload plugin warns and waits).
 */
export async function configDigestAsync(text: string, file: string, env: Env): Promise<string> {
  return digestOfBlocks(await parseCorefileAsync(text, file, env));
}
