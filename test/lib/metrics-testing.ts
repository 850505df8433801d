/**
 * Test helper: a strict parser of the Prometheus text exposition format 0.0.4, used by the
 * unit and end-to-end tests to read /metrics. It rejects what Prometheus would reject or
 * what client_golang never emits: malformed lines, bad names or escapes, HELP/TYPE given
 * twice or after samples, samples of a family split apart, sample names foreign to their
 * family's type, histogram buckets not ascending or not cumulative, a +Inf bucket differing
 * from _count.
 */
import { defaultServerConfig, type BlockInfo, type EngineHooks, type Logger, type PluginSetup, type SetupContext } from '../../src/plugin.ts';
import { pluginSetups } from '../../src/plugins/registry.ts';
import type { Directive } from '../../src/corefile/types.ts';
import { parseCorefile } from '../../src/corefile/parser.ts';
import { Request } from '../../src/server/request.ts';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface ParsedFamily {
  name: string;
  help: string | null;
  type: string;
  samples: ParsedSample[];
}

export class ExpositionError extends Error {
  readonly code = 'ERR_EXPOSITION' as const;
  constructor(line: number, detail: string) {
    super(`line ${line}: ${detail}`);
    this.name = 'ExpositionError';
  }
}

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function parseValue(s: string, line: number): number {
  if (s === '+Inf') return Infinity;
  if (s === '-Inf') return -Infinity;
  if (s === 'NaN') return NaN;
  if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(s)) throw new ExpositionError(line, `bad value '${s}'`);
  return Number(s);
}

function parseLabels(s: string, line: number): { labels: Record<string, string>; rest: string } {
  const labels: Record<string, string> = {};
  let i = 0;
  for (;;) {
    while (s[i] === ' ') i++;
    if (s[i] === '}') return { labels, rest: s.slice(i + 1) };
    const m = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(s.slice(i));
    if (!m) throw new ExpositionError(line, `bad label name at '${s.slice(i)}'`);
    const name = m[0];
    i += name.length;
    if (s[i] !== '=' || s[i + 1] !== '"') throw new ExpositionError(line, `expected =" after label ${name}`);
    i += 2;
    let v = '';
    for (;;) {
      const c = s[i];
      if (c === undefined) throw new ExpositionError(line, 'unterminated label value');
      if (c === '"') break;
      if (c === '\\') {
        const e = s[i + 1];
        if (e === '\\') v += '\\';
        else if (e === '"') v += '"';
        else if (e === 'n') v += '\n';
        else throw new ExpositionError(line, `bad escape \\${e ?? ''}`);
        i += 2;
        continue;
      }
      v += c;
      i++;
    }
    i++;
    if (name in labels) throw new ExpositionError(line, `label ${name} given twice`);
    if (!LABEL_NAME.test(name)) throw new ExpositionError(line, `bad label name ${name}`);
    labels[name] = v;
    if (s[i] === ',') i++;
    else if (s[i] !== '}') throw new ExpositionError(line, `expected , or } after label ${name}`);
  }
}

function familyOf(sampleName: string, families: Map<string, ParsedFamily>): ParsedFamily | undefined {
  const direct = families.get(sampleName);
  if (direct) return direct;
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (sampleName.endsWith(suffix)) {
      const f = families.get(sampleName.slice(0, -suffix.length));
      if (f && (f.type === 'histogram' || f.type === 'summary')) return f;
    }
  }
  return undefined;
}

function checkHistogram(f: ParsedFamily): void {
  const groups = new Map<string, { buckets: [number, number][]; count?: number }>();
  for (const s of f.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort());
    const g = groups.get(key) ?? { buckets: [] };
    groups.set(key, g);
    if (s.name === `${f.name}_bucket`) {
      if (le === undefined) throw new ExpositionError(0, `${f.name}: bucket without le`);
      g.buckets.push([le === '+Inf' ? Infinity : Number(le), s.value]);
    } else if (s.name === `${f.name}_count`) {
      g.count = s.value;
    }
  }
  for (const [key, g] of groups) {
    for (let i = 1; i < g.buckets.length; i++) {
      if (!(g.buckets[i]![0] > g.buckets[i - 1]![0])) throw new ExpositionError(0, `${f.name}${key}: le not ascending`);
      if (g.buckets[i]![1] < g.buckets[i - 1]![1]) throw new ExpositionError(0, `${f.name}${key}: buckets not cumulative`);
    }
    const last = g.buckets[g.buckets.length - 1];
    if (!last || last[0] !== Infinity) throw new ExpositionError(0, `${f.name}${key}: no +Inf bucket`);
    if (g.count !== last[1]) throw new ExpositionError(0, `${f.name}${key}: +Inf bucket ${last[1]} != count ${g.count}`);
  }
}

/** Parses and checks an exposition; families keyed by name. */
export function parseExposition(text: string): Map<string, ParsedFamily> {
  const families = new Map<string, ParsedFamily>();
  const finished = new Set<string>();
  let current: ParsedFamily | null = null;
  if (text !== '' && !text.endsWith('\n')) throw new ExpositionError(0, 'no final newline');
  const lines = text.split('\n');
  lines.pop();
  lines.forEach((raw, idx) => {
    const n = idx + 1;
    if (raw.trim() === '') return;
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(raw);
      if (!m) return; // plain comment
      const [, kind, name, rest = ''] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) throw new ExpositionError(n, `bad metric name ${name}`);
      let f = families.get(name);
      if (f && (finished.has(name) || f.samples.length > 0)) throw new ExpositionError(n, `${kind} for ${name} after its samples`);
      if (!f) {
        f = { name, help: null, type: 'untyped', samples: [] };
        families.set(name, f);
      }
      if (current && current !== f) finished.add(current.name);
      current = f;
      if (kind === 'HELP') {
        if (f.help !== null) throw new ExpositionError(n, `HELP for ${name} twice`);
        f.help = rest.replace(/\\n/g, '\n').replace(/\\\\/g, '\\');
      } else {
        if (f.type !== 'untyped') throw new ExpositionError(n, `TYPE for ${name} twice`);
        if (!['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(rest)) throw new ExpositionError(n, `bad type ${rest}`);
        f.type = rest;
      }
      return;
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(.*)$/.exec(raw);
    if (!m) throw new ExpositionError(n, `bad sample line '${raw}'`);
    const name = m[1]!;
    let rest = m[2]!;
    let labels: Record<string, string> = {};
    if (rest.startsWith('{')) ({ labels, rest } = parseLabels(rest.slice(1), n));
    const parts = rest.trim().split(/\s+/);
    if (!rest.startsWith(' ') || parts.length < 1 || parts.length > 2) throw new ExpositionError(n, `bad sample '${raw}'`);
    const value = parseValue(parts[0]!, n);
    let f = familyOf(name, families);
    if (!f) {
      f = { name, help: null, type: 'untyped', samples: [] };
      families.set(name, f);
    }
    if (finished.has(f.name)) throw new ExpositionError(n, `samples of ${f.name} are not together`);
    if (current && current !== f) finished.add(current.name);
    current = f;
    if (f.type === 'counter' || f.type === 'gauge' || f.type === 'untyped') {
      if (name !== f.name) throw new ExpositionError(n, `sample ${name} in ${f.type} ${f.name}`);
    }
    if (f.type === 'histogram' && name === `${f.name}_bucket` && labels.le === undefined) throw new ExpositionError(n, 'bucket without le');
    f.samples.push({ name, labels, value });
  });
  for (const f of families.values()) if (f.type === 'histogram') checkHistogram(f);
  return families;
}

function sameLabels(a: Record<string, string>, b: Record<string, string>): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}

/** The value of the sample `name` with exactly these labels, or undefined. */
export function sampleValue(families: Map<string, ParsedFamily>, name: string, labels: Record<string, string> = {}): number | undefined {
  const f = familyOf(name, families);
  return f?.samples.find((s) => s.name === name && sameLabels(s.labels, labels))?.value;
}

/** All samples named `name` (label sets and values). */
export function samplesOf(families: Map<string, ParsedFamily>, name: string): ParsedSample[] {
  const f = familyOf(name, families);
  return f ? f.samples.filter((s) => s.name === name) : [];
}

/**
 * An EngineHooks for plugin tests: its state is set by the test, and it records what plugins
 * ask of it (fatal messages, reloads). `reloadResult` decides whether reload succeeds.
 */
export class TestEngine implements EngineHooks {
  ready = true;
  shuttingDown = false;
  blockList: BlockInfo[] = [];
  path: string | null = null;
  text = '';
  readonly fatals: string[] = [];
  readonly reloads: string[] = [];
  reloadResult: (() => Promise<void>) | null = null;

  async reload(reason: string): Promise<void> {
    this.reloads.push(reason);
    if (this.reloadResult) await this.reloadResult();
  }
  isReady(): boolean {
    return this.ready && !this.shuttingDown;
  }
  isShuttingDown(): boolean {
    return this.shuttingDown;
  }
  blocks(): BlockInfo[] {
    return this.blockList;
  }
  fatal(msg: string): never {
    this.fatals.push(msg);
    throw new Error(`fatal: ${msg}`);
  }
  corefilePath(): string | null {
    return this.path;
  }
  corefileText(): string {
    return this.text;
  }
  pluginSetups(): Iterable<PluginSetup> {
    return pluginSetups().values();
  }
}

/** A Logger that keeps its lines (`INFO msg`, `WARNING msg`, `ERROR msg`). */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  info(msg: string): void {
    this.lines.push(`INFO ${msg}`);
  }
  warn(msg: string): void {
    this.lines.push(`WARNING ${msg}`);
  }
  error(msg: string): void {
    this.lines.push(`ERROR ${msg}`);
  }
}

/** The first directive of `. { LINE }` as the Corefile parser builds it (line 2 of `Corefile`). */
export function directiveOf(line: string): Directive {
  return parseCorefile(`. {\n${line}\n}\n`, 'Corefile', {})[0]!.directives[0]!;
}

/** A SetupContext for one block (`.` on port 53 of 127.0.0.1 unless overridden). */
export function setupContext(engine: EngineHooks, overrides: Partial<SetupContext> = {}): SetupContext {
  return {
    zones: ['.'],
    port: 53,
    serverLabels: ['dns://127.0.0.1:53'],
    server: defaultServerConfig(['127.0.0.1']),
    blockIndex: 0,
    file: 'Corefile',
    shared: new Map(),
    env: {},
    clock: () => performance.now(),
    log: new MemoryLogger(),
    engine,
    ...overrides,
  };
}

/** A Request as the server leaves it after replying (what ZoneStats.record reads). */
export function answeredRequest(f: {
  proto?: 0 | 1;
  family?: 4 | 6;
  qtype?: number;
  dnssecOk?: boolean;
  msgLen?: number;
  responseLen?: number;
  rcode?: number;
  respondedBy?: string;
}): Request {
  const r = new Request(Buffer.alloc(0), f.msgLen ?? 40, { writeMsg() {} });
  r.proto = f.proto ?? 0;
  r.family = f.family ?? 4;
  r.qtype = f.qtype ?? 1;
  r.dnssecOk = f.dnssecOk ?? false;
  r.responseLen = f.responseLen ?? 80;
  r.rcode = f.rcode ?? 0;
  r.respondedBy = f.respondedBy ?? '';
  r.replied = true;
  return r;
}
