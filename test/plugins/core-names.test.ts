/**
 * The core never names a plugin (issue 13): outside src/plugins/, no shipped source file holds
 * a string literal that is a plugin's name (or `plugin/NAME`), and none imports from a plugin's
 * folder; only src/plugins/registry.ts and order.ts list plugins. Checked on the TypeScript
 * syntax tree, so comments and identifiers such as `log.info` do not count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { pluginNames } from '../../src/plugins/registry.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SRC = path.join(ROOT, 'src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) {
      if (p !== path.join(SRC, 'plugins')) out.push(...sourceFiles(p));
    } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts')) {
      out.push(p);
    }
  }
  return out;
}

/** Every implemented plugin's name (CoreDNS names we do not implement, such as `any` or `auto`, are ordinary words). */
const NAMES: ReadonlySet<string> = new Set(pluginNames());

interface Finding {
  file: string;
  line: number;
  text: string;
}

export function findPluginNames(file: string, text: string, names: ReadonlySet<string>): Finding[] {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: Finding[] = [];
  const at = (n: ts.Node, what: string) =>
    found.push({ file: path.relative(ROOT, file), line: sf.getLineAndCharacterOfPosition(n.getStart(sf)).line + 1, text: what });
  const visit = (n: ts.Node): void => {
    if ((ts.isImportDeclaration(n) || ts.isExportDeclaration(n)) && n.moduleSpecifier && ts.isStringLiteral(n.moduleSpecifier)) {
      const spec = n.moduleSpecifier.text;
      if (/(^|\/)plugins\/[^/]+\//.test(spec)) at(n, `import from ${spec}`);
      return;
    }
    if (ts.isStringLiteral(n) || ts.isNoSubstitutionTemplateLiteral(n)) {
      const s = n.text;
      const m = /^plugin\/([A-Za-z0-9_]+)/.exec(s);
      if (names.has(s) || (m && names.has(m[1]!))) at(n, JSON.stringify(s));
    } else if (ts.isTemplateExpression(n)) {
      for (const part of [n.head.text, ...n.templateSpans.map((sp) => sp.literal.text)]) {
        const m = /plugin\/([A-Za-z0-9_]+)/.exec(part);
        if (m && names.has(m[1]!)) at(n, part);
      }
    }
    ts.forEachChild(n, visit);
  };
  visit(sf);
  return found;
}

test('the check finds names in literals and plugin imports, not in comments or identifiers', () => {
  const sample = [
    "// the cache plugin and 'forward' in a comment",
    "import { x } from '../plugins/cache/setup.ts';",
    "const a = log.info('x');",
    "if (p.name === 'forward') {}",
    'const b = `plugin/health: lameduck`;',
  ].join('\n');
  const f = findPluginNames(path.join(SRC, 'sample.ts'), sample, NAMES).map((x) => `${x.line}:${x.text}`);
  assert.deepEqual(f, ['2:import from ../plugins/cache/setup.ts', '4:"forward"', '5:"plugin/health: lameduck"']);
});

test('no source file outside src/plugins/ names a plugin', () => {
  const found = sourceFiles(SRC).flatMap((f) => findPluginNames(f, readFileSync(f, 'utf8'), NAMES));
  assert.deepEqual(found, [], found.map((x) => `${x.file}:${x.line} ${x.text}`).join('\n'));
});
