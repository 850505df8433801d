/**
 * The one error type of Corefile loading: lexing, parsing, imports, server keys and the
 * argument checks of plugin setup functions all throw it, pointing at the offending line.
 *
 * The message has CoreDNS's shape (caddy's Dispenser.Err):
 *   `Corefile:12 - Error during parsing: Wrong argument count or unexpected line ending after 'success'`
 */
export const CorefileErrorCode = 'ERR_COREFILE' as const;

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
