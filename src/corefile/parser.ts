/**
 * Corefile parser: groups the lexer's words into server blocks, directive lines and nested
 * blocks, following CoreDNS's caddyfile parser (Caddy v1), and expands `import`.
 *
 * Grammar, as CoreDNS reads it:
 *  - A server block starts with its keys: the words of one line; a key ending in `,` continues
 *    the key list on the next line (`a, b` and `a,b` are both two keys). An unquoted `{` ends the
 *    keys; it may also stand alone on the next line.
 *  - Without a `{` (Caddy's single-server form) the rest of the file is the block's body.
 *  - In a body, each line is a directive: `name args... [{ nested lines }]`. A `{` on the line
 *    opens the directive's block, which holds further directive lines, to any depth, up to the
 *    matching `}`. Words after the `{` on its line start the block's first line, and a `}` may
 *    end the block's last line (`cache { success 9984 30 }`); words after a block's `}` on the
 *    same line are an error. At the server level a `}` must start a line, as in CoreDNS
 *    (`whoami }` is "Unexpected '}' because no matching opening brace"); after a server block's
 *    `}`, the next server block may start on the same line.
 *  - `(name) { ... }` defines a snippet; `import name` pastes it. Otherwise `import PATTERN`
 *    pastes the words of the files matching the glob PATTERN (relative to the directory of the
 *    file holding the `import`; at most one `*` and one `?`, as CoreDNS allows). `import` is
 *    recognised where a key list or a directive line starts; a pattern matching nothing is only a
 *    warning when it has a wildcard. Snippets must be defined before use. Cycles are errors.
 *  - Quoted braces are ordinary words.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CorefileError } from './errors.ts';
import { globSync } from './glob.ts';
import { tokenize, type Env, type LexToken } from './lexer.ts';
import type { Directive, ServerBlock, Token } from './types.ts';

/** CoreDNS's cap on snippet and on file imports expanded in one parse (maxSnippetExpansions). */
export const MAX_IMPORT_EXPANSIONS = 1000;

export interface ParseOptions {
  /** Receives non-fatal notices (an import glob that matched no file). Default: dropped. */
  warn?: (message: string) => void;
}

/** A word in the parser's token list: where it came from, for line grouping and cycle checks. */
interface PToken extends LexToken {
  /** Identity of the word sequence (a lexed file or one snippet expansion); lines compare only within one. */
  unit: number;
  /** The imports that produced this word, outermost first (`file:/abs/path`, `snippet:name`). */
  chain: readonly string[];
}

/**
 * Parses a Corefile.
 * @param text the Corefile contents.
 * @param file its path as given (used in tokens and messages; imports resolve relative to its directory).
 * @param env variables for `{$NAME}` / `{%NAME%}`; defaults to process.env.
 * @throws CorefileError
 */
export function parseCorefile(
  text: string,
  file: string,
  env: Env = process.env,
  options: ParseOptions = {},
): ServerBlock[] {
  const parser = new Parser(env, options.warn ?? (() => {}));
  return parser.parseRoot(text, file);
}

function publicToken(t: LexToken, text: string = t.text): Token {
  return { text, file: t.file, line: t.line, quoted: t.quoted };
}

function fail(at: { file: string; line: number }, detail: string): never {
  throw new CorefileError(at.file, at.line, detail);
}

function describeChainEntry(entry: string): string {
  return entry.startsWith('snippet:') ? `snippet (${entry.slice(8)})` : entry.slice(5);
}

class Parser {
  private tokens: PToken[] = [];
  /** Index of the next word to read. */
  private pos = 0;
  private nextUnit = 0;
  private readonly snippets = new Map<string, PToken[]>();
  private snippetExpansions = 0;
  private fileExpansions = 0;
  private readonly env: Env;
  private readonly warn: (message: string) => void;

  constructor(env: Env, warn: (message: string) => void) {
    this.env = env;
    this.warn = warn;
  }

  parseRoot(text: string, file: string): ServerBlock[] {
    this.tokens = this.lex(text, file, [`file:${path.resolve(file)}`]);
    this.pos = 0;
    const blocks: ServerBlock[] = [];
    while (this.pos < this.tokens.length) {
      if (this.isImport(this.pos) && this.atLineStart(this.pos)) {
        this.expandImport(this.pos);
        continue;
      }
      const block = this.serverBlock();
      if (block) blocks.push(block);
    }
    return blocks;
  }

  private lex(text: string, file: string, chain: readonly string[]): PToken[] {
    const unit = this.nextUnit++;
    return tokenize(text, file, this.env).map((t) => ({ ...t, unit, chain }));
  }

  // ---- position helpers ----

  private sameLine(a: PToken, b: PToken): boolean {
    return a.unit === b.unit && a.file === b.file && a.logEnd === b.logStart;
  }

  private atLineStart(i: number): boolean {
    return i === 0 || !this.sameLine(this.tokens[i - 1]!, this.tokens[i]!);
  }

  /** True when the word at i is on the same line as the word before it. */
  private continuesLine(i: number): boolean {
    return i > 0 && i < this.tokens.length && this.sameLine(this.tokens[i - 1]!, this.tokens[i]!);
  }

  private last(): PToken {
    return this.tokens[this.tokens.length - 1]!;
  }

  private isImport(i: number): boolean {
    return this.tokens[i]!.text === 'import' && this.tokens[i]!.brace === null;
  }

  // ---- server blocks ----

  /** Parses one server block or snippet definition starting at pos; null for a snippet. */
  private serverBlock(): ServerBlock | null {
    const first = this.tokens[this.pos]!;
    const keyTokens = this.keys();
    const keys = keyTokens.flatMap((t) => splitKeys(t));
    const atEof = this.pos >= this.tokens.length;

    if (keys.length === 1 && isSnippetKey(keys[0]!.text)) {
      this.defineSnippet(keys[0]!);
      return null;
    }
    if (keys.length === 0) {
      if (atEof && keyTokens.length > 0) return null; // only `""` words: nothing to serve, as Caddy
      fail(first, `Server block without a key before '${this.tokens[this.pos]?.text ?? first.text}'`);
    }
    const block: ServerBlock = { keys, directives: [], file: keys[0]!.file, line: keys[0]!.line };
    if (atEof) return block; // a Corefile of only keys
    const open = this.tokens[this.pos]!;
    if (open.brace === '{') {
      this.pos++;
      block.directives = this.body(open);
    } else {
      block.directives = this.body(null);
    }
    return block;
  }

  /**
   * Reads the key words of a server block (caddyfile's addresses()): the words of the first
   * line, continued onto following lines after a trailing comma, up to a `{` or a new line.
   */
  private keys(): PToken[] {
    const keys: PToken[] = [];
    let expectingAnother = false;
    let started = false;
    for (;;) {
      if (this.pos >= this.tokens.length) {
        if (expectingAnother) fail(this.last(), 'Unexpected EOF');
        return keys;
      }
      const t = this.tokens[this.pos]!;
      if (started && !expectingAnother && !this.continuesLine(this.pos)) return keys;
      if (started && expectingAnother && this.isImport(this.pos) && this.atLineStart(this.pos)) {
        this.expandImport(this.pos);
        continue;
      }
      if (t.brace === '{') {
        if (expectingAnother) fail(t, "Expected another address but had '{' - check for extra comma");
        return keys;
      }
      if (t.brace === '}') fail(t, "Unexpected '}' because no matching opening brace");
      started = true;
      this.pos++;
      keys.push(t);
      expectingAnother = t.text.endsWith(',');
    }
  }

  private defineSnippet(key: Token): void {
    const name = key.text.slice(1, -1);
    if (name === '') fail(key, 'Snippet name must not be empty');
    const open = this.tokens[this.pos];
    if (!open || open.brace !== '{') {
      fail(open ?? this.last(), `Unexpected token '${open?.text ?? 'EOF'}', expecting '{' after snippet (${name})`);
    }
    if (this.snippets.has(name)) fail(key, `redeclaration of previously declared snippet ${name}`);
    this.pos++;
    const body: PToken[] = [];
    let depth = 1;
    for (;;) {
      if (this.pos >= this.tokens.length) this.unclosed(open);
      const t = this.tokens[this.pos++]!;
      if (t.brace === '{') depth++;
      else if (t.brace === '}' && --depth === 0) break;
      body.push(t);
    }
    this.snippets.set(name, body);
  }

  private unclosed(open: PToken): never {
    fail(this.last(), `Unexpected EOF, expecting '}' to close the '{' opened at ${open.file}:${open.line}`);
  }

  /**
   * Reads directive lines until the server block's closing `}` (consumed) or, for a block
   * without braces (open === null), until the end of input.
   */
  private body(open: PToken | null): Directive[] {
    const lines: Directive[] = [];
    for (;;) {
      if (this.pos >= this.tokens.length) {
        if (open) this.unclosed(open);
        return lines;
      }
      const t = this.tokens[this.pos]!;
      if (t.brace === '}') {
        if (!open) fail(t, "Unexpected '}' because no matching opening brace");
        this.pos++;
        return lines;
      }
      if (this.isImport(this.pos)) {
        this.expandImport(this.pos);
        continue;
      }
      lines.push(this.directive(0));
    }
  }

  /**
   * Reads one directive line starting at pos. `depth` is 0 for a server block's directives and
   * grows by one per enclosing directive block.
   */
  private directive(depth: number): Directive {
    const nameTok = this.tokens[this.pos++]!;
    if (nameTok.brace === '{') fail(nameTok, "Unexpected '{' where a directive name was expected");
    const d: Directive = { name: nameTok.text, args: [], block: null, file: nameTok.file, line: nameTok.line };
    while (this.continuesLine(this.pos)) {
      const t = this.tokens[this.pos]!;
      if (t.brace === '}') {
        if (depth === 0) fail(t, "Unexpected '}' because no matching opening brace");
        return d; // ends the enclosing block; that loop consumes it
      }
      this.pos++;
      if (t.brace === '{') {
        d.block = this.nestedBlock(t, depth + 1);
        if (this.continuesLine(this.pos)) {
          const after = this.tokens[this.pos]!;
          if (after.brace === '}') {
            if (depth === 0) fail(after, "Unexpected '}' because no matching opening brace");
          } else {
            fail(after, `Unexpected '${after.text}' after '}' closing the block of '${d.name}'`);
          }
        }
        return d;
      }
      d.args.push(publicToken(t));
    }
    return d;
  }

  /** Reads the lines of a directive's block after its `{` up to the matching `}` (consumed). */
  private nestedBlock(open: PToken, depth: number): Directive[] {
    const lines: Directive[] = [];
    for (;;) {
      if (this.pos >= this.tokens.length) this.unclosed(open);
      const t = this.tokens[this.pos]!;
      if (t.brace === '}') {
        this.pos++;
        return lines;
      }
      if (this.isImport(this.pos)) {
        this.expandImport(this.pos);
        continue;
      }
      lines.push(this.directive(depth));
    }
  }

  // ---- import ----

  /**
   * Replaces `import ARG` at index i by the words it names, leaving pos at i so the next read
   * gets the first imported word.
   */
  private expandImport(i: number): void {
    const imp = this.tokens[i]!;
    const arg = this.tokens[i + 1];
    if (!arg || !this.sameLine(imp, arg)) {
      fail(imp, "Wrong argument count or unexpected line ending after 'import'");
    }
    if (arg.brace === '{') fail(arg, "Unexpected token '{', expecting argument");
    const pattern = arg.text;
    if (pattern === '') fail(arg, 'Import requires a non-empty filepath');
    const extra = this.tokens[i + 2];
    if (extra && this.sameLine(arg, extra)) fail(extra, 'Import takes only one argument (glob pattern or file)');

    const snippet = this.snippets.get(pattern);
    const imported = snippet ? this.expandSnippet(imp, arg, pattern, snippet) : this.expandFiles(imp, arg, pattern);
    this.tokens.splice(i, 2, ...imported);
    this.pos = i;
  }

  private checkCycle(imp: PToken, arg: PToken, entry: string): readonly string[] {
    if (imp.chain.includes(entry)) {
      const cycle = [...imp.chain.slice(imp.chain.indexOf(entry)), entry].map(describeChainEntry);
      fail(arg, `Import cycle: ${cycle.join(' -> ')}`);
    }
    return [...imp.chain, entry];
  }

  private expandSnippet(imp: PToken, arg: PToken, name: string, body: PToken[]): PToken[] {
    const chain = this.checkCycle(imp, arg, `snippet:${name}`);
    if (++this.snippetExpansions > MAX_IMPORT_EXPANSIONS) {
      fail(arg, `maximum snippet import depth (${MAX_IMPORT_EXPANSIONS}) exceeded`);
    }
    const unit = this.nextUnit++;
    return body.map((t) => ({ ...t, unit, chain }));
  }

  private expandFiles(imp: PToken, arg: PToken, pattern: string): PToken[] {
    if (++this.fileExpansions > MAX_IMPORT_EXPANSIONS) {
      fail(arg, `maximum file import depth (${MAX_IMPORT_EXPANSIONS}) exceeded`);
    }
    const globPattern = path.isAbsolute(pattern) ? pattern : path.join(path.dirname(path.resolve(arg.file)), pattern);
    if (
      count(globPattern, '*') > 1 ||
      count(globPattern, '?') > 1 ||
      (globPattern.includes('[') && globPattern.includes(']'))
    ) {
      fail(arg, `Glob pattern may only contain one wildcard (*), but has others: ${globPattern}`);
    }
    let matches: string[];
    try {
      matches = globSync(globPattern);
    } catch (err) {
      fail(arg, `Failed to use import pattern ${pattern}: ${(err as Error).message}`);
    }
    if (matches.length === 0) {
      if (/[*?[\]]/.test(globPattern)) {
        this.warn(`[WARNING] No files matching import glob pattern: ${pattern}`);
      } else {
        fail(arg, `File to import not found: ${pattern}`);
      }
    }
    const imported: PToken[] = [];
    for (const match of matches) {
      const abs = path.resolve(match);
      const chain = this.checkCycle(imp, arg, `file:${abs}`);
      let text: string;
      try {
        if (fs.statSync(abs).isDirectory()) fail(arg, `Could not import ${match}: is a directory`);
        text = fs.readFileSync(abs, 'utf8');
      } catch (err) {
        if (err instanceof CorefileError) throw err;
        fail(arg, `Could not import ${match}: ${(err as Error).message}`);
      }
      imported.push(...this.lex(text, abs, chain));
    }
    return imported;
  }
}

function count(s: string, ch: string): number {
  let n = 0;
  for (const c of s) if (c === ch) n++;
  return n;
}

function isSnippetKey(key: string): boolean {
  return key.length >= 2 && key.startsWith('(') && key.endsWith(')');
}

/** Splits a key word on commas (`a,b` → `a`, `b`); empty pieces are dropped. */
function splitKeys(t: PToken): Token[] {
  return t.text
    .split(',')
    .filter((k) => k !== '')
    .map((k) => publicToken(t, k));
}
