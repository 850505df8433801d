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
import { ResponseScan, scanResponse } from '../../wire/message.ts';
import { ResponseClass, typify } from '../../wire/typify.ts';
import { typeName, className, rcodeName, Rcode } from '../../wire/codes.ts';
import { writeLine } from '../../util/log.ts';

export const COMMON_LOG_FORMAT =
  '{remote}:{port} - {>id} "{type} {class} {name} {proto} {size} {>do} {>bufsize}" {rcode} {>rflags} {rsize} {duration}';
export const COMBINED_LOG_FORMAT = COMMON_LOG_FORMAT + ' "{>opcode}"';

export const LogClass = { SUCCESS: 1, DENIAL: 2, ERROR: 4, ALL: 7 } as const;

type Part = string | ((req: Request, resp: Buffer, durationMs: number) => string);

function responseFlags(resp: Buffer): string {
  if (resp.length < 4) return '-';
  const f = (resp[2]! << 8) | resp[3]!;
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

/** CoreDNS's `{duration}`: seconds as a plain decimal with a trailing `s`, e.g. `0.000195959s`. */
function goSeconds(ms: number): string {
  return `${(ms / 1000).toFixed(9).replace(/0+$/, '').replace(/\.$/, '')}s`;
}

const PLACEHOLDERS: Record<string, (req: Request, resp: Buffer, durationMs: number) => string> = {
  '{remote}': (r) => (r.family === 6 ? `[${r.remoteAddress}]` : r.remoteAddress),
  '{port}': (r) => String(r.remotePort),
  '{>id}': (r) => String(r.id),
  '{type}': (r) => typeName(r.qtype),
  '{class}': (r) => className(r.qclass),
  // CoreDNS's state.Name(): lower-cased, fully qualified.
  '{name}': (r) => r.name().toLowerCase(),
  '{proto}': (r) => (r.proto === 1 ? 'tcp' : 'udp'),
  '{size}': (r) => String(r.msgLen),
  '{>do}': (r) => String(r.dnssecOk),
  // CoreDNS's state.Size(): 65535 over TCP, else the EDNS payload size (at least 512).
  '{>bufsize}': (r) => String(r.proto === 1 ? 65535 : r.udpSize),
  '{rcode}': (_r, resp) => (resp.length >= 4 ? rcodeName(resp[3]! & 0x0f) : '-'),
  '{>rflags}': (_r, resp) => responseFlags(resp),
  '{rsize}': (_r, resp) => String(resp.length),
  '{duration}': (_r, _resp, ms) => goSeconds(ms),
  '{>opcode}': (r) => String((r.flags >> 11) & 0xf),
  '{server}': (r) => r.server,
};

export function compileFormat(format: string): Part[] {
  const parts: Part[] = [];
  const re = /\{>?[a-z]+\}/g;
  let last = 0;
  for (let m = re.exec(format); m; m = re.exec(format)) {
    if (m.index > last) parts.push(format.slice(last, m.index));
    // An unknown placeholder stays as written (CoreDNS's replacer treats it as a literal).
    parts.push(PLACEHOLDERS[m[0]] ?? m[0]);
    last = m.index + m[0].length;
  }
  if (last < format.length) parts.push(format.slice(last));
  return parts;
}

/** Scratch scan for classify(); used synchronously only. */
const scan = new ResponseScan();

/**
 * The response's class for `class` selection, CoreDNS's response.Classify(response.Typify(msg)):
 * NoError and Delegation are success, NameError and NoData denial, everything else error.
 */
function classify(resp: Buffer): number {
  if (!scanResponse(resp, resp.length, scan)) return LogClass.ERROR;
  const t = typify(scan, resp);
  if (t === ResponseClass.NO_ERROR || t === ResponseClass.DELEGATION) return LogClass.SUCCESS;
  if (t === ResponseClass.NAME_ERROR || t === ResponseClass.NO_DATA) return LogClass.DENIAL;
  return LogClass.ERROR;
}

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
    if (classes === LogClass.ALL || (classify(resp) & classes) !== 0) {
      const ms = performance.now() - req.startMs;
      let line = '';
      for (const p of this.rule.parts) line += typeof p === 'string' ? p : p(req, resp, ms);
      this.out(`[INFO] ${line}`);
    }
    req.writer = this.inner;
    this.inner.writeMsg(req, msg, len);
  }
}

function nameMatches(qname: string, zone: string): boolean {
  if (zone === '.') return true;
  const q = qname.toLowerCase();
  return q === zone || q.endsWith('.' + zone);
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
    const out = this.out;
    return {
      serve(req: Request): void {
        const qname = req.name();
        for (const rule of rules) {
          if (rule.names.some((z) => nameMatches(qname, z))) {
            req.writer = new LogWriter(req.writer, rule, out);
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
    if (args.length > 0) {
      const last = args[args.length - 1]!;
      const isFormat = last.includes('{') || last === '{common}' || last === '{combined}';
      const nameArgs = isFormat ? args.slice(0, -1) : args;
      if (isFormat) format = last === '{common}' ? COMMON_LOG_FORMAT : last === '{combined}' ? COMBINED_LOG_FORMAT : last.replace('{common}', COMMON_LOG_FORMAT).replace('{combined}', COMBINED_LOG_FORMAT);
      if (nameArgs.length > 0) names = nameArgs.map(canonicalName);
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
        else throw errorAt(tok, `unknown class: ${tok.text}`);
      }
    }
    return new LogPlugin([{ names, parts: compileFormat(format), classes: classes || LogClass.ALL }]);
  },
};
