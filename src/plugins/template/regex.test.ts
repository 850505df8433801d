import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileGoRegex, RegexTranslateError } from './regex.ts';

/** [Go pattern, subject, expected FindStringSubmatch (null: no match), expected named groups]. */
const MATCHES: [string, string, string[] | null, Record<string, string>?][] = [
  [
    '(^|[.])ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]$',
    'x.ip-1-2-3-4.example.',
    ['.ip-1-2-3-4.example.', '.', '1', '2', '3', '4'],
    { a: '1', b: '2', c: '3', d: '4' },
  ],
  ['^(?<d>[0-9]*)[.](?<c>[0-9]*)[.]in-addr[.]arpa[.]$', '4.3.in-addr.arpa.', ['4.3.in-addr.arpa.', '4', '3'], { d: '4', c: '3' }],
  ['example\\.com\\.(dc1\\.example\\.com\\.)$', 'a.example.com.dc1.example.com.', ['example.com.dc1.example.com.', 'dc1.example.com.']],
  ['^foogle\\.com\\.$', 'foogle.com.', ['foogle.com.']],
  ['^foogle\\.com\\.$', 'xfoogle.com.', null],
  ['(?i)^ABC\\.$', 'abc.', ['abc.']],
  ['^(?i:AB)c$', 'abc', ['abc']],
  ['^(?i:AB)c$', 'abC', null],
  ['(?s)a.b', 'a\nb', ['a\nb']],
  ['a.b', 'a\nb', null],
  ['a{2}b{', 'aab{', ['aab{']], // `{` that is no repeat is a literal in Go
  ['x{,3}', 'x{,3}', ['x{,3}']],
  ['[[:digit:]]+[[:^alpha:]]', '12-', ['12-']],
  ['\\s', '\v', null], // Go's \s has no \v
  ['[^\\S]', ' ', [' ']],
  ['\\Qa.b\\E', 'a.b', ['a.b']],
  ['\\Qa.b\\E', 'axb', null],
  ['\\Aab\\z', 'ab', ['ab']],
  ['\\x41\\x{42}\\101', 'ABA', ['ABA']],
  ['\\pL+', 'é', ['é']],
  ['[]a]+', ']a', [']a']],
  ['a\\-b\\ c\\#', 'a-b c#', ['a-b c#']],
  ['(a)|(b)', 'b', ['b', '', 'b']], // a group that took no part gives "" as in Go
  ['(?:ab)+?', 'abab', ['ab']],
];

test('Go regexps translate to JS RegExps with the same submatches', () => {
  for (const [pattern, subject, want, groups] of MATCHES) {
    const re = compileGoRegex(pattern);
    const m = re.exec(subject);
    if (want === null) {
      assert.equal(m, null, `${pattern} on ${JSON.stringify(subject)}`);
      continue;
    }
    assert.ok(m !== null, `${pattern} should match ${JSON.stringify(subject)}`);
    assert.deepEqual(
      Array.from(m, (s) => s ?? ''),
      want,
      pattern,
    );
    if (groups) assert.deepEqual({ ...m.groups }, groups, pattern);
  }
});

test('what Go rejects, and what JS cannot express, is an error', () => {
  const rows: [string, RegExp][] = [
    ['x(?=y)', /invalid or unsupported Perl syntax: `\(\?=`/],
    ['x(?!y)', /invalid or unsupported Perl syntax: `\(\?!`/],
    ['(?<=y)x', /invalid or unsupported Perl syntax: `\(\?<=`/],
    ['(a)\\1', /invalid escape sequence: `\\1`/],
    ['\\C', /invalid escape sequence: `\\C`/],
    ['\\e', /invalid escape sequence: `\\e`/],
    ['a{1001}', /invalid repeat count: `\{1001\}`/],
    ['a{3,2}', /invalid repeat count/],
    ['(?U)a+', /ungreedy flag U is not supported/],
    ['a(?i)b', /only supported at the start of the pattern/],
    ['(abc', /missing closing \): `\(abc`/],
    ['abc)', /unexpected \)/],
    ['[z-a]', /invalid character class range: `z-a`/],
    ['*a', /missing argument to repetition operator: `\*`/],
    ['a**', /invalid nested repetition operator: `\*\*`/],
    ['(?P<1a>x)', /group name may not start with a digit/],
    ['(?P<a-b>x)', /invalid named capture/],
    ['[[:nope:]]', /invalid character class range/],
  ];
  for (const [pattern, re] of rows) {
    assert.throws(
      () => compileGoRegex(pattern),
      (e: unknown) => e instanceof RegexTranslateError && e.message.startsWith('error parsing regexp: ') && re.test(e.message),
      pattern,
    );
  }
});
