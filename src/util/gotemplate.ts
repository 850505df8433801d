/**
 * A subset of Go's text/template, enough for the RR templates of CoreDNS's `template` plugin.
 *
 * Supported:
 *  - text and actions `{{ pipeline }}`, trim markers `{{- ` and ` -}}`, comments `{{/* ... *\/}}`;
 *  - pipelines of commands joined by `|` (the value of one command is the last argument of the
 *    next), parenthesised pipelines, field chains on them `(pipeline).Field`;
 *  - operands: `.`, field chains `.A.B` (struct fields, map keys, methods taking arguments),
 *    string literals ("..." with Go escapes, `raw`), character constants, integers (decimal,
 *    0x, 0o, 0b, `_` separators), floats, `true`, `false`, `nil`;
 *  - Go's builtin functions and, or, not, len, index, slice, eq, ne, lt, le, gt, ge, print,
 *    printf, println, plus the functions the caller passes (CoreDNS's parseInt).
 *
 * Not supported, rejected when the template is compiled with an error that says so: control
 * structures (if, else, range, with, define, template, block, break, continue, end), variables
 * (`$x`, `$x := ...`), the builtins call, html, js and urlquery.
 *
 * Compilation also checks field chains against the data's declared types (a `TypeSpec`), so a
 * misspelt field is a compile error instead of a failure on every query. Values at run time:
 * strings, booleans, bigint (all Go integers), number (Go floats), arrays (slices), Map (maps),
 * objects (structs, whose function-valued properties are methods), null (nil) and undefined
 * (Go's "no value": a missing map key).
 */

export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

// ------------------------------------------------------------------ types (for compile checks)

/** A Go type as far as the checks need it. `any` turns checking off below it. */
export type TypeSpec =
  | 'string'
  | 'int'
  | 'uint'
  | 'bool'
  | 'float'
  | 'any'
  | { list: TypeSpec; goName: string }
  | { map: TypeSpec; goName: string }
  | StructSpec;

export interface StructSpec {
  /** Go's name for the type in error messages, e.g. `*template.templateData`. */
  goName: string;
  fields: Record<string, TypeSpec>;
  /** Methods: their argument count and result type. */
  methods?: Record<string, { args: number; result: TypeSpec }>;
  /** False when the value cannot be printed (Go would print a large dump). Default true. */
  printable?: boolean;
}

function isStruct(t: TypeSpec): t is StructSpec {
  return typeof t === 'object' && 'fields' in t;
}

function goTypeName(t: TypeSpec): string {
  if (typeof t === 'string') return t === 'any' ? 'interface {}' : t === 'float' ? 'float64' : t === 'uint' ? 'uint64' : t;
  return t.goName;
}

/** A function a template may call. */
export interface TemplateFunc {
  /** Exact argument count, or null for variadic (checked by the function itself). */
  args: number | null;
  result: TypeSpec;
  call(args: unknown[]): unknown;
}

// ------------------------------------------------------------------ AST

type Operand =
  | { kind: 'dot' }
  | { kind: 'field'; base: Operand | null; chain: string[] } // base null: the dot
  | { kind: 'ident'; name: string }
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: bigint | number; text: string }
  | { kind: 'bool'; value: boolean }
  | { kind: 'nil' }
  | { kind: 'pipe'; pipe: Pipeline };

interface Command {
  args: Operand[];
}

interface Pipeline {
  cmds: Command[];
  line: number;
  col: number;
  /** Source text of the action, for error messages (`executing "x" at <...>`). */
  src: string;
}

type Node = { kind: 'text'; text: string } | { kind: 'action'; pipe: Pipeline };

// ------------------------------------------------------------------ lexer/parser

/** Go's action keywords (control structures), none of which this subset has. */
const KEYWORDS = new Set('if else end range with define template block break continue'.split(' '));
const UNSUPPORTED_BUILTINS = new Set(['call', 'html', 'js', 'urlquery']);
const SPACE = new Set([' ', '\t', '\r', '\n']);

function isIdentStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c > '\x7f';
}
function isIdentChar(c: string): boolean {
  return /[A-Za-z0-9_]/.test(c) || c > '\x7f';
}

/** Go's strconv.Unquote for a double-quoted literal (without the quotes). */
function unquoteGo(body: string, fail: (m: string) => never): string {
  let out = '';
  const bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) {
      out += Buffer.from(bytes).toString('utf8');
      bytes.length = 0;
    }
  };
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c !== '\\') {
      flush();
      out += c;
      continue;
    }
    const e = body[++i];
    const simple: Record<string, string> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"', "'": "'" };
    if (e !== undefined && e in simple) {
      flush();
      out += simple[e];
    } else if (e === 'x' && /^[0-9A-Fa-f]{2}$/.test(body.slice(i + 1, i + 3))) {
      bytes.push(parseInt(body.slice(i + 1, i + 3), 16));
      i += 2;
    } else if ((e === 'u' && /^[0-9A-Fa-f]{4}$/.test(body.slice(i + 1, i + 5))) || (e === 'U' && /^[0-9A-Fa-f]{8}$/.test(body.slice(i + 1, i + 9)))) {
      const n = e === 'u' ? 4 : 8;
      const cp = parseInt(body.slice(i + 1, i + 1 + n), 16);
      if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000)) fail('invalid syntax');
      flush();
      out += String.fromCodePoint(cp);
      i += n;
    } else if (e !== undefined && /[0-7]/.test(e) && /^[0-7]{3}$/.test(body.slice(i, i + 3))) {
      const v = parseInt(body.slice(i, i + 3), 8);
      if (v > 255) fail('invalid syntax');
      bytes.push(v);
      i += 2;
    } else {
      fail('invalid syntax');
    }
  }
  flush();
  return out;
}

/** Go integer/float literal syntax; null when `text` is not a number. */
function parseNumber(text: string): bigint | number | null {
  const t = text.replace(/^[+-]/, '');
  const neg = text.startsWith('-');
  let m: RegExpExecArray | null;
  const clean = (s: string) => (/^_|__|_$/.test(s) ? null : s.replace(/_/g, ''));
  if ((m = /^0[xX]([0-9A-Fa-f_]+)$/.exec(t)) || (m = /^0[oO]([0-7_]+)$/.exec(t)) || (m = /^0[bB]([01_]+)$/.exec(t))) {
    const digits = clean(m[1]!.replace(/^_/, ''));
    if (digits === null || digits === '') return null;
    const prefix = t[1]!.toLowerCase();
    const v = BigInt(`0${prefix}${digits}`);
    return neg ? -v : v;
  }
  if (/^[0-9][0-9_]*$/.test(t)) {
    const digits = clean(t);
    if (digits === null) return null;
    // A leading 0 means octal in Go.
    const v = digits.length > 1 && digits[0] === '0' ? (/^[0-7]+$/.test(digits) ? BigInt(`0o${digits.slice(1)}`) : null) : BigInt(digits);
    if (v === null) return null;
    return neg ? -v : v;
  }
  if (/^([0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)([eE][+-]?[0-9]+)?$/.test(t)) {
    const v = Number(t);
    return neg ? -v : v;
  }
  return null;
}

class Parser {
  private readonly name: string;
  private readonly text: string;
  private readonly check: Checker;
  private pos = 0;
  private line = 1;
  private actionLine = 1;
  private actionCol = 0;
  private actionEnd = 0;

  constructor(name: string, text: string, check: Checker) {
    this.name = name;
    this.text = text;
    this.check = check;
  }

  fail(msg: string, line = this.line): never {
    throw new TemplateError(`template: ${this.name}:${line}: ${msg}`);
  }

  parse(): Node[] {
    const nodes: Node[] = [];
    const text = this.text;
    let trimNext = false;
    while (this.pos < text.length) {
      const open = text.indexOf('{{', this.pos);
      let chunk = open < 0 ? text.slice(this.pos) : text.slice(this.pos, open);
      if (trimNext) chunk = chunk.replace(/^[ \t\r\n]+/, '');
      trimNext = false;
      let trimLeft = false;
      if (open >= 0) trimLeft = text[open + 2] === '-' && SPACE.has(text[open + 3] ?? '');
      if (trimLeft) chunk = chunk.replace(/[ \t\r\n]+$/, '');
      if (chunk.length > 0) nodes.push({ kind: 'text', text: chunk });
      this.line += countLines(text.slice(this.pos, open < 0 ? text.length : open));
      if (open < 0) break;
      this.actionLine = this.line;
      this.pos = open + 2 + (trimLeft ? 2 : 0);
      let first = this.pos;
      while (first < text.length && SPACE.has(text[first]!)) first++;
      this.actionCol = first - (text.lastIndexOf('\n', first) + 1);
      const node = this.action();
      if (node !== null) nodes.push(node);
      trimNext = this.actionEnd > 0;
    }
    return nodes;
  }

  /** After `{{` (and a left trim marker): one action up to `}}`; null for a comment. */
  private action(): Node | null {
    const text = this.text;
    const start = this.pos;
    // Comment: `/*` right after the delimiter, `*/` right before the closing one.
    if (text.startsWith('/*', this.pos)) {
      const end = text.indexOf('*/', this.pos + 2);
      if (end < 0) this.fail('unclosed comment');
      this.line += countLines(text.slice(this.pos, end));
      this.pos = end + 2;
      this.closeAction(true);
      return null;
    }
    const pipe = this.pipeline(false);
    pipe.src = text.slice(start, this.pos).trim().replace(/\s+-$/, '').trim();
    if (pipe.cmds.length === 0) this.fail('missing value for command');
    this.closeAction(false);
    this.check.pipeline(pipe, this);
    return { kind: 'action', pipe };
  }

  /** Expects `}}` or ` -}}` at pos (after optional space unless a comment). */
  private closeAction(comment: boolean): void {
    const text = this.text;
    if (!comment) this.skipSpace();
    else {
      const m = /^( -)?\}\}/.exec(text.slice(this.pos));
      if (m === null) this.fail('comment ends before closing delimiter');
    }
    if (text.startsWith(' -}}', this.pos) || (text[this.pos - 1] !== undefined && SPACE.has(text[this.pos - 1]!) && text.startsWith('-}}', this.pos))) {
      this.pos += text.startsWith(' -}}', this.pos) ? 4 : 3;
      this.actionEnd = 1;
      return;
    }
    if (text.startsWith('}}', this.pos)) {
      this.pos += 2;
      this.actionEnd = 0;
      return;
    }
    if (this.pos >= text.length) this.fail('unclosed action', this.actionLine);
    this.fail(`unexpected ${this.describe()} in command`);
  }

  private skipSpace(): void {
    const text = this.text;
    while (this.pos < text.length && SPACE.has(text[this.pos]!)) {
      // A space before `-}}` belongs to the trim marker.
      if (text.startsWith(' -}}', this.pos)) return;
      if (text[this.pos] === '\n') this.line++;
      this.pos++;
    }
  }

  private atEnd(inParen: boolean): boolean {
    const text = this.text;
    if (this.pos >= text.length) this.fail('unclosed action', this.actionLine);
    if (text.startsWith('}}', this.pos) || text.startsWith(' -}}', this.pos)) {
      if (inParen) this.fail('unclosed left paren');
      return true;
    }
    if (text.startsWith('-}}', this.pos) && SPACE.has(text[this.pos - 1] ?? '')) {
      if (inParen) this.fail('unclosed left paren');
      return true;
    }
    return false;
  }

  private describe(): string {
    const c = this.text[this.pos];
    return c === undefined ? 'EOF' : JSON.stringify(c);
  }

  private pipeline(inParen: boolean): Pipeline {
    const pipe: Pipeline = { cmds: [], line: this.actionLine, col: this.actionCol, src: '' };
    let cmd: Command = { args: [] };
    for (;;) {
      this.skipSpace();
      if (this.atEnd(inParen)) break;
      const c = this.text[this.pos]!;
      if (inParen && c === ')') {
        this.pos++;
        break;
      }
      if (c === '|') {
        if (cmd.args.length === 0) this.fail('missing value for command');
        pipe.cmds.push(cmd);
        cmd = { args: [] };
        this.pos++;
        continue;
      }
      cmd.args.push(this.operand());
    }
    if (cmd.args.length > 0) pipe.cmds.push(cmd);
    else if (pipe.cmds.length > 0) this.fail('missing value for command');
    return pipe;
  }

  private fieldChain(): string[] {
    const text = this.text;
    const chain: string[] = [];
    while (text[this.pos] === '.' && isIdentStart(text[this.pos + 1] ?? '')) {
      let end = this.pos + 1;
      while (end < text.length && isIdentChar(text[end]!)) end++;
      chain.push(text.slice(this.pos + 1, end));
      this.pos = end;
    }
    return chain;
  }

  private operand(): Operand {
    const text = this.text;
    const c = text[this.pos]!;
    if (c === '$') this.fail('variables ($) are not supported by node-local-dns templates');
    if (c === '(') {
      this.pos++;
      const inner = this.pipeline(true);
      if (inner.cmds.length === 0) this.fail('missing value for parenthesized pipeline');
      const chain = this.fieldChain();
      const op: Operand = { kind: 'pipe', pipe: inner };
      return chain.length > 0 ? { kind: 'field', base: op, chain } : op;
    }
    if (c === ')') this.fail('unexpected right paren');
    if (c === '.') {
      if (isIdentStart(text[this.pos + 1] ?? '')) return { kind: 'field', base: null, chain: this.fieldChain() };
      if (!/[0-9]/.test(text[this.pos + 1] ?? '')) {
        this.pos++;
        return { kind: 'dot' };
      }
    }
    if (c === '"') {
      let end = this.pos + 1;
      while (end < text.length && text[end] !== '"') {
        if (text[end] === '\\') end++;
        if (text[end] === '\n') this.fail('unterminated quoted string');
        end++;
      }
      if (end >= text.length) this.fail('unterminated quoted string');
      const body = text.slice(this.pos + 1, end);
      this.pos = end + 1;
      return { kind: 'string', value: unquoteGo(body, (m) => this.fail(`${m}: "${body}"`)) };
    }
    if (c === '`') {
      const end = text.indexOf('`', this.pos + 1);
      if (end < 0) this.fail('unterminated raw quoted string');
      const value = text.slice(this.pos + 1, end);
      this.line += countLines(value);
      this.pos = end + 1;
      return { kind: 'string', value };
    }
    if (c === "'") {
      const m = /^'(\\(?:[abfnrtv\\'"]|x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|U[0-9A-Fa-f]{8}|[0-7]{3})|[^\\'\n])'/u.exec(text.slice(this.pos));
      if (m === null) this.fail('unterminated character constant');
      this.pos += m[0].length;
      const s = m[1]!.startsWith('\\') ? unquoteGo(m[1]!, (msg) => this.fail(msg)) : m[1]!;
      return { kind: 'number', value: BigInt(s.codePointAt(0)!), text: m[0] };
    }
    if (/[0-9+\-.]/.test(c)) {
      const m = /^[+-]?[0-9A-Za-z_.]+(?:[eEpP][+-][0-9_]+)?/.exec(text.slice(this.pos));
      const word = m === null ? c : m[0];
      const v = parseNumber(word);
      if (v === null) this.fail(`bad number syntax: "${word}"`);
      this.pos += word.length;
      return { kind: 'number', value: v, text: word };
    }
    if (isIdentStart(c)) {
      let end = this.pos;
      while (end < text.length && isIdentChar(text[end]!)) end++;
      const word = text.slice(this.pos, end);
      this.pos = end;
      if (word === 'true' || word === 'false') return { kind: 'bool', value: word === 'true' };
      if (word === 'nil') return { kind: 'nil' };
      if (KEYWORDS.has(word)) this.fail(`"${word}" is not supported by node-local-dns templates (no control structures)`);
      if (UNSUPPORTED_BUILTINS.has(word)) this.fail(`function "${word}" is not supported by node-local-dns templates`);
      if (!this.check.hasFunc(word)) this.fail(`function "${word}" not defined`);
      if (text[this.pos] === '.' && isIdentStart(text[this.pos + 1] ?? '')) this.fail(`unexpected . after term "${word}"`);
      return { kind: 'ident', name: word };
    }
    return this.fail(`unexpected ${this.describe()} in operand`);
  }
}

function countLines(s: string): number {
  let n = 0;
  for (let i = s.indexOf('\n'); i >= 0; i = s.indexOf('\n', i + 1)) n++;
  return n;
}

// ------------------------------------------------------------------ compile-time checks

/**
 * Finds, before any query, what Go only reports when the template runs (a misspelt field, a
 * wrong argument count): those templates still compile, as in Go, and fail at every execution;
 * the problems are listed in GoTemplate.warnings for the caller to log.
 */
class Checker {
  private readonly funcs: ReadonlyMap<string, TemplateFunc>;
  private readonly data: TypeSpec;
  readonly warnings: string[] = [];
  constructor(funcs: ReadonlyMap<string, TemplateFunc>, data: TypeSpec) {
    this.funcs = funcs;
    this.data = data;
  }

  hasFunc(name: string): boolean {
    return this.funcs.has(name);
  }

  private warnAt(p: Parser, line: number, msg: string): TypeSpec {
    void p;
    this.warnings.push(`line ${line}: ${msg}`);
    return 'any';
  }

  /** Checks a whole action: field chains, argument counts, that the result can be printed. */
  pipeline(pipe: Pipeline, p: Parser): void {
    const t = this.pipeType(pipe, p);
    if (isStruct(t) && t.printable === false) this.warnAt(p, pipe.line, `printing a value of type ${t.goName} is not supported by node-local-dns templates`);
  }

  private pipeType(pipe: Pipeline, p: Parser): TypeSpec {
    let t: TypeSpec = 'any';
    pipe.cmds.forEach((cmd, i) => {
      t = this.cmdType(cmd, i > 0, p, pipe.line);
    });
    return t;
  }

  private cmdType(cmd: Command, piped: boolean, p: Parser, line: number): TypeSpec {
    const first = cmd.args[0]!;
    const nargs = cmd.args.length - 1 + (piped ? 1 : 0);
    for (const a of cmd.args.slice(1)) this.argType(a, p, line);
    if (first.kind === 'ident') {
      const f = this.funcs.get(first.name)!;
      if (f.args !== null && f.args !== nargs) return this.warnAt(p, line, `wrong number of args for ${first.name}: want ${f.args} got ${nargs}`);
      if (first.name === 'index' && cmd.args.length >= 2 && !piped) {
        let t = this.argType(cmd.args[1]!, p, line);
        for (let i = 2; i < cmd.args.length; i++) t = typeof t === 'object' && ('list' in t || 'map' in t) ? ('list' in t ? t.list : t.map) : 'any';
        return cmd.args.length === 2 ? t : t;
      }
      return f.result;
    }
    if (first.kind === 'field') {
      const { type, method } = this.fieldType(first, p, line);
      if (method !== null) {
        if (method.args >= 0 && method.args !== nargs)
          return this.warnAt(p, line, `wrong number of args for ${first.chain[first.chain.length - 1]}: want ${method.args} got ${nargs}`);
        return method.result;
      }
      if (nargs > 0) return this.warnAt(p, line, `can't give argument to non-function .${first.chain.join('.')}`);
      return type;
    }
    if (nargs > 0) return this.warnAt(p, line, `can't give argument to non-function ${describeOperand(first)}`);
    return this.argType(first, p, line);
  }

  private argType(a: Operand, p: Parser, line: number): TypeSpec {
    switch (a.kind) {
      case 'dot':
        return this.data;
      case 'string':
        return 'string';
      case 'number':
        return typeof a.value === 'bigint' ? 'int' : 'float';
      case 'bool':
        return 'bool';
      case 'nil':
        return 'any';
      case 'pipe':
        return this.pipeType(a.pipe, p);
      case 'ident': {
        const f = this.funcs.get(a.name)!;
        if (f.args !== null && f.args !== 0) return this.warnAt(p, line, `wrong number of args for ${a.name}: want ${f.args} got 0`);
        return f.result;
      }
      case 'field': {
        const { type, method } = this.fieldType(a, p, line);
        if (method !== null) {
          if (method.args > 0) return this.warnAt(p, line, `wrong number of args for ${a.chain[a.chain.length - 1]}: want ${method.args} got 0`);
          return method.result;
        }
        return type;
      }
    }
  }

  private fieldType(f: Extract<Operand, { kind: 'field' }>, p: Parser, line: number): { type: TypeSpec; method: { args: number; result: TypeSpec } | null } {
    let t: TypeSpec = f.base === null ? this.data : this.argType(f.base, p, line);
    for (let i = 0; i < f.chain.length; i++) {
      const name = f.chain[i]!;
      const last = i === f.chain.length - 1;
      if (t === 'any') return { type: 'any', method: ANY_METHOD };
      if (typeof t === 'object' && 'map' in t) {
        t = t.map;
        continue;
      }
      if (isStruct(t)) {
        const m = t.methods?.[name];
        if (m !== undefined) {
          if (!last)
            return { type: this.warnAt(p, line, `method ${name} must be the last element of a field chain in node-local-dns templates`), method: null };
          return { type: m.result, method: m };
        }
        const ft = t.fields[name];
        if (ft === undefined) return { type: this.warnAt(p, line, `can't evaluate field ${name} in type ${t.goName}`), method: null };
        t = ft;
        continue;
      }
      return { type: this.warnAt(p, line, `can't evaluate field ${name} in type ${goTypeName(t)}`), method: null };
    }
    return { type: t, method: null };
  }
}

/** What a field of a value of unknown type may be: a method taking any arguments. */
const ANY_METHOD = { args: -1, result: 'any' as TypeSpec };

function describeOperand(a: Operand): string {
  switch (a.kind) {
    case 'string':
      return JSON.stringify(a.value);
    case 'number':
      return a.text;
    case 'bool':
      return String(a.value);
    case 'nil':
      return 'nil';
    case 'dot':
      return '.';
    default:
      return 'value';
  }
}

// ------------------------------------------------------------------ values

/** Go's "no value" (invalid reflect.Value): a missing map key. */
const NO_VALUE = undefined;

function kindName(v: unknown): string {
  if (v === null || v === undefined) return 'nil';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'bigint') return 'int';
  if (typeof v === 'number') return 'float64';
  if (typeof v === 'boolean') return 'bool';
  if (Array.isArray(v)) return 'slice';
  if (v instanceof Map) return 'map';
  return 'struct';
}

/** Go's name for the type of a run-time value (a struct class may say it in a static `goName`). */
function goTypeOf(v: unknown): string {
  if (typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Map)) {
    const n = (v.constructor as { goName?: unknown }).goName;
    if (typeof n === 'string') return n;
  }
  if (typeof v === 'string') return 'string';
  if (Array.isArray(v)) return '[]interface {}';
  return kindName(v);
}

/** Go's truth (text/template `truth`): false, 0, "", nil, empty slices and maps are false. */
function truth(v: unknown): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'string') return v.length > 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'boolean') return v;
  if (Array.isArray(v)) return v.length > 0;
  if (v instanceof Map) return v.size > 0;
  return true;
}

/** A struct value may say how Go prints it (its String method). */
export interface GoStringer {
  goString(): string;
}

function hasGoString(v: unknown): v is GoStringer {
  return typeof v === 'object' && v !== null && typeof (v as { goString?: unknown }).goString === 'function';
}

function formatFloat(n: number): string {
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  const s = String(n);
  // Go's %v uses %g: exponent with at least two digits.
  return s.replace(/e([+-])(\d)$/, 'e$10$2');
}

/** fmt's %v of a value. */
function formatValue(v: unknown, top = true): string {
  if (v === NO_VALUE) return top ? '<no value>' : '<nil>';
  if (v === null) return '<nil>';
  if (typeof v === 'string') return v;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number') return formatFloat(v);
  if (typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map((x) => formatValue(x, false)).join(' ')}]`;
  if (v instanceof Map) {
    const keys = [...v.keys()].sort();
    return `map[${keys.map((k) => `${formatValue(k, false)}:${formatValue(v.get(k), false)}`).join(' ')}]`;
  }
  if (hasGoString(v)) return v.goString();
  return '{}';
}

/** fmt.Sprint: a space between operands when neither side is a string. */
function sprint(args: unknown[]): string {
  let out = '';
  for (let i = 0; i < args.length; i++) {
    if (i > 0 && typeof args[i] !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += formatValue(args[i], false);
  }
  return out;
}

function goQuote(s: string): string {
  let out = '"';
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\r') out += '\\r';
    else if (cp < 0x20 || cp === 0x7f) out += `\\x${cp.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + '"';
}

function pad(s: string, width: number | null, minus: boolean, zero: boolean): string {
  if (width === null || s.length >= width) return s;
  if (minus) return s + ' '.repeat(width - s.length);
  if (zero) {
    const sign = /^[+-]/.test(s) ? s[0]! : '';
    const body = sign === '' ? s : s.slice(1);
    return sign + '0'.repeat(width - s.length) + body;
  }
  return ' '.repeat(width - s.length) + s;
}

/** fmt.Sprintf for the verbs %v %s %q %d %x %X %o %b %c %t %f %e %g %%, with flags, width and precision. */
export function sprintf(format: string, args: unknown[]): string {
  let out = '';
  let ai = 0;
  for (let i = 0; i < format.length; i++) {
    const c = format[i]!;
    if (c !== '%') {
      out += c;
      continue;
    }
    const m = /^([-+# 0]*)([0-9]+)?(?:\.([0-9]*))?([a-zA-Z%])?/.exec(format.slice(i + 1))!;
    i += m[0].length;
    const flags = m[1]!;
    const width = m[2] === undefined ? null : Number(m[2]);
    const prec = m[3] === undefined ? null : Number(m[3] || '0');
    const verb = m[4];
    if (verb === undefined) {
      out += '%!(NOVERB)';
      break;
    }
    if (verb === '%') {
      out += '%';
      continue;
    }
    if (ai >= args.length) {
      out += `%!${verb}(MISSING)`;
      continue;
    }
    const v = args[ai++];
    const minus = flags.includes('-');
    const zero = flags.includes('0') && !minus;
    const plus = flags.includes('+');
    const bad = () => `%!${verb}(${v === null || v === undefined ? '<nil>' : `${kindName(v)}=${formatValue(v, false)}`})`;
    let s: string;
    switch (verb) {
      case 'v':
        s = formatValue(v, false);
        break;
      case 's':
        if (typeof v === 'string') s = prec === null ? v : [...v].slice(0, prec).join('');
        else if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean' || v === null || v === undefined) s = bad();
        else s = formatValue(v, false);
        break;
      case 'q':
        if (typeof v === 'string') s = goQuote(v);
        else if (typeof v === 'bigint') s = `'${String.fromCodePoint(Number(v))}'`;
        else s = bad();
        break;
      case 't':
        s = typeof v === 'boolean' ? String(v) : bad();
        break;
      case 'd':
      case 'x':
      case 'X':
      case 'o':
      case 'b':
      case 'c': {
        if (typeof v === 'string' && (verb === 'x' || verb === 'X')) {
          s = Buffer.from(v, 'utf8').toString('hex');
          if (verb === 'X') s = s.toUpperCase();
          break;
        }
        if (typeof v !== 'bigint') {
          s = bad();
          break;
        }
        if (verb === 'c') {
          s = String.fromCodePoint(Number(v));
          break;
        }
        const radix = verb === 'd' ? 10 : verb === 'o' ? 8 : verb === 'b' ? 2 : 16;
        const neg = v < 0n;
        let digits = (neg ? -v : v).toString(radix);
        if (verb === 'X') digits = digits.toUpperCase();
        if (prec !== null) digits = digits.padStart(prec, '0');
        if (flags.includes('#')) digits = (verb === 'x' ? '0x' : verb === 'X' ? '0X' : verb === 'o' ? '0' : '') + digits;
        s = (neg ? '-' : plus ? '+' : flags.includes(' ') ? ' ' : '') + digits;
        out += pad(s, width, minus, zero && prec === null);
        continue;
      }
      case 'f':
      case 'e':
      case 'g': {
        const n = typeof v === 'number' ? v : typeof v === 'bigint' ? null : null;
        if (n === null) {
          s = bad();
          break;
        }
        s = verb === 'f' ? n.toFixed(prec ?? 6) : verb === 'e' ? n.toExponential(prec ?? 6).replace(/e([+-])(\d)$/, 'e$10$2') : formatFloat(n);
        if (plus && n >= 0) s = '+' + s;
        out += pad(s, width, minus, zero);
        continue;
      }
      default:
        s = bad();
    }
    out += pad(s, width, minus, false);
  }
  if (ai < args.length)
    out += `%!(EXTRA ${args
      .slice(ai)
      .map((a) => `${kindName(a)}=${formatValue(a, false)}`)
      .join(', ')})`;
  return out;
}

function toIndex(v: unknown, fn: string): number {
  if (typeof v !== 'bigint') throw new TemplateError(`error calling ${fn}: cannot index slice/array with type ${kindName(v)}`);
  return Number(v);
}

function goLen(v: unknown): bigint {
  if (typeof v === 'string') return BigInt(Buffer.byteLength(v, 'utf8'));
  if (Array.isArray(v)) return BigInt(v.length);
  if (v instanceof Map) return BigInt(v.size);
  throw new TemplateError(`error calling len: len of type ${kindName(v)}`);
}

function basicCompare(fn: string, a: unknown, b: unknown): number {
  const num = (x: unknown) => typeof x === 'bigint' || typeof x === 'number';
  if (num(a) && num(b)) {
    if (typeof a === 'bigint' && typeof b === 'bigint') return a < b ? -1 : a > b ? 1 : 0;
    const x = Number(a);
    const y = Number(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (typeof a === 'string' && typeof b === 'string') return a < b ? -1 : a > b ? 1 : 0;
  if (typeof a === 'boolean' && typeof b === 'boolean' && (fn === 'eq' || fn === 'ne')) return a === b ? 0 : 1;
  if (a === undefined || b === undefined || a === null || b === null) throw new TemplateError(`error calling ${fn}: invalid type for comparison`);
  if (kindName(a) !== kindName(b)) throw new TemplateError(`error calling ${fn}: incompatible types for comparison`);
  throw new TemplateError(`error calling ${fn}: invalid type for comparison`);
}

/** Go's builtin functions (text/template funcs.go) that this subset has. and/or are special (lazy). */
const BUILTINS: ReadonlyMap<string, TemplateFunc> = new Map<string, TemplateFunc>([
  ['and', { args: null, result: 'any', call: () => undefined }],
  ['or', { args: null, result: 'any', call: () => undefined }],
  ['not', { args: 1, result: 'bool', call: (a) => !truth(a[0]) }],
  ['len', { args: 1, result: 'int', call: (a) => goLen(a[0]) }],
  [
    'index',
    {
      args: null,
      result: 'any',
      call: (a) => {
        if (a.length === 0) throw new TemplateError('wrong number of args for index: want at least 1 got 0');
        let v = a[0];
        for (const k of a.slice(1)) {
          if (v === null || v === undefined) throw new TemplateError('error calling index: index of untyped nil');
          if (Array.isArray(v) || typeof v === 'string') {
            const i = toIndex(k, 'index');
            const n = typeof v === 'string' ? Buffer.byteLength(v) : v.length;
            if (i < 0 || i >= n) throw new TemplateError(`error calling index: index out of range: ${i}`);
            v = typeof v === 'string' ? BigInt(Buffer.from(v, 'utf8')[i]!) : v[i];
          } else if (v instanceof Map) {
            if (typeof k !== 'string') throw new TemplateError(`error calling index: value has type ${kindName(k)}; should be string`);
            v = v.has(k) ? v.get(k) : '';
          } else {
            throw new TemplateError(`error calling index: can't index item of type ${kindName(v)}`);
          }
        }
        return v;
      },
    },
  ],
  [
    'slice',
    {
      args: null,
      result: 'any',
      call: (a) => {
        if (a.length === 0) throw new TemplateError('wrong number of args for slice: want at least 1 got 0');
        const v = a[0];
        if (a.length > 3) throw new TemplateError(`error calling slice: too many slice indexes: ${a.length - 1}`);
        if (typeof v !== 'string' && !Array.isArray(v)) throw new TemplateError(`error calling slice: can't slice item of type ${kindName(v)}`);
        const bytes = typeof v === 'string' ? Buffer.from(v, 'utf8') : null;
        const n = bytes !== null ? bytes.length : (v as unknown[]).length;
        const from = a.length > 1 ? toIndex(a[1], 'slice') : 0;
        const to = a.length > 2 ? toIndex(a[2], 'slice') : n;
        if (from < 0 || from > n) throw new TemplateError(`error calling slice: index out of range: ${from}`);
        if (to < from || to > n) throw new TemplateError(`error calling slice: invalid slice index: ${from} > ${to}`);
        return bytes !== null ? bytes.subarray(from, to).toString('utf8') : (v as unknown[]).slice(from, to);
      },
    },
  ],
  ['print', { args: null, result: 'string', call: (a) => sprint(a) }],
  ['println', { args: null, result: 'string', call: (a) => a.map((x) => formatValue(x, false)).join(' ') + '\n' }],
  [
    'printf',
    {
      args: null,
      result: 'string',
      call: (a) => {
        if (typeof a[0] !== 'string') throw new TemplateError(`wrong type for value; expected string; got ${kindName(a[0])}`);
        return sprintf(a[0], a.slice(1));
      },
    },
  ],
  [
    'eq',
    {
      args: null,
      result: 'bool',
      call: (a) => {
        if (a.length < 2) throw new TemplateError('error calling eq: missing argument for comparison');
        return a.slice(1).some((b) => basicCompare('eq', a[0], b) === 0);
      },
    },
  ],
  ['ne', { args: 2, result: 'bool', call: (a) => basicCompare('ne', a[0], a[1]) !== 0 }],
  ['lt', { args: 2, result: 'bool', call: (a) => basicCompare('lt', a[0], a[1]) < 0 }],
  ['le', { args: 2, result: 'bool', call: (a) => basicCompare('le', a[0], a[1]) <= 0 }],
  ['gt', { args: 2, result: 'bool', call: (a) => basicCompare('gt', a[0], a[1]) > 0 }],
  ['ge', { args: 2, result: 'bool', call: (a) => basicCompare('ge', a[0], a[1]) >= 0 }],
]);

// ------------------------------------------------------------------ execution

export interface CompileOptions {
  /** Functions beyond Go's builtins (CoreDNS's parseInt). */
  funcs?: Record<string, TemplateFunc>;
  /** The type of the data (`.`), for the compile-time field checks. Default: any. */
  data?: TypeSpec;
}

export class GoTemplate {
  readonly name: string;
  readonly source: string;
  /**
   * What the compile-time checks found that Go reports only when the template runs (each
   * execution then fails the same way): `line N: can't evaluate field X in type T`.
   */
  readonly warnings: readonly string[];
  private readonly nodes: Node[];
  private readonly funcs: ReadonlyMap<string, TemplateFunc>;

  constructor(name: string, source: string, nodes: Node[], funcs: ReadonlyMap<string, TemplateFunc>, warnings: readonly string[] = []) {
    this.name = name;
    this.source = source;
    this.nodes = nodes;
    this.funcs = funcs;
    this.warnings = warnings;
  }

  /** The template as Go's parse tree prints it (`Tree.Root.String()`): `{{.Name}} 60 IN A ...`. */
  canonical(): string {
    let out = '';
    for (const n of this.nodes) out += n.kind === 'text' ? n.text : `{{${pipeString(n.pipe)}}}`;
    return out;
  }

  /** Renders with `data` as dot; throws TemplateError (Go's wording) when an action fails. */
  execute(data: unknown): string {
    let out = '';
    for (const n of this.nodes) {
      if (n.kind === 'text') {
        out += n.text;
        continue;
      }
      let v: unknown;
      try {
        v = this.evalPipe(n.pipe, data);
      } catch (err) {
        if (err instanceof TemplateError && !err.message.startsWith('template: ')) {
          throw new TemplateError(`template: ${this.name}:${n.pipe.line}:${n.pipe.col}: executing "${this.name}" at <${n.pipe.src}>: ${err.message}`);
        }
        throw err;
      }
      out += formatValue(v);
    }
    return out;
  }

  private evalPipe(pipe: Pipeline, dot: unknown): unknown {
    let v: unknown;
    let has = false;
    for (const cmd of pipe.cmds) {
      v = this.evalCmd(cmd, dot, has, v);
      has = true;
    }
    return v;
  }

  private evalCmd(cmd: Command, dot: unknown, piped: boolean, final: unknown): unknown {
    const first = cmd.args[0]!;
    const rest = cmd.args.slice(1);
    if (first.kind === 'ident') {
      const name = first.name;
      if (name === 'and' || name === 'or') {
        const ops: (() => unknown)[] = rest.map((a) => () => this.evalArg(a, dot));
        if (piped) ops.push(() => final);
        if (ops.length === 0) throw new TemplateError(`wrong number of args for ${name}: want at least 1 got 0`);
        let v: unknown;
        for (const op of ops) {
          v = op();
          if (truth(v) !== (name === 'and')) return v;
        }
        return v;
      }
      const args = rest.map((a) => this.evalArg(a, dot));
      if (piped) args.push(final);
      const f = this.funcs.get(name)!;
      if (f.args !== null && args.length !== f.args) throw new TemplateError(`wrong number of args for ${name}: want ${f.args} got ${args.length}`);
      return f.call(args);
    }
    if (first.kind === 'field') {
      const args = rest.map((a) => this.evalArg(a, dot));
      if (piped) args.push(final);
      return this.evalField(first, dot, args);
    }
    if (rest.length > 0 || piped) throw new TemplateError(`can't give argument to non-function ${describeOperand(first)}`);
    return this.evalArg(first, dot);
  }

  private evalArg(a: Operand, dot: unknown): unknown {
    switch (a.kind) {
      case 'dot':
        return dot;
      case 'string':
      case 'number':
      case 'bool':
        return a.value;
      case 'nil':
        return null;
      case 'pipe':
        return this.evalPipe(a.pipe, dot);
      case 'ident': {
        const f = this.funcs.get(a.name)!;
        if (f.args !== null && f.args !== 0) throw new TemplateError(`wrong number of args for ${a.name}: want ${f.args} got 0`);
        return f.call([]);
      }
      case 'field':
        return this.evalField(a, dot, []);
    }
  }

  private evalField(f: Extract<Operand, { kind: 'field' }>, dot: unknown, args: unknown[]): unknown {
    let v = f.base === null ? dot : this.evalArg(f.base, dot);
    for (let i = 0; i < f.chain.length; i++) {
      const name = f.chain[i]!;
      const last = i === f.chain.length - 1;
      if (v === undefined || v === null) throw new TemplateError(`nil pointer evaluating ${kindName(v)}.${name}`);
      if (v instanceof Map) {
        v = v.has(name) ? v.get(name) : NO_VALUE;
        continue;
      }
      if (
        typeof v !== 'object' ||
        Array.isArray(v) ||
        (!Object.hasOwn(v, name) && typeof (v as Record<string, unknown>)[name] !== 'function') ||
        name === 'goString' ||
        name === 'constructor'
      ) {
        throw new TemplateError(`can't evaluate field ${name} in type ${goTypeOf(v)}`);
      }
      const member = (v as Record<string, unknown>)[name];
      if (typeof member === 'function') {
        const fn = member as (...a: unknown[]) => unknown;
        const given = last ? args : [];
        if (given.length !== fn.length) throw new TemplateError(`wrong number of args for ${name}: want ${fn.length} got ${given.length}`);
        v = fn.apply(v, given);
        if (last) return v;
        continue;
      }
      v = member;
    }
    if (args.length > 0) throw new TemplateError(`can't give argument to non-function .${f.chain.join('.')}`);
    return v;
  }
}

function operandString(a: Operand): string {
  switch (a.kind) {
    case 'dot':
      return '.';
    case 'field':
      return (a.base === null ? '' : operandString(a.base)) + '.' + a.chain.join('.');
    case 'ident':
      return a.name;
    case 'string':
      return goQuote(a.value);
    case 'number':
      return a.text;
    case 'bool':
      return String(a.value);
    case 'nil':
      return 'nil';
    case 'pipe':
      return `(${pipeString(a.pipe)})`;
  }
}

function pipeString(p: Pipeline): string {
  return p.cmds.map((c) => c.args.map(operandString).join(' ')).join(' | ');
}

/**
 * Parses and checks a template. Throws TemplateError with Go's wording
 * (`template: NAME:LINE: ...`) for what Go rejects and for what this subset does not support.
 */
export function compileTemplate(name: string, text: string, opts: CompileOptions = {}): GoTemplate {
  const funcs = new Map(BUILTINS);
  for (const [k, f] of Object.entries(opts.funcs ?? {})) funcs.set(k, f);
  const checker = new Checker(funcs, opts.data ?? 'any');
  const nodes = new Parser(name, text, checker).parse();
  return new GoTemplate(name, text, nodes, funcs, checker.warnings);
}

// ------------------------------------------------------------------ strconv.ParseUint

const UINT64_MAX = (1n << 64n) - 1n;

/** Go's strconv.ParseUint(s, base, bitSize), throwing its error text. */
export function parseUint(s: string, base: number, bitSize: number): bigint {
  const fn = 'ParseUint';
  const syntax = () => new TemplateError(`strconv.${fn}: parsing ${goQuote(s)}: invalid syntax`);
  if (s === '') throw syntax();
  if (bitSize === 0) bitSize = 64;
  else if (bitSize < 0 || bitSize > 64) throw new TemplateError(`strconv.${fn}: parsing ${goQuote(s)}: invalid bit size ${bitSize}`);
  let body = s;
  let underscores = false;
  if (base === 0) {
    base = 10;
    underscores = true;
    if (body[0] === '0') {
      const p = body[1]?.toLowerCase();
      const prefixed = body.length >= 3 ? ({ b: 2, o: 8, x: 16 } as Record<string, number>)[p ?? ''] : undefined;
      if (prefixed !== undefined) {
        base = prefixed;
        body = body.slice(2);
      } else {
        base = 8;
        body = body.slice(1) || '0';
      }
    }
  } else if (base < 2 || base > 36) {
    throw new TemplateError(`strconv.${fn}: parsing ${goQuote(s)}: invalid base ${base}`);
  }
  const max = (1n << BigInt(bitSize)) - 1n;
  let n = 0n;
  let sawDigit = false;
  let overflow = false;
  for (const ch of body) {
    if (ch === '_' && underscores) continue;
    const c = ch.toLowerCase();
    let d: number;
    if (c >= '0' && c <= '9') d = c.charCodeAt(0) - 48;
    else if (c >= 'a' && c <= 'z') d = c.charCodeAt(0) - 87;
    else throw syntax();
    if (d >= base) throw syntax();
    sawDigit = true;
    n = n * BigInt(base) + BigInt(d);
    if (n > UINT64_MAX) overflow = true;
  }
  if (!sawDigit) throw syntax();
  if (underscores && !/^(0[box])?_?[0-9a-z]+(_[0-9a-z]+)*$/i.test(s.replace(/^0(?=[0-7_])/, '0'))) {
    if (s.includes('_')) throw syntax();
  }
  if (overflow || n > max) throw new TemplateError(`strconv.${fn}: parsing ${goQuote(s)}: value out of range`);
  return n;
}
