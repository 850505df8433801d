/**
 * The one error type of Corefile loading: lexing, parsing, imports, server keys and the
 * argument checks of plugin setup functions all throw it, pointing at the offending line.
 *
 * The message has CoreDNS's shape (caddy's Dispenser.Err):
 *   `Corefile:12 - Error during parsing: Wrong argument count or unexpected line ending after 'success'`
 */
const CorefileErrorCode = 'ERR_COREFILE' as const;

export class CorefileError extends Error {
  readonly code = CorefileErrorCode;
  /** File the offending token came from: the Corefile path as given, or an imported file's absolute path. */
  readonly file: string;
  /** 1-based line of the offending token in `file`. */
  readonly line: number;
  /** The message without the `file:line - Error during parsing: ` prefix. */
  readonly detail: string;

  constructor(file: string, line: number, detail: string) {
    super(`${file}:${line} - Error during parsing: ${detail}`);
    this.name = 'CorefileError';
    this.file = file;
    this.line = line;
    this.detail = detail;
  }
}

/**
 * How much of a Corefile word an error message quotes. Messages go to the log, and an `import`
 * of a file that is not a Corefile (a password file, a key) must not copy its contents there: a
 * message names the file and line, quotes a word of up to MAX_WHOLE_QUOTED_CHARS characters
 * whole (directive names, zones, ports, numbers) and a longer one by its first
 * MAX_QUOTED_CHARS characters and `...` (a password-file line is one such long word).
 */
const MAX_WHOLE_QUOTED_CHARS = 24;
const MAX_QUOTED_CHARS = 16;

/** The word as error messages quote it (see MAX_QUOTED_CHARS). */
export function excerpt(text: string): string {
  if (text.length <= MAX_WHOLE_QUOTED_CHARS) return text;
  const chars = Array.from(text);
  return chars.length <= MAX_WHOLE_QUOTED_CHARS ? text : `${chars.slice(0, MAX_QUOTED_CHARS).join('')}...`;
}
