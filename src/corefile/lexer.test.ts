import { test } from 'node:test';
import assert from 'node:assert/strict';
import { substituteEnv, tokenize } from './lexer.ts';
import { CorefileError } from './errors.ts';

/** word@line, with a trailing `"` for quoted words and `!` for braces. */
function words(text: string, env: Record<string, string | undefined> = {}): string[] {
  return tokenize(text, 'Corefile', env).map((t) => `${t.text}@${t.line}${t.quoted ? '"' : ''}${t.brace ? '!' : ''}`);
}

test('tokenize: table', () => {
  const cases: Array<[name: string, input: string, expected: string[]]> = [
    ['empty', '', []],
    ['only white space', ' \t\n\r\n ', []],
    ['words and lines', 'a b c\nd e', ['a@1', 'b@1', 'c@1', 'd@2', 'e@2']],
    ['braces are words', 'x {\n}', ['x@1', '{@1!', '}@2!']],
    ['glued brace is not a brace', '.:53{ {}', ['.:53{@1', '{}@1']],
    ['comment line', '# hello\na # trailing { }\nb', ['a@2', 'b@3']],
    ['hash ends a bare word', 'a#b c\nd', ['a@1', 'd@2']],
    ['hash inside quotes', '"a # b" c', ['a # b@1"', 'c@1']],
    ['quoted with space', 'x "a b"', ['x@1', 'a b@1"']],
    ['escaped quote', '"say \\"hi\\""', ['say "hi"@1"']],
    ['other escapes kept', '"a\\b\\\\c"', ['a\\b\\\\c@1"']],
    ['closing quote ends the word', '"a"b', ['a@1"', 'b@1']],
    ['quote inside bare word is literal', 'a"b c"', ['a"b@1', 'c"@1']],
    ['empty quoted word', 'x ""', ['x@1', '@1"']],
    ['quoted brace is not a brace', '"{" "}"', ['{@1"', '}@1"']],
    ['multi-line quoted word', '"a\nb" c\nd', ['a\nb@1"', 'c@2', 'd@3']],
    ['backslash in bare word is literal', 'a\\b \\x', ['a\\b@1', '\\x@1']],
    ['continuation', 'a \\\n  b\nc', ['a@1', 'b@2', 'c@3']],
    ['continuation glued', 'a\\\nb', ['a@1', 'b@2']],
    ['continuation with CRLF and trailing blanks', 'a \\  \r\nb\r\nc', ['a@1', 'b@2', 'c@3']],
    ['CRLF', 'a\r\nb\r\n', ['a@1', 'b@2']],
    ['byte order mark', '\ufeffa b', ['a@1', 'b@1']],
    ['unicode spaces', 'a\u00a0b\u2003c\u0085d', ['a@1', 'b@1', 'c@1', 'd@1']],
    ['tab and form feed', 'a\tb\fc\vd', ['a@1', 'b@1', 'c@1', 'd@1']],
  ];
  for (const [name, input, expected] of cases) {
    assert.deepEqual(words(input), expected, name);
  }
});

test('tokenize: continuation keeps words on one logical line', () => {
  const toks = tokenize('a \\\n b\nc "x\ny" d', 'F', {});
  assert.equal(toks[0]!.logEnd, toks[1]!.logStart, 'a and b share a line');
  assert.notEqual(toks[1]!.logEnd, toks[2]!.logStart, 'c starts a new line');
  assert.equal(toks[3]!.logEnd, toks[4]!.logStart, 'd follows the multi-line quoted word on its last line');
  assert.notEqual(toks[2]!.logEnd, toks[4]!.logStart);
});

test('tokenize: unterminated quote is an error at its starting line', () => {
  assert.throws(
    () => tokenize('a\n"b c\nd', 'Corefile', {}),
    (err: unknown) =>
      err instanceof CorefileError && err.code === 'ERR_COREFILE' && err.message === 'Corefile:2 - Error during parsing: Unterminated quoted string',
  );
});

test('tokenize: environment substitution, brace status from the raw word', () => {
  const env = { A: 'x', B: 'two words', BRACE: '{' };
  assert.deepEqual(words('{$A} pre{$A}post "{$A} q" {$B} {$BRACE}', env), ['x@1', 'prexpost@1', 'x q@1"', 'two words@1', '{@1']);
});

test('substituteEnv: table (caddyfile replaceEnvVars)', () => {
  const env = { ADDRESS: 'servername.com', PORT: '8080', FOOBAR: 'foobar', PARTIAL_DIR: 'r1', SELF: '{$SELF}' };
  const cases: Array<[string, string]> = [
    ['{$ADDRESS}', 'servername.com'],
    ['di{$PARTIAL_DIR}', 'dir1'],
    ['{$ADDRESS}:{$PORT}', 'servername.com:8080'],
    ['{%ADDRESS%}:{$PORT}', 'servername.com:8080'],
    ['{$ADDRESS}:{%PORT%}', 'servername.com:8080'],
    ['{%ADDRESS%}/{%FOOBAR%}', 'servername.com/foobar'],
    ['{%ADDRESS}', '{%ADDRESS}'],
    [':{$PORT$}', ':'],
    ['{$MISSING}x', 'x'],
    ['{$}', '{$}'],
    ['{%}', '{%}'],
    ['{$$}', ''],
    ['{%%}', '{%%}'],
    ['{$}{$PORT}', '{$}{$PORT}'],
    ['{$PORT', '{$PORT'],
    ['{$PORT}{$PORT}', '80808080'],
    ['{{ .Name }} {$FOOBAR}', '{{ .Name }} foobar'],
    ['{$SELF}', '{$SELF}'],
  ];
  for (const [input, expected] of cases) assert.equal(substituteEnv(input, env), expected, input);
});
