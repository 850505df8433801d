import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compileTemplate, parseUint, sprintf, TemplateError, type TemplateFunc, type TypeSpec } from './gotemplate.ts';

class Data {
  static readonly goName = '*t.data';
  Name = 'ip-10-1-2-3.example.';
  Zone = 'example.';
  Match = ['ip-10-1-2-3.example.', '1', '2'];
  Group = new Map([
    ['0', 'ip-10-1-2-3.example.'],
    ['b', '7b'],
    ['c', '0a'],
  ]);
  Flag = true;
  Q = { Name: 'q.example.', Qtype: 28n };
  Meta(label: string): string {
    return `meta(${label})`;
  }
}

const TYPE: TypeSpec = {
  goName: '*t.data',
  fields: {
    Name: 'string',
    Zone: 'string',
    Match: { list: 'string', goName: '[]string' },
    Group: { map: 'string', goName: 'map[string]string' },
    Flag: 'bool',
    Q: { goName: '*dns.Question', fields: { Name: 'string', Qtype: 'uint' } },
  },
  methods: { Meta: { args: 1, result: 'string' } },
};

const funcs: Record<string, TemplateFunc> = {
  parseInt: { args: 3, result: 'uint', call: (a) => parseUint(a[0] as string, Number(a[1]), Number(a[2])) },
};

function run(text: string): string {
  return compileTemplate('answer', text, { funcs, data: TYPE }).execute(new Data());
}

test('renders fields, map keys, methods, builtins and pipelines as Go does', () => {
  const rows: [string, string][] = [
    ['{{ .Name }} 60 IN A 1.2.3.4', 'ip-10-1-2-3.example. 60 IN A 1.2.3.4'],
    ['{{.Zone}}', 'example.'],
    ['{{ index .Match 1 }}.{{ index .Match 2 }}', '1.2'],
    ['{{ .Group.b }}', '7b'],
    ['{{ .Group.missing }}', '<no value>'], // Go: a missing map key prints <no value>
    ['[{{ index .Group "missing" }}]', '[]'], // index gives the zero value instead
    ['10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}', '10.123.10'],
    ['{{ .Meta "kubernetes/client-namespace" }}', 'meta(kubernetes/client-namespace)'],
    ['{{ .Q.Name }} {{ .Q.Qtype }}', 'q.example. 28'],
    ['{{ printf "%s-%03d-%x" .Zone 7 255 }}', 'example.-007-ff'],
    ['{{ .Name | printf "<%s>" }}', '<ip-10-1-2-3.example.>'],
    ['{{ .Name | len }}', '20'],
    ['{{ (index .Match 0) | printf "%q" }}', '"ip-10-1-2-3.example."'],
    ['{{ print "a" 1 2 "b" }}', 'a1 2b'],
    ['{{ eq .Zone "example." }} {{ ne 1 2 }} {{ lt 1 2 }} {{ ge 2 3 }}', 'true true true false'],
    ['{{ eq .Zone "x." "example." }}', 'true'],
    ['{{ and .Flag .Zone }} {{ or "" .Zone }} {{ not .Flag }}', 'example. example. false'],
    ['{{ slice .Zone 0 4 }}', 'exam'],
    ['{{ .Match }} {{ .Group }}', '[ip-10-1-2-3.example. 1 2] map[0:ip-10-1-2-3.example. b:7b c:0a]'],
    ["{{ 0x1F }} {{ 1_000 }} {{ 'a' }} {{ 017 }} {{ true }}", '31 1000 97 15 true'],
    ['{{ "a\\tb\\u00e9" }}|{{ `raw\\n` }}', 'a\tbé|raw\\n'],
    // trim markers remove the whitespace on their side only
    ['a  {{- .Zone -}}  b', 'aexample.b'],
    ['a {{ .Zone -}} \n b', 'a example.b'],
    ['{{- /* a comment */ -}} x', 'x'],
    ['{{ -3 }}', '-3'], // not a trim marker: no space after the dash
  ];
  for (const [tmpl, want] of rows) assert.equal(run(tmpl), want, tmpl);
});

test('canonical form is what Go prints for the parse tree (the metrics label)', () => {
  const t = compileTemplate('answer', '{{ .Name }} 60 IN A {{ index .Match 1 }}.{{- parseInt .Group.b 16 8 | printf "%d" }}', { funcs, data: TYPE });
  assert.equal(t.canonical(), '{{.Name}} 60 IN A {{index .Match 1}}.{{parseInt .Group.b 16 8 | printf "%d"}}');
});

test('parse errors and unsupported constructs are rejected at compile time with Go-style texts', () => {
  const rows: [string, RegExp][] = [
    ['{{', /^template: answer:1: unclosed action$/],
    ['{{ .Name', /^template: answer:1: unclosed action$/],
    ['{{ notAFunction }}', /^template: answer:1: function "notAFunction" not defined$/],
    ['{{ if .Name }}x{{ end }}', /"if" is not supported by node-local-dns templates/],
    ['{{ range .Match }}x{{ end }}', /"range" is not supported/],
    ['{{ with .Name }}{{ . }}{{ end }}', /"with" is not supported/],
    ['{{ template "x" }}', /"template" is not supported/],
    ['{{ $x := 1 }}', /variables \(\$\) are not supported/],
    ['{{ $ }}', /variables \(\$\) are not supported/],
    ['{{ html .Name }}', /function "html" is not supported/],
    ['{{ call .Name }}', /function "call" is not supported/],
    ['{{ "abc }}', /unterminated quoted string/],
    ['{{ 1x }}', /bad number syntax: "1x"/],
    ['{{ .Name | }}', /missing value for command/],
    ['{{ }}', /missing value for command/],
    ['{{ (.Name }}', /unclosed left paren/],
    ['a\n{{ foo }}', /^template: answer:2: function "foo" not defined$/],
  ];
  for (const [tmpl, re] of rows) {
    assert.throws(
      () => compileTemplate('answer', tmpl, { funcs, data: TYPE }),
      (e: unknown) => e instanceof TemplateError && re.test(e.message),
      tmpl,
    );
  }
});

test('what Go reports only when executing compiles with a warning and fails every execution', () => {
  const rows: [string, RegExp, RegExp][] = [
    ['{{ .Grup.d }}', /can't evaluate field Grup in type \*t\.data/, /executing "answer" at <\.Grup\.d>: can't evaluate field Grup in type \*t\.data$/],
    ['{{ parseInt }}', /wrong number of args for parseInt: want 3 got 0/, /wrong number of args for parseInt: want 3 got 0$/],
    ['{{ .Name 1 }}', /can't give argument to non-function \.Name/, /can't give argument to non-function \.Name$/],
    ['{{ .Meta }}', /wrong number of args for Meta: want 1 got 0/, /wrong number of args for Meta: want 1 got 0$/],
    ['{{ .Match.x }}', /can't evaluate field x in type \[\]string/, /can't evaluate field x/],
  ];
  for (const [tmpl, warning, runtime] of rows) {
    const t = compileTemplate('answer', tmpl, { funcs, data: TYPE });
    assert.equal(t.warnings.length, 1, tmpl);
    assert.match(t.warnings[0]!, warning, tmpl);
    assert.throws(
      () => t.execute(new Data()),
      (e: unknown) => e instanceof TemplateError && runtime.test(e.message),
      tmpl,
    );
  }
  assert.deepEqual(compileTemplate('answer', '{{ .Name }}', { funcs, data: TYPE }).warnings, []);
});

test('execution errors carry Go\'s "executing" context', () => {
  assert.throws(() => run('{{ index .Match 5 }}'), {
    message: 'template: answer:1:3: executing "answer" at <index .Match 5>: error calling index: index out of range: 5',
  });
  assert.throws(
    () => run('x {{ parseInt .Group.b 10 8 }}'),
    /executing "answer" at <parseInt \.Group\.b 10 8>: strconv\.ParseUint: parsing "7b": invalid syntax/,
  );
  assert.throws(() => run('{{ eq .Zone 1 }}'), /error calling eq: incompatible types for comparison/);
  assert.throws(() => run('{{ len 3 }}'), /error calling len: len of type int/);
});

test('parseUint matches strconv.ParseUint', () => {
  assert.equal(parseUint('ff', 16, 8), 255n);
  assert.equal(parseUint('0x1f', 0, 64), 31n);
  assert.equal(parseUint('0b101', 0, 8), 5n);
  assert.equal(parseUint('017', 0, 8), 15n);
  assert.equal(parseUint('1_000', 0, 16), 1000n);
  assert.equal(parseUint('18446744073709551615', 10, 64), 18446744073709551615n);
  assert.throws(() => parseUint('100', 16, 8), { message: 'strconv.ParseUint: parsing "100": value out of range' });
  assert.throws(() => parseUint('18446744073709551616', 10, 0), /value out of range/);
  assert.throws(() => parseUint('', 10, 8), { message: 'strconv.ParseUint: parsing "": invalid syntax' });
  assert.throws(() => parseUint('-1', 10, 8), /invalid syntax/);
  assert.throws(() => parseUint('1_0', 10, 8), /invalid syntax/); // underscores only with base 0
  assert.throws(() => parseUint('1', 1, 8), /invalid base 1/);
  assert.throws(() => parseUint('1', 10, 65), /invalid bit size 65/);
});

test('sprintf: verbs, flags, width, missing and extra arguments', () => {
  assert.equal(sprintf('%d|%5d|%-5d|%05d|%+d', [42n, 42n, 42n, 42n, 42n]), '42|   42|42   |00042|+42');
  assert.equal(sprintf('%x %X %o %b %#x %c', [255n, 255n, 8n, 5n, 255n, 65n]), 'ff FF 10 101 0xff A');
  assert.equal(sprintf('%s %q %v %t %%', ['a', 'b"c', 7n, true]), 'a "b\\"c" 7 true %');
  assert.equal(sprintf('%.2s|%6s|%-6s|', ['abcdef', 'ab', 'ab']), 'ab|    ab|ab    |');
  assert.equal(sprintf('%d %d', [1n]), '1 %!d(MISSING)');
  assert.equal(sprintf('%d', [1n, 'x']), '1%!(EXTRA string=x)');
  assert.equal(sprintf('%d', ['x']), '%!d(string=x)');
  assert.equal(sprintf('%x', ['AB']), '4142');
});
