/**
 * rewrite setup: the forms CoreDNS accepts (one-line, `continue`/`stop`, the block form joined
 * into one rule, several lines) and each rejected form with CoreDNS's text after
 * `Corefile:N - Error during parsing: plugin/rewrite: `.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Logger, SetupContext } from '../../plugin.ts';
import { parseCorefile } from '../../corefile/parser.ts';
import { TestEngine, setupContext } from '../../../test/lib/metrics-testing.ts';
import { rewriteSetup } from './setup.ts';
import type { RewritePlugin } from './rewrite.ts';
import { ClassRule, EdnsLocalRule, EdnsNsidRule, EdnsSubnetRule, EdnsVariableRule, MatchRule, NameRule, TypeRule } from './rules.ts';

const quiet: Logger = { info() {}, warn() {}, error() {} };
const engine = new TestEngine();
function ctx(): SetupContext {
  return setupContext(engine, { log: quiet });
}

function plugin(body: string): RewritePlugin {
  const [block] = parseCorefile(`.:53 {\n${body}\n}\n`, 'Corefile', {});
  const ds = block!.directives.filter((d) => d.name === 'rewrite');
  return (ds.length > 1 ? rewriteSetup.setupAll!(ds, ctx()) : rewriteSetup.setup(ds[0]!, ctx())) as RewritePlugin;
}

function setupError(body: string): string {
  try {
    plugin(body);
  } catch (err) {
    return (err as Error).message;
  }
  return assert.fail(`setup accepted: ${body}`);
}

test('valid forms make the expected rules', () => {
  const cases: Array<[string, abstract new (...args: never[]) => unknown, string?]> = [
    ['rewrite name a.com b.com', NameRule, 'stop'],
    ['rewrite continue name exact a.com b.com', NameRule, 'continue'],
    ['rewrite stop name prefix foo bar', NameRule, 'stop'],
    ['rewrite name suffix .old.test .new.test answer auto', NameRule],
    ['rewrite name substring service.us-west-1.example.org service.us-west-1.consul', NameRule],
    ['rewrite name regex (.*)-(us-west-1)\\.example\\.org {1}.service.{2}.consul', NameRule],
    ['rewrite name regex (.*)\\.a\\.test {1}.b.test answer name (.*)\\.b\\.test {1}.a.test answer value (.*)\\.b\\.test {1}.a.test', NameRule],
    ['rewrite name regex (.*)\\.a\\.test {1}.b.test answer name (.*)\\.b\\.test {1}.a.test value (.*)\\.b\\.test {1}.a.test', NameRule],
    ['rewrite type ANY HINFO', TypeRule],
    ['rewrite class CH IN', ClassRule],
    ['rewrite ttl example.com. 30-300', MatchRule],
    ['rewrite ttl regex (.*)\\.coredns\\.rocks 15', MatchRule],
    ['rewrite ttl example.com. -30', MatchRule],
    ['rewrite ttl example.com. 30-', MatchRule],
    ['rewrite rcode regex (.*)\\.coredns\\.rocks SERVFAIL NOERROR', MatchRule],
    ['rewrite rcode a.test 2 0', MatchRule],
    ['rewrite edns0 local set 0xffee 0x61626364', EdnsLocalRule],
    ['rewrite edns0 local append 0xffee abcdefg revert', EdnsLocalRule],
    ['rewrite edns0 local unset 0xffee', EdnsLocalRule],
    ['rewrite edns0 local set 0xffee {client_ip}', EdnsVariableRule],
    ['rewrite edns0 local set 0xffee {some-plugin/some-label}', EdnsVariableRule],
    ['rewrite edns0 nsid set', EdnsNsidRule],
    ['rewrite edns0 nsid unset', EdnsNsidRule],
    ['rewrite edns0 subnet set 24 56', EdnsSubnetRule],
    ['rewrite edns0 subnet replace 24 56 revert', EdnsSubnetRule],
    ['rewrite edns0 subnet unset', EdnsSubnetRule],
  ];
  for (const [line, cls, mode] of cases) {
    const p = plugin(line);
    assert.equal(p.rules.length, 1, line);
    assert.ok(p.rules[0] instanceof cls, `${line}: ${p.rules[0]!.constructor.name}`);
    if (mode !== undefined) assert.equal(p.rules[0]!.mode, mode, line);
  }
});

test('the block form joins its lines into one rule; several lines are several rules in order', () => {
  const p = plugin(
    'rewrite stop {\n name regex (.*)-(us-west-1)\\.coredns\\.rocks {1}.service.{2}.consul\n answer name (.*)\\.service\\.(us-west-1)\\.consul {1}-{2}.coredns.rocks\n}',
  );
  assert.equal(p.rules.length, 1);
  const r = p.rules[0] as NameRule;
  assert.equal(r.match, 'regex');
  assert.equal(r.responseRules.length, 1);
  const q = plugin('rewrite continue {\n ttl regex (.*)\\.coredns\\.rocks 15\n}');
  assert.equal(q.rules[0]!.mode, 'continue');
  const many = plugin('rewrite continue type A AAAA\nrewrite name a.test b.test');
  assert.deepEqual(
    many.rules.map((x) => x.constructor.name),
    ['TypeRule', 'NameRule'],
  );
});

test('rejected forms carry CoreDNS texts', () => {
  const P = 'Corefile:2 - Error during parsing: plugin/rewrite: ';
  const cases: Array<[string, string]> = [
    ['rewrite', 'no rule type specified for rewrite'],
    ['rewrite stop', 'stop rule must begin with a rule type'],
    ['rewrite continue', 'continue rule must begin with a rule type'],
    ['rewrite foo a b', 'invalid rule type "foo"'],
    ['rewrite continue foo a b', 'invalid rule type "continue"'],
    ['rewrite name', 'too few arguments for a name rule'],
    ['rewrite name a.com', 'too few arguments for a name rule'],
    ['rewrite name fuzzy a b', 'name rule supports only exact, prefix, suffix, substring, and regex name matching, received: fuzzy'],
    ['rewrite answer name a b', 'response rewrites must begin with a name rule'],
    ['rewrite name regex [bad[ bar', 'invalid regex matching pattern: [bad['],
    ['rewrite name regex foo {1}.bar', 'the rewrite regex pattern ({1}.bar) uses more subexpressions than its corresponding matching regex pattern (foo)'],
    ['rewrite name suffix a b answer', 'invalid arguments for suffix rule'],
    ['rewrite name suffix a b extra words', 'exceeded the number of arguments for a non-answer rule argument for suffix rule'],
    ['rewrite name suffix a b answer bogus', 'invalid type "bogus" for answer rule for suffix rule'],
    ['rewrite name regex a b answer name x', 'name answer rule for regex rule: 2 arguments required'],
    ['rewrite name regex (a) b answer auto answer name (x) {1}', 'auto name answer rule cannot be combined with explicit name anwer rules'],
    ['rewrite name regex a b answer value [x {1}', 'value answer rule for regex rule: invalid regex matching pattern: [x'],
    ['rewrite type A', 'type rules must have exactly two arguments'],
    ['rewrite type A BOGUS', 'invalid type "BOGUS"'],
    ['rewrite class XX IN', 'invalid class "XX"'],
    ['rewrite class IN', 'class rules must have exactly two arguments'],
    ['rewrite ttl a.test', 'too few (1) arguments for a ttl rule'],
    ['rewrite ttl a.test abc', "invalid TTL 'abc' for a ttl rule"],
    ['rewrite ttl a.test -', "invalid TTL '-' for a ttl rule"],
    ['rewrite ttl a.test 300-30', "invalid TTL '300-30' for a ttl rule"],
    ['rewrite ttl fuzzy a.test 30', 'ttl rule supports only exact, prefix, suffix, substring, and regex name matching'],
    ['rewrite ttl regex [x 30', 'invalid regex pattern in a ttl rule: [x'],
    ['rewrite ttl exact a.test 30 40', "invalid TTL '' for a ttl rule"],
    ['rewrite rcode a.test SERVFAIL', 'too few (2) arguments for a rcode rule'],
    ['rewrite rcode a.test BOGUS NOERROR', "invalid matching RCODE 'BOGUS' for a rcode rule"],
    ['rewrite rcode a.test 2 99', "invalid replacement RCODE '99' for a rcode rule"],
    ['rewrite edns0 local', 'too few arguments for an EDNS0 rule'],
    ['rewrite edns0 local frob 0xffee abc', 'invalid action: "frob"'],
    ['rewrite edns0 local set 0xffee', 'EDNS0 local rules require three or four args'],
    ['rewrite edns0 local set 0xfffff abc', 'strconv.ParseUint: parsing "0xfffff": value out of range'],
    ['rewrite edns0 local set zz abc', 'strconv.ParseUint: parsing "zz": invalid syntax'],
    ['rewrite edns0 local set 0xffee 0xabc', 'encoding/hex: odd length hex string'],
    ['rewrite edns0 local set 0xffee 0xzz', "encoding/hex: invalid byte: U+007A 'z'"],
    ['rewrite edns0 local set 0xffee {dummy}', 'unsupported variable name "{dummy}"'],
    ['rewrite edns0 local unset', 'local unset action requires exactly two arguments'],
    ['rewrite edns0 nsid set foo', 'EDNS0 NSID rules can accept no more than one arg'],
    ['rewrite edns0 nsid unset foo', 'nsid unset action requires exactly one argument'],
    ['rewrite edns0 subnet set 24', 'EDNS0 subnet rules require three or four args'],
    ['rewrite edns0 subnet set 24 56 72', 'EDNS0 subnet rules require three or four args'],
    ['rewrite edns0 subnet set 33 56', 'invalid IPv4 bit mask length 33'],
    ['rewrite edns0 subnet set 24 129', 'invalid IPv6 bit mask length 129'],
    ['rewrite edns0 subnet unset 24', 'subnet unset action requires exactly one argument'],
    ['rewrite edns0 foo set', 'invalid rule type "foo"'],
    ['rewrite cname exact a.test b.test', 'cname rules are not supported by node-local-dns (they need an upstream lookup of the new target)'],
  ];
  for (const [line, detail] of cases) assert.equal(setupError(line), P + detail, line);
});

test('a block of several name lines is one rule and fails as CoreDNS does', () => {
  const msg = setupError('rewrite stop {\n name regex foo bar\n answer name bar foo\n name baz\n}');
  assert.match(msg, /^Corefile:2 - Error during parsing: plugin\/rewrite: name answer rule for regex rule: 2 arguments required$/);
  const first = setupError('rewrite stop {\n answer name bar foo\n name regex foo bar\n}');
  assert.match(first, /response rewrites must begin with a name rule$/);
});
