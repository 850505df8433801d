/**
 * Argument checks for plugin setup functions. Each failure throws a CorefileError at the line of
 * the offending word, with CoreDNS's wording where CoreDNS has one (caddy's Dispenser.ArgErr,
 * "unknown property"). The error helpers are typed `never`, so both `argCountError(d)` and
 * `throw argCountError(d)` read naturally.
 */
import { CorefileError, excerpt } from './errors.ts';
import type { Directive, Token } from './types.ts';
import { DurationError, parseGoDurationMs } from '../util/duration.ts';

type At = Directive | Token;

function nameOf(at: At): string {
  return 'name' in at ? at.name : at.text;
}

/**
 * Throws `file:line - Error during parsing: <detail>` at the directive's or word's line. A long
 * word of `at` (the word, or the directive's name and arguments; not a file path) that the
 * detail quotes is cut to its excerpt (errors.ts), so no setup function copies a long word of
 * an imported file into the log, whichever way it words its message.
 */
export function errorAt(at: At, detail: string): never {
  throw new CorefileError(at.file, at.line, redactWords(at, detail));
}

function redactWords(at: At, detail: string): string {
  const words = 'name' in at ? [at.name, ...at.args.map((a) => a.text)] : [at.text];
  for (const w of words) {
    if (w.startsWith('/') || w.startsWith('./') || w.startsWith('../')) continue; // file names are shown
    const short = excerpt(w);
    if (short !== w) detail = detail.split(w).join(short);
  }
  return detail;
}

/** Throws "Wrong argument count or unexpected line ending after '<name>'" (Dispenser.ArgErr). */
export function argCountError(at: At): never {
  return errorAt(at, `Wrong argument count or unexpected line ending after '${excerpt(nameOf(at))}'`);
}

/** Throws "unknown property '<name>'" for a line of a plugin's block it does not know. */
export function unknownPropertyError(line: Directive): never {
  return errorAt(line, `unknown property '${excerpt(line.name)}'`);
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
    if (err instanceof DurationError) {
      // Go's message quotes the whole word: only a short word is quoted in full.
      errorAt(t, excerpt(t.text) === t.text ? `invalid duration '${t.text}': ${err.message}` : `invalid duration '${excerpt(t.text)}'`);
    }
    throw err;
  }
}

/** Throws when the directive was given a `{ }` block it does not take. */
export function noBlock(d: Directive): void {
  if (d.block !== null) errorAt(d, `'${excerpt(d.name)}' does not take a block`);
}

/** The lines of the directive's block; an empty array when it has none. */
export function blockLines(d: Directive): Directive[] {
  return d.block ?? [];
}
