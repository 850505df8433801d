/**
 * Corefile lexer: turns text into words the way CoreDNS's caddyfile lexer (Caddy v1) does.
 *
 * Rules (the caddyfile lexer's, with the deviations noted):
 *  - A leading byte order mark (U+FEFF) is dropped.
 *  - Words are separated by white space (Go's unicode.IsSpace set). `{` and `}` are braces only
 *    as whole, unquoted words: `foo{` is the word `foo{`.
 *  - A word starting with `"` runs to the next unescaped `"` and may span lines. Inside it, `\"`
 *    is a quote; a backslash before any other character is kept with that character (`"a\b"` is
 *    `a\b`), as in Caddy. Quotes inside a bare word are ordinary characters. The closing quote
 *    ends the word even without white space after it (`"a"b` is `a`, `b`).
 *    Deviation: an unterminated quoted word is an error (Caddy silently takes the rest of the file).
 *  - `#` outside quotes starts a comment that runs to the end of the line. A `#` inside a bare
 *    word ends the word there. Deviation: CoreDNS then resumes at the next white space, so
 *    `a#b c` gives `a c` there and `a` here.
 *  - A backslash followed by (optional spaces/tabs/CR and) a newline joins the next line to this
 *    one (Caddy v2's line continuation): the words after it count as being on the same line.
 *    A backslash anywhere else is an ordinary character.
 *  - `{$NAME}` and `{%NAME%}` in a word (quoted or not) are replaced by the environment variable,
 *    an unset one by the empty string, as CoreDNS does.
 */
import { CorefileError } from './errors.ts';

/** A word with the position data the parser needs to group words into lines. */
export interface LexToken {
  /** Text after quote removal and environment substitution. */
  text: string;
  file: string;
  /** Physical 1-based line where the word starts. */
  line: number;
  quoted: boolean;
  /** `{` / `}` when the word is an unquoted brace as written (before substitution). */
  brace: '{' | '}' | null;
  /**
   * Logical line span: lines joined by a continuation backslash share one logical line.
   * Two words are on the same line when the first's `logEnd` equals the second's `logStart`
   * (a quoted word spanning lines ends on a later logical line than it starts).
   */
  logStart: number;
  logEnd: number;
}

export type Env = Record<string, string | undefined>;

/**
 * Go's unicode.IsSpace: '\t', '\n', '\v', '\f', '\r', ' ', U+0085 (NEL), U+00A0 (NBSP) and the
 * other Unicode White_Space characters.
 */
function isGoSpace(ch: string): boolean {
  switch (ch) {
    case ' ':
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case '\u0085':
    case '\u00a0':
    case '\u1680':
    case '\u2028':
    case '\u2029':
    case '\u202f':
    case '\u205f':
    case '\u3000':
      return true;
    default:
      return ch >= '\u2000' && ch <= '\u200a';
  }
}

/**
 * If a line continuation (backslash, optional spaces/tabs/CR, newline) starts at `i`, returns
 * the index of its newline; otherwise -1.
 */
function continuationNewline(text: string, i: number): number {
  if (text[i] !== '\\') return -1;
  let j = i + 1;
  while (j < text.length && (text[j] === ' ' || text[j] === '\t' || text[j] === '\r')) j++;
  return text[j] === '\n' ? j : -1;
}

/**
 * Replaces `{%NAME%}` then `{$NAME}` references in `s`, as caddyfile's replaceEnvVars does:
 * a missing variable becomes the empty string; an unterminated reference, or an empty name
 * (`{$}`, `{%%}`), stops the replacement of that kind for the rest of the word.
 * Deviation: a substituted value is not itself scanned again (CoreDNS re-scans, which can loop
 * forever on a value that refers to itself).
 */
export function substituteEnv(s: string, env: Env): string {
  return replaceRefs(replaceRefs(s, '{%', '%}', env), '{$', '}', env);
}

function replaceRefs(s: string, open: string, close: string, env: Env): string {
  let out = '';
  let from = 0;
  for (;;) {
    const start = s.indexOf(open, from);
    if (start === -1) break;
    const end = s.indexOf(close, start + open.length);
    if (end === -1 || end === start + open.length) break;
    const name = s.slice(start + open.length, end);
    out += s.slice(from, start) + (env[name] ?? '');
    from = end + close.length;
  }
  return out + s.slice(from);
}

/** Lexes `text` (contents of `file`) into words. Throws CorefileError on an unterminated quote. */
export function tokenize(text: string, file: string, env: Env): LexToken[] {
  const tokens: LexToken[] = [];
  const n = text.length;
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  let logLine = 1;

  while (i < n) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      logLine++;
      i++;
      continue;
    }
    const cont = continuationNewline(text, i);
    if (cont !== -1) {
      line++;
      i = cont + 1;
      continue;
    }
    if (isGoSpace(c)) {
      i++;
      continue;
    }
    if (c === '#') {
      while (i < n && text[i] !== '\n') i++;
      continue;
    }

    const startLine = line;
    const startLog = logLine;
    let raw = '';
    let quoted = false;
    if (c === '"') {
      quoted = true;
      i++;
      for (;;) {
        if (i >= n) throw new CorefileError(file, startLine, 'Unterminated quoted string');
        const ch = text[i]!;
        if (ch === '"') {
          i++;
          break;
        }
        if (ch === '\\' && i + 1 < n) {
          const next = text[i + 1]!;
          raw += next === '"' ? '"' : '\\' + next;
          if (next === '\n') {
            line++;
            logLine++;
          }
          i += 2;
          continue;
        }
        if (ch === '\n') {
          line++;
          logLine++;
        }
        raw += ch;
        i++;
      }
    } else {
      // A bare word is a slice of the text (no per-character string building).
      const start = i;
      while (i < n) {
        const code = text.charCodeAt(i);
        // Printable ASCII other than '#' and '\\' never ends a word: the common case, decided here.
        if (code > 0x20 && code < 0x7f && code !== 0x23 && code !== 0x5c) {
          i++;
          continue;
        }
        const ch = text[i]!;
        if (isGoSpace(ch) || ch === '#' || (ch === '\\' && continuationNewline(text, i) !== -1)) break;
        i++;
      }
      raw = text.slice(start, i);
    }
    tokens.push({
      text: raw.includes('{') ? substituteEnv(raw, env) : raw,
      file,
      line: startLine,
      quoted,
      brace: !quoted && (raw === '{' || raw === '}') ? raw : null,
      logStart: startLog,
      logEnd: logLine,
    });
  }
  return tokens;
}
