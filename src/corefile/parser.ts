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
 *
 * Files are read through an ImportSource: `parseCorefileAsync` first finds every file the text
 * may import (recursively) and reads it asynchronously (src/corefile/read.ts: regular files
 * only, within the size budget), then parses synchronously from what it read, so a load never
 * waits on a file on the serving thread. `parseCorefile` reads the same way, synchronously.
 * Every load is bounded by ConfigLimits (src/corefile/limits.ts). Error messages quote at most
 * MAX_QUOTED_CHARS of an offending word (errors.ts excerpt): the contents of an imported file
 * that is not a Corefile never reach the log beyond that.
 */
import path from 'node:path';
import { Buffer } from 'node:buffer';
import { CorefileError, excerpt } from './errors.ts';
import { glob, globSync } from './glob.ts';
import { tokenize, type Env, type LexToken } from './lexer.ts';
import { DEFAULT_CONFIG_LIMITS, type ConfigLimits } from './limits.ts';
import { ConfigReadError, readConfigFile, readConfigFileSync, tooLarge } from './read.ts';
import type { Directive, ServerBlock, Token } from './types.ts';

/** CoreDNS's cap on snippet and on file imports expanded in one parse (maxSnippetExpansions). */
const MAX_IMPORT_EXPANSIONS = 1000;

export interface ParseOptions {
  /** Receives non-fatal notices (an import glob that matched no file). Default: dropped. */
  warn?: (message: string) => void;
  /** Bounds of this load; default DEFAULT_CONFIG_LIMITS. */
  limits?: Partial<ConfigLimits>;
}

/** Where `import` gets its files: glob matches and file contents (read.ts checks). */
interface ImportSource {
  /** Matches of an absolute glob pattern; throws Error for a malformed pattern. */
  glob(pattern: string): string[];
  /** Contents of a matched file; throws ConfigReadError. */
  read(abs: string, maxBytes: number): string;
}

const SYNC_SOURCE: ImportSource = { glob: globSync, read: (abs, maxBytes) => readConfigFileSync(abs, maxBytes, false) };

/** Files and glob matches read ahead asynchronously; anything not read ahead is read synchronously. */
class PrefetchedSource implements ImportSource {
  readonly globs = new Map<string, string[] | Error>();
  readonly files = new Map<string, string | ConfigReadError>();

  glob(pattern: string): string[] {
    const got = this.globs.get(pattern);
    if (got === undefined) return globSync(pattern);
    if (got instanceof Error) throw got;
    return got;
  }

  read(abs: string, maxBytes: number): string {
    const got = this.files.get(abs);
    if (got === undefined) return readConfigFileSync(abs, maxBytes, false);
    if (got instanceof ConfigReadError) throw got;
    if (got.length > maxBytes && Buffer.byteLength(got) > maxBytes) throw tooLarge(abs, maxBytes, false);
    return got;
  }
}

function importPattern(arg: { text: string; file: string }): string {
  return path.isAbsolute(arg.text) ? arg.text : path.join(path.dirname(path.resolve(arg.file)), arg.text);
}

/**
 * Reads ahead every file that `import` lines in `text` (and in the files they import) may
 * name. Over-approximates (a snippet name is also tried as a file; failures are recorded and
 * only reported if the parser uses that file) and stays within the limits' byte and file bounds.
 */
async function prefetchImports(text: string, file: string, env: Env, limits: ConfigLimits): Promise<PrefetchedSource> {
  const source = new PrefetchedSource();
  let bytes = Buffer.byteLength(text);
  const queue: { text: string; file: string }[] = [{ text, file }];
  while (queue.length > 0) {
    const unit = queue.shift()!;
    if (!unit.text.includes('import')) continue;
    let tokens: LexToken[];
    try {
      tokens = tokenize(unit.text, unit.file, env);
    } catch {
      continue; // the parser reports it, if it reads this file at all
    }
    for (let i = 0; i + 1 < tokens.length; i++) {
      const imp = tokens[i]!;
      const arg = tokens[i + 1]!;
      if (imp.text !== 'import' || imp.brace !== null || arg.brace !== null || arg.text === '') continue;
      if (imp.file !== arg.file || imp.logEnd !== arg.logStart) continue;
      const pattern = importPattern(arg);
      if (source.globs.has(pattern) || source.globs.size > MAX_IMPORT_EXPANSIONS) continue;
      let matches: string[];
      try {
        matches = await glob(pattern);
      } catch (err) {
        source.globs.set(pattern, err as Error);
        continue;
      }
      source.globs.set(pattern, matches);
      for (const match of matches) {
        const abs = path.resolve(match);
        if (source.files.has(abs)) continue;
        if (source.files.size >= limits.maxImportedFiles) {
          source.files.set(abs, new ConfigReadError(abs, `more than ${limits.maxImportedFiles} imported files`));
          continue;
        }
        try {
          const content = await readConfigFile(abs, Math.max(0, limits.maxConfigBytes - bytes), false);
          bytes += Buffer.byteLength(content);
          source.files.set(abs, content);
          queue.push({ text: content, file: abs });
        } catch (err) {
          if (!(err instanceof ConfigReadError)) throw err;
          source.files.set(abs, err);
        }
      }
    }
  }
  return source;
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
export function parseCorefile(text: string, file: string, env: Env = process.env, options: ParseOptions = {}): ServerBlock[] {
  const limits = { ...DEFAULT_CONFIG_LIMITS, ...options.limits };
  const parser = new Parser(env, options.warn ?? (() => {}), SYNC_SOURCE, limits);
  return parser.parseRoot(text, file);
}

/**
 * parseCorefile with every import read ahead asynchronously: the only synchronous part is
 * the parse itself, which the limits bound.
 * @throws CorefileError
 */
export async function parseCorefileAsync(text: string, file: string, env: Env = process.env, options: ParseOptions = {}): Promise<ServerBlock[]> {
  const limits = { ...DEFAULT_CONFIG_LIMITS, ...options.limits };
  const source = await prefetchImports(text, file, env, limits);
  const parser = new Parser(env, options.warn ?? (() => {}), source, limits);
  return parser.parseRoot(text, file);
}

function publicToken(t: LexToken, text: string = t.text): Token {
  return { text, file: t.file, line: t.line, quoted: t.quoted };
}

function fail(at: { file: string; line: number }, detail: string): never {
  throw new CorefileError(at.file, at.line, detail);
}

function describeChainEntry(entry: string): string {
  return entry.startsWith('snippet:') ? `snippet (${excerpt(entry.slice(8))})` : entry.slice(5);
}

class Parser {
  private tokens: PToken[] = [];
  /** Index of the next word to read. */
  private pos = 0;
  private nextUnit = 0;
  private readonly snippets = new Map<string, PToken[]>();
  private snippetExpansions = 0;
  private fileExpansions = 0;
  private importedFiles = 0;
  /** Bytes of the Corefile and of every file import so far. */
  private bytes = 0;
  /** Words in the token list, counting every expansion. */
  private words = 0;
  private readonly env: Env;
  private readonly warn: (message: string) => void;
  private readonly source: ImportSource;
  private readonly limits: ConfigLimits;

  constructor(env: Env, warn: (message: string) => void, source: ImportSource, limits: ConfigLimits) {
    this.env = env;
    this.warn = warn;
    this.source = source;
    this.limits = limits;
  }

  parseRoot(text: string, file: string): ServerBlock[] {
    this.bytes = Buffer.byteLength(text);
    if (this.bytes > this.limits.maxConfigBytes) {
      fail({ file, line: 1 }, `the Corefile has ${this.bytes} bytes, above the configuration size limit of ${this.limits.maxConfigBytes}`);
    }
    this.tokens = this.lex(text, file, [`file:${path.resolve(file)}`], { file, line: 1 });
    this.pos = 0;
    const blocks: ServerBlock[] = [];
    while (this.pos < this.tokens.length) {
      if (this.isImport(this.pos) && this.atLineStart(this.pos)) {
        this.expandImport(this.pos);
        continue;
      }
      const at = this.tokens[this.pos]!;
      const block = this.serverBlock();
      if (block) {
        if (blocks.length >= this.limits.maxServerBlocks) {
          fail(at, `more than ${this.limits.maxServerBlocks} server blocks (the configuration limit)`);
        }
        blocks.push(block);
      }
    }
    return blocks;
  }

  private lex(text: string, file: string, chain: readonly string[], at: { file: string; line: number }): PToken[] {
    const unit = this.nextUnit++;
    const tokens = tokenize(text, file, this.env);
    this.countWords(tokens.length, at);
    const out: PToken[] = new Array(tokens.length);
    for (let i = 0; i < tokens.length; i++) {
      const t = tokens[i]!;
      out[i] = { text: t.text, file: t.file, line: t.line, quoted: t.quoted, brace: t.brace, logStart: t.logStart, logEnd: t.logEnd, unit, chain };
    }
    return out;
  }

  private countWords(n: number, at: { file: string; line: number }): void {
    this.words += n;
    if (this.words > this.limits.maxWords) fail(at, `more than ${this.limits.maxWords} words after imports (the configuration limit)`);
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
      fail(first, `Server block without a key before '${excerpt(this.tokens[this.pos]?.text ?? first.text)}'`);
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
      fail(open ?? this.last(), `Unexpected token '${open ? excerpt(open.text) : 'EOF'}', expecting '{' after snippet (${excerpt(name)})`);
    }
    if (this.snippets.has(name)) fail(key, `redeclaration of previously declared snippet ${excerpt(name)}`);
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
            fail(after, `Unexpected '${excerpt(after.text)}' after '}' closing the block of '${excerpt(d.name)}'`);
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
    // concat, not splice(...imported): an import may bring more words than a call takes arguments.
    this.tokens = this.tokens.slice(0, i).concat(imported, this.tokens.slice(i + 2));
    this.pos = i;
  }

  private checkCycle(imp: PToken, arg: PToken, entry: string): readonly string[] {
    if (imp.chain.includes(entry)) {
      const cycle = [...imp.chain.slice(imp.chain.indexOf(entry)), entry].map(describeChainEntry);
      fail(arg, `Import cycle: ${cycle.join(' -> ')}`);
    }
    // The chain starts with the Corefile itself: its length - 1 imports are nested here.
    if (imp.chain.length > this.limits.maxImportDepth) {
      fail(arg, `imports nested more than ${this.limits.maxImportDepth} deep (the configuration limit)`);
    }
    return [...imp.chain, entry];
  }

  private expandSnippet(imp: PToken, arg: PToken, name: string, body: PToken[]): PToken[] {
    const chain = this.checkCycle(imp, arg, `snippet:${name}`);
    if (++this.snippetExpansions > MAX_IMPORT_EXPANSIONS) {
      fail(arg, `maximum snippet import depth (${MAX_IMPORT_EXPANSIONS}) exceeded`);
    }
    this.countWords(body.length, arg);
    const unit = this.nextUnit++;
    return body.map((t) => ({ ...t, unit, chain }));
  }

  private expandFiles(imp: PToken, arg: PToken, pattern: string): PToken[] {
    if (++this.fileExpansions > MAX_IMPORT_EXPANSIONS) {
      fail(arg, `maximum file import depth (${MAX_IMPORT_EXPANSIONS}) exceeded`);
    }
    const globPattern = importPattern(arg);
    if (count(globPattern, '*') > 1 || count(globPattern, '?') > 1 || (globPattern.includes('[') && globPattern.includes(']'))) {
      fail(arg, `Glob pattern may only contain one wildcard (*), but has others: ${globPattern}`);
    }
    let matches: string[];
    try {
      matches = this.source.glob(globPattern);
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
      if (++this.importedFiles > this.limits.maxImportedFiles) {
        fail(arg, `Could not import ${match}: more than ${this.limits.maxImportedFiles} imported files (the configuration limit)`);
      }
      let text: string;
      try {
        text = this.source.read(abs, this.limits.maxConfigBytes - this.bytes);
      } catch (err) {
        if (!(err instanceof ConfigReadError)) throw err;
        fail(arg, `Could not import ${match}: ${err.reason}`);
      }
      this.bytes += Buffer.byteLength(text);
      for (const t of this.lex(text, abs, chain, arg)) imported.push(t);
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
