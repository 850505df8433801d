/**
 * Go regexp (RE2 syntax) patterns as JavaScript RegExps, for `match`.
 *
 * The pattern is rewritten into an equivalent JS source compiled with the `v` flag (Unicode
 * sets: `.` and classes work on code points, as Go's work on runes; nested classes express
 * Go's `\S` and `[:^alpha:]` inside brackets):
 *  - named groups `(?P<name>re)` and `(?<name>re)` become `(?<name>re)`;
 *  - flag groups `(?i)`, `(?s)`, `(?m)` at the start of the pattern become RegExp flags,
 *    `(?ims:re)` and `(?-ims:re)` become JS modifier groups;
 *  - `\A` and `\z` become "no character before/after", Go's `\s` (ASCII `[\t\n\f\r ]`) is spelt
 *    out, `\Q...\E` is quoted, octal and `\x{...}` escapes become `\u{...}`, POSIX classes
 *    `[[:alpha:]]` are spelt out, `\pL` / `\p{Greek}` become `\p{L}` / `\p{Script=Greek}`;
 *  - a `{` that is not a repeat, a lone `]` or `}` are literals, as in Go.
 *
 * Rejected with an error (Go rejects them too, or JS cannot express Go's meaning): lookaround
 * `(?=` `(?!` `(?<=` `(?<!`, backreferences `\1`, `\C`, unknown escapes, repeat counts over
 * 1000, the ungreedy flag `U`, flag groups `(?i)` other than at the start of the pattern, group
 * names JS cannot take (starting with a digit).
 */

export class RegexTranslateError extends Error {}

const POSIX: Record<string, string> = {
  alnum: '0-9A-Za-z',
  alpha: 'A-Za-z',
  ascii: '\\u{0}-\\u{7f}',
  blank: '\\t ',
  cntrl: '\\u{0}-\\u{1f}\\u{7f}',
  digit: '0-9',
  graph: '!-~',
  lower: 'a-z',
  print: ' -~',
  punct: '!-/:-@\\[-`{-~',
  space: '\\t\\n\\v\\f\\r ',
  upper: 'A-Z',
  word: '0-9A-Za-z_',
  xdigit: '0-9A-Fa-f',
};

const GENERAL_CATEGORIES = new Set('L Lu Ll Lt Lm Lo M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Cs Co Cn'.split(' '));

const GO_SPACE = '\\t\\n\\f\\r ';

/** A code point as a JS escape valid anywhere in a `v`-mode pattern. */
function cp(c: number): string {
  return `\\u{${c.toString(16)}}`;
}

/** A literal character: letters, digits and `_` as they are, anything else as a code point escape. */
function lit(ch: string): string {
  return /^[A-Za-z0-9_]$/.test(ch) ? ch : cp(ch.codePointAt(0)!);
}

export interface TranslatedRegex {
  source: string;
  flags: string;
}

/** Rewrites a Go regexp into JS source and flags; throws RegexTranslateError. */
function translateGoRegex(pattern: string): TranslatedRegex {
  const p = [...pattern];
  let i = 0;
  let out = '';
  let flags = '';
  const err = (msg: string): never => {
    throw new RegexTranslateError(`error parsing regexp: ${msg}`);
  };

  /** An escape after `\` at p[i] (i points past the backslash). Returns JS text; `inClass` changes \s etc. */
  const escapeAt = (inClass: boolean): { js: string; single: number | null } => {
    const c = p[i];
    if (c === undefined) return err('trailing backslash at end of expression: ``');
    i++;
    switch (c) {
      case 'd':
      case 'D':
      case 'w':
      case 'W':
        return { js: `\\${c}`, single: null };
      case 'b':
      case 'B':
        if (inClass) err(`invalid escape sequence: \`\\${c}\``);
        return { js: `\\${c}`, single: null };
      case 's':
        return { js: `[${GO_SPACE}]`, single: null };
      case 'S':
        return { js: `[^${GO_SPACE}]`, single: null };
      case 'A':
        if (inClass) err('invalid escape sequence: `\\A`');
        return { js: '(?<![\\s\\S])', single: null };
      case 'z':
        if (inClass) err('invalid escape sequence: `\\z`');
        return { js: '(?![\\s\\S])', single: null };
      case 'a':
        return { js: cp(7), single: 7 };
      case 'f':
        return { js: cp(12), single: 12 };
      case 't':
        return { js: cp(9), single: 9 };
      case 'n':
        return { js: cp(10), single: 10 };
      case 'r':
        return { js: cp(13), single: 13 };
      case 'v':
        return { js: cp(11), single: 11 };
      case 'x': {
        if (p[i] === '{') {
          const end = p.indexOf('}', i);
          const hex = end < 0 ? '' : p.slice(i + 1, end).join('');
          if (!/^[0-9A-Fa-f]{1,8}$/.test(hex) || parseInt(hex, 16) > 0x10ffff) err(`invalid escape sequence: \`\\x${p.slice(i, end + 1).join('')}\``);
          i = end + 1;
          const v = parseInt(hex, 16);
          return { js: cp(v), single: v };
        }
        const hex = p.slice(i, i + 2).join('');
        if (!/^[0-9A-Fa-f]{2}$/.test(hex)) err(`invalid escape sequence: \`\\x${hex}\``);
        i += 2;
        return { js: cp(parseInt(hex, 16)), single: parseInt(hex, 16) };
      }
      case 'p':
      case 'P': {
        let name: string;
        if (p[i] === '{') {
          const end = p.indexOf('}', i);
          if (end < 0) err(`invalid character class range: \`\\${c}{\``);
          name = p.slice(i + 1, end).join('');
          i = end + 1;
        } else {
          name = p[i] ?? '';
          i++;
        }
        let neg = c === 'P';
        if (name.startsWith('^')) {
          neg = !neg;
          name = name.slice(1);
        }
        let body: string;
        if (name === 'Any') return { js: neg ? '[^\\s\\S]' : '[\\s\\S]', single: null };
        else if (GENERAL_CATEGORIES.has(name)) body = name;
        else if (/^[A-Z][A-Za-z_]*$/.test(name)) body = `Script=${name}`;
        else return err(`invalid character class range: \`\\${c}{${name}}\``);
        try {
          new RegExp(`\\p{${body}}`, 'v');
        } catch {
          err(`invalid character class range: \`\\${c}{${name}}\``);
        }
        return { js: `\\${neg ? 'P' : 'p'}{${body}}`, single: null };
      }
      case 'Q':
        return { js: '', single: null }; // handled by the caller
      default:
        break;
    }
    if (c >= '0' && c <= '7') {
      // Go: \0 starts an octal escape; \1-\7 only with more digits (no backreferences).
      let digits = c;
      while (digits.length < 3 && p[i] !== undefined && p[i]! >= '0' && p[i]! <= '7') digits += p[i++];
      if (c !== '0' && digits.length === 1) err(`invalid escape sequence: \`\\${c}\``);
      const v = parseInt(digits, 8);
      return { js: cp(v), single: v };
    }
    const code = c.codePointAt(0)!;
    // Go: any punctuation may be escaped to stand for itself; letters and digits may not.
    if (code < 0x80 && !/[A-Za-z0-9]/.test(c)) return { js: cp(code), single: code };
    return err(`invalid escape sequence: \`\\${c}\``);
  };

  const charClass = (): string => {
    // p[i] is just past '['.
    let neg = false;
    if (p[i] === '^') {
      neg = true;
      i++;
    }
    const items: string[] = [];
    let first = true;
    for (;;) {
      const c = p[i];
      if (c === undefined) return err(`missing closing ]: \`[${pattern.slice(0)}\``);
      if (c === ']' && !first) {
        i++;
        break;
      }
      first = false;
      if (c === '[' && p[i + 1] === ':') {
        const rest = p.slice(i).join('');
        const m = /^\[:(\^?)([a-z]+):\]/.exec(rest);
        if (m !== null) {
          const set = POSIX[m[2]!];
          if (set === undefined) return err(`invalid character class range: \`${m[0]}\``);
          items.push(m[1] === '^' ? `[^${set}]` : `[${set}]`);
          i += [...m[0]].length;
          continue;
        }
      }
      let lo: { js: string; single: number | null };
      if (c === '\\') {
        i++;
        lo = escapeAt(true);
        if (p[i - 1] === 'Q') err('invalid escape sequence: `\\Q` inside a character class');
      } else {
        i++;
        lo = { js: lit(c), single: c.codePointAt(0)! };
      }
      if (p[i] === '-' && p[i + 1] !== undefined && p[i + 1] !== ']') {
        i++;
        let hi: { js: string; single: number | null };
        if (p[i] === '\\') {
          i++;
          hi = escapeAt(true);
        } else {
          hi = { js: lit(p[i]!), single: p[i]!.codePointAt(0)! };
          i++;
        }
        if (lo.single === null || hi.single === null) err('invalid character class range');
        if (hi.single! < lo.single!) err(`invalid character class range: \`${String.fromCodePoint(lo.single!)}-${String.fromCodePoint(hi.single!)}\``);
        items.push(`${lo.js}-${hi.js}`);
        continue;
      }
      items.push(lo.js);
    }
    if (items.length === 0) return neg ? '[\\s\\S]' : '[^\\s\\S]';
    return `[${neg ? '^' : ''}${items.join('')}]`;
  };

  /** Group nesting: for each open group, whether it was opened by us. */
  let depth = 0;
  let lastWasAtom = false;
  while (i < p.length) {
    const c = p[i]!;
    if (c === '\\') {
      i++;
      if (p[i] === 'Q') {
        i++;
        let lit = '';
        while (i < p.length && !(p[i] === '\\' && p[i + 1] === 'E')) lit += p[i++];
        if (i < p.length) i += 2;
        // Quoted text is one atom per character; wrap so a following repeat applies to the last one only (as in Go).
        out += [...lit].map((ch) => cp(ch.codePointAt(0)!)).join('');
        lastWasAtom = lit.length > 0;
        continue;
      }
      out += escapeAt(false).js;
      lastWasAtom = true;
      continue;
    }
    if (c === '[') {
      i++;
      out += charClass();
      lastWasAtom = true;
      continue;
    }
    if (c === '(') {
      const rest = p.slice(i, i + 4).join('');
      if (rest.startsWith('(?=') || rest.startsWith('(?!') || rest.startsWith('(?<=') || rest.startsWith('(?<!')) {
        err(`invalid or unsupported Perl syntax: \`${rest.startsWith('(?<') ? rest : rest.slice(0, 3)}\``);
      }
      const named = /^\(\?P?<([^>]*)>/.exec(p.slice(i).join(''));
      if (named !== null) {
        const name = named[1]!;
        if (name === '' || !/^[A-Za-z0-9_]+$/.test(name)) err(`invalid named capture: \`${named[0]}\``);
        if (/^[0-9]/.test(name)) err(`invalid named capture: \`${named[0]}\` (node-local-dns: a group name may not start with a digit)`);
        out += `(?<${name}>`;
        i += [...named[0]].length;
        depth++;
        lastWasAtom = false;
        continue;
      }
      const flagGroup = /^\(\?([imsU]*)(?:-([imsU]*))?([:)])/.exec(p.slice(i).join(''));
      if (flagGroup !== null && (flagGroup[1] !== '' || flagGroup[2] !== undefined || flagGroup[3] === ':')) {
        const on = flagGroup[1]!;
        const off = flagGroup[2] ?? '';
        if (on.includes('U') || off.includes('U')) err(`the ungreedy flag U is not supported by node-local-dns: \`${flagGroup[0]}\``);
        if (flagGroup[2] !== undefined && off === '') err(`missing argument to repetition operator: \`${flagGroup[0]}\``);
        i += flagGroup[0].length;
        if (flagGroup[3] === ':') {
          out += on === '' && off === '' ? '(?:' : `(?${on}${off === '' ? '' : '-' + off}:`;
          depth++;
          lastWasAtom = false;
          continue;
        }
        if (out !== '' || off !== '')
          err(`flag group \`${flagGroup[0]}\` is only supported at the start of the pattern by node-local-dns (use \`(?${on}:...)\`)`);
        for (const f of on) if (!flags.includes(f)) flags += f;
        continue;
      }
      if (p[i + 1] === '?') err(`invalid or unsupported Perl syntax: \`${p.slice(i, i + 3).join('')}\``);
      out += '(';
      i++;
      depth++;
      lastWasAtom = false;
      continue;
    }
    if (c === ')') {
      if (depth === 0) err(`unexpected ): \`${pattern}\``);
      depth--;
      out += ')';
      i++;
      lastWasAtom = true;
      continue;
    }
    if (c === '{') {
      const m = /^\{([0-9]+)(,([0-9]*))?\}/.exec(p.slice(i).join(''));
      if (m !== null) {
        const lo = Number(m[1]);
        const hi = m[3] === undefined ? lo : m[3] === '' ? -1 : Number(m[3]);
        if (lo > 1000 || hi > 1000 || (hi >= 0 && hi < lo)) err(`invalid repeat count: \`${m[0]}\``);
        if (!lastWasAtom) err(`missing argument to repetition operator: \`${m[0]}\``);
        out += m[0];
        i += m[0].length;
        if (p[i] === '?') {
          out += '?';
          i++;
        }
        lastWasAtom = false;
        continue;
      }
      out += '\\{';
      i++;
      lastWasAtom = true;
      continue;
    }
    if (c === '*' || c === '+' || c === '?') {
      if (!lastWasAtom) err(`missing argument to repetition operator: \`${c}\``);
      out += c;
      i++;
      if (p[i] === '?') {
        out += '?';
        i++;
      }
      if (p[i] === '*' || p[i] === '+' || p[i] === '?') err(`invalid nested repetition operator: \`${c}${p[i]}\``);
      lastWasAtom = false;
      continue;
    }
    if (c === '|') {
      out += '|';
      i++;
      lastWasAtom = false;
      continue;
    }
    if (c === '^' || c === '$' || c === '.') {
      out += c;
      i++;
      lastWasAtom = c === '.';
      if (c !== '.') lastWasAtom = true; // Go allows `^*` (a repeated empty match)
      continue;
    }
    // Any other character is a literal.
    out += lit(c);
    i++;
    lastWasAtom = true;
  }
  if (depth > 0) err(`missing closing ): \`${pattern}\``);
  return { source: out, flags: flags + 'v' };
}

/** Compiles a Go regexp into a JS RegExp with the same matches; throws RegexTranslateError. */
export function compileGoRegex(pattern: string): RegExp {
  const { source, flags } = translateGoRegex(pattern);
  try {
    return new RegExp(source, flags);
  } catch (e) {
    throw new RegexTranslateError(`error parsing regexp: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`);
  }
}
