import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  EXIT_CODE_FLAG_ERROR,
  EXIT_CODE_HELP,
  FlagError,
  FlagHelpRequested,
  FlagSet,
  flagExitCode,
  formatGoDurationMs,
  parseGoBool,
  parseGoInt,
} from './flags.ts';

function demo(): FlagSet {
  return new FlagSet('demo')
    .string('name', 'x', 'a name')
    .bool('v', false, 'verbose')
    .bool('on', true, 'switch')
    .int('n', 3, 'a count')
    .duration('every', 60_000, 'a period')
    .string('dns.port', '53', 'port');
}

test('flag syntax forms set values like Go', () => {
  const cases: { argv: string[]; want: Record<string, unknown>; args?: string[] }[] = [
    { argv: ['-name', 'a'], want: { name: 'a' } },
    { argv: ['-name=a'], want: { name: 'a' } },
    { argv: ['--name', 'a'], want: { name: 'a' } },
    { argv: ['--name=a'], want: { name: 'a' } },
    { argv: ['-name='], want: { name: '' } },
    { argv: ['-name', '-v'], want: { name: '-v', v: false } },
    { argv: ['-name=a=b'], want: { name: 'a=b' } },
    { argv: ['-v'], want: { v: true } },
    { argv: ['--v'], want: { v: true } },
    { argv: ['-v=false'], want: { v: false } },
    { argv: ['-v=0'], want: { v: false } },
    { argv: ['-v=T'], want: { v: true } },
    { argv: ['-on=false'], want: { on: false } },
    { argv: ['-v', 'false'], want: { v: true }, args: ['false'] },
    { argv: ['-n', '7'], want: { n: 7 } },
    { argv: ['-n=0x10'], want: { n: 16 } },
    { argv: ['-n', '-5'], want: { n: -5 } },
    { argv: ['-every', '90s'], want: { every: 90_000 } },
    { argv: ['-every=1m30s'], want: { every: 90_000 } },
    { argv: ['-dns.port', '1053'], want: { 'dns.port': '1053' } },
    { argv: ['-v', '--', '-name', 'a'], want: { v: true, name: 'x' }, args: ['-name', 'a'] },
    { argv: ['pos', '-v'], want: { v: false }, args: ['pos', '-v'] },
    { argv: ['-v', '-', '-n', '1'], want: { v: true, n: 3 }, args: ['-', '-n', '1'] },
    { argv: ['-n', '1', '-n', '2'], want: { n: 2 } },
    { argv: [], want: { name: 'x', v: false, on: true, n: 3, every: 60_000 } },
  ];
  for (const c of cases) {
    const p = demo().parse(c.argv);
    for (const [k, v] of Object.entries(c.want)) assert.deepEqual(p.get(k), v, `${c.argv.join(' ')}: ${k}`);
    assert.deepEqual(p.args, c.args ?? [], `${c.argv.join(' ')}: args`);
  }
});

test('set records exactly the flags given', () => {
  const p = demo().parse(['-v', '--name=q']);
  assert.deepEqual([...p.set].sort(), ['name', 'v']);
  assert.equal(p.has('n'), false);
  assert.equal(demo().parse([]).set.size, 0);
});

test('typed getters reject the wrong kind', () => {
  const p = demo().parse([]);
  assert.equal(p.string('name'), 'x');
  assert.equal(p.bool('on'), true);
  assert.equal(p.number('n'), 3);
  assert.throws(() => p.bool('name'), /not a bool/);
  assert.throws(() => p.get('nope'), /not defined/);
});

test('errors carry Go messages and code ERR_FLAG', () => {
  const cases: [string[], string][] = [
    [['-foo'], 'flag provided but not defined: -foo'],
    [['--foo=1'], 'flag provided but not defined: -foo'],
    [['-name'], 'flag needs an argument: -name'],
    [['-n', 'x'], 'invalid value "x" for flag -n: parse error'],
    [['-n', '99999999999999999999'], 'invalid value "99999999999999999999" for flag -n: value out of range'],
    [['-v=maybe'], 'invalid boolean value "maybe" for -v: parse error'],
    [['-every', '60'], 'invalid value "60" for flag -every: parse error'],
    [['---v'], 'bad flag syntax: ---v'],
    [['-=x'], 'bad flag syntax: -=x'],
  ];
  for (const [argv, msg] of cases) {
    assert.throws(
      () => demo().parse(argv),
      (err: unknown) => err instanceof FlagError && err.code === 'ERR_FLAG' && err.message === msg,
      argv.join(' '),
    );
  }
});

test('-h, -help and --help request usage unless defined', () => {
  for (const h of ['-h', '-help', '--help', '--h']) {
    assert.throws(() => demo().parse([h]), FlagHelpRequested);
  }
  const fs = new FlagSet('x').bool('h', false, 'own h');
  assert.equal(fs.parse(['-h']).bool('h'), true);
});

test('flagExitCode maps errors to Go exit statuses', () => {
  assert.equal(flagExitCode(new FlagError('x')), EXIT_CODE_FLAG_ERROR);
  assert.equal(EXIT_CODE_FLAG_ERROR, 2);
  assert.equal(flagExitCode(new FlagHelpRequested()), EXIT_CODE_HELP);
  assert.equal(EXIT_CODE_HELP, 0);
  assert.equal(flagExitCode(new Error('x')), undefined);
});

test('usage listing follows Go PrintDefaults', () => {
  const fs = new FlagSet('prog', 'Header line\n')
    .string('localip', '', 'comma-separated `ips` to bind')
    .bool('setupinterface', true, 'set up the interface')
    .bool('q', false, 'quiet')
    .string('conf', '/etc/Corefile', 'Corefile to load')
    .int('workers', 0, 'worker count')
    .int('retries', 2, 'retry count')
    .duration('syncinterval', 60_000, 'sync period')
    .string('x', '', 'multi\nline');
  assert.equal(
    fs.usage(),
    [
      'Usage of prog:',
      'Header line',
      '  -conf string',
      '    \tCorefile to load (default "/etc/Corefile")',
      '  -localip ips',
      '    \tcomma-separated ips to bind',
      '  -q\tquiet',
      '  -retries int',
      '    \tretry count (default 2)',
      '  -setupinterface',
      '    \tset up the interface (default true)',
      '  -syncinterval duration',
      '    \tsync period (default 1m0s)',
      '  -workers int',
      '    \tworker count',
      '  -x string',
      '    \tmulti',
      '    \tline',
      '',
    ].join('\n'),
  );
});

test('redefining a flag is a programming error', () => {
  assert.throws(() => new FlagSet('x').bool('a', false, '').string('a', '', ''), /redefined/);
});

test('parseGoBool and parseGoInt follow strconv', () => {
  for (const t of ['1', 't', 'T', 'true', 'TRUE', 'True']) assert.equal(parseGoBool(t), true);
  for (const f of ['0', 'f', 'F', 'false', 'FALSE', 'False']) assert.equal(parseGoBool(f), false);
  assert.throws(() => parseGoBool('yes'));
  const ints: [string, number][] = [
    ['10', 10],
    ['+10', 10],
    ['-10', -10],
    ['0x1f', 31],
    ['0X1F', 31],
    ['0o17', 15],
    ['017', 15],
    ['0b101', 5],
    ['0', 0],
    ['1_000', 1000],
    ['_1', NaN],
    ['1_', NaN],
    ['0x_1f', 31],
    ['0x1__f', NaN],
  ];
  for (const [s, v] of ints) {
    if (Number.isNaN(v)) assert.throws(() => parseGoInt(s), s);
    else assert.equal(parseGoInt(s), v, s);
  }
  assert.throws(() => parseGoInt(''));
  assert.throws(() => parseGoInt('08'));
});

test('formatGoDurationMs matches Duration.String', () => {
  const cases: [number, string][] = [
    [0, '0s'],
    [1500, '1.5s'],
    [60_000, '1m0s'],
    [3_600_000, '1h0m0s'],
    [250, '250ms'],
    [90_061_001, '25h1m1.001s'],
    [-2000, '-2s'],
  ];
  for (const [ms, s] of cases) assert.equal(formatGoDurationMs(ms), s);
});
