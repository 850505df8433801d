/**
 * The `template` plugin's query path, behaving as CoreDNS's plugin/template/template.go:
 *
 *  - A query whose name is in none of the templates' zones goes to the next plugin.
 *  - Templates are tried in Corefile order. One whose zone, class or type does not fit is
 *    skipped (CLASS or TYPE ANY in the template, or ANY in the query, fits everything). Then
 *    its regexes are tried in order against the lower-cased query name; the first that
 *    matches wins. No regex matching: the next template when `fallthrough` covers the name,
 *    otherwise SERVFAIL (answered as a plugin error: no cache stores it).
 *  - A match counts coredns_template_matches_total. `rcode SERVFAIL` answers SERVFAIL as a
 *    plugin error. Otherwise the answer, additional and authority templates are executed and
 *    parsed as zone-file records (origin `.`, TTL 3600 when none is given) into an
 *    authoritative reply (AA set, RA not, the query's RD/CD/opcode/EDNS mirrored) with the
 *    template's rcode; a template that fails to execute or gives an unparsable record counts
 *    its failure metric and answers SERVFAIL (as a plugin error, reported to `errors`).
 *  - For an A or AAAA query, each CNAME in the answer is followed: the target is looked up
 *    through the server block's chain (cache, forward, ...) with the query's type and class
 *    IN, and its answer records are appended (TC copied), as CoreDNS's upstream lookup does.
 *  - The reply's OPT echoes the query's NSID, EXPIRE, COOKIE, TCP keepalive and padding
 *    options, as CoreDNS's server does for a reply without OPT (request.SizeAndDo).
 *  - `ederror` adds an Extended DNS Error option (RFC 8914) to an OPT with DO set, as CoreDNS's
 *    SetEdns0(4096, true) does; the UDP size is the client's when it sent EDNS, else 4096.
 *  - No template matched (all skipped or fell through): the next plugin.
 *
 * The reply goes through `req.reply`, so a `cache` before template in the chain stores it.
 * Per-query work when no template's class and type fit the query: two comparisons per template.
 */
import type { Buffer } from 'node:buffer';
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, ResponseWriter } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { decodeMessage, encodeMessage, parseRR, replyTo, rrTypeName, type EdnsOption, type Message, type RR } from '../../wire/codec.ts';
import { edeOption } from '../../wire/ede.ts';
import { Flag, QClass, QType, Rcode } from '../../wire/codes.ts';
import { nameInZone } from '../../wire/zone-match.ts';
import type { GoTemplate, StructSpec, TemplateFunc, TypeSpec } from '../../util/gotemplate.ts';
import { TemplateError, parseUint } from '../../util/gotemplate.ts';
import { countFailure, countMatch } from './metrics.ts';

const PLUGIN_NAME = 'template';

/** Class names as miekg/dns ClassToString has them. */
export const CLASS_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['IN', 1],
  ['CS', 2],
  ['CH', 3],
  ['HS', 4],
  ['NONE', 254],
  ['ANY', 255],
]);
const CLASS_NAME = new Map([...CLASS_BY_NAME].map(([k, v]) => [v, k]));

/** miekg/dns ClassToString: "" for a class it has no name for. */
function className(cls: number): string {
  return CLASS_NAME.get(cls) ?? '';
}

export interface Ederror {
  code: number;
  reason: string;
}

export interface TemplateRule {
  qclass: number;
  qtype: number;
  /** Normalised zones. */
  zones: string[];
  regexes: RegExp[];
  /** Go source of each regex (data.Regex). */
  regexSources: string[];
  rcode: number;
  answer: GoTemplate[];
  additional: GoTemplate[];
  authority: GoTemplate[];
  ederror: Ederror | null;
  /** Fallthrough zones; null: no fallthrough. */
  fall: string[] | null;
}

/** The longest of `zones` that `name` is in, or "" (CoreDNS plugin.Zones.Matches). */
function matchZone(zones: readonly string[], name: string): string {
  let best = '';
  for (const z of zones) if (z.length > best.length && nameInZone(name, z)) best = z;
  if (best === '' && zones.includes('.')) return '.';
  return best;
}

// ------------------------------------------------------------------ template data

/** dns.Question as a template sees it; prints as miekg does (`;name.\tIN\t A`). */
class QuestionView {
  static readonly goName = '*dns.Question';
  readonly Name: string;
  readonly Qtype: bigint;
  readonly Qclass: bigint;
  readonly #typeText: string;
  constructor(name: string, qtype: number, qclass: number, typeText: string) {
    this.Name = name;
    this.Qtype = BigInt(qtype);
    this.Qclass = BigInt(qclass);
    this.#typeText = typeText;
  }
  goString(): string {
    const cls = className(Number(this.Qclass));
    return `;${this.Name}\t${cls === '' ? `CLASS${this.Qclass}` : cls}\t ${this.#typeText}`;
  }
}

/** The incoming dns.Msg's header fields and question (the parts a query has). */
class MessageView {
  static readonly goName = '*dns.Msg';
  readonly Id: bigint;
  readonly Response: boolean;
  readonly Opcode: bigint;
  readonly Authoritative: boolean;
  readonly Truncated: boolean;
  readonly RecursionDesired: boolean;
  readonly RecursionAvailable: boolean;
  readonly Zero: boolean;
  readonly AuthenticatedData: boolean;
  readonly CheckingDisabled: boolean;
  readonly Rcode: bigint;
  readonly Question: QuestionView[];
  constructor(id: number, flags: number, q: QuestionView) {
    this.Id = BigInt(id);
    this.Response = (flags & Flag.QR) !== 0;
    this.Opcode = BigInt((flags & Flag.OPCODE_MASK) >> Flag.OPCODE_SHIFT);
    this.Authoritative = (flags & Flag.AA) !== 0;
    this.Truncated = (flags & Flag.TC) !== 0;
    this.RecursionDesired = (flags & Flag.RD) !== 0;
    this.RecursionAvailable = (flags & Flag.RA) !== 0;
    this.Zero = (flags & Flag.Z) !== 0;
    this.AuthenticatedData = (flags & Flag.AD) !== 0;
    this.CheckingDisabled = (flags & Flag.CD) !== 0;
    this.Rcode = BigInt(flags & Flag.RCODE_MASK);
    this.Question = [q];
  }
  /** miekg prints a whole message as dig does: not a record, so not supported. */
  goString(): string {
    throw new TemplateError('printing a value of type *dns.Msg is not supported by node-local-dns templates');
  }
}

/** CoreDNS's templateData. */
class TemplateData {
  static readonly goName = '*template.templateData';
  Zone = '';
  Name = '';
  Regex = '';
  Match: string[] = [];
  Group = new Map<string, string>();
  Class = '';
  Type = '';
  Message: MessageView | null = null;
  Question: QuestionView | null = null;
  Remote = '';
  /** `var` is not supported: always empty. */
  Var = new Map<string, unknown>();
  readonly #md: Map<string, () => string> | null;
  constructor(md: Map<string, () => string> | null) {
    this.#md = md;
  }
  /** The value of a metadata label ("" without the metadata plugin or the label). */
  Meta(label: unknown): string {
    if (typeof label !== 'string')
      throw new TemplateError(label === undefined ? 'invalid value; expected string' : `wrong type for value; expected string; got ${typeof label}`);
    const f = this.#md?.get(label);
    return f === undefined ? '' : f();
  }
}

const QUESTION_TYPE: StructSpec = { goName: '*dns.Question', fields: { Name: 'string', Qtype: 'uint', Qclass: 'uint' } };
const MESSAGE_TYPE: StructSpec = {
  goName: '*dns.Msg',
  printable: false,
  fields: {
    Id: 'uint',
    Response: 'bool',
    Opcode: 'int',
    Authoritative: 'bool',
    Truncated: 'bool',
    RecursionDesired: 'bool',
    RecursionAvailable: 'bool',
    Zero: 'bool',
    AuthenticatedData: 'bool',
    CheckingDisabled: 'bool',
    Rcode: 'int',
    Question: { list: QUESTION_TYPE, goName: '[]dns.Question' },
  },
};

/** The types the templates are checked against at setup. */
export const DATA_TYPE: TypeSpec = {
  goName: '*template.templateData',
  fields: {
    Zone: 'string',
    Name: 'string',
    Regex: 'string',
    Match: { list: 'string', goName: '[]string' },
    Group: { map: 'string', goName: 'map[string]string' },
    Class: 'string',
    Type: 'string',
    Message: MESSAGE_TYPE,
    Question: QUESTION_TYPE,
    Remote: 'string',
    Var: { map: 'any', goName: 'map[string]interface {}' },
  },
  methods: { Meta: { args: 1, result: 'string' } },
};

function intArg(v: unknown, what: string): number {
  if (typeof v !== 'bigint') throw new TemplateError(`wrong type for value; expected int; got ${v === undefined ? 'invalid value' : typeof v} (${what})`);
  return Number(v);
}

/** CoreDNS's template functions: parseInt is strconv.ParseUint. */
export const TEMPLATE_FUNCS: Record<string, TemplateFunc> = {
  parseInt: {
    args: 3,
    result: 'uint',
    call(args) {
      const s = args[0];
      if (typeof s !== 'string')
        throw new TemplateError(s === undefined ? 'invalid value; expected string' : `wrong type for value; expected string; got ${typeof s}`);
      try {
        return parseUint(s, intArg(args[1], 'base'), intArg(args[2], 'bitSize'));
      } catch (err) {
        throw new TemplateError(`error calling parseInt: ${(err as Error).message}`);
      }
    },
  },
};

// ------------------------------------------------------------------ the handler

/** Collects the response of an internal lookup (CoreDNS's nonwriter). */
class CaptureWriter implements ResponseWriter {
  private readonly done: (msg: Message | null) => void;
  constructor(done: (msg: Message | null) => void) {
    this.done = done;
  }
  writeMsg(_req: Request, msg: Buffer, len: number): void {
    let m: Message | null = null;
    try {
      m = decodeMessage(msg, len);
    } catch {
      m = null;
    }
    this.done(m);
  }
}

/** EDNS options CoreDNS's server copies from the query into a reply without OPT (request.supportedOptions). */
const ECHOED_OPTIONS = new Set([3 /* NSID */, 9 /* EXPIRE */, 10 /* COOKIE */, 11 /* TCP keepalive */, 12 /* padding */]);

/** The query's options a reply echoes, as CoreDNS's ScrubWriter (SizeAndDo) does. */
function echoedOptions(req: Request): EdnsOption[] {
  if (req.optOffset < 0) return [];
  try {
    const q = decodeMessage(req.msg, req.msgLen);
    return q.edns === null ? [] : q.edns.options.filter((o) => ECHOED_OPTIONS.has(o.code));
  } catch {
    return [];
  }
}

/** Internal lookups: their CNAME answers are not followed again (no lookup loops). */
const lookups = new WeakSet<Request>();

/**
 * The server's internal query entry, when it offers one (`Request.lookup`: routes a query as a
 * client's on the same listener, as CoreDNS's upstream.Lookup calls Server.ServeDNS); null
 * when it does not, and the block's own chain is used.
 */
function lookupOf(req: Request): ((sub: Request) => void) | null {
  return req.lookup;
}

/** The block chain a request was routed to (the server's RouteTarget), if any. */
function chainOf(req: Request): Handler | null {
  const t = req.target as { chain?: Handler } | null;
  return t !== null && typeof t === 'object' && t.chain !== undefined ? t.chain : null;
}

export class TemplatePlugin implements Plugin {
  readonly name = PLUGIN_NAME;
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly rules: TemplateRule[];
  /** The union of the rules' zones (CoreDNS Handler.Zones). */
  readonly zones: string[];

  constructor(rules: TemplateRule[]) {
    this.rules = rules;
    this.zones = rules.flatMap((r) => r.zones);
  }

  compose(next: Handler): Handler {
    return new TemplateHandler(this, next);
  }
}

/** Whether a rule's class and type fit the query's (ANY on either side fits). */
function fits(r: TemplateRule, qclass: number, qtype: number): boolean {
  if (r.qclass !== QClass.ANY && qclass !== QClass.ANY && qclass !== r.qclass) return false;
  if (r.qtype !== QType.ANY && qtype !== QType.ANY && qtype !== r.qtype) return false;
  return true;
}

class TemplateHandler implements Handler {
  private readonly p: TemplatePlugin;
  private readonly next: Handler;
  private readonly typeName: (t: number) => string;

  constructor(p: TemplatePlugin, next: Handler) {
    this.p = p;
    this.next = next;
    this.typeName = typeNameOf;
  }

  serve(req: Request): void {
    const rules = this.p.rules;
    // Fast path: no template can match this class and type; no strings made.
    let any = false;
    for (let i = 0; i < rules.length; i++) {
      if (fits(rules[i]!, req.qclass, req.qtype)) {
        any = true;
        break;
      }
    }
    if (!any) return this.next.serve(req);

    const name = req.name().toLowerCase();
    if (matchZone(this.p.zones, name) === '') return this.next.serve(req);

    for (const r of rules) {
      const zone = matchZone(r.zones, name);
      if (zone === '' || !fits(r, req.qclass, req.qtype)) continue;
      const data = this.match(r, req, name, zone);
      if (data === null) {
        if (r.fall !== null && matchZone(r.fall, name) !== '') continue;
        return req.fail(PLUGIN_NAME, Rcode.SERVFAIL, null);
      }
      countMatch(req.server, data.Zone, data.Class, data.Type);
      if (r.rcode === Rcode.SERVFAIL) return req.fail(PLUGIN_NAME, Rcode.SERVFAIL, null);
      return this.answer(r, req, data);
    }
    this.next.serve(req);
  }

  /** The template data for the first regex of `r` that matches, or null. */
  private match(r: TemplateRule, req: Request, name: string, zone: string): TemplateData | null {
    for (let i = 0; i < r.regexes.length; i++) {
      const m = r.regexes[i]!.exec(name);
      if (m === null) continue;
      const data = new TemplateData(req.metadata);
      data.Zone = zone;
      data.Regex = r.regexSources[i]!;
      data.Name = name;
      data.Remote = req.remoteAddress;
      data.Class = className(req.qclass !== QClass.ANY ? req.qclass : r.qclass);
      data.Type = this.typeName(req.qtype !== QType.ANY ? req.qtype : r.qtype);
      const q = new QuestionView(req.name(), req.qtype, req.qclass, typeText(req.qtype));
      data.Question = q;
      data.Message = new MessageView(req.id, req.flags, q);
      data.Match = Array.from(m, (s) => s ?? '');
      for (let k = 0; k < data.Match.length; k++) data.Group.set(String(k), data.Match[k]!);
      if (m.groups !== undefined) for (const [k, v] of Object.entries(m.groups)) data.Group.set(k, v ?? '');
      return data;
    }
    return null;
  }

  /** Executes one section's templates; null after counting and reporting a failure. */
  private section(req: Request, data: TemplateData, section: string, tmpls: GoTemplate[], out: RR[]): boolean {
    for (const t of tmpls) {
      let text: string;
      try {
        text = t.execute(data);
      } catch (err) {
        countFailure(false, req.server, data.Zone, data.Class, data.Type, section, t.canonical());
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, err as Error);
        return false;
      }
      if (text.trim() === '') {
        // miekg's NewRR gives no record and no error for blank text; CoreDNS then fails the query.
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, new Error(`template ${section} produced no record: ${JSON.stringify(t.source)}`));
        return false;
      }
      try {
        out.push(parseRR(text, { origin: '.', defaultTtl: 3600 }));
      } catch (err) {
        countFailure(true, req.server, data.Zone, data.Class, data.Type, section, t.canonical());
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, err as Error);
        return false;
      }
    }
    return true;
  }

  private answer(r: TemplateRule, req: Request, data: TemplateData): void {
    const answer: RR[] = [];
    const additional: RR[] = [];
    const authority: RR[] = [];
    if (!this.section(req, data, 'answer', r.answer, answer)) return;
    if (!this.section(req, data, 'additional', r.additional, additional)) return;
    if (!this.section(req, data, 'authority', r.authority, authority)) return;
    const m = replyTo(req, { answer, additional, authority, rcode: r.rcode });
    m.flags |= Flag.AA;
    if (r.ederror !== null) {
      const udpSize = m.edns !== null ? m.edns.udpSize : 4096;
      m.edns = { udpSize, extRcode: 0, version: 0, dnssecOk: true, options: [edeOption(r.ederror.code, r.ederror.reason)] };
    } else if (m.edns !== null) {
      m.edns.options = echoedOptions(req);
    }
    const cnames = (req.qtype === QType.A || req.qtype === QType.AAAA) && !lookups.has(req) ? answer.filter((rr) => rr.type === QType.CNAME) : [];
    if (cnames.length === 0) return this.send(req, m);
    this.follow(req, m, cnames, 0);
  }

  /** Looks up each CNAME target in turn through the block's chain, appending its answers. */
  private follow(req: Request, m: Message, cnames: RR[], i: number): void {
    const chain = chainOf(req);
    const lookup = lookupOf(req);
    if (i >= cnames.length || (chain === null && lookup === null)) return this.send(req, m);
    const target = cnames[i]!.data as string;
    const sub = subRequest(req, target, (res) => {
      if (res !== null) {
        m.flags = (m.flags & ~Flag.TC) | (res.flags & Flag.TC);
        m.answer.push(...res.answer);
      }
      this.follow(req, m, cnames, i + 1);
    });
    if (sub === null) return this.follow(req, m, cnames, i + 1);
    try {
      if (lookup !== null) lookup(sub);
      else chain!.serve(sub);
    } catch {
      if (!sub.replied) this.follow(req, m, cnames, i + 1);
    }
  }

  private send(req: Request, m: Message): void {
    if (req.replied) return;
    const out = encodeMessage(m);
    req.reply(out, out.length, PLUGIN_NAME);
  }
}

/** A query for `name` with the request's type, class IN and EDNS, through CaptureWriter. */
function subRequest(req: Request, name: string, done: (m: Message | null) => void): Request | null {
  const q: Message = {
    id: req.id,
    flags: req.flags & (Flag.OPCODE_MASK | Flag.RD | Flag.CD),
    rcode: 0,
    question: [{ name, type: req.qtype, class: QClass.IN }],
    answer: [],
    authority: [],
    additional: [],
    edns: req.edns ? { udpSize: req.udpSize, extRcode: 0, version: 0, dnssecOk: req.dnssecOk, options: [] } : null,
  };
  let bytes: Buffer;
  try {
    bytes = encodeMessage(q);
  } catch {
    return null;
  }
  const sub = req.derive(bytes, new CaptureWriter(done));
  if (sub === null) return null;
  sub.target = req.target;
  sub.metadata = req.metadata;
  sub.tap = req.tap;
  lookups.add(sub);
  return sub;
}

/** miekg/dns TypeToString: "" for a type it has no name for. */
function typeNameOf(t: number): string {
  const n = rrTypeName(t);
  return /^TYPE[0-9]+$/.test(n) ? '' : n;
}

/** miekg/dns Type(t).String(): the name, or TYPE123. */
function typeText(t: number): string {
  return rrTypeName(t);
}
