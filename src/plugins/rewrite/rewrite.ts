/**
 * The `rewrite` plugin's query path (CoreDNS plugin/rewrite: rewrite.go, reverter.go).
 *
 * Per query the rules run in order on the question name (lower-cased), type, class and
 * EDNS(0) options; a rule that applies ends the run unless its mode is `continue`. When none
 * applies the query goes on untouched: the cost is the qname as a string and the rules'
 * string comparisons.
 *
 * When the query changed, a new query message is encoded (src/wire/codec.ts) and parsed with
 * parseQuery into the same Request, so msg, msgLen and every parsed field (qnameEnd,
 * labelCount, nameHash, qtype, qclass, edns, dnssecOk, optOffset) describe the rewritten
 * query for the plugins after rewrite (forward). The client's transport limit (udpSize)
 * stays. A ResponseWriter is swapped in; on the response it puts the client's own Request
 * back (the original buffer and fields), then rewrites the response: the question becomes
 * the client's (name in the client's spelling, type, class), the response rules run over
 * authority, answer and additional records in the reverse order of the rules that produced
 * them, an OPT the client did not send is dropped, and the new message goes to the previous
 * writer. So the plugins before rewrite (cache, log, dnstap, the server's metrics) only ever
 * see the client's query and a response that matches it: `cache` keys and stores under the
 * client's name.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, ResponseWriter } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import { Rcode } from '../../wire/codes.ts';
import { decodeMessage, encodeMessage } from '../../wire/codec.ts';
import type { Message, Question } from '../../wire/codec.ts';
import { buildEmptyResponse } from '../../wire/message.ts';
import { encodeName } from '../../wire/name.ts';
import { ParseResult, parseQuery } from '../../wire/query.ts';
import { Mode, QueryState, type ResponseRule, type Rule } from './rules.ts';
import { headerRcode } from '../../wire/header.ts';

const PLUGIN_NAME = 'rewrite';

/** The parsed fields of a Request, kept to put the client's query back. */
class SavedQuery {
  readonly msg: Buffer;
  readonly msgLen: number;
  readonly id: number;
  readonly flags: number;
  readonly qnameEnd: number;
  readonly questionEnd: number;
  readonly qtype: number;
  readonly qclass: number;
  readonly labelCount: number;
  readonly nameHash: number;
  readonly edns: boolean;
  readonly ednsVersion: number;
  readonly udpSize: number;
  readonly dnssecOk: boolean;
  readonly optOffset: number;
  readonly name: string;

  constructor(req: Request) {
    this.msg = req.msg;
    this.msgLen = req.msgLen;
    this.id = req.id;
    this.flags = req.flags;
    this.qnameEnd = req.qnameEnd;
    this.questionEnd = req.questionEnd;
    this.qtype = req.qtype;
    this.qclass = req.qclass;
    this.labelCount = req.labelCount;
    this.nameHash = req.nameHash;
    this.edns = req.edns;
    this.ednsVersion = req.ednsVersion;
    this.udpSize = req.udpSize;
    this.dnssecOk = req.dnssecOk;
    this.optOffset = req.optOffset;
    this.name = req.name();
  }

  restore(req: Request): void {
    req.msg = this.msg;
    req.msgLen = this.msgLen;
    req.id = this.id;
    req.flags = this.flags;
    req.qnameEnd = this.qnameEnd;
    req.questionEnd = this.questionEnd;
    req.qtype = this.qtype;
    req.qclass = this.qclass;
    req.labelCount = this.labelCount;
    req.nameHash = this.nameHash;
    req.edns = this.edns;
    req.ednsVersion = this.ednsVersion;
    req.udpSize = this.udpSize;
    req.dnssecOk = this.dnssecOk;
    req.optOffset = this.optOffset;
    setCachedName(req, this.name);
  }
}

/** Request.name() caches the qname text; after the message is swapped the cache must follow. */
function setCachedName(req: Request, name: string | null): void {
  req.resetName(name);
}

/** Wraps the request's writer while a rewritten query is answered. */
class RewriteWriter implements ResponseWriter {
  private readonly prev: ResponseWriter;
  private readonly saved: SavedQuery | null;
  private readonly question: Question;
  private readonly rules: ResponseRule[];
  private readonly restoreQuestion: boolean;

  constructor(prev: ResponseWriter, saved: SavedQuery | null, question: Question, rules: ResponseRule[], restoreQuestion: boolean) {
    this.prev = prev;
    this.saved = saved;
    this.question = question;
    this.rules = rules;
    this.restoreQuestion = restoreQuestion;
  }

  writeMsg(req: Request, msg: Buffer, len: number): void {
    if (this.saved !== null) this.saved.restore(req);
    req.writer = this.prev;
    let out: Buffer;
    try {
      out = rewriteResponse(msg, len, this.restoreQuestion ? this.question : null, this.rules, req.edns);
    } catch (err) {
      // A response the codec cannot read or write back: the client gets SERVFAIL for its own question.
      req.reportError(PLUGIN_NAME, new Error(`response rewrite failed: ${(err as Error).message}`));
      req.errorReply = true;
      out = buildEmptyResponse(req, Rcode.SERVFAIL);
    }
    req.rcode = headerRcode(out);
    req.responseLen = out.length;
    this.prev.writeMsg(req, out, out.length);
  }
}

/**
 * The response as the client gets it: its question back, the response rules run over every
 * record (rules in reverse order) and then over the message, an OPT it did not send dropped.
 */
function rewriteResponse(msg: Buffer, len: number, question: Question | null, rules: readonly ResponseRule[], clientEdns: boolean): Buffer {
  const m: Message = decodeMessage(msg, len);
  if (question !== null) {
    const q = { name: question.name, type: question.type, class: question.class };
    if (m.question.length === 0) m.question.push(q);
    else m.question[0] = q;
  }
  if (rules.length > 0) {
    for (const section of [m.authority, m.answer, m.additional]) {
      for (const rr of section) {
        for (let i = rules.length - 1; i >= 0; i--) rules[i]!.record?.(rr);
      }
    }
    for (let i = rules.length - 1; i >= 0; i--) rules[i]!.message?.(m);
  }
  if (!clientEdns && m.edns !== null && m.rcode <= 15) m.edns = null;
  return encodeMessage(m);
}

/** The query message with the state's question and OPT. */
function rewriteQuery(req: Request, s: QueryState, decoded: Message | null): Buffer {
  const m = decoded ?? decodeMessage(req.msg, req.msgLen);
  m.question[0] = { name: s.name, type: s.qtype, class: s.qclass };
  if (s.edns !== undefined) m.edns = s.edns;
  return encodeMessage(m);
}

/** CoreDNS checks dns.IsDomainName on the new question name. */
function validName(name: string): boolean {
  try {
    encodeName(name);
    return true;
  } catch {
    return false;
  }
}

class RewriteHandler implements Handler {
  private readonly rules: readonly Rule[];
  private readonly next: Handler;

  constructor(rules: readonly Rule[], next: Handler) {
    this.rules = rules;
    this.next = next;
  }

  serve(req: Request): void {
    const s = new QueryState(req);
    let responseRules: ResponseRule[] | null = null;
    let applied = false;
    const rules = this.rules;
    for (let i = 0; i < rules.length; i++) {
      const rule = rules[i]!;
      const r = rule.apply(s);
      if (r === null) continue;
      applied = true;
      if (!validName(s.name)) {
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, new Error(`invalid name after rewrite: ${s.name}`));
        return;
      }
      if (r.length > 0) responseRules = responseRules === null ? [...r] : responseRules.concat(r);
      if (rule.mode === Mode.STOP) break;
    }
    const changed = s.nameChanged() || s.qtype !== req.qtype || s.qclass !== req.qclass || s.edns !== undefined;
    if (!changed && (!applied || responseRules === null)) {
      this.next.serve(req);
      return;
    }
    const question: Question = { name: req.name(), type: req.qtype, class: req.qclass };
    let saved: SavedQuery | null = null;
    if (changed) {
      saved = new SavedQuery(req);
      let buf: Buffer;
      try {
        buf = rewriteQuery(req, s, s.decoded);
      } catch (err) {
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, new Error(`query rewrite failed: ${(err as Error).message}`));
        return;
      }
      req.msg = buf;
      req.msgLen = buf.length;
      if (parseQuery(req) !== ParseResult.OK) {
        saved.restore(req);
        req.fail(PLUGIN_NAME, Rcode.SERVFAIL, new Error(`rewritten query does not parse: ${s.name}`));
        return;
      }
      req.udpSize = saved.udpSize;
      setCachedName(req, null);
    }
    req.writer = new RewriteWriter(req.writer, saved, question, responseRules ?? [], changed);
    this.next.serve(req);
  }
}

export class RewritePlugin implements Plugin {
  readonly name = PLUGIN_NAME;
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly rules: readonly Rule[];

  constructor(rules: readonly Rule[]) {
    this.rules = rules;
  }

  compose(next: Handler): Handler {
    return new RewriteHandler(this.rules, next);
  }
}
