/**
 * `log [NAMES...] [FORMAT]` and `log [NAMES...] [FORMAT] { class success|denial|error|all }`
 * (CoreDNS plugin/log). The default is CoreDNS's common log format:
 *   {remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}
 * printed as `[INFO] 127.0.0.1:40212 - 24823 "A IN example.org. udp 41 false 4096" NOERROR qr,rd,ra 68 0.000195959s`.
 * Logging wraps the response writer, so it costs an object per query: it is off the hit path
 * unless configured.
 */
import { PluginScope } from '../../plugin.ts';
import type { Handler, Plugin, PluginSetup, SetupContext, ResponseWriter } from '../../plugin.ts';
import type { Request } from '../../server/request.ts';
import type { Directive } from '../../corefile/types.ts';
import { errorAt, blockLines, unknownPropertyError, argCountError } from '../../corefile/setup-helpers.ts';
import { canonicalName } from '../../wire/name.ts';
import { ZoneMatcher } from '../../wire/zone-match.ts';
import { ResponseScan, scanResponse } from '../../wire/message.ts';
import { ResponseClass, typify, type ResponseClassValue } from '../../wire/typify.ts';
import { Flag, Opcode, QType } from '../../wire/codes.ts';
import { responseFlagsWord, responseFullRcode } from '../../wire/response-fields.ts';
import { rrClassName, rrTypeName } from '../../wire/codec.ts';
import { writeLine } from '../../util/log.ts';
import { AddressError, splitHostPort } from '../../metrics/http-endpoints.ts';

const COMMON_LOG_FORMAT = '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}';
const COMBINED_LOG_FORMAT = COMMON_LOG_FORMAT + ' "{>opcode}"';

export const LogClass = { SUCCESS: 1, DENIAL: 2, ERROR: 4, ALL: 7 } as const;

type PartFn = (req: Request, resp: Buffer, durationMs: number) => string;
type Part = string | PartFn;

/** CoreDNS's replacer.EmptyValue: what a placeholder without a value prints. */
const EMPTY = '-';

function responseFlags(resp: Buffer): string {
  const f = responseFlagsWord(resp, resp.length);
  if (f < 0) return EMPTY;
  const out: string[] = [];
  if (f & 0x8000) out.push('qr');
  if (f & 0x0400) out.push('aa');
  if (f & 0x0200) out.push('tc');
  if (f & 0x0100) out.push('rd');
  if (f & 0x0080) out.push('ra');
  if (f & 0x0040) out.push('z');
  if (f & 0x0020) out.push('ad');
  if (f & 0x0010) out.push('cd');
  return out.join(',');
}

/** miekg/dns RcodeToString (16 prints BADSIG, as there); CoreDNS prints the number for others. */
const RCODE_TEXT: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  6: 'YXDOMAIN',
  7: 'YXRRSET',
  8: 'NXRRSET',
  9: 'NOTAUTH',
  10: 'NOTZONE',
  11: 'DSOTYPENI',
  16: 'BADSIG',
  17: 'BADKEY',
  18: 'BADTIME',
  19: 'BADMODE',
  20: 'BADNAME',
  21: 'BADALG',
  22: 'BADTRUNC',
  23: 'BADCOOKIE',
};

function rcodeText(resp: Buffer): string {
  const rc = responseFullRcode(resp, resp.length);
  if (rc < 0) return EMPTY;
  return RCODE_TEXT[rc] ?? String(rc);
}

/** CoreDNS's {duration}: seconds as a plain decimal with a trailing `s`, e.g. `0.000195959s`. */
function goSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(9).replace(/0+$/, '').replace(/\.$/, '')}s`;
}

/** An address as RFC 3986 writes it in a URI: IPv6 in brackets. */
function rfc3986(addr: string): string {
  return addr.includes(':') ? `[${addr}]` : addr;
}

/** The listener's address from its label (`dns://ADDR:PORT`, `dns://[ADDR]:PORT`); '' without one. */
function localAddress(server: string): string {
  try {
    return splitHostPort(server.replace(/^[a-z]+:\/\//, '')).host;
  } catch (err) {
    if (err instanceof AddressError) return '';
    throw err;
  }
}

/** Every placeholder of CoreDNS's replacer (plugin/pkg/replacer labels). */
const PLACEHOLDERS: Record<string, PartFn> = {
  '{type}': (r) => rrTypeName(r.qtype),
  // CoreDNS's state.Name(): lower-cased, fully qualified.
  '{name}': (r) => r.name().toLowerCase(),
  '{class}': (r) => rrClassName(r.qclass),
  '{proto}': (r) => (r.proto === 1 ? 'tcp' : 'udp'),
  '{size}': (r) => String(r.msgLen),
  '{remote}': (r) => rfc3986(r.remoteAddress),
  '{port}': (r) => String(r.remotePort),
  '{local}': (r) => {
    const a = localAddress(r.server);
    return a === '' ? EMPTY : rfc3986(a);
  },
  '{>id}': (r) => String(r.id),
  '{>opcode}': (r) => String((r.flags >> 11) & 0xf),
  '{>do}': (r) => String(r.dnssecOk),
  // CoreDNS's state.Size(): 65535 over TCP, else the EDNS payload size (at least 512).
  '{>bufsize}': (r) => String(r.proto === 1 ? 65535 : r.udpSize),
  '{rcode}': (_r, resp) => rcodeText(resp),
  '{rsize}': (_r, resp) => String(resp.length),
  '{duration}': (_r, _resp, ms) => goSeconds(ms),
  '{>rflags}': (_r, resp) => responseFlags(resp),
};

/** `{/LABEL}`: the request's metadata value (metadata plugin), `-` when there is none. */
function metadataPart(label: string): PartFn {
  return (r) => {
    const f = r.metadata?.get(label);
    return f === undefined ? EMPTY : f();
  };
}

/**
 * A format split into literals and placeholders, as CoreDNS's replacer parses it: each `}`
 * closes the nearest `{` before it; a known label or `{/metadata}` becomes a value, anything
 * else (`{foo}`, a lone `}`) stays literal text.
 */
function compileFormat(format: string): Part[] {
  const parts: Part[] = [];
  const push = (p: Part) => {
    const last = parts[parts.length - 1];
    if (typeof p === 'string' && typeof last === 'string') parts[parts.length - 1] = last + p;
    else if (p !== '') parts.push(p);
  };
  let s = format;
  for (;;) {
    const j = s.indexOf('}');
    if (j < 0) break;
    const i = s.lastIndexOf('{', j);
    if (i < 0) {
      push(s.slice(0, j + 1));
      s = s.slice(j + 1);
      continue;
    }
    const label = s.slice(i, j + 1);
    const known = Object.hasOwn(PLACEHOLDERS, label) ? PLACEHOLDERS[label]! : label.startsWith('{/') ? metadataPart(label.slice(2, -1)) : null;
    if (known === null) {
      push(s.slice(0, j + 1));
    } else {
      push(s.slice(0, i));
      push(known);
    }
    s = s.slice(j + 1);
  }
  push(s);
  return parts;
}

/** Scratch scan for classify(); used synchronously only. */
const scan = new ResponseScan();

/** CoreDNS's response.Type of the scanned response, by its String() name. */
function typeText(t: ResponseClassValue): string {
  switch (t) {
    case ResponseClass.NO_ERROR:
      return 'NOERROR';
    case ResponseClass.DELEGATION:
      return 'DELEGATION';
    case ResponseClass.NAME_ERROR:
      return 'NXDOMAIN';
    case ResponseClass.NO_DATA:
      return 'NODATA';
    case ResponseClass.SERVER_ERROR:
      return 'SERVERERROR';
  }
  const opcode = (scan.flags & Flag.OPCODE_MASK) >>> Flag.OPCODE_SHIFT;
  if (opcode === Opcode.UPDATE) return 'UPDATE';
  if (opcode === Opcode.NOTIFY || scan.qtype === QType.AXFR || scan.qtype === QType.IXFR) return 'META';
  return 'OTHERERROR';
}

/** Result of the last classify() call (synchronous use only). */
let lastType = 'OTHERERROR';

/**
 * The response's class for `class` selection, CoreDNS's response.Classify(response.Typify(msg)):
 * NoError and Delegation are success, NameError and NoData denial, everything else error.
 * Leaves CoreDNS's type name (`log/type` metadata) in lastType.
 */
function classify(resp: Buffer): number {
  if (!scanResponse(resp, resp.length, scan)) {
    lastType = 'OTHERERROR';
    return LogClass.ERROR;
  }
  const t = typify(scan, resp);
  lastType = typeText(t);
  if (t === ResponseClass.NO_ERROR || t === ResponseClass.DELEGATION) return LogClass.SUCCESS;
  if (t === ResponseClass.NAME_ERROR || t === ResponseClass.NO_DATA) return LogClass.DENIAL;
  return LogClass.ERROR;
}

const CLASS_TEXT: Record<number, string> = { [LogClass.SUCCESS]: 'success', [LogClass.DENIAL]: 'denial', [LogClass.ERROR]: 'error' };

export interface LogRule {
  names: string[];
  parts: Part[];
  classes: number;
}

class LogWriter implements ResponseWriter {
  private readonly inner: ResponseWriter;
  private readonly rule: LogRule;
  private readonly out: (line: string) => void;
  constructor(inner: ResponseWriter, rule: LogRule, out: (line: string) => void) {
    this.inner = inner;
    this.rule = rule;
    this.out = out;
  }
  writeMsg(req: Request, msg: Buffer, len: number): void {
    const resp = msg.subarray(0, len);
    // `class all` (the default) needs no classification: every response is logged.
    const classes = this.rule.classes;
    let cls = 0;
    if (req.metadata !== null) {
      // As CoreDNS, log publishes the response's type and class as metadata (`{/log/type}`,
      // `{/log/class}`) when the block has the metadata plugin.
      cls = classify(resp);
      const type = lastType;
      const clsText = CLASS_TEXT[cls]!;
      req.metadata.set('log/type', () => type);
      req.metadata.set('log/class', () => clsText);
    }
    if (classes === LogClass.ALL || ((cls || classify(resp)) & classes) !== 0) {
      const ms = performance.now() - req.startMs;
      let line = '';
      for (const p of this.rule.parts) line += typeof p === 'string' ? p : p(req, resp, ms);
      this.out(`[INFO] ${line}`);
    }
    req.writer = this.inner;
    this.inner.writeMsg(req, msg, len);
  }
}

/** A rule's names as one wire matcher (a name that cannot be a DNS name matches nothing). */
function ruleZones(names: readonly string[]): ZoneMatcher<string> {
  const m = new ZoneMatcher<string>();
  for (const n of names) {
    try {
      m.add(n, n);
    } catch {
      // Not encodable (e.g. a label over 63 bytes): no query name is under it.
    }
  }
  return m;
}

export class LogPlugin implements Plugin {
  readonly scope = PluginScope.QUERY;
  readonly handler = true;
  readonly name = 'log';
  readonly rules: LogRule[];
  private readonly out: (line: string) => void;
  constructor(rules: LogRule[], out: (line: string) => void = (l) => writeLine('stdout', l + '\n')) {
    this.rules = rules;
    this.out = out;
  }
  compose(next: Handler): Handler {
    const rules = this.rules;
    const zones = rules.map((r) => ruleZones(r.names));
    const out = this.out;
    return {
      serve(req: Request): void {
        for (let i = 0; i < rules.length; i++) {
          if (zones[i]!.contains(req.msg, req.qnameEnd)) {
            req.writer = new LogWriter(req.writer, rules[i]!, out);
            break;
          }
        }
        next.serve(req);
      },
    };
  }
}

export const logSetup: PluginSetup = {
  name: 'log',
  repeatable: true,
  /** Each `log` line is its own rule (names, format, classes), as CoreDNS's setup loop reads them. */
  setupAll(ds: readonly Directive[], ctx: SetupContext): Plugin {
    return new LogPlugin(ds.flatMap((d) => (logSetup.setup(d, ctx) as LogPlugin).rules));
  },
  setup(d: Directive, _ctx: SetupContext): Plugin {
    const args = d.args.map((t) => t.text);
    let format = COMMON_LOG_FORMAT;
    let names: string[] = ['.'];
    if (args.length === 1) {
      // CoreDNS: a single argument is always a name, even one with `{` in it.
      names = [canonicalName(args[0]!)];
    } else if (args.length > 1) {
      const last = args[args.length - 1]!;
      const isFormat = last.includes('{');
      const nameArgs = isFormat ? args.slice(0, -1) : args;
      if (isFormat) format = last.replaceAll('{common}', COMMON_LOG_FORMAT).replaceAll('{combined}', COMBINED_LOG_FORMAT);
      names = nameArgs.map(canonicalName);
    }
    let classes = 0;
    for (const line of blockLines(d)) {
      if (line.name !== 'class') throw unknownPropertyError(line);
      if (line.args.length === 0) throw argCountError(line);
      for (const tok of line.args) {
        const c = tok.text.toLowerCase();
        if (c === 'all') classes |= LogClass.ALL;
        else if (c === 'success') classes |= LogClass.SUCCESS;
        else if (c === 'denial') classes |= LogClass.DENIAL;
        else if (c === 'error') classes |= LogClass.ERROR;
        else throw errorAt(tok, `invalid Class: ${tok.text}`);
      }
    }
    return new LogPlugin([{ names, parts: compileFormat(format), classes: classes || LogClass.ALL }]);
  },
};
