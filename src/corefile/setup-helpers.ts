/**
 * Argument checks for plugin setup functions. Each failure throws a CorefileError at the line of
 * the offending word, with CoreDNS's wording where CoreDNS has one (caddy's Dispenser.ArgErr,
 * "unknown property"). The error helpers are typed `never`, so both `argCountError(d)` and
 * `throw argCountError(d)` read naturally.
 */
import { CorefileError } from './errors.ts';
import type { Directive, Token } from './types.ts';
import { DurationError, parseGoDurationMs } from '../util/duration.ts';

type At = Directive | Token;

function nameOf(at: At): string {
  return 'name' in at ? at.name : at.text;
}

/** Throws `file:line - Error during parsing: <detail>` at the directive's or word's line. */
export function errorAt(at: At, detail: string): never {
  throw new CorefileError(at.file, at.line, detail);
}

/** Throws "Wrong argument count or unexpected line ending after '<name>'" (Dispenser.ArgErr). */
export function argCountError(at: At): never {
  return errorAt(at, `Wrong argument count or unexpected line ending after '${nameOf(at)}'`);
}

/** Throws "unknown property '<name>'" for a line of a plugin's block it does not know. */
export function unknownPropertyError(line: Directive): never {
  return errorAt(line, `unknown property '${line.name}'`);
}

/**
 * Returns the directive's arguments when there are min..max of them (max may be Infinity).
 * Too few: the error names the last word of the line, as CoreDNS's ArgErr after the last
 * NextArg; too many: it names the first surplus argument.
 */
export function expectArgs(d: Directive, min: number, max: number): Token[] {
  const n = d.args.length;
  if (n < min) argCountError(n === 0 ? d : d.args[n - 1]!);
  if (n > max) argCountError(d.args[max]!);
  return d.args;
}

/** Parses a decimal integer word (optional sign, digits only) within min..max inclusive. */
export function intArg(t: Token, min: number, max: number): number {
  if (!/^[+-]?[0-9]+$/.test(t.text)) errorAt(t, `'${t.text}' is not an integer`);
  const value = Number(t.text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    errorAt(t, `${t.text} is out of range [${min}, ${max}]`);
  }
  return value === 0 ? 0 : value; // no -0
}

export interface DurationArgOptions {
  /** Also accept a plain integer as a number of seconds (`30` = `30s`), as some plugins do. */
  allowBareSeconds?: boolean;
}

/** Parses a Go duration word (`30s`, `1m30s`, `500ms`) into milliseconds. */
export function durationArgMs(t: Token, opts: DurationArgOptions = {}): number {
  if (opts.allowBareSeconds && /^[0-9]+$/.test(t.text)) return Number(t.text) * 1000;
  try {
    return parseGoDurationMs(t.text);
  } catch (err) {
    if (err instanceof DurationError) errorAt(t, `invalid duration '${t.text}': ${err.message}`);
    throw err;
  }
}

/** Throws when the directive was given a `{ }` block it does not take. */
export function noBlock(d: Directive): void {
  if (d.block !== null) errorAt(d, `'${d.name}' does not take a block`);
}

/** The lines of the directive's block; an empty array when it has none. */
export function blockLines(d: Directive): Directive[] {
  return d.block ?? [];
}
