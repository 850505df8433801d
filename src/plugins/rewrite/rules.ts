/**
 * The rules of the `rewrite` plugin (CoreDNS plugin/rewrite), their parsing from a rule's words
 * and what each does to a query and its response.
 *
 * A rule looks at the query as it stands after the rules before it (`QueryState`), may change
 * it (name, type, class, EDNS(0) options) and says whether it applied; when it applied it may
 * hand back response rules, applied to the answer in the reverse order of the query rules.
 * Matching is on the lower-cased, fully qualified question name, as CoreDNS's state.Name().
 */
import { decodeMessage } from '../../wire/codec.ts';
import type { Edns, EdnsOption, Message, RR, MxData, SrvData, SoaData } from '../../wire/codec.ts';
import { Header, QType } from '../../wire/codes.ts';
import { classByName, rcodeByName, typeByName } from '../../wire/rr-names.ts';
import { qnameLowerText } from '../../wire/qname-text.ts';
import {
  EdnsOption as OptCode,
  addressBytes,
  addressFamily,
  clientSubnetData,
  naptrReplacement,
  uint16Bytes,
  withNaptrReplacement,
} from '../../wire/rewrite-rdata.ts';
import type { Request } from '../../server/request.ts';
import { AddressError, splitHostPort } from '../../metrics/http-endpoints.ts';

export const Mode = { STOP: 'stop', CONTINUE: 'continue' } as const;
export type ModeValue = (typeof Mode)[keyof typeof Mode];

/** A configuration error; setup turns it into `Corefile:N - Error during parsing: plugin/rewrite: <message>`. */
export class RuleError extends Error {}

// ------------------------------------------------------------------------------------------------
// The query as the rules see it

/** The query being rewritten; the message is only decoded when an EDNS(0) rule needs it. */
export class QueryState {
  readonly req: Request;
  qtype: number;
  qclass: number;
  /** The request's OPT as rules changed it; undefined until an EDNS(0) rule looks at it. */
  edns: Edns | null | undefined = undefined;
  /** The client's message decoded (by the first EDNS(0) rule), or null. */
  decoded: Message | null = null;
  /** The name a rule set, or null while it is the client's. */
  private newName: string | null = null;
  /** Lower-cased text of `name`. */
  private lower: string;

  constructor(req: Request) {
    this.req = req;
    this.qtype = req.qtype;
    this.qclass = req.qclass;
    this.lower = qnameLowerText(req.msg, Header.SIZE, req.qnameEnd);
  }

  /** Question name as it stands (the client's spelling until a name rule changes it). */
  get name(): string {
    return this.newName ?? this.req.name();
  }

  set name(v: string) {
    this.newName = v;
    this.lower = v.toLowerCase();
  }

  /** Whether a rule gave the question another name (spelling included). */
  nameChanged(): boolean {
    return this.newName !== null && this.newName !== this.req.name();
  }

  /** CoreDNS's state.Name(): the current question name, lower-cased. */
  lowerName(): string {
    return this.lower;
  }

  /** The request's OPT, or null. */
  currentEdns(): Edns | null {
    if (this.edns === undefined) {
      this.decoded ??= decodeMessage(this.req.msg, this.req.msgLen);
      const e = this.decoded.edns;
      // A copy: the decoded message keeps the client's options (revert needs their old data).
      this.edns = e === null ? null : { ...e, options: e.options.map((o) => ({ code: o.code, data: o.data })) };
    }
    return this.edns;
  }

  /** CoreDNS's setupEdns0Opt: the request's OPT, added (payload 4096, DO clear) when missing. */
  ensureEdns(): Edns {
    let e = this.currentEdns();
    if (e === null) {
      e = { udpSize: 4096, extRcode: 0, version: 0, dnssecOk: false, options: [] };
      this.edns = e;
    }
    return e;
  }
}

// ------------------------------------------------------------------------------------------------
// Response rules

/** Rewrites part of a response. `record` runs for every record (OPT aside), `message` once. */
export interface ResponseRule {
  record?(rr: RR): void;
  message?(m: Message): void;
}

/** Maps a string (a name) to another, or returns it unchanged. */
export interface StringRewriter {
  rewrite(src: string): string;
}

/** `{N}` in the replacement stands for capture group N (0: the whole match). */
function substituteGroups(replacement: string, groups: RegExpExecArray): string {
  let s = replacement;
  for (let i = 0; i < groups.length; i++) s = s.split(`{${i}}`).join(groups[i] ?? '');
  return s;
}

class RegexRewriter implements StringRewriter {
  readonly pattern: RegExp;
  readonly replacement: string;
  constructor(pattern: RegExp, replacement: string) {
    this.pattern = pattern;
    this.replacement = replacement;
  }
  rewrite(src: string): string {
    const m = this.pattern.exec(src);
    return m === null ? src : substituteGroups(this.replacement, m);
  }
}

/** The name itself, or a name below it (at a label boundary), gets `orig` swapped for `replacement`. */
class RemapRewriter implements StringRewriter {
  readonly orig: string;
  readonly replacement: string;
  constructor(orig: string, replacement: string) {
    this.orig = orig;
    this.replacement = replacement;
  }
  rewrite(src: string): string {
    if (src === this.orig) return this.replacement;
    const i = src.length - this.orig.length;
    if (i > 0 && src.charCodeAt(i - 1) === 0x2e && src.endsWith(this.orig)) return src.slice(0, i) + this.replacement;
    return src;
  }
}

class SuffixRewriter implements StringRewriter {
  readonly suffix: string;
  readonly replacement: string;
  constructor(suffix: string, replacement: string) {
    this.suffix = suffix;
    this.replacement = replacement;
  }
  rewrite(src: string): string {
    return src.endsWith(this.suffix) ? src.slice(0, src.length - this.suffix.length) + this.replacement : src;
  }
}

/** `answer name`: the owner name of every record. */
class NameResponseRule implements ResponseRule {
  readonly rw: StringRewriter;
  constructor(rw: StringRewriter) {
    this.rw = rw;
  }
  record(rr: RR): void {
    rr.name = this.rw.rewrite(rr.name);
  }
}

/** `answer value`: the name a record points to (CNAME, DNAME, NS, PTR, MX, SRV, NAPTR, SOA's MNAME). */
class ValueResponseRule implements ResponseRule {
  readonly rw: StringRewriter;
  constructor(rw: StringRewriter) {
    this.rw = rw;
  }
  record(rr: RR): void {
    const d = rr.data;
    switch (rr.type) {
      case QType.CNAME:
      case QType.NS:
      case QType.PTR:
      case DNAME:
        if (typeof d === 'string' && d !== '') rr.data = this.rw.rewrite(d);
        return;
      case QType.MX: {
        const mx = d as MxData;
        if (mx.exchange !== '') mx.exchange = this.rw.rewrite(mx.exchange);
        return;
      }
      case QType.SRV: {
        const srv = d as SrvData;
        if (srv.target !== '') srv.target = this.rw.rewrite(srv.target);
        return;
      }
      case QType.SOA: {
        const soa = d as SoaData;
        if (soa.mname !== '') soa.mname = this.rw.rewrite(soa.mname);
        return;
      }
      case QType.NAPTR: {
        if (!(d instanceof Uint8Array)) return;
        const v = naptrReplacement(d);
        const n = this.rw.rewrite(v);
        if (n !== v) rr.data = withNaptrReplacement(d, n);
        return;
      }
      default:
    }
  }
}

const DNAME = 39;

/** `ttl`: TTLs below min become min, above max become max. */
class TtlResponseRule implements ResponseRule {
  readonly min: number;
  readonly max: number;
  constructor(min: number, max: number) {
    this.min = min;
    this.max = max;
  }
  record(rr: RR): void {
    if (rr.ttl < this.min) rr.ttl = this.min;
    else if (rr.ttl > this.max) rr.ttl = this.max;
  }
}

/** `rcode`: the response's rcode `from` becomes `to`. */
class RcodeResponseRule implements ResponseRule {
  readonly from: number;
  readonly to: number;
  constructor(from: number, to: number) {
    this.from = from;
    this.to = to;
  }
  message(m: Message): void {
    if (m.rcode === this.from) m.rcode = this.to;
  }
}

/** EDNS(0) `revert` of an option the rule added: it is taken out of the response. */
class EdnsRemoveResponseRule implements ResponseRule {
  readonly code: number;
  constructor(code: number) {
    this.code = code;
  }
  message(m: Message): void {
    const opts = m.edns?.options;
    if (opts === undefined) return;
    const i = opts.findIndex((o) => o.code === this.code);
    if (i >= 0) opts.splice(i, 1);
  }
}

/** EDNS(0) `revert` of an option the rule changed: the response carries the client's value. */
class EdnsRestoreResponseRule implements ResponseRule {
  readonly option: EdnsOption;
  constructor(option: EdnsOption) {
    this.option = option;
  }
  message(m: Message): void {
    const opts = m.edns?.options;
    if (opts === undefined) return;
    const i = opts.findIndex((o) => o.code === this.option.code);
    if (i >= 0) opts[i] = { code: this.option.code, data: this.option.data };
  }
}

// ------------------------------------------------------------------------------------------------
// Rules

/** What a rule did: null when it did not apply, else the response rules it wants (maybe none). */
export type RuleResult = ResponseRule[] | null;

export interface Rule {
  readonly mode: ModeValue;
  apply(s: QueryState): RuleResult;
}

const EMPTY: ResponseRule[] = [];

/** plugin.Name(s).Normalize(): lower case, fully qualified. */
function normalize(s: string): string {
  const l = s.toLowerCase();
  return l.endsWith('.') ? l : l + '.';
}

const MAX_REGEXP_LEN = 10000;

/**
 * Compiles a configured regular expression written for Go's RE2: `(?P<name>` is taken as
 * `(?<name>`, and leading flags `(?i)`, `(?s)`, `(?m)` (or combined, `(?is)`) become RegExp flags.
 */
function compile(pattern: string): RegExp | null {
  let p = pattern.replace(/\(\?P</g, '(?<');
  let flags = '';
  const lead = /^\(\?([ism]+)\)/.exec(p);
  if (lead !== null) {
    flags = [...new Set(lead[1]!)].join('');
    p = p.slice(lead[0].length);
  }
  try {
    return new RegExp(p, flags);
  } catch {
    return null;
  }
}

function captureGroups(re: RegExp): number {
  return new RegExp(`${re.source}|`).exec('')!.length - 1;
}

/** How many of `{0}`..`{100}` the replacement uses. */
function subExprUsage(s: string): number {
  let n = 0;
  for (let i = 0; i <= 100; i++) if (s.includes(`{${i}}`)) n++;
  return n;
}

function validRegex(from: string, to: string): RegExp {
  if (from.length > MAX_REGEXP_LEN) throw new RuleError(`regex pattern too long: ${from.length} > ${MAX_REGEXP_LEN}`);
  const re = compile(from);
  if (re === null) throw new RuleError(`invalid regex matching pattern: ${from}`);
  if (subExprUsage(to) > captureGroups(re)) {
    throw new RuleError(`the rewrite regex pattern (${to}) uses more subexpressions than its corresponding matching regex pattern (${from})`);
  }
  return re;
}

// ---- name

const NameMatch = { EXACT: 'exact', PREFIX: 'prefix', SUFFIX: 'suffix', SUBSTRING: 'substring', REGEX: 'regex' } as const;
type NameMatchValue = (typeof NameMatch)[keyof typeof NameMatch];

export class NameRule implements Rule {
  readonly mode: ModeValue;
  readonly match: NameMatchValue;
  readonly from: string;
  readonly to: string;
  readonly pattern: RegExp | null;
  /** Answer names are mapped back from the new question name to the client's (lower-cased). */
  readonly auto: boolean;
  readonly responseRules: ResponseRule[];

  constructor(mode: ModeValue, match: NameMatchValue, from: string, to: string, pattern: RegExp | null, auto: boolean, rules: ResponseRule[]) {
    this.mode = mode;
    this.match = match;
    this.from = from;
    this.to = to;
    this.pattern = pattern;
    this.auto = auto;
    this.responseRules = rules;
  }

  /** The new name, or null when the rule does not match. */
  private target(name: string): string | null {
    switch (this.match) {
      case NameMatch.EXACT:
        return name === this.from ? this.to : null;
      case NameMatch.PREFIX:
        return name.startsWith(this.from) ? this.to + name.slice(this.from.length) : null;
      case NameMatch.SUFFIX:
        return name.endsWith(this.from) ? name.slice(0, name.length - this.from.length) + this.to : null;
      case NameMatch.SUBSTRING:
        return name.includes(this.from) ? name.split(this.from).join(this.to) : null;
      case NameMatch.REGEX: {
        const m = this.pattern!.exec(name);
        return m === null ? null : substituteGroups(this.to, m);
      }
    }
  }

  apply(s: QueryState): RuleResult {
    const before = s.lowerName();
    const after = this.target(before);
    if (after === null) return null;
    s.name = after;
    if (!this.auto) return this.responseRules;
    const rw = new RemapRewriter(after, before);
    return [new NameResponseRule(rw), new ValueResponseRule(rw), ...this.responseRules];
  }
}

/** `answer auto | answer name FROM TO | answer value FROM TO ...` after a name rule. */
function parseAnswerRules(matchType: string, args: string[]): { auto: boolean; rules: ResponseRule[] } {
  let auto = false;
  let nameRules = 0;
  const rules: ResponseRule[] = [];
  let last = '';
  let i = 0;
  if (args.length < 2) throw new RuleError(`invalid arguments for ${matchType} rule`);
  while (i < args.length) {
    if (last === '' && args[i] !== 'answer') {
      throw new RuleError(`exceeded the number of arguments for a non-answer rule argument for ${matchType} rule`);
    }
    if (args[i] === 'answer') i++;
    if (args.length - i === 0) throw new RuleError(`type missing for answer rule for ${matchType} rule`);
    last = args[i]!;
    i++;
    if (last === 'auto') {
      auto = true;
      continue;
    }
    if (last === 'name' || last === 'value') {
      if (args.length - i < 2) throw new RuleError(`${last} answer rule for ${matchType} rule: 2 arguments required`);
      let re: RegExp;
      try {
        re = validRegex(args[i]!, args[i + 1]!);
      } catch (err) {
        throw new RuleError(`${last} answer rule for ${matchType} rule: ${(err as Error).message}`);
      }
      const rw = new RegexRewriter(re, normalize(args[i + 1]!));
      rules.push(last === 'name' ? new NameResponseRule(rw) : new ValueResponseRule(rw));
      if (last === 'name') nameRules++;
      i += 2;
      continue;
    }
    throw new RuleError(`invalid type ${goQuote(last)} for answer rule for ${matchType} rule`);
  }
  if (auto && nameRules > 0) throw new RuleError('auto name answer rule cannot be combined with explicit name anwer rules');
  return { auto, rules };
}

function newNameRule(mode: ModeValue, args: string[]): Rule {
  if (args.length < 2) throw new RuleError('too few arguments for a name rule');
  let matchType: string;
  let from: string;
  let to: string;
  if (args.length === 2) {
    matchType = NameMatch.EXACT;
    from = normalize(args[0]!);
    to = normalize(args[1]!);
  } else {
    matchType = args[0]!.toLowerCase();
    if (matchType === NameMatch.REGEX) {
      from = args[1]!;
      to = args[2]!;
    } else {
      from = normalize(args[1]!);
      to = normalize(args[2]!);
    }
  }
  let auto = false;
  let answers: ResponseRule[] = [];
  if (args.length > 3) ({ auto, rules: answers } = parseAnswerRules(matchType, args.slice(3)));
  switch (matchType) {
    case NameMatch.EXACT:
      // CoreDNS checks the pair as if TO were a pattern for FROM.
      validRegex(to, from);
      return new NameRule(mode, NameMatch.EXACT, from, to, null, true, answers);
    case NameMatch.PREFIX:
      return new NameRule(mode, NameMatch.PREFIX, from, to, null, auto, answers);
    case NameMatch.SUFFIX: {
      // For a suffix, `answer auto` is the same suffix swap backwards, fixed at setup.
      const fixed: ResponseRule[] = [];
      if (auto) {
        const rw = new SuffixRewriter(to, from);
        fixed.push(new NameResponseRule(rw), new ValueResponseRule(rw));
      }
      return new NameRule(mode, NameMatch.SUFFIX, from, to, null, false, [...fixed, ...answers]);
    }
    case NameMatch.SUBSTRING:
      return new NameRule(mode, NameMatch.SUBSTRING, from, to, null, auto, answers);
    case NameMatch.REGEX: {
      const re = validRegex(from, to);
      return new NameRule(mode, NameMatch.REGEX, from, normalize(args[2]!), re, auto, answers);
    }
    default:
      throw new RuleError(`name rule supports only exact, prefix, suffix, substring, and regex name matching, received: ${matchType}`);
  }
}

// ---- type, class

export class TypeRule implements Rule {
  readonly mode: ModeValue;
  readonly from: number;
  readonly to: number;
  constructor(mode: ModeValue, from: number, to: number) {
    this.mode = mode;
    this.from = from;
    this.to = to;
  }
  apply(s: QueryState): RuleResult {
    if (this.from > 0 && this.to > 0 && s.qtype === this.from) {
      s.qtype = this.to;
      return EMPTY;
    }
    return null;
  }
}

export class ClassRule implements Rule {
  readonly mode: ModeValue;
  readonly from: number;
  readonly to: number;
  constructor(mode: ModeValue, from: number, to: number) {
    this.mode = mode;
    this.from = from;
    this.to = to;
  }
  apply(s: QueryState): RuleResult {
    if (this.from > 0 && this.to > 0 && s.qclass === this.from) {
      s.qclass = this.to;
      return EMPTY;
    }
    return null;
  }
}

// ---- name matchers shared by ttl and rcode

type Matcher = (name: string) => boolean;

function nameMatcher(kind: string, arg: string, what: string): Matcher {
  switch (kind.toLowerCase()) {
    case NameMatch.EXACT: {
      const n = normalize(arg);
      return (name) => name === n;
    }
    case NameMatch.PREFIX: {
      const n = normalize(arg);
      return (name) => name.startsWith(n);
    }
    case NameMatch.SUFFIX: {
      const n = normalize(arg);
      return (name) => name.endsWith(n);
    }
    case NameMatch.SUBSTRING: {
      const n = normalize(arg);
      return (name) => name.includes(n);
    }
    case NameMatch.REGEX: {
      if (arg.length > MAX_REGEXP_LEN) throw new RuleError(`regex pattern too long in a ${what} rule: ${arg.length} > ${MAX_REGEXP_LEN}`);
      const re = compile(arg);
      if (re === null) throw new RuleError(`invalid regex pattern in a ${what} rule: ${arg}`);
      return (name) => re.test(name);
    }
    default:
      throw new RuleError(`${what} rule supports only exact, prefix, suffix, substring, and regex name matching`);
  }
}

export class MatchRule implements Rule {
  readonly mode: ModeValue;
  readonly matches: Matcher;
  readonly result: ResponseRule[];
  constructor(mode: ModeValue, matches: Matcher, response: ResponseRule) {
    this.mode = mode;
    this.matches = matches;
    this.result = [response];
  }
  apply(s: QueryState): RuleResult {
    return this.matches(s.lowerName()) ? this.result : null;
  }
}

/** CoreDNS isValidTTL: `N`, `MIN-MAX`, `-MAX`, `MIN-` (not `-`), each within 32 bits. */
function parseTtlRange(v: string): [number, number] | null {
  const parts = v.split('-');
  const u32 = (s: string): number | null => (/^[0-9]+$/.test(s) && Number(s) <= 0xffffffff ? Number(s) : null);
  if (parts.length === 1) {
    const n = u32(parts[0]!);
    return n === null ? null : [n, n];
  }
  if (parts.length !== 2) return null;
  const [a, b] = parts as [string, string];
  if (a === '' && b === '') return null;
  const min = a === '' ? 0 : u32(a);
  const max = b === '' ? 2147483647 : u32(b);
  if (min === null || max === null || min > max) return null;
  return [min, max];
}

function newTtlRule(mode: ModeValue, args: string[]): Rule {
  if (args.length < 2) throw new RuleError(`too few (${args.length}) arguments for a ttl rule`);
  const s = args.length === 2 ? args[1]! : args.length === 3 ? args[2]! : '';
  const range = parseTtlRange(s);
  if (range === null) throw new RuleError(`invalid TTL '${s}' for a ttl rule`);
  const resp = new TtlResponseRule(range[0], range[1]);
  if (args.length === 3) return new MatchRule(mode, nameMatcher(args[0]!, args[1]!, 'ttl'), resp);
  if (args.length > 3) throw new RuleError('many few arguments for a ttl rule');
  return new MatchRule(mode, nameMatcher(NameMatch.EXACT, args[0]!, 'ttl'), resp);
}

function parseRcode(v: string): number {
  if (/^[0-9]+$/.test(v) && Number(v) <= 23) return Number(v);
  return rcodeByName(v.toUpperCase());
}

function newRcodeRule(mode: ModeValue, args: string[]): Rule {
  if (args.length < 3) throw new RuleError(`too few (${args.length}) arguments for a rcode rule`);
  const oldStr = args.length === 3 ? args[1]! : args.length === 4 ? args[2]! : '';
  const newStr = args.length === 3 ? args[2]! : args.length === 4 ? args[3]! : '';
  const from = parseRcode(oldStr);
  if (from < 0) throw new RuleError(`invalid matching RCODE '${oldStr}' for a rcode rule`);
  const to = parseRcode(newStr);
  if (to < 0) throw new RuleError(`invalid replacement RCODE '${newStr}' for a rcode rule`);
  const resp = new RcodeResponseRule(from, to);
  if (args.length === 4) return new MatchRule(mode, nameMatcher(args[0]!, args[1]!, 'rcode'), resp);
  if (args.length > 4) throw new RuleError('many few arguments for a rcode rule');
  return new MatchRule(mode, nameMatcher(NameMatch.EXACT, args[0]!, 'rcode'), resp);
}

// ---- edns0

const Action = { APPEND: 'append', REPLACE: 'replace', SET: 'set', UNSET: 'unset' } as const;
type ActionValue = (typeof Action)[keyof typeof Action];

function removeOption(e: Edns, code: number): void {
  e.options = e.options.filter((o) => o.code !== code);
}

/** Go's %q for the ASCII words a Corefile holds. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** strconv.ParseUint(s, 0, bits): decimal, 0x hex, 0o/leading-0 octal, 0b binary. */
function parseGoUint(s: string, bits: number): number {
  const fail = (why: string): never => {
    throw new RuleError(`strconv.ParseUint: parsing ${goQuote(s)}: ${why}`);
  };
  let body = s;
  let base = 10;
  if (/^0[xX]/.test(s)) [base, body] = [16, s.slice(2)];
  else if (/^0[oO]/.test(s)) [base, body] = [8, s.slice(2)];
  else if (/^0[bB]/.test(s)) [base, body] = [2, s.slice(2)];
  else if (s.length > 1 && s[0] === '0') [base, body] = [8, s.slice(1)];
  const digits = base === 16 ? /^[0-9a-fA-F]+$/ : base === 8 ? /^[0-7]+$/ : base === 2 ? /^[01]+$/ : /^[0-9]+$/;
  if (body === '' || !digits.test(body)) fail('invalid syntax');
  const v = BigInt(base === 10 ? body : `0${base === 16 ? 'x' : base === 8 ? 'o' : 'b'}${body}`);
  if (v >= 1n << BigInt(bits)) fail('value out of range');
  return Number(v);
}

/** Go's encoding/hex.DecodeString error texts. */
function decodeHex(s: string): Uint8Array {
  for (let i = 0; i < s.length; i++) {
    if (!/[0-9a-fA-F]/.test(s[i]!)) {
      if (i === s.length - 1 && s.length % 2 === 1) break;
      const cp = s.codePointAt(i)!;
      throw new RuleError(`encoding/hex: invalid byte: U+${cp.toString(16).toUpperCase().padStart(4, '0')} ${goQuoteRune(s[i]!)}`);
    }
  }
  if (s.length % 2 === 1) throw new RuleError('encoding/hex: odd length hex string');
  return Uint8Array.from(Buffer.from(s, 'hex'));
}

function goQuoteRune(c: string): string {
  return c === "'" ? "'\\''" : `'${c}'`;
}

/** Applies `action` for option `code` with `data`, as CoreDNS's local/NSID/subnet rules do. */
function applyOption(e: Edns, code: number, action: ActionValue, data: Uint8Array, revert: boolean, ignoreAppendOnMatch: boolean): RuleResult {
  for (const o of e.options) {
    if (o.code !== code) continue;
    if (action === Action.REPLACE || action === Action.SET) {
      const resp = revert ? [new EdnsRestoreResponseRule({ code, data: o.data })] : EMPTY;
      o.data = data;
      return resp;
    }
    if (ignoreAppendOnMatch) return null;
  }
  if (action === Action.APPEND || action === Action.SET) {
    e.options.push({ code, data });
    return revert ? [new EdnsRemoveResponseRule(code)] : EMPTY;
  }
  return null;
}

export class EdnsLocalRule implements Rule {
  readonly mode: ModeValue;
  readonly action: ActionValue;
  readonly code: number;
  readonly data: Uint8Array;
  readonly revert: boolean;
  constructor(mode: ModeValue, action: ActionValue, code: number, data: Uint8Array, revert: boolean) {
    this.mode = mode;
    this.action = action;
    this.code = code;
    this.data = data;
    this.revert = revert;
  }
  apply(s: QueryState): RuleResult {
    const e = s.ensureEdns();
    if (this.action === Action.UNSET) {
      removeOption(e, this.code);
      return EMPTY;
    }
    return applyOption(e, this.code, this.action, this.data, this.revert, false);
  }
}

const VARIABLES = new Set(['{qname}', '{qtype}', '{client_ip}', '{client_port}', '{protocol}', '{server_ip}', '{server_port}']);

/** metadata.IsLabel: `plugin/label`, exactly one slash, neither side empty. */
function isMetadataLabel(s: string): boolean {
  const p = s.indexOf('/');
  return p > 0 && p < s.length - 1 && s.lastIndexOf('/') === p;
}

/** The listener's address and port from its `dns://ADDR:PORT` label. */
function serverAddress(req: Request): { ip: string; port: string } {
  try {
    const { host, port } = splitHostPort(req.server.replace(/^dns:\/\//, ''));
    return { ip: host, port };
  } catch (err) {
    if (err instanceof AddressError) return { ip: '', port: '' };
    throw err;
  }
}

export class EdnsVariableRule implements Rule {
  readonly mode: ModeValue;
  readonly action: ActionValue;
  readonly code: number;
  readonly variable: string;
  readonly revert: boolean;
  constructor(mode: ModeValue, action: ActionValue, code: number, variable: string, revert: boolean) {
    this.mode = mode;
    this.action = action;
    this.code = code;
    this.variable = variable;
    this.revert = revert;
  }

  /** The variable's bytes for this query, or null when there is no value. */
  data(s: QueryState): Uint8Array | null {
    const req = s.req;
    const fam = addressFamily(req.remoteAddress) === 6 ? 6 : 4;
    switch (this.variable) {
      case '{qname}':
        return Buffer.from(s.name, 'latin1');
      case '{qtype}':
        return uint16Bytes(s.qtype);
      case '{client_ip}':
        return addressBytes(req.remoteAddress, fam);
      case '{server_ip}':
        return addressBytes(serverAddress(req).ip, fam);
      case '{client_port}':
        return uint16Bytes(req.remotePort);
      case '{server_port}': {
        const p = serverAddress(req).port;
        return /^[0-9]+$/.test(p) && Number(p) <= 0xffff ? uint16Bytes(Number(p)) : null;
      }
      case '{protocol}':
        return Buffer.from(req.proto === 1 ? 'tcp' : 'udp');
      default: {
        const fn = req.metadata?.get(this.variable.slice(1, -1));
        if (fn === undefined) return null;
        const v = fn();
        return v.length > 0 ? Buffer.from(v) : null;
      }
    }
  }

  apply(s: QueryState): RuleResult {
    const data = this.data(s);
    if (data === null) return null;
    return applyOption(s.ensureEdns(), this.code, this.action, data, this.revert, true);
  }
}

const NO_DATA = new Uint8Array(0);

export class EdnsNsidRule implements Rule {
  readonly mode: ModeValue;
  readonly action: ActionValue;
  readonly revert: boolean;
  constructor(mode: ModeValue, action: ActionValue, revert: boolean) {
    this.mode = mode;
    this.action = action;
    this.revert = revert;
  }
  apply(s: QueryState): RuleResult {
    const e = s.ensureEdns();
    if (this.action === Action.UNSET) {
      removeOption(e, OptCode.NSID);
      return EMPTY;
    }
    return applyOption(e, OptCode.NSID, this.action, NO_DATA, this.revert, false);
  }
}

export class EdnsSubnetRule implements Rule {
  readonly mode: ModeValue;
  readonly action: ActionValue;
  readonly v4: number;
  readonly v6: number;
  readonly revert: boolean;
  constructor(mode: ModeValue, action: ActionValue, v4: number, v6: number, revert: boolean) {
    this.mode = mode;
    this.action = action;
    this.v4 = v4;
    this.v6 = v6;
    this.revert = revert;
  }
  apply(s: QueryState): RuleResult {
    const e = s.ensureEdns();
    if (this.action === Action.UNSET) {
      removeOption(e, OptCode.SUBNET);
      return EMPTY;
    }
    const data = clientSubnetData(s.req.remoteAddress, this.v4, this.v6);
    for (const o of e.options) {
      if (o.code !== OptCode.SUBNET) continue;
      if ((this.action === Action.REPLACE || this.action === Action.SET) && data !== null) {
        const resp = this.revert ? [new EdnsRestoreResponseRule({ code: o.code, data: o.data })] : EMPTY;
        o.data = data;
        return resp;
      }
      return null;
    }
    if ((this.action === Action.APPEND || this.action === Action.SET) && data !== null) {
      e.options.push({ code: OptCode.SUBNET, data });
      return this.revert ? [new EdnsRemoveResponseRule(OptCode.SUBNET)] : EMPTY;
    }
    return null;
  }
}

function newEdnsRule(mode: ModeValue, all: string[]): Rule {
  let args = all;
  if (args.length < 2) throw new RuleError('too few arguments for an EDNS0 rule');
  const type = args[0]!.toLowerCase();
  const action = args[1]!.toLowerCase() as ActionValue;
  if (action === Action.UNSET) {
    switch (type) {
      case 'local':
        if (args.length !== 3) throw new RuleError('local unset action requires exactly two arguments');
        return new EdnsLocalRule(mode, action, parseGoUint(args[2]!, 16), NO_DATA, false);
      case 'nsid':
        if (args.length !== 2) throw new RuleError('nsid unset action requires exactly one argument');
        return new EdnsNsidRule(mode, action, false);
      case 'subnet':
        if (args.length !== 2) throw new RuleError('subnet unset action requires exactly one argument');
        return new EdnsSubnetRule(mode, action, 0, 0, false);
      default:
        throw new RuleError(`invalid rule type ${goQuote(type)}`);
    }
  }
  if (action !== Action.APPEND && action !== Action.REPLACE && action !== Action.SET) {
    throw new RuleError(`invalid action: ${goQuote(action)}`);
  }
  let revert = false;
  if (args[args.length - 1] === 'revert') {
    revert = true;
    args = args.slice(0, -1);
  }
  switch (type) {
    case 'local': {
      if (args.length !== 4) throw new RuleError('EDNS0 local rules require three or four args');
      const data = args[3]!;
      if (data.startsWith('{') && data.endsWith('}')) {
        const code = parseGoUint(args[2]!, 16);
        if (!VARIABLES.has(data) && !isMetadataLabel(data.slice(1, -1))) throw new RuleError(`unsupported variable name ${goQuote(data)}`);
        return new EdnsVariableRule(mode, action, code, data, revert);
      }
      const code = parseGoUint(args[2]!, 16);
      const bytes = data.startsWith('0x') ? decodeHex(data.slice(2)) : Uint8Array.from(Buffer.from(data, 'utf8'));
      return new EdnsLocalRule(mode, action, code, bytes, revert);
    }
    case 'nsid':
      if (args.length !== 2) throw new RuleError('EDNS0 NSID rules can accept no more than one arg');
      return new EdnsNsidRule(mode, action, revert);
    case 'subnet': {
      if (args.length !== 4) throw new RuleError('EDNS0 subnet rules require three or four args');
      const v4 = parseGoUint(args[2]!, 16);
      if (v4 > 32) throw new RuleError(`invalid IPv4 bit mask length ${v4}`);
      const v6 = parseGoUint(args[3]!, 16);
      if (v6 > 128) throw new RuleError(`invalid IPv6 bit mask length ${v6}`);
      return new EdnsSubnetRule(mode, action, v4, v6, revert);
    }
    default:
      throw new RuleError(`invalid rule type ${goQuote(type)}`);
  }
}

// ------------------------------------------------------------------------------------------------

/** CoreDNS newRule: one rule from its words (`[continue|stop] FIELD ...`). */
export function newRule(args: string[]): Rule {
  if (args.length === 0) throw new RuleError('no rule type specified for rewrite');
  const arg0 = args[0]!.toLowerCase();
  let mode: ModeValue = Mode.STOP;
  let ruleType: string;
  let start: number;
  if (arg0 === Mode.CONTINUE || arg0 === Mode.STOP) {
    if (args.length < 2) throw new RuleError(`${arg0} rule must begin with a rule type`);
    mode = arg0;
    ruleType = args[1]!.toLowerCase();
    start = 2;
  } else {
    ruleType = arg0;
    start = 1;
  }
  const rest = args.slice(start);
  switch (ruleType) {
    case 'answer':
      throw new RuleError('response rewrites must begin with a name rule');
    case 'name':
      return newNameRule(mode, rest);
    case 'class':
    case 'type': {
      if (rest.length !== 2) throw new RuleError(`${ruleType} rules must have exactly two arguments`);
      const lookup = ruleType === 'type' ? typeByName : classByName;
      const from = lookup(rest[0]!.toUpperCase());
      if (from < 0) throw new RuleError(`invalid ${ruleType} ${goQuote(rest[0]!.toUpperCase())}`);
      const to = lookup(rest[1]!.toUpperCase());
      if (to < 0) throw new RuleError(`invalid ${ruleType} ${goQuote(rest[1]!.toUpperCase())}`);
      return ruleType === 'type' ? new TypeRule(mode, from, to) : new ClassRule(mode, from, to);
    }
    case 'edns0':
      return newEdnsRule(mode, rest);
    case 'ttl':
      return newTtlRule(mode, rest);
    case 'rcode':
      return newRcodeRule(mode, rest);
    case 'cname':
      throw new RuleError('cname rules are not supported by node-local-dns (they need an upstream lookup of the new target)');
    default:
      throw new RuleError(`invalid rule type ${goQuote(args[0]!)}`);
  }
}
