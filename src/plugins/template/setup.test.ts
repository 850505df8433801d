/**
 * `template` setup through the real config loader: the forms CoreDNS's setup_test.go accepts
 * load (several templates in one block become one handler, in order), and each invalid form
 * fails with CoreDNS's `Corefile:N - Error during parsing: ...` text at its line.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EngineHooks, Logger } from '../../plugin.ts';
import { loadConfig, type LoadOptions } from '../../config/load.ts';
import { CorefileError } from '../../corefile/errors.ts';
import { TemplatePlugin } from './template.ts';

const idleEngine: EngineHooks = {
  reload: () => Promise.resolve(),
  isReady: () => false,
  isShuttingDown: () => false,
  blocks: () => [],
  fatal: (msg: string): never => {
    throw new Error(`fatal during setup: ${msg}`);
  },
  corefilePath: () => null,
  corefileText: () => '',
  pluginSetups: () => [],
};

function options(log: Logger): LoadOptions {
  return { defaultBind: ['127.0.0.1'], defaultPort: 53, env: {}, clock: () => performance.now(), log, engine: idleEngine };
}

/** Loads `domain.com:8053 dynamic.domain.com:8053 { BODY }` (the block of CoreDNS's test) and returns its template plugin. */
async function load(body: string, warnings: string[] = []): Promise<TemplatePlugin> {
  const log: Logger = { info() {}, warn: (m) => warnings.push(m), error() {} };
  const cfg = await loadConfig(`domain.com:8053 dynamic.domain.com:8053 {\n${body}\n}\n`, 'Corefile', options(log));
  const p = cfg.blocks[0]!.plugins.find((x) => x.name === 'template');
  assert.ok(p instanceof TemplatePlugin, 'template plugin loaded');
  return p;
}

async function loadError(body: string): Promise<string> {
  try {
    await load(body);
  } catch (err) {
    assert.ok(err instanceof CorefileError, `CorefileError expected, got ${String(err)}`);
    return err.message;
  }
  throw new Error(`no error for:\n${body}`);
}

test('defaults: zones of the server block, regex .*, rcode NOERROR, no fallthrough', async () => {
  const p = await load('template ANY ANY');
  assert.equal(p.rules.length, 1);
  const r = p.rules[0]!;
  assert.deepEqual(r.zones, ['domain.com.', 'dynamic.domain.com.']);
  assert.deepEqual(r.regexSources, ['.*']);
  assert.equal(r.qclass, 255);
  assert.equal(r.qtype, 255);
  assert.equal(r.rcode, 0);
  assert.equal(r.fall, null);
  assert.equal(r.ederror, null);
});

test('full syntax; several templates in one block keep their order', async () => {
  const p = await load(`template IN A example {
  match ^ip-10-(?P<b>[0-9]*)[.]example[.]$ "^x[.]"
  answer "{{ .Name }} 60 IN A 10.{{ .Group.b }}.0.1" "{{ .Name }} 60 IN A 10.0.0.2"
  additional "ns0.example. 60 IN A 203.0.113.8"
  authority "example. 60 IN NS ns0.example."
  rcode NXDOMAIN
  ederror 21 "Blocked according to RFC2606"
  fallthrough in-addr.arpa Example.ORG
  upstream
}
template CH TXT 10.0.0.0/8 {
  rcode SERVFAIL
  fallthrough
}
template IN MX example. {
  ederror 65535
}`);
  const [a, b, c] = p.rules;
  assert.equal(p.rules.length, 3);
  assert.deepEqual(a!.zones, ['example.']);
  assert.deepEqual(a!.regexSources, ['^ip-10-(?P<b>[0-9]*)[.]example[.]$', '^x[.]']);
  assert.equal(a!.answer.length, 2);
  assert.equal(a!.additional.length, 1);
  assert.equal(a!.authority.length, 1);
  assert.equal(a!.rcode, 3);
  assert.deepEqual(a!.ederror, { code: 21, reason: 'Blocked according to RFC2606' });
  assert.deepEqual(a!.fall, ['in-addr.arpa.', 'example.org.']);
  assert.equal(b!.qclass, 3);
  assert.equal(b!.qtype, 16);
  assert.deepEqual(b!.zones, ['10.in-addr.arpa.']);
  assert.equal(b!.rcode, 2);
  assert.deepEqual(b!.fall, ['.']);
  assert.deepEqual(c!.ederror, { code: 65535, reason: '' });
  assert.deepEqual(p.zones, ['example.', '10.in-addr.arpa.', 'example.']);
});

test("CoreDNS's setup_test.go forms that load", async () => {
  const ok = [
    'template ANY ANY (?P<x>',
    'template ANY ANY {\n\n}',
    'template ANY ANY {\n answer "{{ parseInt }}"\n additional "{{ parseInt }}"\n authority "{{ parseInt }}"\n}',
    'template ANY A example.com {\n match ip-(?P<a>[0-9]*)-(?P<b>[0-9]*)-(?P<c>[0-9]*)-(?P<d>[0-9]*)[.]example[.]com\n answer "{{ .Name }} A {{ .Group.a }}.{{ .Group.b }}.{{ .Group.c }}.{{ .Grup.d }}."\n fallthrough\n}',
    'template ANY AAAA example.com {\n authority "example.com 60 IN SOA ns.example.com hostmaster.example.com (1 60 60 60 60)"\n fallthrough\n}',
    'template IN ANY example.com {\n match "[.](example[.]com[.]dc1[.]example[.]com[.])$"\n rcode NXDOMAIN\n authority "{{ index .Match 1 }} 60 IN SOA ns.{{ index .Match 1 }} hostmaster.example.com (1 60 60 60 60)"\n fallthrough example.com\n}',
    'template IN A example {\n answer "{{ .Name }} 3600 IN A 10.{{ parseInt .Group.b 16 8 }}.{{ parseInt .Group.c 16 8 }}.{{ parseInt .Group.d 16 8 }}"\n}',
    'template ANY ANY invalid {\n rcode NXDOMAIN\n authority "invalid. 60 {{ .Class }} SOA ns.invalid. hostmaster.invalid. (1 60 60 60 60)"\n ederror 21 "Blocked according to RFC2606"\n}',
  ];
  for (const body of ok) await load(body);
});

test('templates Go only rejects when they run load, with a warning naming the line', async () => {
  const warnings: string[] = [];
  await load('template ANY ANY {\n answer "{{ .Name }} A {{ .Grup.d }}"\n}', warnings);
  assert.equal(warnings.length, 1);
  assert.match(
    warnings[0]!,
    /^plugin\/template: Corefile:3 - template answer ".*" will fail on every query it matches: can't evaluate field Grup in type \*template\.templateData$/,
  );
});

test('invalid forms fail with CoreDNS texts at their line', async () => {
  const P = 'Corefile:';
  const E = ' - Error during parsing: ';
  const rows: [string, string][] = [
    ['template', `${P}2${E}Wrong argument count or unexpected line ending after 'template'`],
    ['template X', `${P}2${E}invalid query class X`],
    ['template in A', `${P}2${E}invalid query class in`],
    ['template ANY', `${P}2${E}Wrong argument count or unexpected line ending after 'ANY'`],
    ['template ANY X', `${P}2${E}invalid RR class X`],
    ['template ANY aaaa', `${P}2${E}invalid RR class aaaa`],
    ['template ANY ANY .* {\n notavailable\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'notavailable'`],
    ['template ANY ANY {\n answer\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'answer'`],
    ['template ANY ANY {\n additional\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'additional'`],
    ['template ANY ANY {\n authority\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'authority'`],
    ['template ANY ANY {\n match\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'match'`],
    ['template ANY ANY {\n rcode\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'rcode'`],
    ['template ANY ANY {\n rcode UNDEFINED\n}', `${P}3${E}unknown rcode UNDEFINED`],
    ['template ANY ANY {\n rcode nxdomain\n}', `${P}3${E}unknown rcode nxdomain`],
    ['template ANY ANY {\n rcode NXDOMAIN extra\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'extra'`],
    ['template ANY ANY {\n answer\t"{{"\n}', `${P}3${E}could not compile template: {{, template: answer:1: unclosed action`],
    ['template ANY ANY {\n additional "{{"\n}', `${P}3${E}could not compile template: {{, template: additional:1: unclosed action`],
    ['template ANY ANY {\n authority "{{"\n}', `${P}3${E}could not compile template: {{, template: authority:1: unclosed action`],
    [
      'template ANY ANY {\n answer "{{ notAFunction }}"\n}',
      `${P}3${E}could not compile template: {{ notAFunction }}, template: answer:1: function "notAFunction" not defined`,
    ],
    [
      'template ANY ANY {\n answer "{{ if .Name }}x{{ end }}"\n}',
      `${P}3${E}could not compile template: {{ if .Name }}x{{ end }}, template: answer:1: "if" is not supported by node-local-dns templates (no control structures)`,
    ],
    ['template ANY ANY {\n match "(abc"\n}', `${P}3${E}could not parse regex: (abc, error parsing regexp: missing closing ): \`(abc\``],
    ['template ANY ANY {\n match "x(?=y)"\n}', `${P}3${E}could not parse regex: x(?=y), error parsing regexp: invalid or unsupported Perl syntax: \`(?=\``],
    ['template ANY ANY {\n match "(a)\\1"\n}', `${P}3${E}could not parse regex: (a)\\1, error parsing regexp: invalid escape sequence: \`\\1\``],
    [`template ANY ANY {\n match ${'a'.repeat(10001)}\n}`, `${P}3${E}regex pattern too long: 10001 > 10000`],
    [
      'template ANY ANY invalid {\n ederror invalid "Blocked according to RFC2606"\n}',
      `${P}3${E}error parsing extended DNS error code Blocked according to RFC2606, strconv.ParseUint: parsing "invalid": invalid syntax`,
    ],
    [
      'template ANY ANY invalid {\n ederror 65536\n}',
      `${P}3${E}error parsing extended DNS error code 65536, strconv.ParseUint: parsing "65536": value out of range`,
    ],
    ['template ANY ANY invalid {\n ederror too many arguments\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'arguments'`],
    ['template ANY ANY invalid {\n ederror\n}', `${P}3${E}Wrong argument count or unexpected line ending after 'ederror'`],
    [
      "template ANY ANY {\n var ip replace(group('ip'), '-', '.')\n}",
      `${P}3${E}'var' is not supported by node-local-dns (CoreDNS evaluates it with the expr-lang language)`,
    ],
    ['template ANY ANY {\n expr "true"\n}', `${P}3${E}'expr' is not supported by node-local-dns (CoreDNS evaluates it with the expr-lang language)`],
    ['template ANY ANY {\n rcode NXDOMAIN\n}\ntemplate ANY X', `${P}5${E}invalid RR class X`],
  ];
  for (const [body, want] of rows) assert.equal(await loadError(body), want, body.slice(0, 80));
});
