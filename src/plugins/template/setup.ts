/**
 * `template` directive, parsed as CoreDNS's plugin/template/setup.go does:
 *
 *   template CLASS TYPE [ZONE...] {
 *       match REGEX...
 *       answer RR...
 *       additional RR...
 *       authority RR...
 *       rcode CODE
 *       ederror EXTENDED_ERROR_CODE [EXTRA_REASON]
 *       fallthrough [ZONE...]
 *   }
 *
 * Several `template` lines in one server block are one handler with their templates in
 * Corefile order. CLASS and TYPE are miekg/dns names, upper case (ANY allowed); ZONEs default
 * to the server block's zones. No `match`: `.*`. No `rcode`: NOERROR. `upstream` is accepted
 * and ignored (as CoreDNS does). `var` and `expr` (expr-lang expressions, CoreDNS 1.12.1+) are
 * rejected with an error saying node-local-dns does not support them.
 *
 * Error texts are CoreDNS's (`invalid query class X`, `invalid RR class X` for a bad type,
 * `unknown rcode X`, `could not parse regex: R, E`, `could not compile template: T, E`, ...),
 * with the regex and template errors worded by regex.ts and util/gotemplate.ts.
 */
import type { Plugin, PluginSetup, SetupContext } from '../../plugin.ts';
import type { Directive, Token } from '../../corefile/types.ts';
import { argCountError, blockLines, errorAt } from '../../corefile/setup-helpers.ts';
import { normalizeZone, parseServerKey } from '../../corefile/address.ts';
import { CorefileError } from '../../corefile/errors.ts';
import { rrTypeFromName } from '../../wire/codec.ts';
import { compileTemplate, TemplateError, type GoTemplate } from '../../util/gotemplate.ts';
import { compileGoRegex, RegexTranslateError } from './regex.ts';
import { CLASS_BY_NAME, DATA_TYPE, TEMPLATE_FUNCS, TemplatePlugin, type TemplateRule } from './template.ts';
import { collectTemplateGlobal } from './metrics.ts';

/** CoreDNS's maxRegexpLen. */
const MAX_REGEX_LEN = 10000;

/** miekg/dns StringToRcode. */
const RCODE_BY_NAME: ReadonlyMap<string, number> = new Map([
  ['NOERROR', 0],
  ['FORMERR', 1],
  ['SERVFAIL', 2],
  ['NXDOMAIN', 3],
  ['NOTIMP', 4],
  ['NOTIMPL', 4],
  ['REFUSED', 5],
  ['YXDOMAIN', 6],
  ['YXRRSET', 7],
  ['NXRRSET', 8],
  ['NOTAUTH', 9],
  ['NOTZONE', 10],
  ['BADSIG', 16],
  ['BADKEY', 17],
  ['BADTIME', 18],
  ['BADMODE', 19],
  ['BADNAME', 20],
  ['BADALG', 21],
  ['BADTRUNC', 22],
  ['BADCOOKIE', 23],
]);

/** miekg/dns StringToType: exact upper-case mnemonics, no `TYPE123` form. */
function typeByName(name: string): number {
  if (name !== name.toUpperCase() || /^TYPE[0-9]+$/.test(name)) return -1;
  return rrTypeFromName(name);
}

/** Go's strconv.Quote, for the ASCII words a Corefile holds. */
function goQuote(s: string): string {
  return JSON.stringify(s);
}

/** strconv.ParseUint(s, 10, 16). */
function parseUint16(s: string): number | string {
  if (!/^[0-9]+$/.test(s)) return `strconv.ParseUint: parsing ${goQuote(s)}: invalid syntax`;
  const v = Number(s);
  if (v > 0xffff) return `strconv.ParseUint: parsing ${goQuote(s)}: value out of range`;
  return v;
}

/** The remaining args of a block line, or ArgErr at its name when there are none. */
function argsOrErr(line: Directive): Token[] {
  if (line.args.length === 0) argCountError(line);
  return line.args;
}

function compileRR(section: string, line: Directive, tok: Token, warn: (msg: string) => void): GoTemplate {
  try {
    const t = compileTemplate(section, tok.text, { funcs: TEMPLATE_FUNCS, data: DATA_TYPE });
    // Go reports these only when the template runs; CoreDNS loads such a Corefile, so do we.
    for (const w of t.warnings)
      warn(`${tok.file}:${tok.line} - template ${section} ${JSON.stringify(tok.text)} will fail on every query it matches: ${w.replace(/^line \d+: /, '')}`);
    return t;
  } catch (err) {
    if (!(err instanceof TemplateError)) throw err;
    // CoreDNS names the last word of the line (c.Val() after RemainingArgs).
    const last = line.args[line.args.length - 1]!;
    return errorAt(tok, `could not compile template: ${last.text}, ${err.message}`);
  }
}

/**
 * Zones of the arguments (CoreDNS plugin.OriginsFromArgsOrServerBlock): a CIDR is its reverse
 * zone, a `:port` is dropped; a word that is no valid name is kept lower-cased and fully
 * qualified (CoreDNS does not check it either; it just matches no query).
 */
function zonesOf(toks: readonly Token[], fallback: readonly string[]): string[] {
  if (toks.length === 0) return [...fallback];
  return toks.map((t) => {
    try {
      return parseServerKey(t).zone;
    } catch (err) {
      if (err instanceof CorefileError) return normalizeZone(t.text);
      throw err;
    }
  });
}

/** One `template` directive. */
export function parseTemplateDirective(d: Directive, blockZones: readonly string[], warn: (msg: string) => void = () => {}): TemplateRule {
  if (d.args.length === 0) argCountError(d);
  const classTok = d.args[0]!;
  const qclass = CLASS_BY_NAME.get(classTok.text);
  if (qclass === undefined) errorAt(classTok, `invalid query class ${classTok.text}`);
  if (d.args.length < 2) argCountError(classTok);
  const typeTok = d.args[1]!;
  const qtype = typeByName(typeTok.text);
  if (qtype < 0) errorAt(typeTok, `invalid RR class ${typeTok.text}`);
  const rule: TemplateRule = {
    qclass: qclass!,
    qtype,
    zones: zonesOf(d.args.slice(2), blockZones),
    regexes: [],
    regexSources: [],
    rcode: 0,
    answer: [],
    additional: [],
    authority: [],
    ederror: null,
    fall: null,
  };

  for (const line of blockLines(d)) {
    if (line.block !== null) argCountError(line);
    switch (line.name) {
      case 'match':
        for (const tok of argsOrErr(line)) {
          if (tok.text.length > MAX_REGEX_LEN) errorAt(tok, `regex pattern too long: ${tok.text.length} > ${MAX_REGEX_LEN}`);
          try {
            rule.regexes.push(compileGoRegex(tok.text));
          } catch (err) {
            if (!(err instanceof RegexTranslateError)) throw err;
            errorAt(tok, `could not parse regex: ${tok.text}, ${err.message}`);
          }
          rule.regexSources.push(tok.text);
        }
        break;
      case 'answer':
      case 'additional':
      case 'authority':
        for (const tok of argsOrErr(line)) rule[line.name].push(compileRR(line.name, line, tok, warn));
        break;
      case 'var':
      case 'expr':
        errorAt(line, `'${line.name}' is not supported by node-local-dns (CoreDNS evaluates it with the expr-lang language)`);
        break;
      case 'rcode': {
        const args = argsOrErr(line);
        const rcode = RCODE_BY_NAME.get(args[0]!.text);
        if (rcode === undefined) errorAt(args[0]!, `unknown rcode ${args[0]!.text}`);
        // A further word on the line is read by CoreDNS as the next property: ArgErr there.
        if (args.length > 1) argCountError(args[1]!);
        rule.rcode = rcode!;
        break;
      }
      case 'ederror': {
        const args = line.args;
        if (args.length !== 1 && args.length !== 2) argCountError(args.length === 0 ? line : args[args.length - 1]!);
        const code = parseUint16(args[0]!.text);
        if (typeof code === 'string') errorAt(args[0]!, `error parsing extended DNS error code ${args[args.length - 1]!.text}, ${code}`);
        rule.ederror = { code: code as number, reason: args.length === 2 ? args[1]!.text : '' };
        break;
      }
      case 'fallthrough':
        rule.fall = zonesOf(line.args, ['.']);
        break;
      case 'upstream':
        // Accepted and ignored, as CoreDNS does ("remove soon").
        break;
      default:
        argCountError(line);
    }
  }
  if (rule.regexes.length === 0) {
    rule.regexes.push(compileGoRegex('.*'));
    rule.regexSources.push('.*');
  }
  return rule;
}

export const templateSetup: PluginSetup = {
  name: 'template',
  repeatable: true,
  setup(d: Directive, ctx: SetupContext): Plugin {
    return templateSetup.setupAll!([d], ctx);
  },
  setupAll(ds: readonly Directive[], ctx: SetupContext): Plugin {
    return new TemplatePlugin(ds.map((d) => parseTemplateDirective(d, ctx.zones, (m) => ctx.log.warn(`plugin/template: ${m}`))));
  },
  collectGlobal: collectTemplateGlobal,
};
