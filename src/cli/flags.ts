/**
 * A command-line parser with the syntax and messages of Go's `flag` package, so that
 * node-local-dns accepts exactly the argument vectors a k8s-dns-node-cache DaemonSet passes.
 *
 * Syntax (as Go's FlagSet.Parse):
 *  - `-name`, `--name` (one or two dashes are equivalent);
 *  - `-name=value`, `-name value` for non-boolean flags (the next argument is consumed even when
 *    it starts with a dash);
 *  - boolean flags: `-name` means true, `-name=false` sets false; a bare boolean flag never
 *    consumes the next argument (`-setupiptables false` leaves `false` as a positional argument);
 *  - parsing stops before the first non-flag argument (one that does not start with `-`, or is
 *    exactly `-`), and after a `--` terminator (which is consumed);
 *  - `-h` / `-help` / `--help`, when not defined as flags, request the usage text.
 *
 * Errors: every problem is a `FlagError` (code `ERR_FLAG`) with Go's wording, e.g.
 * `flag provided but not defined: -foo`. A help request is a `FlagHelpRequested`
 * (code `ERR_FLAG_HELP`). Go exits 2 for the first and 0 for the second: see `flagExitCode`.
 */
import { formatGoDuration, parseGoDurationMs } from '../util/duration.ts';

export const FlagErrorCode = {
  FLAG: 'ERR_FLAG',
  HELP: 'ERR_FLAG_HELP',
} as const;

/** Exit status Go's flag.ExitOnError uses for a bad command line. */
export const EXIT_CODE_FLAG_ERROR = 2;
/** Exit status Go's flag.ExitOnError uses after printing the usage for `-h`. */
export const EXIT_CODE_HELP = 0;

export class FlagError extends Error {
  readonly code: typeof FlagErrorCode.FLAG = FlagErrorCode.FLAG;
  constructor(message: string) {
    super(message);
    this.name = 'FlagError';
  }
}

export class FlagHelpRequested extends Error {
  readonly code: typeof FlagErrorCode.HELP = FlagErrorCode.HELP;
  constructor() {
    super('flag: help requested');
    this.name = 'FlagHelpRequested';
  }
}

/** The process exit status for an error thrown by `FlagSet.parse`, or undefined for other errors. */
export function flagExitCode(err: unknown): number | undefined {
  if (err instanceof FlagHelpRequested) return EXIT_CODE_HELP;
  if (err instanceof FlagError) return EXIT_CODE_FLAG_ERROR;
  return undefined;
}

/**
 * Thrown by a value parser; the FlagSet turns it into Go's
 * `invalid value "x" for flag -name: <reason>`. Reasons follow Go: `parse error`,
 * `value out of range`, or a custom text.
 */
export class FlagValueError extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'FlagValueError';
  }
}

export type FlagKind = 'string' | 'bool' | 'int' | 'duration' | 'custom';
export type FlagValue = string | number | boolean;

interface FlagDef {
  name: string;
  kind: FlagKind;
  usage: string;
  defaultValue: FlagValue;
  /** Text shown after `-name` in the usage listing (Go's UnquoteUsage): '' for bool. */
  typeName: string;
  parse(text: string): FlagValue;
  format(value: FlagValue): string;
  isZero(value: FlagValue): boolean;
}

export interface CustomFlagSpec<T extends FlagValue> {
  /** Shown in the usage listing after the flag name (Go uses `value` for custom types). */
  typeName?: string;
  parse(text: string): T;
  format(value: T): string;
  /** Whether the default is the type's zero value (then no `(default ...)` is printed). */
  isZero?(value: T): boolean;
}

/** Result of one `FlagSet.parse` call. */
export class ParsedFlags {
  /** Positional arguments left after the flags (Go's `flag.Args()`). */
  readonly args: string[];
  /** Names of the flags that were given on the command line (Go's `flag.Visit`). */
  readonly set: ReadonlySet<string>;
  readonly #values: Map<string, FlagValue>;
  readonly #kinds: Map<string, FlagKind>;

  constructor(values: Map<string, FlagValue>, kinds: Map<string, FlagKind>, set: Set<string>, args: string[]) {
    this.#values = values;
    this.#kinds = kinds;
    this.set = set;
    this.args = args;
  }

  has(name: string): boolean {
    return this.set.has(name);
  }

  get(name: string): FlagValue {
    const v = this.#values.get(name);
    if (v === undefined) throw new Error(`flag -${name} is not defined`);
    return v;
  }

  string(name: string): string {
    const v = this.get(name);
    if (typeof v !== 'string') throw new Error(`flag -${name} is a ${this.#kinds.get(name)} flag, not a string`);
    return v;
  }

  bool(name: string): boolean {
    const v = this.get(name);
    if (typeof v !== 'boolean') throw new Error(`flag -${name} is a ${this.#kinds.get(name)} flag, not a bool`);
    return v;
  }

  /** Value of an int flag, or of a duration flag in milliseconds. */
  number(name: string): number {
    const v = this.get(name);
    if (typeof v !== 'number') throw new Error(`flag -${name} is a ${this.#kinds.get(name)} flag, not a number`);
    return v;
  }
}

/** Go's strconv.ParseBool. */
export function parseGoBool(text: string): boolean {
  switch (text) {
    case '1':
    case 't':
    case 'T':
    case 'true':
    case 'TRUE':
    case 'True':
      return true;
    case '0':
    case 'f':
    case 'F':
    case 'false':
    case 'FALSE':
    case 'False':
      return false;
    default:
      throw new FlagValueError('parse error');
  }
}

/**
 * Go's strconv.ParseInt(s, 0, 64) restricted to JavaScript's safe integers: optional sign,
 * `0x`/`0o`/`0b` prefixes, a leading `0` for octal, `_` between digits when a prefix is used.
 */
export function parseGoInt(text: string): number {
  let s = text;
  let sign = 1n;
  if (s.startsWith('+') || s.startsWith('-')) {
    if (s[0] === '-') sign = -1n;
    s = s.slice(1);
  }
  if (s === '') throw new FlagValueError('parse error');
  let base = 10;
  let digits = s;
  let prefixed = false;
  if (s.length > 1 && s[0] === '0') {
    const p = s[1]!.toLowerCase();
    if (p === 'x') {
      base = 16;
      digits = s.slice(2);
      prefixed = true;
    } else if (p === 'o') {
      base = 8;
      digits = s.slice(2);
      prefixed = true;
    } else if (p === 'b') {
      base = 2;
      digits = s.slice(2);
      prefixed = true;
    } else {
      base = 8;
      digits = s.slice(1);
      prefixed = true;
    }
  }
  if (digits.includes('_')) {
    // Base 0 accepts underscores between digits, or right after a base prefix.
    if (/__|_$/.test(digits) || (!prefixed && digits.startsWith('_'))) throw new FlagValueError('parse error');
    digits = digits.replaceAll('_', '');
  }
  const valid = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : base === 2 ? /^[01]+$/ : /^[0-9]+$/;
  if (!valid.test(digits)) throw new FlagValueError('parse error');
  const prefix = base === 16 ? '0x' : base === 8 ? '0o' : base === 2 ? '0b' : '';
  const value = sign * BigInt(prefix + digits);
  if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
    throw new FlagValueError('value out of range');
  }
  return Number(value);
}

/** Go's time.Duration.String() for a duration given in milliseconds (1500 → `1.5s`, 60000 → `1m0s`). */
export const formatGoDurationMs: (ms: number) => string = formatGoDuration;

/** Go's %q for the ASCII/UTF-8 strings flag defaults hold. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Go's flag.UnquoteUsage: a `back-quoted` word in the usage names the flag's value in the
 * listing and loses its quotes; otherwise the type name is used.
 */
function unquoteUsage(def: FlagDef): { name: string; usage: string } {
  const u = def.usage;
  const start = u.indexOf('`');
  if (start >= 0) {
    const end = u.indexOf('`', start + 1);
    if (end >= 0) {
      const name = u.slice(start + 1, end);
      return { name, usage: u.slice(0, start) + name + u.slice(end + 1) };
    }
  }
  return { name: def.typeName, usage: u };
}

export class FlagSet {
  readonly name: string;
  /** Lines printed between `Usage of <name>:` and the flag listing. */
  header: string;
  readonly #defs = new Map<string, FlagDef>();

  constructor(name: string, header = '') {
    this.name = name;
    this.header = header;
  }

  #define(def: FlagDef): void {
    if (this.#defs.has(def.name)) throw new Error(`${this.name} flag redefined: ${def.name}`);
    if (def.name === '' || def.name.startsWith('-') || def.name.includes('=')) {
      throw new Error(`flag ${JSON.stringify(def.name)} begins with -, contains =, or is empty`);
    }
    this.#defs.set(def.name, def);
  }

  string(name: string, defaultValue: string, usage: string): this {
    this.#define({
      name,
      kind: 'string',
      usage,
      defaultValue,
      typeName: 'string',
      parse: (t) => t,
      format: (v) => String(v),
      isZero: (v) => v === '',
    });
    return this;
  }

  bool(name: string, defaultValue: boolean, usage: string): this {
    this.#define({
      name,
      kind: 'bool',
      usage,
      defaultValue,
      typeName: '',
      parse: parseGoBool,
      format: (v) => String(v),
      isZero: (v) => v === false,
    });
    return this;
  }

  int(name: string, defaultValue: number, usage: string): this {
    this.#define({
      name,
      kind: 'int',
      usage,
      defaultValue,
      typeName: 'int',
      parse: parseGoInt,
      format: (v) => String(v),
      isZero: (v) => v === 0,
    });
    return this;
  }

  /**
   * A duration flag whose value is kept in milliseconds. `parse` defaults to Go's
   * time.ParseDuration syntax (`90s`, `1m30s`, `250ms`).
   */
  duration(name: string, defaultMs: number, usage: string, parse?: (text: string) => number): this {
    const p =
      parse ??
      ((t: string): number => {
        try {
          return parseGoDurationMs(t);
        } catch {
          throw new FlagValueError('parse error');
        }
      });
    this.#define({
      name,
      kind: 'duration',
      usage,
      defaultValue: defaultMs,
      typeName: 'duration',
      parse: p,
      format: (v) => formatGoDurationMs(Number(v)),
      isZero: (v) => v === 0,
    });
    return this;
  }

  /** A flag with its own value syntax (Go's flag.Var). */
  custom<T extends FlagValue>(name: string, defaultValue: T, usage: string, spec: CustomFlagSpec<T>): this {
    this.#define({
      name,
      kind: 'custom',
      usage,
      defaultValue,
      typeName: spec.typeName ?? 'value',
      parse: (t) => spec.parse(t),
      format: (v) => spec.format(v as T),
      isZero: (v) => (spec.isZero ? spec.isZero(v as T) : false),
    });
    return this;
  }

  lookup(name: string): { name: string; kind: FlagKind; usage: string; defaultValue: FlagValue } | undefined {
    const d = this.#defs.get(name);
    return d ? { name: d.name, kind: d.kind, usage: d.usage, defaultValue: d.defaultValue } : undefined;
  }

  /** Parses `argv` (without the program name). Throws FlagError or FlagHelpRequested. */
  parse(argv: readonly string[]): ParsedFlags {
    const values = new Map<string, FlagValue>();
    const kinds = new Map<string, FlagKind>();
    for (const d of this.#defs.values()) {
      values.set(d.name, d.defaultValue);
      kinds.set(d.name, d.kind);
    }
    const set = new Set<string>();
    let i = 0;
    while (i < argv.length) {
      const s = argv[i]!;
      if (s.length < 2 || s[0] !== '-') break;
      let dashes = 1;
      if (s[1] === '-') {
        dashes = 2;
        if (s.length === 2) {
          i++;
          break;
        }
      }
      let name = s.slice(dashes);
      if (name.length === 0 || name[0] === '-' || name[0] === '=') {
        throw new FlagError(`bad flag syntax: ${s}`);
      }
      i++;
      let hasValue = false;
      let value = '';
      const eq = name.indexOf('=');
      if (eq >= 1) {
        value = name.slice(eq + 1);
        hasValue = true;
        name = name.slice(0, eq);
      }
      const def = this.#defs.get(name);
      if (def === undefined) {
        if (name === 'help' || name === 'h') throw new FlagHelpRequested();
        throw new FlagError(`flag provided but not defined: -${name}`);
      }
      if (def.kind === 'bool') {
        if (hasValue) {
          try {
            values.set(name, def.parse(value));
          } catch (err) {
            throw new FlagError(`invalid boolean value ${goQuote(value)} for -${name}: ${reason(err)}`);
          }
        } else {
          values.set(name, true);
        }
      } else {
        if (!hasValue && i < argv.length) {
          value = argv[i]!;
          hasValue = true;
          i++;
        }
        if (!hasValue) throw new FlagError(`flag needs an argument: -${name}`);
        try {
          values.set(name, def.parse(value));
        } catch (err) {
          throw new FlagError(`invalid value ${goQuote(value)} for flag -${name}: ${reason(err)}`);
        }
      }
      set.add(name);
    }
    return new ParsedFlags(values, kinds, set, argv.slice(i));
  }

  /** Go's PrintDefaults: one entry per flag, sorted by name. */
  defaults(): string {
    const names = [...this.#defs.keys()].sort();
    let out = '';
    for (const n of names) {
      const def = this.#defs.get(n)!;
      let b = `  -${def.name}`;
      const { name, usage } = unquoteUsage(def);
      if (name.length > 0) b += ` ${name}`;
      b += b.length <= 4 ? '\t' : '\n    \t';
      b += usage.replaceAll('\n', '\n    \t');
      if (!def.isZero(def.defaultValue)) {
        const shown = def.format(def.defaultValue);
        b += def.kind === 'string' ? ` (default ${goQuote(shown)})` : ` (default ${shown})`;
      }
      out += b + '\n';
    }
    return out;
  }

  /** The full text Go prints for `-h` or after a flag error. */
  usage(): string {
    return `Usage of ${this.name}:\n${this.header}${this.defaults()}`;
  }
}

function reason(err: unknown): string {
  if (err instanceof FlagValueError) return err.message;
  if (err instanceof Error) return err.message;
  return String(err);
}
