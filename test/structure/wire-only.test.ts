/**
 * src/wire/ is the only code that reads or writes DNS message bytes (issue 14, item 3).
 *
 * Checked on the TypeScript program with types: in every shipped source file outside
 * src/wire/ (tests excluded: they build raw messages on purpose), no expression of a byte
 * buffer type (Uint8Array, Buffer) is
 *  - indexed by a number literal, or by `expr ± literal` (`msg[2]`, `b[p + 1]`), or
 *  - read or written through Buffer's fixed-offset accessors (`readUInt16BE(0)`,
 *    `writeUInt16BE(v, 2)`, ...) with a literal offset;
 * and no number literal is added to or compared with a header offset's value written out
 * (`12 + x`, `msg.length >= 12`). Header fields are read through src/wire/header.ts,
 * messages are built and taken apart by src/wire/.
 *
 * A few files handle bytes that are not DNS messages (IP addresses, frame streams, index
 * arrays); they are listed in ALLOWED with the reason, and each must still need its entry, so
 * the list cannot go stale.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');
const WIRE = path.join(SRC, 'wire');

/** Files whose byte arrays are not DNS messages. Keys are paths relative to the repository. */
const ALLOWED: Readonly<Record<string, string>> = {
  'src/plugins/hosts/ip.ts': 'IPv4/IPv6 address bytes of hosts entries',
  'src/plugins/forward/policy.ts': 'the upstream order array of a policy',
  'src/plugins/dnstap/framestream.ts': 'Frame Streams control frames (not DNS)',
  'src/plugins/hosts/zones.ts': 'IPv4 address bytes of a reverse zone',
};

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (p !== WIRE) out.push(...sourceFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
      out.push(p);
    }
  }
  return out;
}

export interface Finding {
  file: string;
  line: number;
  text: string;
}

const FIXED_OFFSET_ACCESSORS = /^(read|write)U?Int(8|16|32)(BE|LE)?$|^(read|write)BigU?Int64(BE|LE)?$/;

function isByteBuffer(checker: ts.TypeChecker, e: ts.Expression): boolean {
  const t = checker.getTypeAtLocation(e);
  const parts = t.isUnion() ? t.types : [t];
  return parts.some((p) => {
    const name = p.getSymbol()?.getName() ?? '';
    return name === 'Uint8Array' || name === 'Buffer';
  });
}

/** A literal offset: `3`, or `x + 3`, `x - 1`. */
function isFixedOffset(e: ts.Expression): boolean {
  let x = e;
  while (ts.isParenthesizedExpression(x)) x = x.expression;
  if (ts.isNumericLiteral(x)) return true;
  if (ts.isBinaryExpression(x) && (x.operatorToken.kind === ts.SyntaxKind.PlusToken || x.operatorToken.kind === ts.SyntaxKind.MinusToken)) {
    return ts.isNumericLiteral(x.right) || ts.isNumericLiteral(x.left);
  }
  return false;
}

const HEADER_SIZE = 12;

export function findByteOffsets(program: ts.Program, files: readonly string[]): Finding[] {
  const checker = program.getTypeChecker();
  const found: Finding[] = [];
  for (const file of files) {
    const sf = program.getSourceFile(file);
    assert.ok(sf, `${file} is in the program`);
    const at = (n: ts.Node) =>
      found.push({ file: path.relative(ROOT, file), line: sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1, text: n.getText(sf).slice(0, 80) });
    const visit = (n: ts.Node): void => {
      if (ts.isElementAccessExpression(n) && isFixedOffset(n.argumentExpression) && isByteBuffer(checker, n.expression)) at(n);
      else if (ts.isCallExpression(n) && ts.isPropertyAccessExpression(n.expression) && FIXED_OFFSET_ACCESSORS.test(n.expression.name.text)) {
        const offset = n.expression.name.text.startsWith('read') ? n.arguments[0] : n.arguments[1];
        const target = n.expression.expression;
        // Without an offset the accessor reads offset 0 of a message, unless the buffer was just made (randomBytes(2)).
        if ((offset === undefined ? !ts.isCallExpression(target) : isFixedOffset(offset)) && isByteBuffer(checker, target)) at(n);
      } else if (
        ts.isCallExpression(n) &&
        n.arguments.some((a) => ts.isNumericLiteral(a) && Number(a.text) === HEADER_SIZE) &&
        n.arguments.some((a) => isByteBuffer(checker, a))
      ) {
        // qnameToString(msg, 12, end): the header size written out next to a message.
        at(n);
      } else if (
        ts.isBinaryExpression(n) &&
        [
          ts.SyntaxKind.PlusToken,
          ts.SyntaxKind.GreaterThanEqualsToken,
          ts.SyntaxKind.LessThanToken,
          ts.SyntaxKind.GreaterThanToken,
          ts.SyntaxKind.LessThanEqualsToken,
        ].includes(n.operatorToken.kind) &&
        [n.left, n.right].some((s) => ts.isNumericLiteral(s) && Number(s.text) === HEADER_SIZE) &&
        [n.left, n.right].some((s) => /\b(msg|buf|req|resp|reply|query|qnameEnd|questionEnd|len|length)\b/i.test(s.getText(sf)))
      ) {
        at(n);
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return found;
}

function loadProgram(files: readonly string[]): ts.Program {
  const cfg = ts.getParsedCommandLineOfConfigFile(path.join(ROOT, 'tsconfig.json'), {}, { ...ts.sys, onUnRecoverableConfigFileDiagnostic: () => {} });
  assert.ok(cfg, 'tsconfig.json parses');
  return ts.createProgram({ rootNames: [...files], options: { ...cfg.options, noEmit: true } });
}

test('no file outside src/wire/ indexes into a DNS message by a fixed offset', () => {
  const files = sourceFiles(SRC);
  assert.ok(files.length > 50, `found ${files.length} source files`);
  const findings = findByteOffsets(loadProgram(files), files);
  const byFile = new Map<string, Finding[]>();
  for (const f of findings) byFile.set(f.file, [...(byFile.get(f.file) ?? []), f]);
  const offending = findings.filter((f) => !(f.file in ALLOWED));
  assert.deepEqual(
    offending.map((f) => `${f.file}:${f.line}: ${f.text}`),
    [],
    'read and write DNS bytes through src/wire/ (header.ts accessors, message.ts builders)',
  );
  for (const file of Object.keys(ALLOWED)) assert.ok(byFile.has(file), `${file} no longer needs its ALLOWED entry: remove it`);
});

test('the check finds each kind of fixed-offset access (and not the named ones)', () => {
  const dir = path.join(ROOT, 'test', 'structure');
  const file = path.join(dir, '__probe__.ts');
  const text = [
    "import { Header } from '../../src/wire/codes.ts';",
    'export function f(msg: Buffer, b: Uint8Array, p: number, arr: number[], s: string, qnameEnd: number): number {',
    '  const id = msg[0]! << 8;', // 1
    '  b[p + 1] = 0;', // 2
    '  msg.writeUInt16BE(1, 4);', // 3
    '  const x = msg.readUInt16BE(2) + f(msg, b, 12, arr, s, 0);', // 4, 4
    '  if (msg.length >= 12) return 12 + qnameEnd;', // 5, 6
    '  const ok = b[p]! + arr[0]! + s.charCodeAt(0) + b[Header.SIZE]!;', // none: variable index, number[], string, named
    '  return id + x + (ok ? 1 : 0);',
    '}',
  ].join('\n');
  const host = ts.createCompilerHost({
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    noEmit: true,
    types: ['node'],
  });
  const orig = host.getSourceFile;
  host.getSourceFile = (name, lang, ...rest) =>
    path.resolve(name) === file ? ts.createSourceFile(name, text, lang, true) : orig.call(host, name, lang, ...rest);
  const fileExists = host.fileExists;
  host.fileExists = (name) => path.resolve(name) === file || fileExists.call(host, name);
  const program = ts.createProgram({
    rootNames: [file],
    options: {
      strict: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      allowImportingTsExtensions: true,
      noEmit: true,
      types: ['node'],
    },
    host,
  });
  const found = findByteOffsets(program, [file]).map((f) => f.line);
  assert.deepEqual(found, [3, 4, 5, 6, 6, 7, 7]);
});

/** Relative module specifiers a source file imports or re-exports. */
function importsOf(file: string): string[] {
  const sf = ts.createSourceFile(file, ts.sys.readFile(file) ?? '', ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: string[] = [];
  for (const st of sf.statements) {
    if ((ts.isImportDeclaration(st) || ts.isExportDeclaration(st)) && st.moduleSpecifier && ts.isStringLiteral(st.moduleSpecifier)) {
      const spec = st.moduleSpecifier.text;
      if (spec.startsWith('.')) out.push(path.resolve(path.dirname(file), spec));
    }
  }
  return out;
}

test('src/wire/ depends on nothing outside it, and src/plugin.ts and the request do not import each other', () => {
  const wireFiles = readdirSync(WIRE)
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => path.join(WIRE, f));
  const outside = wireFiles.flatMap((f) =>
    importsOf(f)
      .filter((i) => !i.startsWith(WIRE + path.sep))
      .map((i) => `${path.relative(ROOT, f)} -> ${path.relative(ROOT, i)}`),
  );
  assert.deepEqual(outside, []);
  const plugin = path.join(SRC, 'plugin.ts');
  const request = path.join(SRC, 'server', 'request.ts');
  assert.ok(!importsOf(request).includes(plugin), 'server/request.ts must not import plugin.ts (plugin.ts re-exports its types)');
});
