import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseCorefile, parseCorefileAsync } from './parser.ts';
import { CorefileError } from './errors.ts';
import type { Directive, ServerBlock } from './types.ts';

/** A directive as [name, line, args?, block?] (args omitted when empty and there is no block). */
type D = [string, number, string[]?, D[]?];
interface B {
  keys: string[];
  line: number;
  dirs: D[];
}

function simplifyDirective(d: Directive): D {
  const args = d.args.map((a) => a.text);
  if (d.block !== null) return [d.name, d.line, args, d.block.map(simplifyDirective)];
  return args.length > 0 ? [d.name, d.line, args] : [d.name, d.line];
}

function simplify(blocks: ServerBlock[]): B[] {
  return blocks.map((b) => ({ keys: b.keys.map((k) => k.text), line: b.line, dirs: b.directives.map(simplifyDirective) }));
}

function parse(text: string, env: Record<string, string | undefined> = {}): B[] {
  return simplify(parseCorefile(text, 'Corefile', env));
}

/** Asserts that fn throws a CorefileError with exactly `message`. */
function assertCorefileError(fn: () => unknown, message: string, label = message): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  checkCorefileError(thrown, message, label);
}

/** assertCorefileError for a promise. */
async function assertCorefileRejects(p: Promise<unknown>, message: string, label = message): Promise<void> {
  let thrown: unknown;
  try {
    await p;
  } catch (err) {
    thrown = err;
  }
  checkCorefileError(thrown, message, label);
}

function checkCorefileError(thrown: unknown, message: string, label: string): void {
  assert.ok(thrown instanceof CorefileError, `${label}: expected a CorefileError, got ${String(thrown)}`);
  assert.equal(thrown.code, 'ERR_COREFILE');
  assert.equal(thrown.message, message, label);
  const m = /^(.*):(\d+) - Error during parsing: (.*)$/s.exec(message)!;
  assert.equal(thrown.file, m[1]);
  assert.equal(thrown.line, Number(m[2]));
  assert.equal(thrown.detail, m[3]);
}

// The Corefile node-local-dns logs in the seed article (k8s-dns-node-cache 1.15.16).
const SEED_COREFILE = `cluster.local:53 {
    errors
    cache {
            success 9984 30
            denial 9984 5
    }
    reload
    loop
    bind 169.254.20.10
    forward . 10.96.0.10 {
            force_tcp
    }
    prometheus :9253
    health 169.254.20.10:8080
    }
in-addr.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10
    forward . 10.96.0.10 {
            force_tcp
    }
    prometheus :9253
    }
ip6.arpa:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10
    forward . 10.96.0.10 {
            force_tcp
    }
    prometheus :9253
    }
.:53 {
    errors
    cache 30
    reload
    loop
    bind 169.254.20.10
    forward . /etc/resolv.conf
    prometheus :9253
    }
`;

const reverseBlock = (key: string, line: number): B => ({
  keys: [key],
  line,
  dirs: [
    ['errors', line + 1],
    ['cache', line + 2, ['30']],
    ['reload', line + 3],
    ['loop', line + 4],
    ['bind', line + 5, ['169.254.20.10']],
    ['forward', line + 6, ['.', '10.96.0.10'], [['force_tcp', line + 7]]],
    ['prometheus', line + 9, [':9253']],
  ],
});

test('parseCorefile: the node-local-dns Corefile of the seed article', () => {
  assert.deepEqual(parse(SEED_COREFILE), [
    {
      keys: ['cluster.local:53'],
      line: 1,
      dirs: [
        ['errors', 2],
        [
          'cache',
          3,
          [],
          [
            ['success', 4, ['9984', '30']],
            ['denial', 5, ['9984', '5']],
          ],
        ],
        ['reload', 7],
        ['loop', 8],
        ['bind', 9, ['169.254.20.10']],
        ['forward', 10, ['.', '10.96.0.10'], [['force_tcp', 11]]],
        ['prometheus', 13, [':9253']],
        ['health', 14, ['169.254.20.10:8080']],
      ],
    },
    reverseBlock('in-addr.arpa:53', 16),
    reverseBlock('ip6.arpa:53', 27),
    {
      keys: ['.:53'],
      line: 38,
      dirs: [
        ['errors', 39],
        ['cache', 40, ['30']],
        ['reload', 41],
        ['loop', 42],
        ['bind', 43, ['169.254.20.10']],
        ['forward', 44, ['.', '/etc/resolv.conf']],
        ['prometheus', 45, [':9253']],
      ],
    },
  ]);
});

test('parseCorefile: tokens carry file, line and quoting', () => {
  const [block] = parseCorefile('.:53 {\n  log "a b" c\n}\n', '/etc/Corefile', {});
  assert.deepEqual(block, {
    keys: [{ text: '.:53', file: '/etc/Corefile', line: 1, quoted: false }],
    directives: [
      {
        name: 'log',
        args: [
          { text: 'a b', file: '/etc/Corefile', line: 2, quoted: true },
          { text: 'c', file: '/etc/Corefile', line: 2, quoted: false },
        ],
        block: null,
        file: '/etc/Corefile',
        line: 2,
      },
    ],
    file: '/etc/Corefile',
    line: 1,
  });
});

test('parseCorefile: structure table', () => {
  const cases: Array<[name: string, input: string, expected: B[]]> = [
    ['empty file', '', []],
    ['only comments and blank lines', '# a\n\n   # b\n', []],
    [
      'several keys separated by spaces',
      'cluster.local:53 in-addr.arpa:53 {\n errors\n}',
      [{ keys: ['cluster.local:53', 'in-addr.arpa:53'], line: 1, dirs: [['errors', 2]] }],
    ],
    ['keys separated by comma and space', 'a:53, b:53 {\n errors\n}', [{ keys: ['a:53', 'b:53'], line: 1, dirs: [['errors', 2]] }]],
    ['keys separated by a bare comma', 'a,b {\n}', [{ keys: ['a', 'b'], line: 1, dirs: [] }]],
    ['trailing comma continues the keys on the next line', 'a,\n  b,\n  c {\n  whoami\n}', [{ keys: ['a', 'b', 'c'], line: 1, dirs: [['whoami', 4]] }]],
    ['opening brace on its own line', '.:53\n{\n  whoami\n}', [{ keys: ['.:53'], line: 1, dirs: [['whoami', 3]] }]],
    ['empty block', '.:53 {\n}', [{ keys: ['.:53'], line: 1, dirs: [] }]],
    ['empty block on one line', '.:53 { }', [{ keys: ['.:53'], line: 1, dirs: [] }]],
    ['keys only', '.:53', [{ keys: ['.:53'], line: 1, dirs: [] }]],
    [
      'single block without braces',
      '.:53\nerrors\nforward . 1.1.1.1 {\n  force_tcp\n}\nlog',
      [
        {
          keys: ['.:53'],
          line: 1,
          dirs: [
            ['errors', 2],
            ['forward', 3, ['.', '1.1.1.1'], [['force_tcp', 4]]],
            ['log', 6],
          ],
        },
      ],
    ],
    [
      'directive on the line of the block opener',
      '.:53 { whoami\n  log\n}',
      [
        {
          keys: ['.:53'],
          line: 1,
          dirs: [
            ['whoami', 1],
            ['log', 2],
          ],
        },
      ],
    ],
    [
      'one-line directive block',
      '.:53 {\n  cache { success 9984 30 }\n}',
      [{ keys: ['.:53'], line: 1, dirs: [['cache', 2, [], [['success', 2, ['9984', '30']]]]] }],
    ],
    [
      'words after a directive block opener, closer after the last line',
      '.:53 {\n  cache { success 9984 30\n    denial 9984 5 }\n}',
      [
        {
          keys: ['.:53'],
          line: 1,
          dirs: [
            [
              'cache',
              2,
              [],
              [
                ['success', 2, ['9984', '30']],
                ['denial', 3, ['9984', '5']],
              ],
            ],
          ],
        },
      ],
    ],
    [
      'nested blocks',
      '.:53 {\n  a 1 {\n    b {\n      c 2 3\n    }\n    d\n  }\n  e\n}',
      [
        {
          keys: ['.:53'],
          line: 1,
          dirs: [
            [
              'a',
              2,
              ['1'],
              [
                ['b', 3, [], [['c', 4, ['2', '3']]]],
                ['d', 6],
              ],
            ],
            ['e', 8],
          ],
        },
      ],
    ],
    ['nested one-line blocks closing together', '.:53 {\n  a { b { c } }\n}', [{ keys: ['.:53'], line: 1, dirs: [['a', 2, [], [['b', 2, [], [['c', 2]]]]]] }]],
    ['empty directive block', '.:53 {\n  a {\n  }\n}', [{ keys: ['.:53'], line: 1, dirs: [['a', 2, [], []]] }]],
    [
      'two blocks',
      'a {\n  x\n}\nb {\n  y\n}',
      [
        { keys: ['a'], line: 1, dirs: [['x', 2]] },
        { keys: ['b'], line: 4, dirs: [['y', 5]] },
      ],
    ],
    [
      'next block on the line of the closing brace',
      'a {\n  x\n} b {\n  y\n}',
      [
        { keys: ['a'], line: 1, dirs: [['x', 2]] },
        { keys: ['b'], line: 3, dirs: [['y', 4]] },
      ],
    ],
    [
      'comments everywhere, hash inside quotes kept',
      '# head\n.:53 { # opener\n  # own line\n  log "# not a comment" # trailing\n  errors#glued\n}',
      [
        {
          keys: ['.:53'],
          line: 2,
          dirs: [
            ['log', 4, ['# not a comment']],
            ['errors', 5],
          ],
        },
      ],
    ],
    [
      'quoted words and escapes',
      '.:53 {\n  template "a b" "say \\"hi\\"" "c\\d" ""\n}',
      [{ keys: ['.:53'], line: 1, dirs: [['template', 2, ['a b', 'say "hi"', 'c\\d', '']]] }],
    ],
    ['quoted brace is an argument, not a block', '.:53 {\n  rewrite "{" "}"\n}', [{ keys: ['.:53'], line: 1, dirs: [['rewrite', 2, ['{', '}']]] }]],
    [
      'multi-line quoted argument',
      '.:53 {\n  answer "a\nb" c\n  log\n}',
      [
        {
          keys: ['.:53'],
          line: 1,
          dirs: [
            ['answer', 2, ['a\nb', 'c']],
            ['log', 4],
          ],
        },
      ],
    ],
    [
      'line continuation',
      '.:53 {\n  forward . 1.1.1.1 \\\n     2.2.2.2 {\n    force_tcp\n  }\n}',
      [{ keys: ['.:53'], line: 1, dirs: [['forward', 2, ['.', '1.1.1.1', '2.2.2.2'], [['force_tcp', 4]]]] }],
    ],
    [
      'CRLF line endings and a byte order mark',
      '\ufeff.:53 {\r\n  cache {\r\n    success 1 2\r\n  }\r\n}\r\n',
      [{ keys: ['.:53'], line: 1, dirs: [['cache', 2, [], [['success', 3, ['1', '2']]]]] }],
    ],
    [
      'import as an argument is just a word',
      '.:53 {\n  basicauth / import password\n}',
      [{ keys: ['.:53'], line: 1, dirs: [['basicauth', 2, ['/', 'import', 'password']]] }],
    ],
    ['empty quoted key words are dropped', '"" .:53 {\n}', [{ keys: ['.:53'], line: 1, dirs: [] }]],
    ['only an empty quoted word', '""', []],
  ];
  for (const [name, input, expected] of cases) {
    assert.deepEqual(parse(input), expected, name);
  }
});

test('parseCorefile: error table', () => {
  const cases: Array<[name: string, input: string, message: string]> = [
    ['unclosed server block', '.:53 {\n  whoami\n', "Corefile:2 - Error during parsing: Unexpected EOF, expecting '}' to close the '{' opened at Corefile:1"],
    [
      'unclosed directive block',
      '.:53 {\n  cache {\n    success 1 2\n}\n',
      "Corefile:4 - Error during parsing: Unexpected EOF, expecting '}' to close the '{' opened at Corefile:1",
    ],
    ['stray closing brace at the top', '}\n', "Corefile:1 - Error during parsing: Unexpected '}' because no matching opening brace"],
    ['extra closing brace after a block', '.:53 {\n  whoami\n}\n}\n', "Corefile:4 - Error during parsing: Unexpected '}' because no matching opening brace"],
    [
      'closing brace on a directive line (as CoreDNS)',
      '.:53 {\n  whoami }\n',
      "Corefile:2 - Error during parsing: Unexpected '}' because no matching opening brace",
    ],
    ['closing brace in a block without braces', '.:53\nwhoami\n}\n', "Corefile:3 - Error during parsing: Unexpected '}' because no matching opening brace"],
    [
      'extra closing brace after a directive block',
      '.:53 {\n  cache {\n    success 1 2\n  } }\n}\n',
      "Corefile:4 - Error during parsing: Unexpected '}' because no matching opening brace",
    ],
    [
      'words after a directive block',
      '.:53 {\n  forward . 1.1.1.1 {\n    force_tcp\n  } extra\n}\n',
      "Corefile:4 - Error during parsing: Unexpected 'extra' after '}' closing the block of 'forward'",
    ],
    ['block without keys', '{\n  whoami\n}\n', "Corefile:1 - Error during parsing: Server block without a key before '{'"],
    ['block with only an empty key', '"" {\n  whoami\n}\n', "Corefile:1 - Error during parsing: Server block without a key before '{'"],
    ['trailing comma before the brace', 'a, {\n}\n', "Corefile:1 - Error during parsing: Expected another address but had '{' - check for extra comma"],
    ['trailing comma at the end', 'a:53, b:53,', 'Corefile:1 - Error during parsing: Unexpected EOF'],
    ['brace where a directive name belongs', '.:53 {\n  {\n  }\n}\n', "Corefile:2 - Error during parsing: Unexpected '{' where a directive name was expected"],
    ['unterminated quote', '.:53 {\n  log "abc\n}\n', 'Corefile:2 - Error during parsing: Unterminated quoted string'],
    ['import without argument', '.:53 {\n  import\n}\n', "Corefile:2 - Error during parsing: Wrong argument count or unexpected line ending after 'import'"],
    ['import with two arguments', '.:53 {\n  import a b\n}\n', 'Corefile:2 - Error during parsing: Import takes only one argument (glob pattern or file)'],
    ['import of an empty name', '.:53 {\n  import ""\n}\n', 'Corefile:2 - Error during parsing: Import requires a non-empty filepath'],
  ];
  for (const [name, input, message] of cases) {
    assertCorefileError(() => parseCorefile(input, 'Corefile', {}), message, name);
  }
});

test('parseCorefile: environment substitution', () => {
  const env = { ZONE: 'cluster.local', PORT: '53', UP: '10.96.0.10', LOCAL: '169.254.20.10 10.0.0.10', OPEN: '{' };
  assert.deepEqual(parse('{$ZONE}:{$PORT} {%ZONE%}.x:{%PORT%} {\n  bind {$LOCAL}\n  forward . {$UP} {$NOPE}\n  log "up={$UP}" {$OPEN}\n}', env), [
    {
      keys: ['cluster.local:53', 'cluster.local.x:53'],
      line: 1,
      dirs: [
        // A value with a space stays one word; a missing variable is the empty string.
        ['bind', 2, ['169.254.20.10 10.0.0.10']],
        ['forward', 3, ['.', '10.96.0.10', '']],
        // A brace that comes from a variable is a word, not a block opener.
        ['log', 4, ['up=10.96.0.10', '{']],
      ],
    },
  ]);
  assert.deepEqual(parse('{$MISSING}.:53 {\n}', env), [{ keys: ['.:53'], line: 1, dirs: [] }]);
});

test('parseCorefile: env defaults to process.env', (t) => {
  const name = `NODE_LOCAL_DNS_TEST_${process.pid}`;
  process.env[name] = 'example.org';
  t.after(() => {
    delete process.env[name];
  });
  const blocks = parseCorefile(`{$${name}}:1053 {\n}`, 'Corefile');
  assert.equal(blocks[0]!.keys[0]!.text, 'example.org:1053');
});

test('parseCorefile: snippets', () => {
  assert.deepEqual(parse('(common) {\n  errors\n  cache {\n    success 1 2\n  }\n}\n.:53 {\n  import common\n  log\n}\n'), [
    {
      keys: ['.:53'],
      line: 7,
      // Snippet lines keep the line numbers of the definition.
      dirs: [
        ['errors', 2],
        ['cache', 3, [], [['success', 4, ['1', '2']]]],
        ['log', 9],
      ],
    },
  ]);
  assert.deepEqual(parse('(opts) {\n  force_tcp\n  max_fails 3\n}\n.:53 {\n  forward . 1.1.1.1 {\n    import opts\n    expire 10s\n  }\n}\n'), [
    {
      keys: ['.:53'],
      line: 5,
      dirs: [
        [
          'forward',
          6,
          ['.', '1.1.1.1'],
          [
            ['force_tcp', 2],
            ['max_fails', 3, ['3']],
            ['expire', 8, ['10s']],
          ],
        ],
      ],
    },
  ]);
  // A snippet can hold whole server blocks and be imported where a block starts.
  assert.deepEqual(parse('(blocks) {\n  a {\n    x\n  }\n}\nimport blocks\nb {\n}\n'), [
    { keys: ['a'], line: 2, dirs: [['x', 3]] },
    { keys: ['b'], line: 7, dirs: [] },
  ]);
  // Two expansions of one snippet stay separate lines although their words share line numbers.
  assert.deepEqual(parse('(s) {\n  log\n}\n.:53 {\n  import s\n  import s\n}\n'), [
    {
      keys: ['.:53'],
      line: 4,
      dirs: [
        ['log', 2],
        ['log', 2],
      ],
    },
  ]);
  // Snippets importing snippets, used twice.
  assert.deepEqual(parse('(a) {\n  one\n}\n(b) {\n  import a\n  two\n}\nx {\n  import b\n  import b\n}\n'), [
    {
      keys: ['x'],
      line: 8,
      dirs: [
        ['one', 2],
        ['two', 6],
        ['one', 2],
        ['two', 6],
      ],
    },
  ]);
});

test('parseCorefile: snippet errors', () => {
  const cases: Array<[name: string, input: string, message: string]> = [
    ['unknown snippet', '.:53 {\n  import nosuch\n}\n', 'Corefile:2 - Error during parsing: File to import not found: nosuch'],
    [
      'snippet used before its definition',
      '.:53 {\n  import later\n}\n(later) {\n  log\n}\n',
      'Corefile:2 - Error during parsing: File to import not found: later',
    ],
    ['redeclared snippet', '(s) {\n  log\n}\n(s) {\n  errors\n}\n', 'Corefile:4 - Error during parsing: redeclaration of previously declared snippet s'],
    ['snippet without braces', '(s)\nlog\n', "Corefile:2 - Error during parsing: Unexpected token 'log', expecting '{' after snippet (s)"],
    ['unclosed snippet', '(s) {\n  log\n', "Corefile:2 - Error during parsing: Unexpected EOF, expecting '}' to close the '{' opened at Corefile:1"],
    [
      'snippet importing itself',
      '(loop) {\n  import loop\n}\n.:53 {\n  import loop\n}\n',
      'Corefile:2 - Error during parsing: Import cycle: snippet (loop) -> snippet (loop)',
    ],
    [
      'snippets importing each other',
      '(a) {\n  import b\n}\n(b) {\n  import a\n}\n.:53 {\n  import a\n}\n',
      'Corefile:5 - Error during parsing: Import cycle: snippet (a) -> snippet (b) -> snippet (a)',
    ],
  ];
  for (const [name, input, message] of cases) {
    assertCorefileError(() => parseCorefile(input, 'Corefile', {}), message, name);
  }
});

test('parseCorefile: snippet expansion is capped (exponential imports)', () => {
  // s0 imports s1 twice, s1 imports s2 twice ...: 2^11 expansions without any cycle.
  let text = '';
  for (let i = 0; i < 11; i++) text += `(s${i}) {\n  import s${i + 1}\n  import s${i + 1}\n}\n`;
  text += '(s11) {\n  log\n}\n.:53 {\n  import s0\n}\n';
  assert.throws(
    () => parseCorefile(text, 'Corefile', {}),
    (err: unknown) => err instanceof CorefileError && err.detail === 'maximum snippet import depth (1000) exceeded',
  );
});

// ---- file imports ----

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'nld-corefile-'));
after(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCount = 0;

/** Makes a fresh directory holding `files` (relative path → contents). */
function fixture(files: Record<string, string>): string {
  const dir = path.join(tmpRoot, String(dirCount++));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

test('parseCorefile: import files by glob, relative to the Corefile directory', () => {
  const dir = fixture({
    Corefile: '.:53 {\n  errors\n  import conf.d/*.conf\n  log\n}\n',
    'conf.d/b.conf': 'cache 30\n',
    'conf.d/a.conf': '# first\nforward . 1.1.1.1 {\n  force_tcp\n}\n',
    'conf.d/ignored.txt': 'nope\n',
  });
  const file = path.join(dir, 'Corefile');
  const blocks = parseCorefile(fs.readFileSync(file, 'utf8'), file, {});
  assert.deepEqual(simplify(blocks), [
    {
      keys: ['.:53'],
      line: 1,
      dirs: [
        ['errors', 2],
        ['forward', 2, ['.', '1.1.1.1'], [['force_tcp', 3]]],
        ['cache', 1, ['30']],
        ['log', 4],
      ],
    },
  ]);
  const dirs = blocks[0]!.directives;
  assert.equal(dirs[1]!.file, path.join(dir, 'conf.d/a.conf'));
  assert.equal(dirs[1]!.args[1]!.file, path.join(dir, 'conf.d/a.conf'));
  assert.equal(dirs[1]!.block![0]!.file, path.join(dir, 'conf.d/a.conf'));
  assert.equal(dirs[2]!.file, path.join(dir, 'conf.d/b.conf'));
  assert.equal(dirs[3]!.file, file);
});

test('parseCorefile: imported server blocks, nested imports relative to the importing file', () => {
  const dir = fixture({
    Corefile: 'import zones/*.zone\n.:53 {\n  whoami\n}\n',
    'zones/a.zone': 'a.local:53 {\n  import ../common/opts\n}\n',
    'common/opts': 'errors\nlog\n',
  });
  const file = path.join(dir, 'Corefile');
  const blocks = parseCorefile(fs.readFileSync(file, 'utf8'), file, {});
  assert.deepEqual(simplify(blocks), [
    {
      keys: ['a.local:53'],
      line: 1,
      dirs: [
        ['errors', 1],
        ['log', 2],
      ],
    },
    { keys: ['.:53'], line: 2, dirs: [['whoami', 3]] },
  ]);
  assert.equal(blocks[0]!.file, path.join(dir, 'zones/a.zone'));
  assert.equal(blocks[0]!.directives[0]!.file, path.join(dir, 'common/opts'));
});

test('parseCorefile: import with an absolute path, env in the pattern, snippet defined in an import', () => {
  const dir = fixture({
    'snippets.conf': '(logs) {\n  log\n  errors\n}\n',
    'extra.conf': 'cache 30\n',
  });
  const text = `import ${path.join(dir, 'snippets.conf')}\n.:53 {\n  import logs\n  import {$DIR}/extra.conf\n}\n`;
  assert.deepEqual(parse(text, { DIR: dir }), [
    {
      keys: ['.:53'],
      line: 2,
      dirs: [
        ['log', 2],
        ['errors', 3],
        ['cache', 1, ['30']],
      ],
    },
  ]);
});

test('parseCorefile: a glob matching nothing is a warning, not an error', () => {
  const dir = fixture({ Corefile: '.:53 {\n  import none/*.conf\n  log\n}\n' });
  const file = path.join(dir, 'Corefile');
  const warnings: string[] = [];
  const blocks = parseCorefile(fs.readFileSync(file, 'utf8'), file, {}, { warn: (m) => warnings.push(m) });
  assert.deepEqual(simplify(blocks), [{ keys: ['.:53'], line: 1, dirs: [['log', 3]] }]);
  assert.deepEqual(warnings, ['[WARNING] No files matching import glob pattern: none/*.conf']);
});

test('parseCorefile: file import errors (synchronous and read-ahead parsing alike)', async () => {
  const dir = fixture({
    Corefile: '',
    'a.conf': 'import b.conf\n',
    'b.conf': 'log\nimport a.conf\n',
    'self.conf': '.:53 {\n  import self.conf\n}\n',
    'bad.conf': 'errors\nlog }\n',
    'sub/x.conf': 'log\n',
  });
  const file = path.join(dir, 'Corefile');
  const cases: Array<[name: string, input: string, message: string]> = [
    ['missing file', '.:53 {\n  import nope.conf\n}\n', `${file}:2 - Error during parsing: File to import not found: nope.conf`],
    [
      'two wildcards',
      '.:53 {\n  import */*.conf\n}\n',
      `${file}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: ${dir}/*/*.conf`,
    ],
    [
      'character class',
      '.:53 {\n  import [ab].conf\n}\n',
      `${file}:2 - Error during parsing: Glob pattern may only contain one wildcard (*), but has others: ${dir}/[ab].conf`,
    ],
    ['directory', '.:53 {\n  import sub\n}\n', `${file}:2 - Error during parsing: Could not import ${dir}/sub: is a directory, not a regular file`],
    [
      'files importing each other',
      '.:53 {\n  import a.conf\n}\n',
      `${dir}/b.conf:2 - Error during parsing: Import cycle: ${dir}/a.conf -> ${dir}/b.conf -> ${dir}/a.conf`,
    ],
    ['file importing itself', 'import self.conf\n', `${dir}/self.conf:2 - Error during parsing: Import cycle: ${dir}/self.conf -> ${dir}/self.conf`],
    ['Corefile importing itself', '.:53 {\n  import Corefile\n}\n', `${file}:2 - Error during parsing: Import cycle: ${file} -> ${file}`],
    [
      'error inside an imported file names that file',
      '.:53 {\n  import bad.conf\n}\n',
      `${dir}/bad.conf:2 - Error during parsing: Unexpected '}' because no matching opening brace`,
    ],
  ];
  for (const [name, input, message] of cases) {
    assertCorefileError(() => parseCorefile(input, file, {}), message, name);
    await assertCorefileRejects(parseCorefileAsync(input, file, {}), message, `${name} (async)`);
  }
});

test('parseCorefile: relative Corefile path resolves imports against its directory', (t) => {
  const dir = fixture({ 'conf/Corefile': '.:53 {\n  import part\n}\n', 'conf/part': 'whoami\n' });
  const cwd = process.cwd();
  process.chdir(dir);
  t.after(() => process.chdir(cwd));
  const blocks = parseCorefile(fs.readFileSync('conf/Corefile', 'utf8'), 'conf/Corefile', {});
  assert.equal(blocks[0]!.file, 'conf/Corefile');
  assert.equal(blocks[0]!.directives[0]!.name, 'whoami');
  assert.equal(blocks[0]!.directives[0]!.file, path.join(dir, 'conf/part'));
});

test('import refuses a FIFO, a device and a socket without blocking on them, naming the file and the import line', async (t) => {
  const dir = fixture({ Corefile: '' });
  const file = path.join(dir, 'Corefile');
  const fifo = path.join(dir, 'fifo.conf');
  const { execFileSync } = await import('node:child_process');
  execFileSync('mkfifo', [fifo]);
  const net = await import('node:net');
  const sockPath = path.join(dir, 'sock.conf');
  const server = net.createServer().listen(sockPath);
  await new Promise((r) => server.once('listening', r));
  t.after(() => server.close());
  const cases: Array<[string, string]> = [
    ['fifo.conf', `${file}:2 - Error during parsing: Could not import ${fifo}: is a FIFO, not a regular file`],
    ['/dev/null', `${file}:2 - Error during parsing: Could not import /dev/null: is a character device, not a regular file`],
    ['sock.conf', `${file}:2 - Error during parsing: Could not import ${sockPath}: is a socket or device without a reader, not a regular file`],
  ];
  for (const [target, message] of cases) {
    const input = `.:53 {\n  import ${target}\n}\n`;
    await assertCorefileRejects(parseCorefileAsync(input, file, {}), message, target);
    assertCorefileError(() => parseCorefile(input, file, {}), message, `${target} (sync)`);
  }
});

test('the configuration size limit counts the Corefile and every import; an oversize file is refused before it is read', async () => {
  const dir = fixture({ Corefile: '', 'big.conf': `hosts {\n${'10.0.0.1 host.example\n'.repeat(200)}}\n`, 'small.conf': 'log\n' });
  const file = path.join(dir, 'Corefile');
  const limits = { maxConfigBytes: 2000 };
  const input = '.:53 {\n  import small.conf\n  import big.conf\n}\n';
  const message = `${file}:3 - Error during parsing: Could not import ${dir}/big.conf: larger than the ${2000 - Buffer.byteLength(input) - 4} bytes left of the configuration size limit`;
  await assertCorefileRejects(parseCorefileAsync(input, file, {}, { limits }), message);
  assertCorefileError(() => parseCorefile(input, file, {}, { limits }), message, 'sync');
  // Within the limit: the same Corefile parses.
  assert.equal((await parseCorefileAsync(input, file, {}, { limits: { maxConfigBytes: 10_000 } }))[0]!.directives.length, 2);
  // The Corefile itself.
  await assertCorefileRejects(
    parseCorefileAsync(`# ${'x'.repeat(3000)}\n`, file, {}, { limits }),
    `${file}:1 - Error during parsing: the Corefile has 3003 bytes, above the configuration size limit of 2000`,
  );
});

test('server blocks, words (snippets multiply them), imported files and import depth are bounded', async () => {
  const dir = fixture({
    Corefile: '',
    'one.conf': 'import two.conf\n',
    'two.conf': 'import three.conf\n',
    'three.conf': 'log\n',
    'g/a.conf': 'log\n',
    'g/b.conf': 'errors\n',
    'g/c.conf': 'whoami\n',
  });
  const file = path.join(dir, 'Corefile');
  const blocks = (n: number) => Array.from({ length: n }, (_, i) => `z${i}.example {\n  whoami\n}\n`).join('');
  assert.equal((await parseCorefileAsync(blocks(3), file, {}, { limits: { maxServerBlocks: 3 } })).length, 3);
  await assertCorefileRejects(
    parseCorefileAsync(blocks(4), file, {}, { limits: { maxServerBlocks: 3 } }),
    `${file}:10 - Error during parsing: more than 3 server blocks (the configuration limit)`,
  );
  const snippet = '(s) {\n  a b c d e f g h\n}\n' + '.:53 {\n' + '  import s\n'.repeat(10) + '}\n';
  await assertCorefileRejects(
    parseCorefileAsync(snippet, file, {}, { limits: { maxWords: 60 } }),
    `${file}:8 - Error during parsing: more than 60 words after imports (the configuration limit)`,
  );
  await assertCorefileRejects(
    parseCorefileAsync('.:53 {\n  import g/*.conf\n}\n', file, {}, { limits: { maxImportedFiles: 2 } }),
    `${file}:2 - Error during parsing: Could not import ${dir}/g/c.conf: more than 2 imported files (the configuration limit)`,
  );
  assert.equal((await parseCorefileAsync('.:53 {\n  import one.conf\n}\n', file, {}, { limits: { maxImportDepth: 3 } }))[0]!.directives[0]!.name, 'log');
  await assertCorefileRejects(
    parseCorefileAsync('.:53 {\n  import one.conf\n}\n', file, {}, { limits: { maxImportDepth: 2 } }),
    `${dir}/two.conf:1 - Error during parsing: imports nested more than 2 deep (the configuration limit)`,
  );
});

test('errors quote at most a short excerpt of the offending word (an imported secret stays out of the log)', async () => {
  const hash = 'Hq3vYb1bV8iA0nR2sZ4kL6mP9tQwXcEeFgHjKlMn';
  const line = `root:$6$saltsalt$${hash}:19000:0:99999:7:::`;
  const dir = fixture({ Corefile: '', shadow: `${line}\ndaemon:*:19000:0:99999:7:::\n` });
  const file = path.join(dir, 'Corefile');
  for (const input of ['.:53 {\n  import shadow\n}\n', 'import shadow\n', '.:53 {\n  cache {\n    import shadow\n  }\n}\n']) {
    let message = '';
    try {
      await parseCorefileAsync(input, file, {});
      // The parser accepts the words; the first check of them is the server key or the plugin setup.
      const { loadConfig } = await import('../config/load.ts');
      const { TestEngine } = await import('../../test/lib/metrics-testing.ts');
      await loadConfig(input, file, {
        defaultBind: ['127.0.0.1'],
        defaultPort: 53,
        env: {},
        clock: { nowMs: () => 0 } as never,
        log: { info() {}, warn() {}, error() {} } as never,
        engine: new TestEngine(),
      });
    } catch (err) {
      message = (err as Error).message;
    }
    assert.match(message, /shadow:1 - Error during parsing: /, input);
    assert.ok(!message.includes(hash.slice(0, 8)), `${input}: ${message}`);
    assert.ok(!message.includes('19000'), `${input}: ${message}`);
  }
});
